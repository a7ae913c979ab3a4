#!/usr/bin/env bash
# Builds .kit/, what tests/benchmarks/bench_gpu.py needs on a lent GPU machine (the `device` tool
# of this workplace) that the machine lacks: it has its own Python 3.12, torch 2.11 and
# transformers 5.17, no FFmpeg and no network. Run here, from the repository root:
#
#     bash tests/benchmarks/device_kit.sh
#
# then, with the device tool: carry [".kit"], command "bash tests/benchmarks/device_run.sh".
#
# .kit/ holds (about 50 MB, under the tool's 64 MiB):
#   whl/          torchcodec built for the machine's torch, transformers and qwen-vl-utils wheels
#   ffmpeg.tar.xz FFmpeg 7.1's shared libraries as the PyAV wheel bundles them, with links under
#                 the names torchcodec asks for (libavcodec.so.61...). Checked here on 2026-11-24:
#                 torchcodec loads them that way, and the 120 planned frames of both benchmark
#                 clips, decoded and resized, are bit-identical to those from Debian's FFmpeg 5.1.
#   clip.mp4      60 s of 1080p H.264 (x264 veryfast, 30 fps, default GOP and B-frames; CRF 30
#                 so that it travels; the CPU benchmark's clip is CRF 23)
#   clip.json     its VideoFacts from vlcli's probe, since the machine has no ffprobe
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=.kit
TORCHCODEC=${TORCHCODEC:-0.11.1}  # 0.11 pairs with the machine's torch 2.11
AV=${AV:-14.2.0}                  # bundles FFmpeg 7.1, which torchcodec 0.11 supports
PY=.venv/bin/python
mkdir -p "$KIT/whl"


download() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$1" "${@:2}"
}
download "$KIT/whl" "torchcodec==$TORCHCODEC" "transformers==5.24.0" "qwen-vl-utils==0.0.14"

if [ ! -f "$KIT/ffmpeg.tar.xz" ]; then
    tmp=$(mktemp -d)
    download "$tmp" "av==$AV"
    (cd "$tmp" && unzip -q av-*.whl 'av.libs/*')
    (
        cd "$tmp/av.libs"
        for f in libav*.so.* libsw*.so.* libpostproc*.so.*; do
            [ -e "$f" ] || continue
            name=${f%%-*}
            major=$(echo "$f" | sed -E 's/.*\.so\.([0-9]+)\..*/\1/')
            ln -sf "$f" "$name.so.$major"
        done
    )
    tar -C "$tmp" -cJf "$KIT/ffmpeg.tar.xz" av.libs
    rm -rf "$tmp"
fi

if [ ! -f "$KIT/clip.mp4" ]; then
    ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30 -t 60 -c:v libx264 \
        -preset veryfast -crf 30 -pix_fmt yuv420p "$KIT/clip.mp4"
fi
$PY - "$KIT/clip.mp4" >"$KIT/clip.json" <<'EOF'
import dataclasses, json, sys
from vlcli.media import probe
print(json.dumps(dataclasses.asdict(probe(sys.argv[1]).video_facts())))
EOF
du -sh "$KIT" "$KIT"/*

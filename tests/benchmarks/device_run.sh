#!/usr/bin/env bash
# Runs on a lent GPU machine, from the repository root, with .kit/ carried there
# (see tests/benchmarks/device_kit.sh): installs the kit's wheels under /tmp/site, links PyAV's
# FFmpeg libraries under /tmp/ffmpeg for torchcodec, and runs bench_gpu.py with the full-size
# Qwen2.5-VL-7B architecture (random bf16 weights) on the kit's clip. Output and the JSON line go to
# $OUT/bench_gpu.txt when $OUT is set (the device tool sets it).
#
#     bash tests/benchmarks/device_run.sh [--size tiny|7b] [--new-tokens N] [--device cuda]
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=.kit
[ -d "$KIT/whl" ] || { echo "no $KIT/: run tests/benchmarks/device_kit.sh here first, and carry .kit"; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$KIT"/whl/*.whl
# torchcodec finds FFmpeg by the usual names; PyAV's wheel has the libraries under hashed ones.
mkdir -p /tmp/ffmpeg
for f in /tmp/site/av.libs/lib{av,sw,postproc}*.so.*; do
    [ -e "$f" ] || continue
    base=$(basename "$f")
    major=$(echo "$base" | sed -E 's/.*\.so\.([0-9]+)\..*/\1/')
    ln -sf "$f" "/tmp/ffmpeg/${base%%-*}.so.$major"
done
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export LD_LIBRARY_PATH=/tmp/ffmpeg${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONUNBUFFERED=1
log=${OUT:-/tmp}/bench_gpu.txt
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 -c "import torch, transformers, torchcodec; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'torchcodec', torchcodec.__version__)"
    python3 -c "from torchcodec._core import ops; print(ops.get_ffmpeg_library_versions())"
    python3 -c "import av; print('PyAV', av.__version__, av.ffmpeg_version_info)"
    python3 tests/benchmarks/bench_gpu.py --size 7b --clip "$KIT/clip.mp4" \
        --facts "$KIT/clip.json" --device cuda "$@"
} 2>&1 | tee "$log"

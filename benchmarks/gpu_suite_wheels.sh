#!/usr/bin/env bash
# Downloads into .whl/ (git-ignored) the wheels benchmarks/gpu_suite.py needs on the GPU machine, which has no network
# and has Python 3.12, torch 2.11 (CUDA 13), transformers 5.17, lightning 2.6.6, torchmetrics 1.9, accelerate,
# safetensors, numpy, pyarrow, matplotlib, scipy, pillow, tqdm, pyyaml and imageio installed, but not:
#   diffusers, jsonargparse[signatures] (LightningCLI), open_clip_torch (HPS v2) + ftfy, torchvision (open_clip's
#   transforms; 0.26.0 is the release built for torch 2.11.0), requests (imported by diffusers).
# Versions: those this repository is tested with (the lead's virtualenv); the extra dependencies are each wheel's
# Requires-Dist minus what the machine has. Not shipped: timm (open_clip imports it only for timm towers),
# importlib_metadata (diffusers imports it only on Python < 3.8), lpips / imageio-ffmpeg (video metrics: not in the suite).
#
#   bash benchmarks/gpu_suite_wheels.sh          # then, on the GPU machine, from the repository root:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && \
#     export PYTHONPATH=/tmp/site:$PWD && python3 benchmarks/gpu_suite.py --out $OUT/gpu_suite.json
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PIP:-python3 -m pip}"
rm -rf .whl
mkdir -p .whl
$PIP download --quiet --no-deps --only-binary=:all: --dest .whl \
    --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any \
    diffusers==0.42.1 \
    jsonargparse==4.53.0 docstring_parser==0.18.0 typeshed_client==2.15.0 \
    open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 torchvision==0.26.0 \
    requests==2.34.2 urllib3==2.8.0 idna==3.20 certifi==2026.10.19.post1 charset_normalizer==3.5.3
ls -1 .whl
du -sh .whl

#!/usr/bin/env bash
# The 9-minute CIFAR-10 run on a lent GPU machine (JAX there, no TensorFlow, no network).
#
# Prepare here: a folder the device tool carries and git ignores (.git/info/exclude),
#   .gpu/wheels/*.whl        keras and those of its dependencies JAX does not bring
#                            (namex, optree; h5py, rich, absl-py if missing there)
#   .gpu/cifar10-jpeg.tar.gz a copy of ../shared/data/cifar10-jpeg.tar.gz (../shared
#                            does not travel)
# then run, in the repository root there (device tool: carry [".gpu"], timeout_s 600):
#   bash examples/gpu/device_cifar.sh
# Writes $OUT/cifar.log and $OUT/cifar/ (args.json, metrics.csv, state.json, the last
# checkpoint, one .keras per network, cifar.json): 8 files. Extra arguments go to the
# runner, e.g. --dtype-policy mixed_bfloat16 or --unroll 2; BUDGET (seconds, default 520)
# leaves the data loading, the final evaluation and the saves inside a 600 s command.
set -euo pipefail
: "${OUT:?set OUT to the folder that comes back}"
BUDGET="${BUDGET:-520}"
pip install -q --no-index --no-deps .gpu/wheels/*.whl
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv || true
PYTHONUNBUFFERED=1 KERAS_BACKEND=jax PYTHONPATH=. python -m examples.paper_scale_gpu cifar \
    --tar .gpu/cifar10-jpeg.tar.gz --output-dir "$OUT/cifar" --budget "$BUDGET" "$@" \
    2>&1 | tee "$OUT/cifar.log"

#!/usr/bin/env bash
# The 9-minute CIFAR-10 run on a lent GPU machine (JAX there, no TensorFlow, no network).
#
# Prepare here: a folder the device tool carries and git ignores, e.g.
#   mkdir -p .gpu/wheels && echo /.gpu/ >> .git/info/exclude
#   cp ../shared/data/cifar10-jpeg.tar.gz .gpu/        # ../shared does not travel
#   cp /opt/pypi/files/{keras-3.15.1-py3-none-any,namex-0.1.0-py3-none-any}.whl \
#      /opt/pypi/files/optree-0.20.0-cp311-*.whl .gpu/wheels/
# (keras and those of its dependencies JAX does not bring, for the device's Python; add
# h5py, rich, absl-py if missing there), then run in the repository root there (device
# tool: carry [".gpu"], timeout_s 600):
#   bash examples/gpu/device_cifar.sh
# Writes $OUT/cifar.log and $OUT/cifar/ (args.json, metrics.csv, state.json, the last
# checkpoint, one .keras per network, cifar.json): 8 files. Extra arguments go to the
# runner, e.g. --dtype-policy mixed_bfloat16 or --unroll 2; BUDGET (seconds, default 520)
# leaves the data loading, the final evaluation and the saves inside a 600 s command;
# WHEELS=none skips the install (a CPU dry run: bash examples/gpu/device_cifar.sh --smoke).
set -euo pipefail
: "${OUT:?set OUT to the folder that comes back}"
BUDGET="${BUDGET:-520}"
WHEELS="${WHEELS:-.gpu/wheels}"
if [ "$WHEELS" != none ]; then pip install -q --no-index --no-deps "$WHEELS"/*.whl; fi
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv || true
PYTHONUNBUFFERED=1 KERAS_BACKEND=jax PYTHONPATH=. python -m examples.paper_scale_gpu cifar \
    --tar .gpu/cifar10-jpeg.tar.gz --output-dir "$OUT/cifar" --budget "$BUDGET" "$@" \
    2>&1 | tee "$OUT/cifar.log"

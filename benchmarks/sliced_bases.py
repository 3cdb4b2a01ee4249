"""TFLite size of a network-wide sliced basis: ``sliced_bases="copy"`` vs ``"pad"``.

DenseNet-12-40 with one basis for the whole network (``config="M36T6"``, Table 7)
calls the basis on layers narrower than its depth, which then use its first
channels. TFLite stores convolution weights as constants, so ``"copy"`` stores every
distinct slice as its own tensor; ``"pad"`` (the default of
``keras_basis.export_tflite``) zero-pads the narrow inputs to the basis depth at
trace time, so the basis is stored once. Prints, for the baseline and both forms of
the basis network: Keras parameters (BatchNorm included), file bytes, the ratios to
the baseline, and the largest relative difference between the file's and the Keras
model's outputs on two random inputs (``keras_basis.tflite.compare_with_keras``).

    python benchmarks/sliced_bases.py                 # DenseNet-40 (a few minutes)
    python benchmarks/sliced_bases.py --depth 10      # a small DenseNet, to test it
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # examples/

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_basis  # noqa: E402
from examples.cifar10.densenet import densenet  # noqa: E402
from keras_basis import tflite as kt  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=40, help="DenseNet depth (40: the paper's)")
    p.add_argument("--config", default="M36T6", help="basis config, Table 7")
    p.add_argument("--quantize", default=None, choices=[None, "int8"],
                   help="also quantize (full-integer, 2 random calibration inputs)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    x = np.random.default_rng(args.seed).standard_normal((2, 32, 32, 3)).astype("float32")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant, sliced in (("baseline", "pad"), ("basis", "copy"), ("basis", "pad")):
            keras.utils.set_random_seed(args.seed)
            kwargs = {"config": args.config} if variant == "basis" else {}
            model = densenet(args.depth, 12, variant, **kwargs)
            path = pathlib.Path(tmp) / f"{variant}-{sliced}.tflite"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the "uses sliced bases" warning of "copy"
                keras_basis.export_tflite(model, path, sliced_bases=sliced,
                                          quantize=args.quantize,
                                          representative_dataset=x if args.quantize else None,
                                          calibration_steps=len(x) if args.quantize else 1)
            err = kt.compare_with_keras(model, path, x)["max_rel_error"]
            rows.append((variant if variant == "baseline" else f"basis, sliced_bases={sliced!r}",
                         model.count_params(), path.stat().st_size, err))
    base_params, base_bytes = rows[0][1], rows[0][2]
    print(f"DenseNet-{args.depth} ({args.config}), {args.quantize or 'float32'}")
    print("| model | params | file bytes | params x | bytes x | max rel. error vs Keras |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, params, size, err in rows:
        print(f"| {name} | {params:,} | {size:,} | {params / base_params:.3f} | "
              f"{size / base_bytes:.3f} | {err:.1e} |")


if __name__ == "__main__":
    main()

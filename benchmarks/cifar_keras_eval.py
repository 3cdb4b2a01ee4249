"""Evaluate CIFAR-10 ``.keras`` classifiers with TensorFlow, and their float32 TFLite files.

For the models saved by ``examples/paper_scale_gpu.py cifar`` (trained on a GPU with
Keras on JAX; the models take raw 0-255 pixels normalised by the caller with the
paper's mean/std, as that runner does): top-1 on the CIFAR-10 JPEG copy's test set
under TensorFlow, then ``keras_basis.export_tflite`` (float32), the file's bytes and
the largest absolute difference between TFLite and Keras logits on the first test
images (``keras_basis.tflite.compare_with_keras``).

    python benchmarks/cifar_keras_eval.py runs/gpu-cifar/resnet56-baseline.keras \\
        runs/gpu-cifar/resnet56-basis.keras --tar ../shared/data/cifar10-jpeg.tar.gz
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # examples/

import keras  # noqa: E402
import numpy as np  # noqa: E402

import examples.cifar10.models  # noqa: E402, F401  (registers the recipe's layers)
import keras_basis  # noqa: E402
from examples.cifar10.common import CIFAR_MEAN, CIFAR_STD  # noqa: E402
from examples.paper_scale_gpu import load_cifar_tar  # noqa: E402
from keras_basis import tflite as kt  # noqa: E402

DEFAULT_TAR = pathlib.Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpeg.tar.gz"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=pathlib.Path, metavar="MODEL.keras")
    p.add_argument("--tar", default=str(DEFAULT_TAR), help="cifar10-jpeg.tar.gz")
    p.add_argument("--test-limit", type=int, default=None,
                   help="first N test images only (default: all 10,000)")
    p.add_argument("--compare", type=int, default=64,
                   help="test images for the TFLite vs Keras comparison")
    args = p.parse_args(argv)

    x, y = load_cifar_tar(args.tar)["test"]
    if args.test_limit:
        x, y = x[: args.test_limit], y[: args.test_limit]
    x = (x.astype("float32") - np.asarray(CIFAR_MEAN, "float32")) / np.asarray(
        CIFAR_STD, "float32")
    print("| model | params | test top-1 (TensorFlow) | TFLite float32 bytes | "
          "max abs diff TFLite vs Keras | max rel diff |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.models:
            model = keras.saving.load_model(path, compile=False)
            logits = model.predict(x, batch_size=500, verbose=0)
            acc = float(np.mean(np.argmax(logits, -1) == y))
            lite = keras_basis.export_tflite(model, pathlib.Path(tmp) / f"{path.stem}.tflite")
            err = kt.compare_with_keras(model, lite, x[: args.compare])
            print(f"| {path.name} | {model.count_params():,} | {100 * acc:.2f}% | "
                  f"{lite.stat().st_size:,} | {err['max_abs_error']:.1e} | "
                  f"{err['max_rel_error']:.1e} |")


if __name__ == "__main__":
    main()

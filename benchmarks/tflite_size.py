"""TFLite file size against parameters, before and after export's shrink (issue 12, T3).

For three model pairs (original, compressed), both exported by
``keras_basis.export_tflite`` in float32 and int8:

- ``demo``: ``keras_basis.demo.build_cnn()`` against ``keras_basis.compress(model,
  ratio=0.5, objective="params")``;
- ``demo-0.75``, ``demo-0.5``, ``demo-0.25``: the same CNN against the demo's own rows,
  ``keras_basis.compress(model, ratio=r)`` with the default objective;
- ``resnet56``: the CIFAR-10 recipe's ResNet-56, baseline against Table 8 (one basis
  per stage, m = 24/48/84);
- ``srresnet``: the DIV2K recipe's SRResNet (x4) against Basis-64-14, traced at a
  32x32 input (the file size does not depend on it).

Weights are random and, unless ``--zero-biases``, so are the biases and BatchNorm
statistics (as after training: the converter stores equal constants once, so
untrained all-zero biases would make files smaller than trained ones). Parameters
are the stored weights: Keras weights without BatchNorm (folded into the
convolutions), a shared basis once. "before" is the converter's file
(``export_tflite(..., shrink=False)``), "after" the file ``export_tflite`` writes
(no internal tensor names, each equal vector and table stored once). The outputs
of both files are compared on two random inputs, XNNPACK on and off (max abs
difference of the outputs, int8 outputs dequantized).

    python benchmarks/tflite_size.py                      # the three pairs
    python benchmarks/tflite_size.py --models demo-0.75 demo-0.5 demo-0.25
    python benchmarks/tflite_size.py --models resnet56 --zero-biases
    python benchmarks/tflite_size.py FILE.tflite ...      # where the bytes of files go
"""

from __future__ import annotations

import argparse
import inspect
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

CATEGORIES = ("weights", "biases", "quantization", "names", "other", "total")


def build_pair(name):
    """(original, compressed, input shape) of one of the three pairs."""
    import keras

    import keras_basis

    if name == "demo" or name.startswith("demo-"):
        from keras_basis.demo import build_cnn

        keras.utils.set_random_seed(0)
        original = build_cnn()
        if name == "demo":
            kwargs = {"ratio": 0.5}
            if "objective" in inspect.signature(keras_basis.compress).parameters:
                kwargs["objective"] = "params"
        else:
            kwargs = {"ratio": float(name.split("-", 1)[1])}
        return original, keras_basis.compress(original, **kwargs), (16, 16, 1)
    if name == "resnet56":
        from examples.cifar10.models import resnet56

        return resnet56("baseline"), resnet56("basis"), (32, 32, 3)
    from examples.div2k.models import build

    shape = (32, 32, 3)
    return (build("srresnet", scale=4, input_shape=shape),
            build("srresnet-basis-64-14", scale=4, input_shape=shape), shape)


def randomize(model, seed, biases=True):
    """Random BatchNorm statistics and (with ``biases``) random biases of every layer."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            randomize(layer, seed + 1, biases)
        elif isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            if biases and layer.beta is not None:
                layer.beta.assign(rng.normal(0, 0.1, n).astype("float32"))
        elif biases:
            for w in layer.weights:
                if w.path.endswith("bias"):
                    w.assign(rng.normal(0, 0.1, w.shape).astype("float32"))


def stored_params(model):
    """Weights without BatchNorm (folded into convs by the converter), shared once."""
    import keras

    seen, total, stack = set(), 0, list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.Model):
            stack.extend(layer.layers)
        elif not isinstance(layer, keras.layers.BatchNormalization):
            for w in layer.weights:
                if id(w) not in seen:
                    seen.add(id(w))
                    total += int(np.prod(w.shape))
    return total


def convert_pair(model, shape, quantize):
    """(bytes before shrink, bytes export_tflite writes) at batch 1.

    "before" needs ``export_tflite(..., shrink=False)``; None where it is missing.
    """
    import keras_basis

    data = np.random.default_rng(0).standard_normal((4,) + shape).astype("float32")
    kwargs = {"quantize": quantize, "representative_dataset": data, "calibration_steps": 4,
              "input_shape": shape, "return_content": True}
    _, small = keras_basis.export_tflite(model, None, **kwargs)
    if "shrink" not in inspect.signature(keras_basis.export_tflite).parameters:
        return None, small
    _, raw = keras_basis.export_tflite(model, None, shrink=False, **kwargs)
    return raw, small


def max_diff(raw, small, shape):
    from keras_basis import tflite as kt

    if raw is None:
        return float("nan")
    x = np.random.default_rng(1).standard_normal((2,) + shape).astype("float32")
    return max(float(np.max(np.abs(kt.run_tflite(raw, x, xnnpack=on).astype(np.float64)
                                    - kt.run_tflite(small, x, xnnpack=on))))
               for on in (True, False))


def measure(name, zero_biases=False):
    from keras_basis import tflite as kt

    original, compressed, shape = build_pair(name)
    rows = []
    for variant, model in (("original", original), ("compressed", compressed)):
        randomize(model, 0, biases=not zero_biases)
        for quantize in (None, "int8"):
            raw, small = convert_pair(model, shape, quantize)
            rows.append({
                "model": name, "variant": variant, "precision": quantize or "float32",
                "params": stored_params(model), "keras_params": model.count_params(),
                "before": kt.size_breakdown(raw or small), "after": kt.size_breakdown(small),
                "has_before": raw is not None,
                "max_abs_diff": max_diff(raw, small, shape),
            })
    return rows


def print_tables(rows):
    print("| model | precision | params x | file x before | file x after | target "
          "(params x + 0.05) | met | bytes before -> after (compressed) | max abs diff |")
    print("|---|---|---:|---:|---:|---:|---|---|---:|")
    for row in rows:
        if row["variant"] != "compressed":
            continue
        base = next(r for r in rows if r["model"] == row["model"]
                    and r["variant"] == "original" and r["precision"] == row["precision"])
        px = row["params"] / base["params"]
        before = (f"{row['before']['total'] / base['before']['total']:.4f}"
                  if row["has_before"] else "n/a")
        after = row["after"]["total"] / base["after"]["total"]
        diff = max(row["max_abs_diff"], base["max_abs_diff"])
        print(f"| {row['model']} | {row['precision']} | {px:.4f} | {before} | "
              f"{after:.4f} | {px + 0.05:.4f} | {'yes' if after <= px + 0.05 else 'NO'} | "
              f"{row['before']['total']:,} -> {row['after']['total']:,} | {diff:g} |")
    print()
    print("| model | variant | precision | params (Keras) | "
          + " | ".join(f"{c} before -> after" for c in CATEGORIES) + " |")
    print("|---|---|---|---:|" + "---:|" * len(CATEGORIES))
    for row in rows:
        cells = " | ".join(f"{row['before'][c]:,} -> {row['after'][c]:,}" for c in CATEGORIES)
        print(f"| {row['model']} | {row['variant']} | {row['precision']} | "
              f"{row['params']:,} ({row['keras_params']:,}) | {cells} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", type=pathlib.Path, metavar="FILE.tflite",
                   help="print where the bytes of these files go instead")
    p.add_argument("--models", nargs="+", default=["demo", "resnet56", "srresnet"],
                   choices=["demo", "demo-0.75", "demo-0.5", "demo-0.25", "resnet56",
                            "srresnet"])
    p.add_argument("--zero-biases", action="store_true",
                   help="keep the builders' all-zero biases (BatchNorm statistics random)")
    args = p.parse_args(argv)
    from keras_basis import tflite as kt

    if args.files:
        print("| file | " + " | ".join(CATEGORIES) + " |")
        print("|---|" + "---:|" * len(CATEGORIES))
        for path in args.files:
            sizes = kt.size_breakdown(path)
            print(f"| {path.name} | " + " | ".join(f"{sizes[c]:,}" for c in CATEGORIES) + " |")
        return
    rows = [row for name in args.models for row in measure(name, args.zero_biases)]
    print_tables(rows)


if __name__ == "__main__":
    main()

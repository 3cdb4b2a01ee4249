"""compress(): uniform vs error-optimal allocation, SVD vs data init.

Trains a small ResNet-style CNN on a subset of CIFAR-10 (JPEG copy), then for
each parameter ratio compresses it with both allocation rules (and init="data"
for comparison), and reports test accuracy right after compression and after
the same short fine-tuning. CPU-sized; prints a Markdown table and writes
JSON next to it under --out.

    python benchmarks/compress_rules.py            # 23 min on 2 shared cores
    python benchmarks/compress_rules.py --smoke    # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from cifar_tar import DEFAULT_TAR, load_per_class  # noqa: E402

import keras_basis  # noqa: E402
from keras_basis import fileio  # noqa: E402


def resnet(width=32):
    def block(x, c, stride, name):
        y = keras.layers.Conv2D(c, 3, strides=stride, padding="same", use_bias=False,
                                name=f"{name}_conv1")(x)
        y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
        y = keras.layers.ReLU()(y)
        y = keras.layers.Conv2D(c, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
        y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
        if stride != 1 or x.shape[-1] != c:
            x = keras.layers.Conv2D(c, 1, strides=stride, use_bias=False,
                                    name=f"{name}_short")(x)
        return keras.layers.ReLU()(keras.layers.Add(name=f"{name}_add")([x, y]))

    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(inp)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="stem_bn")(x))
    x = block(x, width, 1, "s1b1")
    x = block(x, width, 1, "s1b2")
    x = block(x, 2 * width, 2, "s2b1")
    x = block(x, 2 * width, 1, "s2b2")
    x = block(x, 4 * width, 2, "s3b1")
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(10, name="fc")(x), name="small_resnet")


def augment(x, rng):
    flip = rng.random(len(x)) < 0.5
    x = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
    pad = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    out = np.empty_like(x)
    for i, (dy, dx) in enumerate(rng.integers(0, 9, size=(len(x), 2))):
        out[i] = pad[i, dy:dy + 32, dx:dx + 32]
    return out


def fit(model, x, y, epochs, lr, seed, batch=64):
    rng = np.random.default_rng(seed)
    steps = epochs * int(np.ceil(len(x) / batch))
    sched = keras.optimizers.schedules.CosineDecay(lr, steps)
    model.compile(keras.optimizers.SGD(sched, momentum=0.9, weight_decay=5e-4),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    for _ in range(epochs):
        model.fit(augment(x, rng), y, batch_size=batch, epochs=1, verbose=0, shuffle=True)


def accuracy(model, x, y):
    logits = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == y))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_TAR), help="cifar10-jpeg.tar.gz")
    ap.add_argument("--train-per-class", type=int, default=300)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.25])
    ap.add_argument("--calibration", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/compress_rules")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    args = ap.parse_args()
    if args.smoke:
        args.train_per_class, args.test_per_class, args.epochs = 20, 10, 1
        args.width, args.ratios, args.calibration = 8, [0.5], 32
    keras.utils.set_random_seed(args.seed)
    t0 = time.time()
    x, y = load_per_class(args.data, args.train_per_class, args.test_per_class)
    print(f"data: {len(x['train'])} train / {len(x['test'])} test ({time.time() - t0:.0f} s)")
    base = resnet(args.width)
    fit(base, x["train"], y["train"], args.epochs, 0.05, args.seed)
    base_acc = accuracy(base, x["test"], y["test"])
    print(f"baseline acc {base_acc:.4f} ({time.time() - t0:.0f} s)")
    calib = x["train"][: args.calibration]
    rows = []
    for ratio in args.ratios:
        for allocation, init in (("uniform", "svd"), ("error", "svd"),
                                 ("uniform", "data"), ("error", "data")):
            small = keras_basis.compress(
                base, ratio=ratio, objective="params", allocation=allocation, init=init,
                calibration_data=calib if init == "data" else None, verbose=0,
            )
            rep = keras_basis.report(small, reference=base, print_fn=None)
            acc0 = accuracy(small, x["test"], y["test"])
            keras.utils.set_random_seed(args.seed + 1)
            fit(small, x["train"], y["train"], args.finetune_epochs, 0.01, args.seed + 1)
            acc1 = accuracy(small, x["test"], y["test"])
            row = {
                "ratio": ratio, "allocation": allocation, "init": init,
                "conv_params_ratio": rep.totals["params_ratio"],
                "mean_rel_error": rep.totals["mean_rel_error"],
                "acc_compressed": acc0, "acc_finetuned": acc1,
            }
            rows.append(row)
            print(row, f"({time.time() - t0:.0f} s)")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"args": vars(args), "baseline_acc": base_acc,
              "baseline_params": int(base.count_params()), "rows": rows,
              "seconds": time.time() - t0}
    fileio.write_text(out / "results.json", json.dumps(result, indent=2))
    print(f"\nbaseline test acc {base_acc:.4f}, {base.count_params():,} params")
    print("| ratio | allocation | init | conv weights kept | mean rel. error | "
          "acc. after compress | acc. after fine-tune |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['ratio']} | {r['allocation']} | {r['init']} | "
              f"{r['conv_params_ratio']:.3f} | {r['mean_rel_error']:.3f} | "
              f"{r['acc_compressed']:.4f} | {r['acc_finetuned']:.4f} |")
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()

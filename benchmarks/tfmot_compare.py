"""Peer comparison: filter basis x tfmot (int8, QAT, pruning, clustering) on CIFAR-10.

One small baseline CNN is trained on a subset of the CIFAR-10 JPEG copy
(../shared/data/cifar10-jpeg.tar.gz, read with tarfile, nothing extracted into
the repo), then every variant gets the same fine-tuning budget
(``--ft-epochs`` over the same training subset) and is exported to TFLite:

  baseline float | int8 PTQ alone | tfmot pruning alone | tfmot clustering alone |
  basis alone | basis + int8 PTQ | basis + QAT | basis + pruned coefficients |
  basis + clustering

Post-training int8 rows reuse a trained float model (no extra training). For
each TFLite file: test accuracy (run in ai_edge_litert, batch 1), bytes, gzip
bytes (level 9) and batch-1 latency (1 thread, median). Results go to
``--out`` (results.json, args.json, the .tflite files) and the plot to
``--plot``.

Usage (repository root; the run reported in benchmarks/RESULTS.md):

    python benchmarks/tfmot_compare.py --out runs/tfmot_compare \\
        --plot benchmarks/tfmot_compare.png
    python benchmarks/tfmot_compare.py --out runs/tfmot_compare --replot \\
        --plot benchmarks/tfmot_compare.png     # redraw the plot only

``--smoke`` runs a tiny version (a minute) to check the script.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import pathlib
import time

import numpy as np
from cifar_tar import DEFAULT_TAR, load_per_class

from keras_basis import fileio


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_argument_group("data")
    g.add_argument("--data", default=str(DEFAULT_TAR), help="cifar10-jpeg.tar.gz")
    g.add_argument("--train", type=int, default=10000, help="training images (balanced)")
    g.add_argument("--test", type=int, default=2000, help="test images (balanced)")
    g = p.add_argument_group("training")
    g.add_argument("--width", type=int, default=16, help="channels of the first stage")
    g.add_argument("--epochs", type=int, default=5, help="baseline training epochs")
    g.add_argument("--ft-epochs", type=int, default=1, help="fine-tuning epochs per variant")
    g.add_argument("--batch", type=int, default=64)
    g.add_argument("--lr", type=float, default=2e-3)
    g.add_argument("--ft-lr", type=float, default=5e-4)
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("compression")
    g.add_argument("--ratio", type=float, default=0.5, help="basis: kept weight fraction")
    g.add_argument("--sparsity", type=float, default=0.5, help="pruning target")
    g.add_argument("--clusters", type=int, default=16, help="clustering: values per tensor")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="runs/tfmot_compare")
    g.add_argument("--plot", default=None, help="PNG path of accuracy vs bytes")
    g.add_argument("--latency-runs", type=int, default=200)
    g.add_argument("--smoke", action="store_true", help="tiny sizes, to test the script")
    g.add_argument("--replot", action="store_true",
                   help="only redraw --plot from the results.json in --out")
    args = p.parse_args(argv)
    if args.smoke:
        args.train, args.test, args.epochs, args.ft_epochs = 500, 200, 1, 1
        args.latency_runs = 20
    return args


# ----------------------------------------------------------------------- data
def load_cifar(path, n_train, n_test):
    """Balanced subsets of the JPEG copy (the first files of each class), shuffled."""
    x, y = load_per_class(path, n_train // 10, n_test // 10)
    out = []
    for split in ("train", "test"):
        order = np.random.default_rng(0).permutation(len(y[split]))
        out += [x[split][order], y[split][order]]
    return out


# --------------------------------------------------------------------- models
def baseline_model(width, seed):
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    x = inp = keras.Input((32, 32, 3))
    for i, n in enumerate([width, width, 2 * width, 2 * width, 4 * width]):
        if i in (2, 4):
            x = layers.MaxPooling2D()(x)
        x = layers.Conv2D(n, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10, name="head")(x), name="cifar_cnn")


def _flip(x, rng):
    flip = rng.random(len(x)) < 0.5
    x = x.copy()
    x[flip] = x[flip, :, ::-1]
    return x


def fit(model, x, y, epochs, lr, batch, seed, callbacks=()):
    """Adam, cross-entropy, horizontal flips; works for Keras 3 and tf_keras models."""
    is_k3 = type(model).__module__.startswith("keras.")
    if is_k3:
        import keras as K
    else:
        import tf_keras as K
    steps = max(1, epochs * (len(x) // batch))
    schedule = K.optimizers.schedules.CosineDecay(lr, steps)
    model.compile(
        K.optimizers.Adam(schedule),
        K.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(seed)
    t0 = time.time()
    for epoch in range(epochs):
        model.fit(
            _flip(x, rng), y, batch_size=batch, epochs=1, verbose=0,
            callbacks=list(callbacks), shuffle=True,
        )  # fmt: skip
    return time.time() - t0


# --------------------------------------------------------------------- tflite
def tflite_metrics(content, x, y, runs):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=content, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    correct = 0
    for sample, label in zip(x, y):
        interp.set_tensor(inp["index"], sample[None])
        interp.invoke()
        correct += int(interp.get_tensor(out["index"])[0].argmax() == label)
    times = []
    for i in range(runs + 10):
        t0 = time.perf_counter()
        interp.set_tensor(inp["index"], x[i % len(x)][None])
        interp.invoke()
        if i >= 10:
            times.append(time.perf_counter() - t0)
    return {
        "accuracy": correct / len(y),
        "bytes": len(content),
        "gzip_bytes": len(gzip.compress(content, 9)),
        "latency_ms": 1000 * float(np.median(times)),
    }


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in (
        (axes[0], "bytes", "TFLite bytes"),
        (axes[1], "gzip_bytes", "gzip -9 TFLite bytes"),
    ):
        for row in results:
            basis = row["name"].startswith("basis")
            ax.scatter(row[key] / 1024, 100 * row["accuracy"], marker="o" if basis else "s",
                       color="tab:blue" if basis else "tab:orange")
            ax.annotate(row["name"], (row[key] / 1024, 100 * row["accuracy"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel(label + " (KiB, log)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    fig.suptitle("CIFAR-10 (JPEG copy) subset: accuracy vs size (blue: basis, orange: peers)",
                 fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    fileio.write_bytes(path, buf.getvalue())


# ----------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    out = pathlib.Path(args.out)
    if args.replot:
        results = json.loads((out / "results.json").read_text())
        plot(results, args.plot)
        return results
    out.mkdir(parents=True, exist_ok=True)
    fileio.write_text(out / "args.json", json.dumps(vars(args), indent=2))
    t_start = time.time()

    # keras_basis.tfmot first: it imports tfmot without leaving TF_USE_LEGACY_KERAS
    # set, so tf.keras stays Keras 3; tfmot's own verbs are then used directly.
    import keras_basis  # noqa: I001 (order matters, see above)
    import keras_basis.tfmot as kbt
    import tensorflow_model_optimization as tfmot
    import tf_keras

    x, y, xt, yt = load_cifar(args.data, args.train, args.test)
    print(f"data: train {x.shape} test {xt.shape} ({time.time() - t_start:.0f}s)", flush=True)
    calib = x[:200]
    results, log = [], {}

    def add(name, content, train_s, note=""):
        fileio.write_bytes(out / f"{name}.tflite", content)
        row = {"name": name, **tflite_metrics(content, xt, yt, args.latency_runs),
               "train_s": round(train_s, 1), "note": note}
        results.append(row)
        print(json.dumps(row), flush=True)
        fileio.write_text(out / "results.json", json.dumps(results, indent=2))

    # 1. baseline (Keras 3), then its tf_keras twin for the tfmot peers
    base = baseline_model(args.width, args.seed)
    t = fit(base, x, y, args.epochs, args.lr, args.batch, args.seed)
    log["baseline_train_s"] = t
    base_tk = kbt.to_tf_keras(base)
    add("baseline float", kbt.export_tflite(base_tk), t, f"{args.epochs} epochs")
    add("int8 PTQ alone", kbt.export_tflite(base_tk, int8=True, representative_data=calib), 0.0,
        "no fine-tuning")

    ft = dict(epochs=args.ft_epochs, lr=args.ft_lr, batch=args.batch, seed=args.seed + 1)
    # tfmot updates masks at steps frequency, 2*frequency, ... (counting from 1)
    freq = max(1, min(50, (len(x) // args.batch) // 3))
    sched = tfmot.sparsity.keras.ConstantSparsity(args.sparsity, begin_step=0, frequency=freq)

    # 2. tfmot alone
    def copy(model):  # tfmot wraps the layers it is given: never hand it base_tk itself
        clone = tf_keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone

    pruned = tfmot.sparsity.keras.prune_low_magnitude(copy(base_tk), pruning_schedule=sched)
    t = fit(pruned, x, y, callbacks=[kbt.UpdatePruningStep()], **ft)
    add("tfmot pruning alone", kbt.export_tflite(kbt.strip_pruning(pruned)), t,
        f"sparsity {args.sparsity} on all conv/dense")
    clustered = tfmot.clustering.keras.cluster_weights(
        copy(base_tk), number_of_clusters=args.clusters,
        cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS,
    )  # fmt: skip
    t = fit(clustered, x, y, **ft)
    add("tfmot clustering alone", kbt.export_tflite(kbt.strip_clustering(clustered)), t,
        f"{args.clusters} clusters per conv/dense kernel")

    # 3. basis (keras_basis.compress, SVD init), then basis x tfmot
    small = keras_basis.compress(base, ratio=args.ratio, objective="params", verbose=0)
    small_tk = kbt.to_tf_keras(small)
    basis_ft = copy(small_tk)
    t = fit(basis_ft, x, y, **ft)
    add("basis alone", kbt.export_tflite(basis_ft), t, f"ratio {args.ratio}")
    add("basis + int8 PTQ", kbt.export_tflite(basis_ft, int8=True, representative_data=calib),
        t, "PTQ of 'basis alone'")
    qat = kbt.quantize_basis_model(small_tk)
    t = fit(qat, x, y, **ft)
    add("basis + QAT", kbt.export_tflite(qat), t, "QAT from the compressed model")
    bp = kbt.prune_coefficients(small_tk, sparsity=args.sparsity, frequency=freq)
    t = fit(bp, x, y, callbacks=[kbt.UpdatePruningStep()], **ft)
    add("basis + pruned coef", kbt.export_tflite(kbt.strip_pruning(bp)), t,
        f"coefficient sparsity {args.sparsity}")
    bc = kbt.cluster_basis_model(small_tk, number_of_clusters=args.clusters)
    t = fit(bc, x, y, **ft)
    add("basis + clustering", kbt.export_tflite(kbt.strip_clustering(bc)), t,
        f"{args.clusters} clusters per basis and coefficient kernel")

    log["total_s"] = time.time() - t_start
    log["params"] = {"baseline": int(base.count_params()), "basis": int(small.count_params())}
    fileio.write_text(out / "log.json", json.dumps(log, indent=2))
    if args.plot:
        plot(results, args.plot)
    print(json.dumps(log), flush=True)
    return results


if __name__ == "__main__":
    main()

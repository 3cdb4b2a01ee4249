"""``keras-basis demo``: the whole story on real images, offline, in a few minutes.

1. Train a small CNN on the 1,797 handwritten digits that ship with
   scikit-learn (``sklearn.datasets.load_digits``: 8x8 images, 10 classes),
   upsampled to 16x16, with a fixed stratified 80/20 train/test split.
2. Compress it with :func:`keras_basis.compress` at several ratios (its
   default objective, SVD initialisation) and fine-tune each model briefly.
3. Export every model to float32 and full-integer int8 ``.tflite`` files with
   :func:`keras_basis.export_tflite` (int8 calibrated on training images).
4. Measure test accuracy in Keras and in TFLite, the file sizes and the
   batch-1 latency (the files of one format timed round-robin in the same
   rounds, :func:`keras_basis.latency.time_interleaved`; each compressed
   file's latency ratio to the original is the median over the rounds of
   their same-round ratio, :func:`keras_basis.latency.paired_ratios`, so it
   is measured under the same load), print one table and write
   ``results.md``, ``results.json``, ``accuracy_vs_size.png`` (accuracy and
   latency against size), the ``.tflite`` files and the ``.keras`` models to
   the output folder.

Run it as ``keras-basis demo --output-dir demo-output`` or call :func:`run`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import platform
import sys
import time

from keras_basis.plots import plot_accuracy_vs_size

__all__ = [
    "DemoConfig", "build_cnn", "format_table", "load_data", "plot_accuracy_vs_size", "run",
]


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo (defaults: the full run, about 2 minutes on 2 cores).

    Attributes:
        output_dir: folder for the results (created if missing).
        ratios: the ``ratio`` of each compressed operating point (what it
            budgets is ``objective``'s choice).
        epochs: training epochs of the baseline CNN.
        finetune_epochs: fine-tuning epochs of each compressed model.
        batch_size: training batch size.
        image_size: digits are upsampled from 8x8 to this size.
        width: channels of the first conv block (the later ones have twice as many).
        learning_rate: Adam learning rate of the baseline (cosine decay to 0).
        finetune_learning_rate: Adam learning rate of the fine-tuning (cosine decay).
        threads: TFLite interpreter threads for the latency column.
        latency_runs: timed batch-1 runs per file (median reported).
        calibration_samples: training images used to calibrate int8.
        objective: :func:`keras_basis.compress`'s ``objective`` (None: its
            default).
        allocation: how ``objective="params"`` spreads the ratio over the
            layers (``"error"`` or ``"uniform"``).
        seed: seed of the split, the initialisation and the training order.
    """

    output_dir: str = "demo-output"
    ratios: tuple = (0.75, 0.5, 0.25)
    epochs: int = 20
    finetune_epochs: int = 5
    batch_size: int = 32
    image_size: int = 16
    width: int = 32
    learning_rate: float = 2e-3
    finetune_learning_rate: float = 5e-4
    threads: int = 1
    latency_runs: int = 200
    calibration_samples: int = 200
    objective: object = None
    allocation: str = "error"
    seed: int = 0

    @classmethod
    def quick(cls, **overrides):
        """Tiny settings for smoke tests: one ratio, few epochs, few timed runs."""
        settings = dict(ratios=(0.25,), epochs=5, finetune_epochs=1, latency_runs=10)
        settings.update(overrides)
        return cls(**settings)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------- data
def load_data(image_size=16, seed=0):
    """Digits as float32 images in [0, 1], ``(x_train, y_train, x_test, y_test)``.

    The 8x8 images (values 0..16) are scaled to [0, 1] and resized bilinearly
    to ``image_size`` x ``image_size``; the split is stratified, 20% test,
    ``random_state=seed``.
    """
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype("float32") / 16.0)[..., None]
    if image_size != 8:
        x = tf.image.resize(x, (image_size, image_size), method="bilinear").numpy()
    x = np.clip(x, 0.0, 1.0).astype("float32")
    y = digits.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=seed, stratify=y
    )
    return x_train, y_train, x_test, y_test


def build_cnn(image_size=16, width=32, num_classes=10):
    """The demo's CNN: five 3x3 convolutions (width, width, 2w, 2w, 2w), two pools.

    With ``width=32`` it has 102,570 parameters, 101,952 of them in the
    3x3 convolutions that :func:`keras_basis.compress` can shrink.
    """
    import keras

    layers = keras.layers
    x = inputs = keras.Input((image_size, image_size, 1), name="image")
    for i, (filters, pool) in enumerate(
        [(width, False), (width, True), (2 * width, False), (2 * width, True), (2 * width, False)]
    ):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        if pool:
            x = layers.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


# ------------------------------------------------------------------------ training
def _progress_callback(desc, epochs, steps):
    import keras

    try:
        from tqdm.auto import tqdm
    except ImportError:  # plain lines without tqdm
        tqdm = None

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = None
            if tqdm is not None:
                self.bar = tqdm(
                    total=epochs * steps, desc=desc, unit="step", leave=True, file=sys.stderr,
                    bar_format="{l_bar}{bar:24}{r_bar}",
                )

        def on_train_batch_end(self, batch, logs=None):
            if self.bar is not None:
                self.bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            info = dict(epoch=f"{epoch + 1}/{epochs}", loss=f"{logs.get('loss', 0):.3f}",
                        acc=f"{logs.get('accuracy', 0):.3f}")
            if self.bar is not None:
                self.bar.set_postfix(info, refresh=True)
            else:
                print(f"  {desc}: " + " ".join(f"{k} {v}" for k, v in info.items()),
                      file=sys.stderr, flush=True)

        def on_train_end(self, logs=None):
            if self.bar is not None:
                self.bar.close()

    return Progress()


def _fit(model, x, y, *, epochs, batch_size, learning_rate, desc):
    import keras

    steps = -(-len(x) // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
        callbacks=[_progress_callback(desc, epochs, steps)],
    )
    return model


def _accuracy(probabilities, labels):
    import numpy as np

    return float(np.mean(np.argmax(probabilities, axis=-1) == labels))


def _keras_accuracy(model, x, y):
    return _accuracy(model.predict(x, batch_size=256, verbose=0), y)


# ------------------------------------------------------------------------- writing
def _ratio(value):
    return "-" if value is None else f"{value:.2f}"


def format_table(rows):
    """The demo's result table as text (one row per model and format).

    ``size x`` and ``latency x`` are the ratios to the original file of the
    same format (``file_ratio``, ``latency_ratio``; "-" where a row has none).
    """
    header = ["model", "format", "params", "MFLOPs", "file bytes", "size x", "acc Keras",
              "acc TFLite", "latency ms", "latency x"]
    cells = [header]
    for r in rows:
        cells.append([
            r["model"], r["format"], f"{r['params']:,}", f"{r['flops'] / 1e6:.1f}",
            f"{r['file_bytes']:,}", _ratio(r.get("file_ratio")),
            f"{r['acc_keras']:.4f}", f"{r['acc_tflite']:.4f}", f"{r['latency_ms']:.3f}",
            _ratio(r.get("latency_ratio")),
        ])
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = []
    for k, c in enumerate(cells):
        lines.append("  ".join(
            v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths))
        ))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- run
def _label(ratio):
    return "original" if ratio is None else f"basis r={ratio:g}"


def _stem(ratio):
    return "original" if ratio is None else f"basis_r{ratio:g}".replace(".", "p")


def run(config=None, *, log=None):
    """Run the demo; return its result rows (also written to the output folder).

    Args:
        config: a :class:`DemoConfig` (default: the full run).
        log: function receiving progress lines (default: print to stderr).

    Returns:
        list of dicts, one per model and format: ``model``, ``ratio``,
        ``format``, ``params``, ``flops`` (2 x MACs per image), ``file``,
        ``file_bytes``, ``acc_keras``,
        ``acc_keras_before_finetune`` (compressed models), ``acc_tflite``,
        ``latency_ms``, ``latency_p90_ms``, and the ratios to the original
        file of the same format ``file_ratio`` and ``latency_ratio``.

    Example:

    >>> rows = run(DemoConfig.quick(output_dir="/tmp/demo"))
    """
    import keras

    import keras_basis
    from keras_basis import fileio, latency, tflite

    config = config or DemoConfig()
    if log is None:
        def log(text):
            print(text, file=sys.stderr, flush=True)

    out = pathlib.Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    points = [None] + list(config.ratios)
    total_steps = 3 + len(config.ratios)
    step = iter(range(1, total_steps + 1))

    def stage(text):
        log(f"[{next(step)}/{total_steps}] {text}  ({time.perf_counter() - started:.0f} s)")

    stage("loading the scikit-learn digits (1,797 real 8x8 handwritten digits, no download)")
    keras.utils.set_random_seed(config.seed)
    x_train, y_train, x_test, y_test = load_data(config.image_size, config.seed)
    log(f"      {len(x_train)} training / {len(x_test)} test images, upsampled to "
        f"{config.image_size}x{config.image_size}")

    stage(f"training the baseline CNN ({config.epochs} epochs)")
    baseline = build_cnn(config.image_size, config.width)
    _fit(baseline, x_train, y_train, epochs=config.epochs, batch_size=config.batch_size,
         learning_rate=config.learning_rate, desc="baseline")
    models = {None: baseline}
    info = {None: {"acc_keras": _keras_accuracy(baseline, x_test, y_test)}}
    log(f"      baseline: {baseline.count_params():,} parameters, test accuracy "
        f"{info[None]['acc_keras']:.4f}")

    for ratio in config.ratios:
        stage(f"compressing to ratio {ratio:g} and fine-tuning ({config.finetune_epochs} "
              f"epoch{'s' if config.finetune_epochs != 1 else ''})")
        options = {} if config.objective is None else {"objective": config.objective}
        if config.objective == "params":
            options["allocation"] = config.allocation
        small = keras_basis.compress(baseline, ratio=ratio, verbose=0, **options)
        before = _keras_accuracy(small, x_test, y_test)
        _fit(small, x_train, y_train, epochs=config.finetune_epochs,
             batch_size=config.batch_size, learning_rate=config.finetune_learning_rate,
             desc=f"r={ratio:g}")
        models[ratio] = small
        info[ratio] = {"acc_keras": _keras_accuracy(small, x_test, y_test),
                       "acc_keras_before_finetune": before}
        log(f"      {small.count_params():,} parameters; test accuracy {before:.4f} right "
            f"after compression, {info[ratio]['acc_keras']:.4f} after fine-tuning")

    stage("exporting float32 and int8 TFLite files, measuring accuracy and latency")
    calibration = x_train[: config.calibration_samples]
    rows = []
    for ratio in points:
        fileio.atomic_write(out / f"{_stem(ratio)}.keras", models[ratio].save)
    for fmt, quantize in (("float32", None), ("int8", "int8")):
        files = [
            keras_basis.export_tflite(
                models[ratio], out / f"{_stem(ratio)}_{fmt}.tflite", quantize=quantize,
                representative_dataset=calibration if quantize else None, return_content=True,
            )
            for ratio in points
        ]
        # All files of a format timed in the same rounds: the ratios to the
        # original do not depend on when the machine was busy.
        timing = latency.time_interleaved(
            [content for _, content in files], threads=config.threads,
            runs=config.latency_runs, warmup=10, samples=True,
        )
        base_bytes = len(files[0][1])
        # each ratio: the median over the rounds of the two files' same-round ratio
        paired = latency.paired_ratios(timing)
        for ratio, (path, content), bench, lat_x in zip(points, files, timing, paired):
            model = models[ratio]
            acc = _accuracy(tflite.run_tflite(content, x_test, threads=config.threads), y_test)
            original = ratio is None  # its own ratios are 1 by definition: shown as "-"
            row = dict(model=_label(ratio), ratio=ratio, format=fmt,
                       params=int(model.count_params()),
                       flops=2 * keras_basis.count_macs(model),
                       file=path.name,
                       file_bytes=len(content), acc_tflite=acc,
                       latency_ms=bench["median_ms"], latency_p90_ms=bench["p90_ms"],
                       latency_samples_ms=bench["samples_ms"],
                       file_ratio=None if original else len(content) / base_bytes,
                       latency_ratio=None if original else lat_x,
                       **info[ratio])
            rows.append(row)
            log(f"      {path.name}: {row['file_bytes']:,} bytes, TFLite accuracy "
                f"{acc:.4f}, {bench['median_ms']:.3f} ms"
                + ("" if original else f" ({row['latency_ratio']:.2f}x)"))
    rows.sort(key=lambda r: (points.index(r["ratio"]), r["format"]))

    elapsed = time.perf_counter() - started
    table = format_table(rows)
    notes = (
        f"Test set: {len(x_test)} held-out digits (scikit-learn load_digits, stratified 20%, "
        f"seed {config.seed}). Latency: median of {config.latency_runs} samples, each "
        f"batch-1 runs back to back for >= 2 ms, "
        f"{config.threads} thread(s), XNNPACK on, {platform.processor() or platform.machine()}"
        f", the files of one format timed round-robin; size x: ratio to the original of the "
        f"same format; latency x: the median of the same-round ratios to it. "
        f"Compression: keras_basis.compress(ratio=r"
        f"{'' if config.objective is None else f', objective={config.objective!r}'}). "
        f"MFLOPs: 2 x multiply-adds per image. Total time {elapsed:.0f} s."
    )
    plot_accuracy_vs_size(rows, out / "accuracy_vs_size.png")
    settings = dataclasses.asdict(config)
    fileio.write_text(out / "results.json", json.dumps(
        {"config": settings, "rows": rows, "seconds": elapsed}, indent=2) + "\n")
    fileio.write_text(out / "results.md", (
        "# keras-basis demo\n\n```\n" + table + "\n```\n\n" + notes + "\n\n"
        + "Settings: " + json.dumps(settings) + "\n"
    ))
    print()
    print(table)
    print()
    print(notes)
    print(f"Wrote {len(rows)} .tflite files, {len(points)} .keras models, results.md, "
          f"results.json and accuracy_vs_size.png to {out}/")
    return rows

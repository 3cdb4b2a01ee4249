"""``keras-basis demo``: its data, its network, and a quick end-to-end run."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from keras_basis import demo

REPO = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_load_data_is_the_real_digits_with_a_fixed_stratified_split():
    from sklearn.datasets import load_digits

    x_train, y_train, x_test, y_test = demo.load_data(image_size=8, seed=0)
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.dtype == np.float32
    # At 8x8 the images are the dataset's own pixels scaled to [0, 1].
    digits = load_digits()
    pool = {img.tobytes(): label for img, label in zip(digits.images / 16.0, digits.target)}
    for img, label in zip(x_test[:20, ..., 0].astype(np.float64), y_test[:20]):
        assert pool[img.tobytes()] == label
    # Stratified: every class has its share (about 36 of 360) in the test set.
    counts = np.bincount(y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37, counts
    # Fixed seed: same split again; another seed gives another split.
    again = demo.load_data(image_size=8, seed=0)
    np.testing.assert_array_equal(again[3], y_test)
    assert not np.array_equal(demo.load_data(image_size=8, seed=1)[3], y_test)


def test_load_data_upsampled_keeps_range_and_mean():
    x8 = demo.load_data(image_size=8)[0]
    x16 = demo.load_data(image_size=16)[0]
    assert x16.shape == (1437, 16, 16, 1)
    assert 0.0 <= x16.min() and x16.max() <= 1.0
    # Bilinear upsampling roughly preserves each image's mean brightness.
    np.testing.assert_allclose(x16.mean(axis=(1, 2, 3)), x8.mean(axis=(1, 2, 3)), atol=0.03)


def test_build_cnn_parameter_count():
    model = demo.build_cnn(image_size=16, width=32)
    convs = [(1, 32), (32, 32), (32, 64), (64, 64), (64, 64)]
    expected = sum(9 * c * n + n for c, n in convs) + 64 * 10 + 10
    assert model.count_params() == expected == 102_570
    assert model.output_shape == (None, 10)


def test_demo_macs_against_hand_counts():
    """The demo's MFLOPs column is 2 x keras_basis.count_macs: checked by hand here."""
    import keras

    import keras_basis

    model = demo.build_cnn(image_size=16, width=32)
    convs = [(16, 1, 32), (16, 32, 32), (8, 32, 64), (8, 64, 64), (4, 64, 64)]
    dense = sum(hw * hw * 9 * c * n for hw, c, n in convs)
    assert keras_basis.count_macs(model) == dense + 64 * 10 == 6_562_432
    # A basis pair: s splits of p channels, m filters each, then s*m -> n.
    x = inputs = keras.Input((16, 16, 32))
    x = keras_basis.BasisConv2D(5, 3, splits=4, padding="same")(x)
    x = keras.layers.Conv2D(64, 1)(x)
    pair = keras.Model(inputs, x)
    macs = keras_basis.count_macs(pair)
    assert macs == 16 * 16 * (4 * 5 * 9 * 8) + 16 * 16 * (4 * 5 * 64)
    assert macs == keras_basis.maths.basis_macs(32, 64, 3, 3, 4, 5, 16, 16)


def test_format_table_and_plot(tmp_path):
    rows = [
        dict(model="original", format="float32", params=1000, flops=2_500_000,
             file_bytes=4000, acc_keras=0.98, acc_tflite=0.98, latency_ms=0.1),
        dict(model="basis r=0.5", format="int8", params=500, flops=1_000_000,
             file_bytes=900, acc_keras=0.97, acc_tflite=0.965, latency_ms=0.05,
             file_ratio=0.226, latency_ratio=0.5),
    ]
    table = demo.format_table(rows).splitlines()
    assert table[0].split()[:3] == ["model", "format", "params"]
    assert table[2].split() == ["original", "float32", "1,000", "2.5", "4,000", "-", "0.9800",
                                "0.9800", "0.100", "-"]
    assert table[3].split()[-5:] == ["0.23", "0.9700", "0.9650", "0.050", "0.50"]
    path = demo.plot_accuracy_vs_size(rows, tmp_path / "plot.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]  # no temp file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_demo_quick_end_to_end(tmp_path):
    """``keras-basis demo --quick`` in a subprocess: files, table and sane accuracies."""
    out = tmp_path / "demo out"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    result = subprocess.run(
        [sys.executable, "-m", "keras_basis", "demo", "--quick", "--output-dir", str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "[1/4]" in result.stderr and "[4/4]" in result.stderr  # progress shown
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([
        "accuracy_vs_size.png", "results.json", "results.md",
        "original.keras", "basis_r0p25.keras",
        "original_float32.tflite", "original_int8.tflite",
        "basis_r0p25_float32.tflite", "basis_r0p25_int8.tflite",
    ])
    assert (out / "accuracy_vs_size.png").read_bytes()[:8] == PNG_MAGIC
    header = ("model  format  params  MFLOPs  file bytes  size x  acc Keras  acc TFLite  "
              "latency ms  latency x")
    assert " ".join(header.split()) in " ".join(result.stdout.split())

    rows = json.loads((out / "results.json").read_text())["rows"]
    by = {(r["model"], r["format"]): r for r in rows}
    assert set(by) == {("original", "float32"), ("original", "int8"),
                       ("basis r=0.25", "float32"), ("basis r=0.25", "int8")}
    n_test = 360
    for r in rows:
        assert r["file_bytes"] == (out / r["file"]).stat().st_size
        assert r["latency_ms"] > 0
        if r["ratio"] is None:
            assert r["file_ratio"] is None and r["latency_ratio"] is None
        else:  # ratios to the original of the same format, from the rows themselves
            base = by["original", r["format"]]
            assert r["file_ratio"] == pytest.approx(r["file_bytes"] / base["file_bytes"])
            # the median over the rounds of the same-round ratio to the original
            assert r["latency_ratio"] == pytest.approx(float(np.median(
                np.array(r["latency_samples_ms"]) / np.array(base["latency_samples_ms"]))))
            assert r["latency_ms"] == pytest.approx(float(np.median(r["latency_samples_ms"])))
    orig = by["original", "float32"]
    assert orig["acc_keras"] > 0.8
    # The MFLOPs column: 2 x MACs, the hand count of the CNN above; the compressed
    # model's is that of the saved file (count_macs re-checked on the loaded model).
    assert orig["flops"] == by["original", "int8"]["flops"] == 2 * 6_562_432
    import keras

    import keras_basis

    saved = keras.models.load_model(out / "basis_r0p25.keras", compile=False)
    assert by["basis r=0.25", "float32"]["flops"] == 2 * keras_basis.count_macs(saved)
    assert by["basis r=0.25", "float32"]["flops"] < orig["flops"]
    # float32 TFLite computes the same network: at most one digit of 360 may flip.
    for key in (("original", "float32"), ("basis r=0.25", "float32")):
        assert abs(by[key]["acc_tflite"] - by[key]["acc_keras"]) <= 1 / n_test + 1e-9
    assert by["original", "int8"]["acc_tflite"] > orig["acc_keras"] - 0.05
    small = by["basis r=0.25", "float32"]
    assert small["acc_keras"] > 0.6
    assert small["params"] < 0.35 * orig["params"]
    assert small["file_bytes"] < 0.35 * orig["file_bytes"]
    assert by["original", "int8"]["file_bytes"] < 0.35 * orig["file_bytes"]


@pytest.mark.slow
def test_demo_default_settings(tmp_path):
    """The README's demo with its default settings (about 2 minutes on 2 idle cores)."""
    rows = demo.run(demo.DemoConfig(output_dir=str(tmp_path)), log=lambda s: None)
    by = {(r["model"], r["format"]): r for r in rows}
    assert by["original", "float32"]["acc_tflite"] > 0.95
    assert by["basis r=0.5", "float32"]["acc_tflite"] > 0.9
    assert len(list(tmp_path.glob("*.tflite"))) == 8

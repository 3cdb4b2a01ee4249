"""keras_basis.tflite (run, compare, inspect, benchmark) and keras_basis.export.fold_plan."""

import sys

import keras
import numpy as np
import pytest

import keras_basis.export
from keras_basis import BasisConv2D, export_tflite, latency, maths
from keras_basis import tflite as kt

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def dense_file(tmp_path_factory):
    """A one-layer Dense model (y = x W + b) and its float32 file."""
    keras.utils.set_random_seed(0)
    x = keras.Input((5,))
    model = keras.Model(x, keras.layers.Dense(3, name="fc", bias_initializer="ones")(x))
    path = export_tflite(model, tmp_path_factory.mktemp("dense") / "fc.tflite")
    return model, path


@pytest.fixture(scope="module")
def basis_model():
    keras.utils.set_random_seed(1)
    x = keras.Input((12, 12, 16))
    shared = BasisConv2D(6, 3, splits=2, padding="same", name="basis")
    y = keras.layers.Conv2D(16, 1, name="coef_a")(shared(x))
    y = keras.layers.Conv2D(16, 1, name="coef_b")(shared(y))
    y = keras.layers.Conv2D(24, 1, name="coef_c")(shared(y, strides=2))
    return keras.Model(x, y)


def test_run_tflite_matches_numpy_reference(dense_file):
    model, path = dense_file
    w, b = (np.asarray(v) for v in model.get_layer("fc").weights)
    x = np.random.default_rng(0).standard_normal((7, 5)).astype("float32")
    y = kt.run_tflite(path, x, threads=1)  # static batch 1: run sample by sample
    assert y.shape == (7, 3)
    np.testing.assert_allclose(y, x @ w + b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kt.run_tflite(path.read_bytes(), x, xnnpack=False), x @ w + b,
                               rtol=1e-5, atol=1e-6)


def test_run_tflite_bad_inputs(dense_file, tmp_path):
    _, path = dense_file
    with pytest.raises(ValueError, match=r"Expected arrays of shape \(N, 5\).*\(4, 6\)"):
        kt.run_tflite(path, np.zeros((4, 6), "float32"))
    with pytest.raises(ValueError, match="Expected 1 input array.*Received 2"):
        kt.run_tflite(path, [np.zeros((1, 5)), np.zeros((1, 5))])
    with pytest.raises(ValueError, match="Expected an existing .tflite file"):
        kt.run_tflite(tmp_path / "missing.tflite", np.zeros((1, 5)))
    with pytest.raises(TypeError, match="Expected a path or bytes. Received model_file of type"):
        kt.run_tflite(3, np.zeros((1, 5)))
    with pytest.raises(ValueError, match=r"argument `threads`.*Received threads=0"):
        kt.run_tflite(path, np.zeros((1, 5)), threads=0)


def test_compare_with_keras_detects_a_different_model(dense_file):
    model, path = dense_file
    x = np.random.default_rng(1).standard_normal((4, 5)).astype("float32")
    same = kt.compare_with_keras(model, path, x)
    assert same["max_rel_error"] < 1e-6 and same["top1_agreement"] == 1.0
    other = keras.models.clone_model(model)
    w, b = model.get_layer("fc").get_weights()
    other.get_layer("fc").set_weights([w * 1.1, b])
    diff = kt.compare_with_keras(other, path, x)
    expected = np.abs(x @ (w * 1.1) - x @ w).max()
    assert diff["max_abs_error"] == pytest.approx(expected, rel=1e-4)
    assert diff["max_rel_error"] > 0.05


def test_tflite_ops_and_histogram(dense_file):
    _, path = dense_file
    ops = kt.tflite_ops(path)
    assert [op["op"] for op in ops] == ["FULLY_CONNECTED"]
    fc = ops[0]
    assert fc["builtin"] is True
    data, weight, bias = fc["inputs"]
    assert (data["dtype"], data["shape"], data["constant"]) == ("FLOAT32", (1, 5), False)
    assert (weight["dtype"], weight["shape"], weight["constant"]) == ("FLOAT32", (3, 5), True)
    assert weight["bytes"] == 3 * 5 * 4 and bias["bytes"] == 3 * 4
    assert fc["outputs"][0]["shape"] == (1, 3)
    assert kt.op_histogram(path) == {"FULLY_CONNECTED": 1}


def test_shared_basis_is_one_buffer(basis_model, tmp_path):
    path = export_tflite(basis_model, tmp_path / "b.tflite")
    convs = [op for op in kt.tflite_ops(path) if op["op"] == "CONV_2D"]
    basis_kernels = [op["inputs"][1] for op in convs if op["inputs"][1]["shape"] == (6, 3, 3, 8)]
    assert len(basis_kernels) == 3
    assert len({k["buffer"] for k in basis_kernels}) == 1  # three sites, one buffer
    assert kt.op_histogram(path) == {"RESHAPE": 12, "TRANSPOSE": 6, "CONV_2D": 6}


def test_benchmark_tflite(dense_file):
    _, path = dense_file
    for xnnpack in (True, False):
        r = kt.benchmark_tflite(path, threads=2, xnnpack=xnnpack, runs=15, warmup=2)
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"]
        assert (r["runs"], r["threads"], r["xnnpack"]) == (15, 2, xnnpack)
        assert r["size_bytes"] == path.stat().st_size and len(r["times_ms"]) == 15
        assert r["median_ms"] == pytest.approx(np.median(r["times_ms"]))
    with pytest.raises(ValueError, match=r"argument `runs`.*Received runs=0"):
        kt.benchmark_tflite(path, runs=0)


def test_missing_litert_gives_install_hint(dense_file, monkeypatch):
    _, path = dense_file
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.schema_py_generated", None)
    with pytest.raises(ImportError, match=r"pip install keras-basis\[tflite\]"):
        kt.run_tflite(path, np.zeros((1, 5), "float32"))
    with pytest.raises(ImportError, match=r"pip install keras-basis\[tflite\]"):
        kt.op_histogram(path)


def _fold_plan_with_table(model, times, monkeypatch, **kwargs):
    """fold_plan over a pre-filled latency table, with the conversions counted.

    ``times`` maps ``(form, output height)`` to ms for ``form`` in "dense",
    "batch", "dilated"; every entry is put in a ``LatencyTable`` so that no
    file is converted or timed: the decisions must follow the table.
    """
    converted = []
    monkeypatch.setattr(latency, "convert_form",
                        lambda *a, **k: converted.append(a) or pytest.fail("converted"))
    table = latency.LatencyTable()
    quantize = "int8" if kwargs.get("quantize") == "int8" else "float32"
    for site in latency.layer_geometries(model, input_shape=kwargs.get("input_shape")):
        g, f = site.geometry, latency.parse_form(site.form)
        out_h = g.output_size[0]
        forms = {"dense": "dense", "batch": latency.pair_form(f["s"], f["m"])}
        if f["s"] > 1:
            forms["dilated"] = latency.pair_form(f["s"], f["m"], dilated=True)
        for name, form in forms.items():
            if (name, out_h) in times:
                table.set(g, form, quantize, kwargs.get("threads", 1), times[name, out_h])
    plan = keras_basis.export.fold_plan(model, latency_table=table, **kwargs)
    assert converted == []
    return plan, table


def test_fold_plan_follows_the_table(basis_model, monkeypatch):
    times = {("batch", 12): 1.0, ("dilated", 12): 0.8, ("dense", 12): 2.0,
             ("batch", 6): 3.0, ("dense", 6): 1.5}
    plan, _ = _fold_plan_with_table(basis_model, times, monkeypatch, threads=2)
    assert [r["coefficients"] for r in plan] == ["coef_a", "coef_b", "coef_c"]
    assert [r["basis"] for r in plan] == ["basis"] * 3
    # coef_c is stride 2: no dilated form (not exact), its dense form is faster.
    assert [(r["batch_ms"], r["dilated_ms"], r["dense_ms"], r["form"], r["fold"])
            for r in plan] == [(1.0, 0.8, 2.0, "dilated", False),
                               (1.0, 0.8, 2.0, "dilated", False),
                               (3.0, None, 1.5, "dense", True)]
    assert [r["basis_ms"] for r in plan] == [0.8, 0.8, 3.0]
    assert [r["input_shape"] for r in plan] == [(1, 12, 12, 16)] * 3
    # MACs by hand: basis conv = positions * 3*3 * 16 channels * 6 filters (two
    # splits of 8), coefficients = positions * 12 * n; dense = positions * 3*3*16*n.
    assert [(r["basis_macs"], r["dense_macs"]) for r in plan] == [
        (144 * 9 * 16 * 6 + 144 * 12 * 16, 144 * 9 * 16 * 16),
        (144 * 9 * 16 * 6 + 144 * 12 * 16, 144 * 9 * 16 * 16),
        (36 * 9 * 16 * 6 + 36 * 12 * 24, 36 * 9 * 16 * 24),
    ]
    assert plan[0]["basis_macs"] == maths.basis_macs(16, 16, 3, 3, 2, 6, 12, 12)
    assert keras_basis.export.split_modes(plan) == {"basis": "dilated"}


def test_fold_plan_reversed_timings_reverse_the_decisions(basis_model, monkeypatch):
    times = {("batch", 12): 2.0, ("dilated", 12): 2.5, ("dense", 12): 1.0,
             ("batch", 6): 1.0, ("dense", 6): 2.0}
    plan, _ = _fold_plan_with_table(basis_model, times, monkeypatch, quantize="int8")
    assert [r["fold"] for r in plan] == [True, True, False]
    assert [r["form"] for r in plan] == ["dense", "dense", "batch"]
    assert keras_basis.export.split_modes(plan) == {"basis": "batch"}


def test_fold_plan_measures_what_the_table_lacks(basis_model, monkeypatch):
    """Missing entries are converted and timed once per geometry and form."""
    converted = []
    real = latency.convert_form

    def counting(geometry, form, quantize="float32"):
        converted.append((geometry.key(), form, quantize))
        return real(geometry, form, quantize)

    monkeypatch.setattr(latency, "convert_form", counting)
    table = latency.LatencyTable()
    plan = keras_basis.export.fold_plan(basis_model, latency_table=table, runs=2, warmup=0)
    keys = [k for k, _, _ in converted]
    # two geometries (stride 1 shared by coef_a and coef_b, stride 2): 3 + 2 forms
    assert len(converted) == len(set(converted)) == 5 and len(set(keys)) == 2
    assert len(table) == 5 and all(r["dense_ms"] > 0 and r["basis_ms"] > 0 for r in plan)


def test_fold_plan_pads_a_sliced_basis(monkeypatch):
    """A narrow input (8 channels, basis depth 16) is costed at its own width."""
    keras.utils.set_random_seed(2)
    x = keras.Input((6, 6, 8))
    y = BasisConv2D(4, 3, depth=16, padding="same", name="deep")(x)
    model = keras.Model(x, keras.layers.Conv2D(5, 1, name="coef")(y))
    plan, _ = _fold_plan_with_table(model, {("batch", 6): 1.0, ("dense", 6): 1.0},
                                    monkeypatch)
    assert plan[0]["fold"] is False  # equal times: keep the basis form
    assert (plan[0]["basis_macs"], plan[0]["dense_macs"]) == (
        36 * 9 * 8 * 4 + 36 * 4 * 5, 36 * 9 * 8 * 5)


def test_fold_plan_is_not_in_the_file_tools():
    assert "fold_plan" not in kt.__all__ and not hasattr(kt, "fold_plan")

"""Bad input never passes: NaN/inf data, NaN outputs, broken files, wrong names.

Each test here failed on the code before the "Nothing broken passes as
verified" fixes (except where a comment says it pins existing behaviour).
"""

import os
import signal
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_basis
from keras_basis import export_tflite, fileio, maths
from keras_basis import tflite as kt

pytest.importorskip("ai_edge_litert")


def _net(name="tiny", seed=0):
    keras.utils.set_random_seed(seed)
    x = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1")(x)
    y = keras.layers.Conv2D(16, 3, padding="same", name="c2")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(4, name="head")(y)
    return keras.Model(x, y, name=name)


def _data(n=8, seed=1):
    return np.random.default_rng(seed).random((n, 8, 8, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def small():
    model = _net()
    return model, keras_basis.compress(model, num_basis=6, verbose=0), _data()


def _nan_copy(model):
    bad = keras.models.clone_model(model)
    weights = model.get_weights()
    weights[-2] = np.full_like(weights[-2], np.nan)  # the Dense kernel
    bad.set_weights(weights)
    return bad


# ------------------------------------------------- 1. NaN is never verified
def test_nan_file_does_not_match_a_finite_model(small, tmp_path):
    model, _, x = small
    path = export_tflite(_nan_copy(model), tmp_path / "nan.tflite")
    assert np.isnan(kt.run_tflite(path, x)).all()  # the file really computes NaN
    with pytest.raises(ValueError, match=(
        r"Verification failed: output 0 of the TFLite file \(model_file='.*nan\.tflite' "
        r"\(\d+ bytes\)\) is not finite: 32 of 32 values are NaN or inf \(the first is nan "
        r"at index \(0, 0\)\)")):
        kt.compare_with_keras(model, path, x)


def test_nan_model_does_not_match_a_finite_file(small, tmp_path):
    model, _, x = small
    path = export_tflite(model, tmp_path / "ok.tflite")
    with pytest.raises(ValueError, match=r"output 0 of Keras model '.*' is not finite: 32 of 32"):
        kt.compare_with_keras(_nan_copy(model), path, x)


def test_inf_output_is_caught_too(small, tmp_path):
    model, _, x = small
    bad = keras.models.clone_model(model)
    weights = model.get_weights()
    weights[-1] = np.array([np.inf, 0, 0, 0], np.float32)  # Dense bias: column 0 is inf
    bad.set_weights(weights)
    path = export_tflite(model, tmp_path / "ok.tflite")
    with pytest.raises(ValueError, match=r"output 0 of Keras model 'tiny' is not finite: 8 of "
                                         r"32 values are NaN or inf \(the first is inf at "
                                         r"index \(0, 0\)\)"):
        kt.compare_with_keras(bad, path, x)


def test_compare_rejects_nan_inputs(small, tmp_path):
    model, _, x = small
    path = export_tflite(model, tmp_path / "ok.tflite")
    x = x.copy()
    x[2, 1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"argument `inputs`: expected finite values .* "
                                         r"Received 1 non-finite value\(s\) of 1536; the "
                                         r"first is nan at index \(2, 1, 0, 0\)"):
        kt.compare_with_keras(model, path, x)


# ------------------------------------------- 2. NaN/inf data is rejected
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_compress_data_init_rejects_nonfinite_calibration(small, bad):
    model, _, x = small
    x = x.copy()
    x[3, 0, 2, 1] = bad
    with pytest.raises(ValueError, match=r"argument `calibration_data`: expected finite "
                                         r"values \(no NaN or inf\). Received 1 non-finite "
                                         r"value\(s\) of 1536; the first is -?(nan|inf) at "
                                         r"index \(3, 0, 2, 1\)"):
        keras_basis.compress(model, num_basis=6, init="data", calibration_data=x, verbose=0)


def test_compress_data_init_names_the_bad_batch(small):
    model, _, x = small
    batches = [x[:4], np.full_like(x[4:], np.nan)]
    with pytest.raises(ValueError, match=r"`calibration_data` \(batch 1\).* 768 non-finite"):
        keras_basis.compress(model, num_basis=6, init="data", calibration_data=batches,
                             verbose=0)


def test_compress_data_init_finite_still_works(small):
    model, _, x = small
    new = keras_basis.compress(model, num_basis=6, init="data", calibration_data=x, verbose=0)
    assert all(np.isfinite(w).all() for w in new.get_weights())


@pytest.mark.parametrize("form", ["array", "generator", "dataset"])
def test_int8_export_rejects_nonfinite_representative_data(small, tmp_path, form):
    _, compressed, x = small
    x = x.copy()
    x[5, 1, 1, 0] = np.nan
    if form == "array":
        data, where = x, r"element 0\): .* 1 non-finite value\(s\) of 1536; the first is nan " \
                         r"at index \(5, 1, 1, 0\)"
    elif form == "generator":
        def data():
            for sample in x:
                yield sample
        where = r"element 5\): .* 1 non-finite value\(s\) of 192; the first is nan at index " \
                r"\(1, 1, 0\)"
    else:
        data = tf.data.Dataset.from_tensor_slices(x).batch(2)
        where = r"element 2\): .* 1 non-finite value\(s\) of 384; the first is nan at index " \
                r"\(1, 1, 1, 0\)"
    target = tmp_path / "q.tflite"
    with pytest.raises(ValueError, match=r"argument `representative_dataset` \(" + where):
        export_tflite(compressed, target, quantize="int8", representative_dataset=data)
    assert not target.exists()


def test_generator_is_checked_as_drawn(small, tmp_path):
    """A NaN after the first `calibration_steps` samples is never drawn, never seen."""
    _, compressed, x = small
    drawn = []

    def data():
        for i, sample in enumerate(x):
            drawn.append(i)
            yield sample if i < 4 else np.full_like(sample, np.nan)

    export_tflite(compressed, tmp_path / "q.tflite", quantize="int8",
                  representative_dataset=data, calibration_steps=4)
    assert drawn == [0, 1, 2, 3]


def test_int8_request_never_writes_a_float_file(small, tmp_path, monkeypatch):
    """The converter silently keeping float kernels must not pass as int8."""
    _, compressed, x = small
    original = tf.lite.TFLiteConverter.convert

    def float_convert(self):  # what a converter that gives up on int8 produces
        self.optimizations = []
        self.representative_dataset = None
        self.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return original(self)

    monkeypatch.setattr(tf.lite.TFLiteConverter, "convert", float_convert)
    target = tmp_path / "q.tflite"
    with pytest.raises(RuntimeError, match=r"quantize='int8' did not quantize 5 weighted "
                                           r"op\(s\) to int8: CONV_2D \(.*: FLOAT32\)"):
        export_tflite(compressed, target, quantize="int8", representative_dataset=x)
    assert not target.exists() and not os.listdir(tmp_path)


def test_real_int8_file_has_int8_weights_and_is_small(small, tmp_path):
    model, _, x = small  # pins the good path next to the guard above
    f32 = export_tflite(model, tmp_path / "f.tflite")
    q = export_tflite(model, tmp_path / "q.tflite", quantize="int8", representative_dataset=x)
    weights = [op["inputs"][1]["dtype"] for op in kt.tflite_ops(q)
               if op["op"] in ("CONV_2D", "FULLY_CONNECTED")]
    assert weights == ["INT8"] * 3
    assert os.path.getsize(q) < 0.6 * os.path.getsize(f32)


def test_maths_rejects_nonfinite_kernels():
    kernel = np.random.default_rng(0).standard_normal((3, 3, 4, 8))
    kernel[1, 2, 3, 4] = np.inf
    with pytest.raises(ValueError, match=r"argument `kernel`: expected finite .* first is inf "
                                         r"at index \(1, 2, 3, 4\)"):
        maths.decompose(kernel, 2, 4)
    with pytest.raises(ValueError, match=r"argument `basis`"):
        maths.reconstruct(np.full((3, 3, 4, 2), np.nan), np.ones((2, 8)))
    with pytest.raises(ValueError, match=r"argument `singular_values`"):
        maths.rank_for_energy([1.0, np.nan], 0.9)


# ------------------------------------------------- 7. verify what was written
def test_export_returns_the_bytes_it_wrote(small, tmp_path):
    model, _, x = small
    path, content = export_tflite(model, tmp_path / "m.tflite", return_content=True)
    assert path == tmp_path / "m.tflite" and isinstance(content, bytes)
    assert path.read_bytes() == content
    path.write_bytes(b"another process wrote here")  # what a concurrent export does
    err = kt.compare_with_keras(model, content, x)
    assert err["size_bytes"] == len(content) and err["max_rel_error"] < 1e-5, err
    assert export_tflite(model, tmp_path / "n.tflite") == tmp_path / "n.tflite"  # unchanged


# ----------------------------------------------------- 8. errors name things
def test_unknown_fold_name_names_fold(small, tmp_path):
    _, compressed, _ = small
    with pytest.raises(ValueError, match=r"Invalid value for argument `fold`: 'nosuch' is not "
                                         r"the coefficient layer of a basis pair of model "
                                         r"'tiny'. Expected names from \['c1', 'c2'\]. "
                                         r"Received fold=\['nosuch'\]."):
        export_tflite(compressed, tmp_path / "m.tflite", fold=["nosuch"])


def test_truncated_file_errors_name_the_path(small, tmp_path):
    model, _, x = small
    good = export_tflite(model, tmp_path / "good.tflite")
    for keep in (500, 6):
        bad = tmp_path / f"cut{keep}.tflite"
        bad.write_bytes(good.read_bytes()[:keep])
        pattern = (r"Invalid value for argument `model_file`: not a readable .tflite file "
                   rf".*Received model_file='{bad}' \({keep} bytes\)")
        with pytest.raises(ValueError, match=pattern):
            kt.run_tflite(bad, x[:1])
        with pytest.raises(ValueError, match=pattern):
            kt.tflite_ops(bad)
        with pytest.raises(ValueError, match=pattern):
            kt.compare_with_keras(model, bad, x[:1])
        with pytest.raises(ValueError, match=pattern):
            kt.benchmark_tflite(bad, runs=1, warmup=0)


def test_disk_full_names_the_path(small, tmp_path, monkeypatch):
    model, _, _ = small
    target = tmp_path / "m.tflite"
    target.write_bytes(b"old")

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match=rf"No space left on device \(writing {target}\)"):
        export_tflite(model, target)
    assert os.listdir(tmp_path) == ["m.tflite"] and target.read_bytes() == b"old"


KILLED_WRITER = """
import os, signal, sys
from keras_basis import fileio

def write(tmp):
    with open(tmp, "wb") as f:
        f.write(b"partial")
    os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write, as by kill -9

fileio.atomic_write(sys.argv[1], write)
"""


def test_export_cleans_temps_of_killed_writers(small, tmp_path):
    """A temp left by a SIGKILLed writer is removed by the next export (not an hour later)."""
    model, _, _ = small
    target = tmp_path / "m.tflite"
    target.write_bytes(b"old")
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)])
    assert done.returncode == -signal.SIGKILL
    left = [p for p in os.listdir(tmp_path) if fileio.TEMP_MARK in p]
    assert len(left) == 1 and target.read_bytes() == b"old"
    export_tflite(model, target)
    assert os.listdir(tmp_path) == ["m.tflite"]


def test_dense_only_model_warns_that_nothing_was_compressed():
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="mlp")
    with pytest.warns(UserWarning, match=r"compress: nothing was compressed in model 'mlp'.*"
                                         r"no Conv2D layer"):
        out = keras_basis.compress(dense, ratio=0.5, verbose=0)
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(out(x), dense(x))


def test_skipped_layers_are_named_in_the_warning():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.Conv2D(4, 3, groups=2,
                                                                         name="g")],
                             name="grouped")
    with pytest.warns(UserWarning, match=r"nothing was compressed in model 'grouped'.* Why: "
                                         r"g: "):
        keras_basis.compress(model, ratio=0.5, verbose=0)


def test_compressing_model_does_not_warn(small):
    model, _, _ = small
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        keras_basis.compress(model, num_basis=6, verbose=0)


def test_one_finite_message_everywhere(small, tmp_path):
    """tflite.py keeps its own copy of the check (it imports nothing of the package):
    the same array gives the same message through both."""
    model, _, x = small
    x = x.copy()
    x[1, 2, 3, 0] = -np.inf
    path = export_tflite(model, tmp_path / "m.tflite")
    with pytest.raises(ValueError) as from_tflite:
        kt.compare_with_keras(model, path, x)
    with pytest.raises(ValueError) as from_compress:
        keras_basis.compress(model, num_basis=6, init="data", calibration_data=x, verbose=0)
    a = str(from_tflite.value).replace("`inputs`", "`calibration_data`")
    assert a == str(from_compress.value)
    assert "first is -inf at index (1, 2, 3, 0)" in a

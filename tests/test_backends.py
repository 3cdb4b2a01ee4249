"""BasisConv2D, compress, decompress and .keras round trips on Keras' JAX and PyTorch
backends; TFLite export there raises a clear error (it needs TensorFlow).

Each backend runs in a child process (``KERAS_BACKEND`` is read once, at import).
The child checks the numbers against NumPy (tests/reference.py) and prints one JSON
line; the parent asserts it. JAX is in the ``test`` extra; PyTorch in the ``torch``
extra (PyPI's torch is the CUDA build, which runs on CPU; its case is marked slow);
each case skips with a reason where its backend is not installed.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
import numpy as np
import keras
sys.path.insert(0, "tests")
from reference import conv2d_nhwc
import keras_basis
from keras_basis import BasisConv2D

out = {"backend": keras.backend.backend()}
rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)

# BasisConv2D against the NumPy reference: y = conv(x, W), W = reconstruct(B, A)
layer = BasisConv2D(4, 3, splits=2, padding="same", name="b")
x = rng.standard_normal((2, 6, 6, 8)).astype("float32")
y = keras.ops.convert_to_numpy(layer(x))
basis = keras.ops.convert_to_numpy(layer.basis)
ref = np.concatenate([conv2d_nhwc(x[..., g * 4:(g + 1) * 4], basis, padding="same")
                      for g in range(2)], axis=-1)
out["layer_err"] = float(np.abs(y - ref).max())

# a small CNN: full-rank compress equals the original; decompress equals compress
inp = keras.Input((8, 8, 3))
h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1")(inp)
h = keras.layers.Conv2D(24, 3, strides=2, padding="same", name="c2")(h)
h = keras.layers.GlobalAveragePooling2D()(h)
model = keras.Model(inp, keras.layers.Dense(5, name="head")(h), name="net")
xs = rng.standard_normal((4, 8, 8, 3)).astype("float32")
y0 = keras.ops.convert_to_numpy(model(xs))
full = keras_basis.compress(model, num_basis=10**6, layers=["c1", "c2"], verbose=0)
out["full_rank_err"] = float(np.abs(keras.ops.convert_to_numpy(full(xs)) - y0).max())
small = keras_basis.compress(model, num_basis=4, verbose=0)
ys = keras.ops.convert_to_numpy(small(xs))
out["small_err"] = float(np.abs(ys - y0).max())
dense = keras_basis.decompress(small)
out["decompress_err"] = float(np.abs(keras.ops.convert_to_numpy(dense(xs)) - ys).max())
out["pairs"] = [p.name for p in keras_basis.basis_pairs(small)]

# .keras round trip of the compressed model
small.save(sys.argv[1])
loaded = keras.models.load_model(sys.argv[1])
out["roundtrip_err"] = float(np.abs(keras.ops.convert_to_numpy(loaded(xs)) - ys).max())
out["roundtrip_types"] = sorted({type(ly).__name__ for ly in loaded.layers})

# one training step moves the basis
small.compile("sgd", "mse")
before = keras.ops.convert_to_numpy(small.get_layer("c1_basis").basis).copy()
small.fit(xs, np.zeros((4, 5), "float32"), epochs=1, verbose=0)
out["trained"] = bool(np.abs(keras.ops.convert_to_numpy(
    small.get_layer("c1_basis").basis) - before).max() > 0)

try:
    keras_basis.export_tflite(small, sys.argv[1] + ".tflite")
    out["export"] = "no error"
except Exception as err:
    out["export"] = f"{type(err).__name__}: {err}"
print("RESULT " + json.dumps(out))
"""


def _run(backend, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO),
           "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "m.keras")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _check(out, backend):
    assert out["backend"] == backend
    assert out["layer_err"] < 1e-4, out
    assert out["full_rank_err"] < 1e-4, out
    assert 1e-4 < out["small_err"], out  # m=4 really is an approximation
    assert out["decompress_err"] < 1e-4, out
    assert out["pairs"] == ["c1", "c2"]
    assert out["roundtrip_err"] == 0.0, out
    assert "BasisConv2D" in out["roundtrip_types"]
    assert out["trained"]
    assert out["export"].startswith(
        f"RuntimeError: TFLite export needs the TensorFlow backend of Keras (the converter "
        f"traces TensorFlow graphs); Keras runs on the '{backend}' backend."), out["export"]


@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="JAX is not installed (pip install -e '.[jax]')")
def test_jax_backend(tmp_path):
    _check(_run("jax", tmp_path), "jax")


@pytest.mark.slow  # 40 s; the JAX backend test stays in the default suite
@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="PyTorch is not installed (pip install -e '.[torch]')",
)
def test_torch_backend(tmp_path):
    _check(_run("torch", tmp_path), "torch")

"""The package's front door: public names, and no tfmot side effects on import."""

import inspect
import re
import subprocess
import sys
import types

import keras

import keras_basis
import keras_basis.export
import keras_basis.transform

EXPECTED_ALL = [
    "BasisBias",
    "BasisConv2D",
    "BasisPair",
    "LatencyTable",
    "LayerGeometry",
    "basis_clone_function",
    "basis_pairs",
    "compress",
    "count_macs",
    "decompress",
    "export_tflite",
    "latency",
    "maths",
    "profile_model",
    "report",
    "strip",
    "tflite",
    "__version__",
]
CLASSES = {"BasisBias": keras.layers.Layer, "BasisConv2D": keras.layers.Layer, "BasisPair": object,
           "LatencyTable": object, "LayerGeometry": object}
MODULES = {"latency", "maths", "tflite"}


def test_public_names():
    assert keras_basis.__all__ == EXPECTED_ALL
    for name in EXPECTED_ALL:
        obj = vars(keras_basis)[name]
        if name == "__version__":
            assert isinstance(obj, str) and re.fullmatch(r"\d+\.\d+\.\d+", obj), obj
        elif name in MODULES:
            assert isinstance(obj, types.ModuleType) and obj.__name__ == f"keras_basis.{name}"
        elif name in CLASSES:
            assert isinstance(obj, type) and issubclass(obj, CLASSES[name]), name
        else:
            assert isinstance(obj, types.FunctionType), name
        if name != "__version__":
            doc = inspect.getdoc(obj) or ""
            assert len(doc.splitlines()) >= 3, f"{name} is not documented"
        if isinstance(obj, types.FunctionType):
            assert "Example" in inspect.getdoc(obj), f"{name} has no example"
            assert "Args:" in inspect.getdoc(obj) and "Returns:" in inspect.getdoc(obj), name


def test_submodule_public_names():
    assert keras_basis.transform.__all__ == [
        "BasisPair", "basis_clone_function", "basis_pairs", "compress", "decompress",
        "report", "spectra", "strip"]
    assert keras_basis.tflite.__all__ == [
        "benchmark_tflite", "compare_with_keras", "op_histogram", "run_tflite", "size_breakdown",
        "tflite_ops"]
    assert keras_basis.export.__all__ == ["export_tflite", "fold_plan", "split_modes"]
    assert "rank_for_energy" in keras_basis.maths.__all__
    for module in (keras_basis.transform, keras_basis.tflite, keras_basis.export,
                   keras_basis.maths):
        for name in module.__all__:
            obj = vars(module)[name]
            assert not name.startswith("_") and (inspect.getdoc(obj) or "").strip(), name


def test_import_does_not_load_tfmot():
    """tfmot sets TF_USE_LEGACY_KERAS for the whole process on import."""
    code = (
        "import os, sys, keras_basis, keras_basis.tflite\n"
        "bad = [m for m in sys.modules if m.startswith(('tensorflow_model_optimization',"
        " 'tf_keras'))]\n"
        "assert not bad, bad\n"
        "assert 'TF_USE_LEGACY_KERAS' not in os.environ\n"
        "print('clean')\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_USE_LEGACY_KERAS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr[-2000:]

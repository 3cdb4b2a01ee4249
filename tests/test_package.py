"""The package's front door: public names, and no tfmot side effects on import."""

import subprocess
import sys

import keras_basis


def test_public_names():
    assert set(keras_basis.__all__) >= {
        "BasisConv2D", "compress", "decompress", "report", "strip", "basis_pairs",
        "basis_clone_function", "export_tflite", "maths",
    }
    for name in keras_basis.__all__:
        assert hasattr(keras_basis, name), name


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

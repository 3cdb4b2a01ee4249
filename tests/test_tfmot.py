"""keras_basis.tfmot (tensorflow-model-optimization bridge), run in a child process.

tfmot 0.8.1 needs tf_keras (Keras 2) and sets TF_USE_LEGACY_KERAS=1 when imported,
which would switch ``tf.keras`` of this Keras 3 test process. So the real checks
live in tests/tfmot_cases/cases_tfmot.py (a name pytest's default collection
skips) and run in a fresh interpreter; this file asserts on their result and on
the parent process staying clean.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CASES = REPO / "tests" / "tfmot_cases"
ENV = "TF_USE_LEGACY_KERAS"


def _run_cases(marker, timeout):
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cmd = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "-o", "python_files=cases_*.py", "-m", marker, str(CASES),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    return proc, proc.stdout[-6000:] + proc.stderr[-3000:]


def _assert_parent_clean():
    import keras_basis  # noqa: F401  (must not pull in tfmot / tf_keras)

    assert ENV not in os.environ
    assert "tensorflow_model_optimization" not in sys.modules
    assert "tf_keras" not in sys.modules
    assert "keras_basis.tfmot" not in sys.modules


def test_default_collection_skips_the_isolated_cases():
    assert list(CASES.glob("test_*.py")) == []
    assert not (CASES / "conftest.py").exists()
    assert (CASES / "cases_tfmot.py").is_file()


def test_tfmot_bridge_in_child_process():
    _assert_parent_clean()
    proc, tail = _run_cases("not slow", timeout=900)
    assert proc.returncode == 0, tail
    passed = re.search(r"(\d+) passed", tail)
    assert passed and int(passed.group(1)) >= 20, tail
    assert " failed" not in tail and " error" not in tail, tail
    _assert_parent_clean()


@pytest.mark.slow
def test_tfmot_real_data_in_child_process(shared_data):
    proc, tail = _run_cases("slow", timeout=1800)
    assert proc.returncode == 0, tail
    assert re.search(r"[1-9]\d* passed", tail), tail
    assert " skipped" not in tail, tail
    _assert_parent_clean()

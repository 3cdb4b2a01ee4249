"""Shared test fixtures."""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """Path of ../shared/data (read-only); skips when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real-data test: {SHARED_DATA} is absent (a fresh clone has no ../shared)"
        )
    return SHARED_DATA


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _clear_keras_session():
    yield
    keras = sys.modules.get("keras")  # tests that never loaded Keras skip the import
    if keras is not None:
        keras.backend.clear_session()

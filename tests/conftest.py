"""Test configuration: 8 simulated CPU devices, strict dtype promotion, shared data.

JAX must be configured before any computation, so this runs first (pytest imports
``conftest.py`` before test modules).
"""

import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_dtype_promotion", "strict")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def _shared_data_dir() -> pathlib.Path:
    env = os.environ.get("LSTMJAX_SHARED_DATA")
    return pathlib.Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The folder of real data sets beside the checkout (``../shared/data``).

    Skips the test with a clear reason where it is absent (a user's clone has none).
    """
    path = _shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data sets not found at {path} (set LSTMJAX_SHARED_DATA to use another folder)")
    return path

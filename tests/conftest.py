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

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
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


def random_batch(rng: np.random.Generator | int = 0, n: int = 6, t: int = 5, *, vocab: int = 30, classes: int = 3,
                 mask: bool = False, filler: int = 0, as_jax: bool = True) -> dict:
    """A random right-padded batch: ``token_ids <int32>[n, t]`` (ids in ``[2, vocab)``, PAD 0 after each
    length), ``lengths <int32>[n]`` in ``[1, t]``, ``labels <int32>[n]``; with ``mask``, a ``mask``
    (all True); with ``filler``, that many copies of the first rows appended with ``mask`` False
    (rows that must count for nothing).

    ``rng`` is a NumPy generator or a seed; the draws come in the order lengths, ids, labels.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    lengths = rng.integers(1, t + 1, n).astype(np.int32)
    ids = rng.integers(2, vocab, (n, t)).astype(np.int32)
    ids[np.arange(t)[None] >= lengths[:, None]] = 0
    batch = {"token_ids": ids, "lengths": lengths, "labels": rng.integers(0, classes, n).astype(np.int32)}
    if mask or filler:
        batch["mask"] = np.ones(n, bool)
    if filler:
        batch = {k: np.concatenate([v, v[:filler]]) for k, v in batch.items()}
        batch["mask"] = np.arange(n + filler) < n
    return {k: jnp.asarray(v) for k, v in batch.items()} if as_jax else batch


@pytest.fixture
def make_batch():
    """:func:`random_batch`, for the tests that need a small batch of their own."""
    return random_batch

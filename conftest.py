"""Root pytest configuration, so doctests in ``lstmjax/`` see the same JAX setup as ``tests/``."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_dtype_promotion", "strict")

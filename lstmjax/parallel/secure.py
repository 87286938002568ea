"""Secure aggregation across devices: additive secret shares moved by collectives (document §8.3, §9.3).

:func:`lstmjax.privacy.secure.secure_sum` with one worker per device of a mesh. JAX runs
without 64-bit types by default, so each field element travels as two ``<uint32>`` words
``(hi, lo)`` and the modular addition is written on words (``2^61 ≡ 1 mod p`` makes the
reduction one shift and one add).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from lstmjax.parallel.data_parallel import make_mesh
from lstmjax.privacy.secure import (
    Rng,
    check_workers,
    decode,
    encode,
    fixed_point_range,
    share,
)

__all__ = ["secure_sum_across_devices"]

_P_HI = np.uint32(2**29 - 1)  # p = (2^29 − 1) · 2^32 + (2^32 − 1)
_P_LO = np.uint32(2**32 - 1)


def _to_words(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, np.uint64)
    return (x >> np.uint64(32)).astype(np.uint32), (x & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _from_words(hi, lo) -> np.ndarray:
    return (np.asarray(hi).astype(np.uint64) << np.uint64(32)) | np.asarray(lo).astype(np.uint64)


def _add_words(a: tuple[jax.Array, jax.Array], b: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """``(a + b) mod p`` on ``(hi, lo)`` ``<uint32>`` words, without 64-bit types."""
    (a_hi, a_lo), (b_hi, b_lo) = a, b
    lo = a_lo + b_lo  # wraps mod 2^32
    hi = a_hi + b_hi + (lo < a_lo).astype(jnp.uint32)  # the carry; s = hi·2^32 + lo < 2p < 2^62
    # s mod p = (s mod 2^61) + (s div 2^61), because 2^61 ≡ 1 (mod p); the result is ≤ p.
    top = hi >> 29
    hi = hi & _P_HI
    lo2 = lo + top
    hi = hi + (lo2 < lo).astype(jnp.uint32)
    is_p = (hi == _P_HI) & (lo2 == _P_LO)  # p ≡ 0
    zero = jnp.zeros_like(hi)
    return jnp.where(is_p, zero, hi), jnp.where(is_p, zero, lo2)


@functools.cache
def _exchange_fn(mesh: Mesh, axis: str):
    """A jitted shard_map: all-to-all of shares, local sums, all-gather of partials, total."""
    P = PartitionSpec
    n = mesh.shape[axis]

    def local(hi, lo):  # on worker i: its shares (1, n, ...) — row j is for worker j
        # all_to_all: send share j to worker j; receive share i from every worker i → (n, 1, ...)
        hi = jax.lax.all_to_all(hi, axis, split_axis=1, concat_axis=0, tiled=True)
        lo = jax.lax.all_to_all(lo, axis, split_axis=1, concat_axis=0, tiled=True)
        t = (hi[0, 0], lo[0, 0])
        for i in range(1, n):  # worker j's partial sum t_j = Σ_i s_ij (mod p)
            t = _add_words(t, (hi[i, 0], lo[i, 0]))
        # the reconstruction: every worker gathers all partial sums (n, ...) and adds them
        parts_hi = jax.lax.all_gather(t[0], axis)
        parts_lo = jax.lax.all_gather(t[1], axis)
        total = (parts_hi[0], parts_lo[0])
        for j in range(1, n):
            total = _add_words(total, (parts_hi[j], parts_lo[j]))
        return t[0][None], t[1][None], total[0][None], total[1][None]

    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(axis), P(axis)),
                                 out_specs=(P(axis), P(axis), P(axis), P(axis))))


def secure_sum_across_devices(
    values: Sequence[Any],
    mesh: Mesh | None = None,
    *,
    scale_bits: int = 16,
    rng: Rng = None,
    return_partials: bool = False,
) -> Any:
    """:func:`lstmjax.privacy.secure.secure_sum` with one worker per device of a mesh: shares move by ``all_to_all``.

    Worker ``i`` (device ``i``) encodes and shares its values on the host; its ``n`` shares go
    to device ``i``. Under ``jax.shard_map`` each device sends share ``j`` to device ``j``
    (``jax.lax.all_to_all``), adds the ``n`` shares it received (its partial sum, in ``(hi, lo)``
    ``<uint32>`` words mod p), and gathers every partial sum (``jax.lax.all_gather``) to add them
    into the total, so every device ends with the aggregate, like ``psum`` but without any
    device seeing another's values. Device 0's total is decoded.

    Args:
      values: ``n`` pytrees of float arrays, one per worker (see :func:`lstmjax.privacy.secure.secure_sum`).
      mesh: a one-axis mesh of exactly ``n`` devices (default
        :func:`make_mesh` ``(n)``).
      scale_bits: the fixed-point precision ``2^-scale_bits``.
      rng: see :func:`lstmjax.privacy.secure.share`.
      return_partials: also return the partial sums ``<uint64>[n, ...]`` that the devices held.

    Returns:
      The decoded sum (NumPy, each leaf's dtype), or ``(sum, partials)``.

    Example:
      >>> vals = [{"b": np.full(3, 0.25 * i, np.float32)} for i in range(4)]
      >>> secure_sum_across_devices(vals, rng=np.random.default_rng(0))["b"].tolist()
      [1.5, 1.5, 1.5]
    """
    values, dtypes = check_workers(values)
    n = len(values)
    mesh = make_mesh(n) if mesh is None else mesh
    if len(mesh.axis_names) != 1 or mesh.size != n:
        raise ValueError(f"{n} workers need a one-axis mesh of {n} devices; got axes {dict(mesh.shape)}")
    axis = mesh.axis_names[0]
    limit = fixed_point_range(scale_bits, n)
    shares = [share(encode(v, scale_bits=scale_bits, max_abs=limit), n, rng=rng) for v in values]
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *shares)  # (worker i, party j, ...)
    leaves, treedef = jax.tree.flatten(stacked)
    sizes = [math.prod(leaf.shape[2:]) for leaf in leaves]
    flat = np.concatenate([leaf.reshape(n, n, -1) for leaf in leaves], axis=2)  # (i, j, all elements)
    t_hi, t_lo, s_hi, s_lo = _exchange_fn(mesh, axis)(*_to_words(flat))  # one call, one compilation
    flat_partials = _from_words(t_hi, t_lo)  # (j, elements)
    flat_total = _from_words(np.asarray(s_hi)[0], np.asarray(s_lo)[0])  # device 0's copy
    offsets = np.cumsum([0, *sizes])
    partials = [flat_partials[:, a:b].reshape(leaf.shape[1:]) for a, b, leaf in zip(offsets, offsets[1:], leaves)]
    totals = [flat_total[a:b].reshape(leaf.shape[2:]) for a, b, leaf in zip(offsets, offsets[1:], leaves)]
    total = jax.tree.unflatten(treedef, totals)
    result = jax.tree.map(lambda t, d: decode(t, scale_bits=scale_bits, dtype=d), total, dtypes)
    return (result, jax.tree.unflatten(treedef, partials)) if return_partials else result

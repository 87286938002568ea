"""Secure aggregation of gradients by additive secret sharing (document §8.3, §9.3: 安全多方计算).

``n`` workers each hold a gradient; a server should learn their **sum** (what data-parallel
training needs) and nothing about any single worker's gradient. Additive secret sharing over a
prime field does it with additions only:

1. **encode**: each float becomes a fixed-point integer ``q = round(x · 2^s)`` taken mod the
   prime ``p = 2^61 − 1`` (:data:`FIELD_PRIME`); negative ``q`` wrap to ``p − |q|``.
2. **share**: worker ``i`` draws ``n − 1`` field elements uniformly at random and sets the last
   share to ``x_i − Σ others (mod p)``. Each share alone, and any ``n − 1`` of them together, is
   uniform on ``[0, p)`` whatever ``x_i`` is: it reveals nothing.
3. **aggregate**: worker ``i`` sends share ``j`` to worker ``j``; worker ``j`` adds the ``n``
   shares it received (one from every worker) into its partial sum ``t_j``.
4. **reconstruct**: the server adds the partial sums: ``Σ_j t_j = Σ_i x_i (mod p)``, and
   **decode** maps the field element back to a signed float.

Range and precision (``s = scale_bits``, default 16, and ``n`` values summed): decoding is exact
up to rounding, ``|decoded − Σ x_i| ≤ n · 2^-(s+1)`` (about ``7.6e-6 · n`` at ``s = 16``), as long
as every input has ``|x| ≤ (p − 1) / 2 / 2^s / n`` (:func:`fixed_point_range`: about
``1.76e13 / n`` at ``s = 16``). Values outside raise ``ValueError`` (overflow would wrap around
and decode to garbage); with ``underflow="raise"``, so do nonzero values that round to 0.

Field elements are ``<uint64>`` NumPy arrays on the host: ``a + b < 2p < 2^64`` never
overflows, and no multiplication is needed. The same protocol with one worker per device, the
shares moving by collectives, is :func:`lstmjax.parallel.secure_sum_across_devices`.

**Randomness.** ``rng=None`` (the default) draws shares from the operating system's
cryptographic generator (:mod:`secrets`), which is what real use needs. Passing a seeded
``np.random.Generator`` makes runs reproducible (tests, lessons), but PCG64 is *not* a
cryptographic generator: its state can be recovered from enough outputs, and with it the other
shares, so never use one to protect real data.

This protects the gradients in transit and from the server; it does not stop the *sum* leaking
something about one worker's data (use differential privacy for that), nor a worker that lies.

Example:
  >>> import numpy as np
  >>> grads = [{"w": np.array([0.5, -1.25], np.float32)}, {"w": np.array([0.25, 2.0], np.float32)}]
  >>> secure_sum(grads, rng=np.random.default_rng(0))["w"].tolist()
  [0.75, 0.75]
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FIELD_PRIME",
    "aggregate",
    "check_workers",
    "decode",
    "encode",
    "field_add",
    "fixed_point_range",
    "reconstruct",
    "secure_sum",
    "share",
]

FIELD_PRIME = 2**61 - 1
"""The Mersenne prime ``p = 2^61 − 1``: field elements are ``<uint64>`` in ``[0, p)``."""

_P = np.uint64(FIELD_PRIME)
_HALF = (FIELD_PRIME - 1) // 2  # field elements above this decode as negative

Rng = np.random.Generator | None


def _path(path) -> str:
    return jax.tree_util.keystr(path) or "<value>"


def fixed_point_range(scale_bits: int = 16, num_values: int = 1) -> float:
    """The largest ``|x|`` that :func:`encode` accepts so that a sum of ``num_values`` decodes.

    ``(p − 1) / 2 / 2^scale_bits / num_values``; the precision is ``2^-scale_bits``.

    Example:
      >>> f"{fixed_point_range(16):.3g}", f"{fixed_point_range(16, 8):.3g}", 2.0**-16
      ('1.76e+13', '2.2e+12', 1.52587890625e-05)
    """
    _check_scale(scale_bits)
    if num_values < 1:
        raise ValueError(f"num_values must be ≥ 1; got {num_values}")
    max_code = _HALF // num_values  # the largest |round(x · 2^s)|
    code = float(max_code)
    if int(code) > max_code:  # float64 rounded it up (above 2^53): take the float below
        code = float(np.nextafter(code, 0.0))
    return math.ldexp(code, -scale_bits)


def _check_scale(scale_bits: int) -> None:
    if not isinstance(scale_bits, (int, np.integer)) or not 0 <= scale_bits <= 40:
        raise ValueError(f"scale_bits must be an int in [0, 40]; got {scale_bits!r}")


def _check_field(tree: Any, what: str) -> None:
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        x = np.asarray(x)
        if x.dtype != np.uint64:
            raise TypeError(f"{what} {_path(path)}: field elements are <uint64>; got dtype {x.dtype}")
        if x.size and x.max() >= _P:
            raise ValueError(f"{what} {_path(path)}: {int(x.max())} is not a field element (≥ p = 2^61 − 1)")


# --------------------------------------------------------------------------- the field


def field_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a + b) mod p`` of ``<uint64>`` field elements (broadcasting); never overflows.

    Example:
      >>> a = np.array([FIELD_PRIME - 1, 5], np.uint64)
      >>> field_add(a, np.array([3, 7], np.uint64)).tolist()
      [2, 12]
    """
    s = np.asarray(a, np.uint64) + np.asarray(b, np.uint64)  # < 2p < 2^64
    return s - np.where(s >= _P, _P, np.uint64(0))  # no wrap-around, even for scalars


def _field_sum(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Sum mod p along ``axis``, one addition at a time (a plain sum of ≥ 9 could wrap 2^64)."""
    x = np.moveaxis(np.asarray(x, np.uint64), axis, 0)
    total = np.zeros(x.shape[1:], np.uint64)
    for part in x:
        total = field_add(total, part)
    return total


def _uniform(shape: tuple[int, ...], rng: Rng) -> np.ndarray:
    """``<uint64>[shape]`` uniform on ``[0, p)`` exactly (no modulo bias)."""
    if rng is not None:
        return rng.integers(0, FIELD_PRIME, size=shape, dtype=np.uint64)
    size = math.prod(shape)
    # 61 random bits are uniform on [0, 2^61 − 1] = [0, p]; redraw the one value p (chance 2^-61).
    out = np.frombuffer(secrets.token_bytes(8 * size), np.uint64) & _P
    while (bad := out == _P).any():
        out = np.where(bad, np.frombuffer(secrets.token_bytes(8 * size), np.uint64) & _P, out)
    return out.reshape(shape)


# --------------------------------------------------------------------------- fixed point


def encode(
    tree: Any,
    *,
    scale_bits: int = 16,
    max_abs: float | None = None,
    underflow: Literal["ignore", "raise"] = "ignore",
) -> Any:
    """Floats → fixed-point field elements: ``round(x · 2^scale_bits) mod p``.

    Args:
      tree: a pytree of float arrays (any shape; NumPy or JAX; float64 is exact, float32 is too).
      scale_bits: ``s``; the precision is ``2^-s`` (default 16: ``1.5e-5``).
      max_abs: the largest ``|x|`` allowed (default :func:`fixed_point_range` ``(s)``, the
        largest that decodes). :func:`secure_sum` passes the range for its number of workers.
      underflow: ``"raise"`` to refuse nonzero values smaller than ``2^-(s+1)``, which would
        encode as 0 (silently lost with the default ``"ignore"``).

    Returns:
      The same pytree of ``<uint64>`` arrays of the same shapes, each in ``[0, p)``.

    Raises:
      ValueError: a NaN or infinite value, or one outside ``±max_abs`` (overflow), naming the
        leaf, the index and the value.

    Example:
      >>> encode({"w": np.array([1.0, -1.0, 2**-17])})["w"].tolist() == [2**16, FIELD_PRIME - 2**16, 0]
      True
      >>> encode(np.array([3e13]))
      Traceback (most recent call last):
      ...
      ValueError: <value> index (0,): 3e+13 overflows the fixed-point range ±1.759e+13 (scale 2^-16)...
    """
    _check_scale(scale_bits)
    if underflow not in ("ignore", "raise"):
        raise ValueError(f"underflow must be 'ignore' or 'raise'; got {underflow!r}")
    limit = fixed_point_range(scale_bits) if max_abs is None else float(max_abs)
    if not 0 < limit <= fixed_point_range(scale_bits):
        raise ValueError(f"max_abs must be in (0, {fixed_point_range(scale_bits):.4g}] at scale 2^-{scale_bits}; "
                         f"got {max_abs}")

    def one(path, x):
        x = np.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):  # includes bfloat16
            raise TypeError(f"{_path(path)}: encode takes float arrays; got dtype {x.dtype}")
        x = x.astype(np.float64)
        bad = ~np.isfinite(x)
        if bad.any():
            i = tuple(int(k) for k in np.argwhere(bad)[0])
            raise ValueError(f"{_path(path)} index {i}: {x[i]} is not finite and has no fixed-point code")
        over = np.abs(x) > limit
        if over.any():
            i = tuple(int(k) for k in np.argwhere(over)[0])
            raise ValueError(
                f"{_path(path)} index {i}: {x[i]:.6g} overflows the fixed-point range ±{limit:.4g} "
                f"(scale 2^-{scale_bits}); scale the values down (e.g. clip gradients) or lower scale_bits"
            )
        q = np.rint(np.ldexp(x, scale_bits)).astype(np.int64)  # |q| ≤ (p − 1) / 2 < 2^60
        if underflow == "raise":
            lost = (q == 0) & (x != 0)
            if lost.any():
                i = tuple(int(k) for k in np.argwhere(lost)[0])
                raise ValueError(
                    f"{_path(path)} index {i}: {x[i]:.3g} underflows the fixed-point precision "
                    f"2^-{scale_bits} = {2.0**-scale_bits:.3g} and would encode as 0; raise scale_bits"
                )
        return np.where(q < 0, q + FIELD_PRIME, q).astype(np.uint64)

    return jax.tree_util.tree_map_with_path(one, tree)


def decode(tree: Any, *, scale_bits: int = 16, dtype: Any = np.float32) -> Any:
    """Field elements → floats: ``v`` above ``(p − 1)/2`` means ``v − p``; then ``· 2^-scale_bits``.

    Args:
      tree: a pytree of ``<uint64>`` field elements (from :func:`encode` or :func:`reconstruct`).
      scale_bits: the ``s`` they were encoded with.
      dtype: the float dtype of the result (default ``float32``, that of JAX gradients).

    Returns:
      The same pytree of ``<dtype>`` NumPy arrays.

    Example:
      >>> x = np.array([0.5, -3.0, 1e-3], np.float32)
      >>> bool(np.abs(decode(encode(x)) - x).max() <= 2.0**-17)
      True
    """
    _check_scale(scale_bits)
    _check_field(tree, "decode")

    def one(v):
        v = np.asarray(v)
        signed = np.where(v > _HALF, v.astype(np.int64) - FIELD_PRIME, v.astype(np.int64))
        return np.ldexp(signed.astype(np.float64), -scale_bits).astype(dtype)

    return jax.tree.map(one, tree)


# --------------------------------------------------------------------------- the protocol


def share(tree: Any, num_parties: int, *, rng: Rng = None) -> Any:
    """Splits field elements into ``num_parties`` additive shares that sum to them mod p.

    Args:
      tree: a pytree of ``<uint64>`` field elements ``[...]`` (from :func:`encode`).
      num_parties: ``n ≥ 1``, the number of workers that will each receive one share.
      rng: ``None`` (default) for the OS's cryptographic generator (:mod:`secrets`), or a seeded
        ``np.random.Generator`` for reproducible runs (not secure: see the module notes).

    Returns:
      The same pytree with leaves ``<uint64>[num_parties, ...]``: row ``j`` goes to worker ``j``.
      Each row alone is uniform on ``[0, p)`` whatever the secret.

    Example:
      >>> s = share(encode(np.array([1.5])), 3, rng=np.random.default_rng(0))
      >>> s.shape, decode(reconstruct(s)).tolist()
      ((3, 1), [1.5])
    """
    if not isinstance(num_parties, (int, np.integer)) or num_parties < 1:
        raise ValueError(f"num_parties must be an int ≥ 1; got {num_parties!r}")
    _check_field(tree, "share")

    def one(x):
        x = np.asarray(x, np.uint64)
        masks = _uniform((num_parties - 1, *x.shape), rng)  # (n − 1, ...)
        last = field_add(x, _P - _field_sum(masks) if num_parties > 1 else np.uint64(0))
        last = np.where(last == _P, np.uint64(0), last)  # p − 0 = p ≡ 0
        return np.concatenate([masks, last[None]], axis=0)  # (n, ...)

    return jax.tree.map(one, tree)


def aggregate(shares_per_worker: Sequence[Any]) -> Any:
    """Each party adds the shares it received: party ``j``'s partial sum ``t_j = Σ_i s_ij``.

    Args:
      shares_per_worker: ``n`` pytrees, one per worker ``i``, each from :func:`share` with
        leaves ``<uint64>[n, ...]`` (row ``j`` is the share for party ``j``).

    Returns:
      A pytree of ``<uint64>[n, ...]``: row ``j`` is party ``j``'s partial sum, still uniform
      on its own; only all ``n`` together give the total.

    Example:
      >>> rng = np.random.default_rng(0)
      >>> parts = aggregate([share(encode(np.array([x])), 2, rng=rng) for x in (1.0, 2.5)])
      >>> decode(reconstruct(parts)).tolist()
      [3.5]
    """
    shares_per_worker = list(shares_per_worker)
    if not shares_per_worker:
        raise ValueError("aggregate needs the shares of at least one worker")
    n = len(shares_per_worker)
    for i, tree in enumerate(shares_per_worker):
        _check_field(tree, f"worker {i}'s shares")
        for path, x in jax.tree_util.tree_leaves_with_path(tree):
            if np.ndim(x) == 0 or np.shape(x)[0] != n:
                raise ValueError(f"worker {i}'s shares {_path(path)} have shape {np.shape(x)}: {n} workers "
                                 f"need {n} shares each (leading axis {n}); share with num_parties={n}")
    return jax.tree.map(lambda *xs: _field_sum(np.stack(xs)), *shares_per_worker)  # (n_i, n_j, ...) → (n_j, ...)


def reconstruct(partial_sums: Any) -> Any:
    """The server adds the parties' partial sums (leading axis) mod p: ``<uint64>[n, ...]`` → ``[...]``.

    Example:
      >>> decode(reconstruct(share(encode(np.array([-2.0])), 4, rng=np.random.default_rng(1)))).tolist()
      [-2.0]
    """
    _check_field(partial_sums, "reconstruct")
    return jax.tree.map(lambda x: _field_sum(x, axis=0), partial_sums)


def check_workers(values: Sequence[Any]) -> tuple[list[Any], Any]:
    """The workers' values as a list, checked to share one pytree structure and leaf shapes, and their dtypes.

    Args:
      values: one pytree of arrays per worker.

    Returns:
      ``(values, dtypes)``: ``dtypes`` is worker 0's pytree of leaf dtypes.

    Example:
      >>> check_workers([{"w": np.zeros(2, np.float32)}, {"w": np.ones(2, np.float32)}])[1]
      {'w': dtype('float32')}
    """
    values = list(values)
    if not values:
        raise ValueError("secure aggregation needs at least one worker's values")
    structure = jax.tree.structure(values[0])
    for i, v in enumerate(values):
        if jax.tree.structure(v) != structure:
            raise ValueError(f"worker {i}'s pytree {jax.tree.structure(v)} differs from worker 0's {structure}")
        for a, b in zip(jax.tree.leaves(values[0]), jax.tree.leaves(v)):
            if np.shape(a) != np.shape(b):
                raise ValueError(f"worker {i} has a leaf of shape {np.shape(b)} where worker 0 has {np.shape(a)}")
    dtypes = jax.tree.map(lambda x: np.asarray(x).dtype, values[0])
    return values, dtypes


def secure_sum(values: Sequence[Any], *, scale_bits: int = 16, rng: Rng = None) -> Any:
    """The whole protocol on the host: encode, share, aggregate, reconstruct, decode.

    Args:
      values: ``n`` pytrees of float arrays of equal structure and shapes, one per worker
        (e.g. each worker's gradients); every value must satisfy ``|x| ≤``
        :func:`fixed_point_range` ``(scale_bits, n)``.
      scale_bits: the fixed-point precision ``2^-scale_bits``.
      rng: see :func:`share` (``None``: cryptographic randomness).

    Returns:
      The sum as a pytree of NumPy arrays of each leaf's own dtype, within ``n · 2^-(s+1)`` of
      the exact sum.

    Example:
      >>> vals = [np.array([0.1, 0.2], np.float32), np.array([0.3, -0.4], np.float32)]
      >>> np.allclose(secure_sum(vals, rng=np.random.default_rng(0)), vals[0] + vals[1], atol=2 * 2.0**-16)
      True
    """
    values, dtypes = check_workers(values)
    n = len(values)
    limit = fixed_point_range(scale_bits, n)
    shares = [share(encode(v, scale_bits=scale_bits, max_abs=limit), n, rng=rng) for v in values]
    total = reconstruct(aggregate(shares))
    return jax.tree.map(lambda t, d: decode(t, scale_bits=scale_bits, dtype=d), total, dtypes)

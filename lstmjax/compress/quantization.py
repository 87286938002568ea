r"""Post-training int8 quantisation (document §8.2: model compression).

:func:`quantize_int8` replaces every weight matrix ``w`` by a :class:`QuantizedTensor`:
symmetric, per output channel,

.. math::

    s_j = \max_i |w_{ij}| / 127, \qquad q_{ij} = \mathrm{round}(w_{ij} / s_j) \in [-127, 127],
    \qquad \hat w_{ij} = s_j q_{ij}, \qquad |w_{ij} - \hat w_{ij}| \le s_j / 2.

The output channel is the last axis for kernels ``[in, out]`` (``W_x``, ``W_h``, ``kernel``:
one scale per gate unit / class). For the embedding table ``[vocab, dim]`` each *row* (token) gets
its own scale: a lookup reads rows, so a row's error then depends only on that token's own vector
(a rare token with a small vector is not swamped by a frequent one with a large vector), and a
row and its scale can be gathered together. Biases and other vectors stay float.
:func:`make_quantized_predict` runs the model from int8 weights, dequantising inside the jitted
function; :func:`nbytes` and :func:`serialized_nbytes` measure the size before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp

from lstmjax.nn.params import Include, is_weight_matrix, path_name

__all__ = ["QuantizedTensor", "dequantize", "make_quantized_predict", "nbytes", "quantize_int8",
           "quantized_apply", "serialized_nbytes"]

Params = Any  # a pytree of arrays


class QuantizedTensor(NamedTuple):
    """A symmetric int8 tensor: ``w ≈ q * scale`` (a pytree: two arrays).

    Attributes:
      q: ``<int8>[...]``, the shape of the float tensor, values in ``[-127, 127]``.
      scale: ``<float32>`` of the same rank with size 1 on the reduced axes: ``[1, out]`` for a
        kernel ``[in, out]`` (per output channel), ``[vocab, 1]`` for an embedding (per row).
    """

    q: jax.Array
    scale: jax.Array


def _channel_axis(path: str, leaf: jax.Array) -> int:
    """The axis that keeps its own scale: rows for an embedding table, the last axis otherwise."""
    return 0 if path.split("/")[-1] == "embedding" else jnp.ndim(leaf) - 1


def _quantize(w: jax.Array, axis: int) -> QuantizedTensor:
    reduce_axes = tuple(a for a in range(w.ndim) if a != axis)
    w32 = w.astype(jnp.float32)
    scale = jnp.max(jnp.abs(w32), axis=reduce_axes, keepdims=True) / jnp.float32(127.0)  # e.g. (1, out)
    safe = jnp.where(scale > 0, scale, jnp.ones_like(scale))  # an all-zero channel quantises to 0
    q = jnp.clip(jnp.round(w32 / safe), -127, 127).astype(jnp.int8)
    return QuantizedTensor(q, scale)


def quantize_int8(params: Params, *, include: Include | None = None) -> Params:
    """Symmetric per-output-channel int8 quantisation of the weight matrices.

    Args:
      params: a pytree of float arrays.
      include: which leaves to quantise (default :func:`~lstmjax.nn.params.is_weight_matrix`: ``ndim >= 2``).

    Returns:
      ``params`` with each included leaf replaced by a :class:`QuantizedTensor`; other leaves
      (biases) unchanged. ``|w - q * scale| <= scale / 2`` elementwise.

    Example:
      >>> import jax.numpy as jnp
      >>> qp = quantize_int8({"kernel": jnp.array([[1.0, -0.5], [-2.0, 0.25]]), "bias": jnp.zeros(2)})
      >>> qp["kernel"].q.tolist(), qp["kernel"].scale.shape, qp["bias"].dtype
      ([[64, -127], [-127, 64]], (1, 2), dtype('float32'))
    """
    include = is_weight_matrix if include is None else include

    def leaf(path, w):
        name = path_name(path)
        return _quantize(w, _channel_axis(name, w)) if include(name, w) else w

    return jax.tree_util.tree_map_with_path(leaf, params)


def dequantize(qparams: Params, dtype: Any = jnp.float32) -> Params:
    """Float params from :func:`quantize_int8`'s output (``q * scale`` as ``dtype``); other leaves as they are.

    Example:
      >>> import jax.numpy as jnp
      >>> w = jnp.array([[1.0, -0.5], [-2.0, 0.25]])
      >>> err = jnp.abs(dequantize(quantize_int8({"k": w}))["k"] - w)   # column scales 2/127, 0.5/127
      >>> bool(jnp.all(err <= jnp.array([1.0, 0.25]) / 127))
      True
    """
    def leaf(x):
        if isinstance(x, QuantizedTensor):
            return (x.q.astype(jnp.float32) * x.scale).astype(dtype)
        return x

    return jax.tree.map(leaf, qparams, is_leaf=lambda x: isinstance(x, QuantizedTensor))


def nbytes(tree) -> int:
    """Bytes held by the arrays of a pytree (int8 values and float32 scales counted as such).

    Example:
      >>> import jax.numpy as jnp
      >>> w = {"k": jnp.zeros((128, 64))}
      >>> nbytes(w), nbytes(quantize_int8(w))   # 128*64*4  vs  128*64*1 + 64*4
      (32768, 8448)
    """
    return sum(int(jnp.size(x)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def serialized_nbytes(tree) -> int:
    """Size in bytes of the pytree saved with ``flax.serialization.to_bytes`` (msgpack).

    Example:
      >>> import jax.numpy as jnp
      >>> w = {"k": jnp.zeros((128, 64))}
      >>> serialized_nbytes(quantize_int8(w)) < serialized_nbytes(w) / 3
      True
    """
    return len(flax.serialization.to_bytes(jax.device_get(tree)))


def quantized_apply(apply_fn: Callable) -> Callable:
    """Wrap ``apply_fn({"params": params}, *args, **kw)`` to take quantised params instead.

    The returned ``fn(qparams, *args, **kw)`` dequantises inside, so under ``jit`` the int8
    weights are the arguments and the float weights exist only inside the compiled step.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier
      >>> model = TextClassifier(20, 2, embed_dim=8, hidden_size=8)
      >>> ids = jnp.array([[3, 4, 5]], jnp.int32)
      >>> params = model.init(jax.random.key(0), ids)["params"]
      >>> logits = jax.jit(quantized_apply(model.apply))(quantize_int8(params), ids)
      >>> bool(jnp.allclose(logits, model.apply({"params": params}, ids), atol=1e-2))
      True
    """

    def fn(qparams, *args, **kwargs):
        return apply_fn({"params": dequantize(qparams)}, *args, **kwargs)

    return fn


def make_quantized_predict(model) -> Callable:
    """A jitted ``predict(qparams, token_ids, lengths) -> <float32>[batch, classes]`` logits.

    ``qparams`` from :func:`quantize_int8`; ``token_ids <int32>[batch, time]``,
    ``lengths <int32>[batch]``; dropout off.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier
      >>> model = TextClassifier(20, 3, embed_dim=8, hidden_size=8)
      >>> ids, lengths = jnp.array([[3, 4, 0]], jnp.int32), jnp.array([2], jnp.int32)
      >>> params = model.init(jax.random.key(0), ids, lengths)["params"]
      >>> make_quantized_predict(model)(quantize_int8(params), ids, lengths).shape
      (1, 3)
    """
    apply = quantized_apply(model.apply)

    @jax.jit
    def predict(qparams, token_ids, lengths):
        return apply(qparams, token_ids, lengths, deterministic=True)

    return predict

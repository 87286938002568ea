r"""A fast LSTM time loop: one ``lax.scan`` with a hand-written backward pass (``jax.custom_vjp``).

:func:`lstm_scan` computes exactly what :func:`lstmjax.nn.scan.scan_cell` computes with
:func:`lstmjax.nn.cells.lstm_step` (the same operations per step, so the forward values agree to float
rounding; tests/test_fused.py checks 1e-13 in float64), but its gradient is not autodiff of ``lax.scan``: the forward pass stores the gate
activations :math:`(i_t, f_t, \tilde c_t, o_t)` and the cell states :math:`c_t`, and the backward
pass is one reverse scan of the LSTM's textbook derivative,

.. math::

    \begin{aligned}
    \delta h_t &= \bar y_t + \delta h_{t+1}^{\text{carry}}, &
    \delta o_t &= \delta h_t \odot \tanh c_t, \\
    \delta c_t &= \delta c_{t+1}^{\text{carry}} + \delta h_t \odot o_t \odot (1-\tanh^2 c_t), &
    \delta \tilde c_t &= \delta c_t \odot i_t, \quad \delta i_t = \delta c_t \odot \tilde c_t,
    \quad \delta f_t = \delta c_t \odot c_{t-1}, \\
    \delta z_t &= [\delta i_t\, i_t(1-i_t),\ \delta f_t\, f_t(1-f_t),\
    \delta\tilde c_t(1-\tilde c_t^2),\ \delta o_t\, o_t(1-o_t)], &
    \delta h_{t-1}^{\text{carry}} &= \delta z_t W_h^\top, \quad
    \delta c_{t-1}^{\text{carry}} = \delta c_t \odot f_t,
    \end{aligned}

and the weight gradients :math:`\nabla W_h = \sum_t h_{t-1}^\top \delta z_t`,
:math:`\nabla W_x = \sum_t x_t^\top \delta z_t`, :math:`\nabla b = \sum_t \delta z_t` taken in one
of two places (``weight_grads=``): ``"after"`` the loop, as single large matrix products over all
``time × batch`` rows, so that only the small ``[batch, 4H] @ [4H, H]`` product stays inside it;
or summed step by step ``"loop"`` inside it, where XLA's CPU runtime runs those products beside
the recurrent one on another core and no ``[time × batch, ·]`` operand has to be transposed
afterwards. Measured on a 2-core CPU (H = 128, T = 200, forward + backward of the loop):
``"after"`` is 1.25× faster at batch 32, ``"loop"`` 1.1× faster at batch 64 and 128 and 1.3×
at 256, so ``"auto"`` picks ``"loop"`` from batch 64 up — except while tracing under a mesh that
may split the batch over devices (:func:`lstmjax.nn.scan.batch_partitioned`), where a per-step
sum over it would be a per-step all-reduce (``"after"`` does one).

The gate activations are kept as four separate ``[time, batch, H]`` arrays rather than one
``[time, batch, 4H]`` array: XLA's CPU fusions that read one gate's columns out of a wider
per-step slice ran several times slower.

Steps at ``t >= length`` leave the carry unchanged and output zeros, as in ``scan_cell``; their
gradient is zero.

``remat_chunk=K`` (gradient checkpointing): the forward pass keeps only the carries ``(h, c)``
at every K-th step; the backward pass recomputes each block of K steps' gates just before it
needs them, and takes that block's weight gradients right away. Memory for the saved
activations drops from ``T × B × 5H`` (gates and cell states, plus ``T × B × 4H`` for the
gate gradients) to about ``T/K × B × 2H + K × B × 9H`` numbers, for one extra forward pass.

``matmul_dtype=jnp.bfloat16`` (opt-in, lower precision): the matrix products take bfloat16
inputs and accumulate in float32; everything elementwise stays float32.

The layers (:class:`lstmjax.LSTM`) use this loop by default (``fused=True``) and fall back to
autodiff of ``scan_cell`` where it does not apply (GRU, SimpleRNN, recurrent dropout).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import jax
import jax.numpy as jnp

from lstmjax.nn import cells
from lstmjax.nn.scan import batch_partitioned, length_mask, vary_like

Array = jax.Array

__all__ = ["LOOP_WEIGHT_GRADS_MIN_BATCH", "lstm_scan"]

LOOP_WEIGHT_GRADS_MIN_BATCH = 64
"""``weight_grads="auto"`` sums the weight gradients inside the backward loop from this batch size up."""


def _resolve_weight_grads(mode: str, batch: int) -> str:
    """``"loop"`` or ``"after"`` for ``weight_grads=mode`` at this batch size, in this trace.

    Example:
      >>> import jax
      >>> _resolve_weight_grads("auto", 256), _resolve_weight_grads("auto", 32), _resolve_weight_grads("loop", 8)
      ('loop', 'after', 'loop')
      >>> mesh = jax.make_mesh((2,), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:2])
      >>> with jax.set_mesh(mesh):  # the batch may be split over 2 devices: one all-reduce after the loop
      ...     _resolve_weight_grads("auto", 256)
      'after'
      >>> _resolve_weight_grads("auto", jax.export.symbolic_shape("b")[0])  # exported with a symbolic batch
      'after'
    """
    if mode not in ("auto", "loop", "after"):
        raise ValueError(f"weight_grads must be 'auto', 'loop' or 'after'; got {mode!r}")
    if mode != "auto":
        return mode
    if not isinstance(batch, int):  # a symbolic batch (jax.export): one product after the loop
        return "after"
    return "loop" if batch >= LOOP_WEIGHT_GRADS_MIN_BATCH and not batch_partitioned() else "after"


def _dot(a: Array, b: Array, matmul_dtype) -> Array:
    """``a @ b`` in float32, with the inputs cast to ``matmul_dtype`` when one is given."""
    if matmul_dtype is None:
        return a @ b
    return jnp.matmul(a.astype(matmul_dtype), b.astype(matmul_dtype), preferred_element_type=a.dtype)


def _step(W_h, h_prev, c_prev, xw_t, matmul_dtype):
    """One LSTM step (:func:`lstmjax.nn.cells.lstm_step_projected`, with ``matmul_dtype``)."""
    z = xw_t + _dot(h_prev, W_h, matmul_dtype)  # (B, 4H)
    (h_t, c_t), gates = cells.lstm_gates(z, c_prev)
    return h_t, c_t, gates


def _forward(W_x, b, W_h, x, h0, c0, valid, hoist, matmul_dtype, keep_gates: bool):
    """Time-major forward scan. ``x <float>[T, B, F]``, ``valid <bool>[T, B]``.

    ``hoist``: project the inputs for all steps in one product before the loop (else step by
    step inside it). Returns ``(h_T, c_T), ys <float>[T, B, H]`` (zero at invalid steps) and,
    with ``keep_gates``, ``gates`` (``i, f, c̃, o``, each ``<float>[T, B, H]``) and ``cs <float>[T, B, H]``
    (the carried ``c``).
    """
    # Hoisted: the bias is added step by step, where it fuses into the gate arithmetic, rather
    # than in a pass of its own over the [T, B, 4H] product.
    xs = _dot(x, W_x, matmul_dtype) if hoist else x  # (T, B, 4H) or (T, B, F)

    def body(carry, inp):
        h_prev, c_prev = carry
        x_t, valid_t = inp
        xw_t = (x_t if hoist else _dot(x_t, W_x, matmul_dtype)) + b  # (B, 4H)
        h_t, c_t, gates = _step(W_h, h_prev, c_prev, xw_t, matmul_dtype)
        keep = valid_t[:, None]  # (B, 1)
        h_t = jnp.where(keep, h_t, h_prev)
        c_t = jnp.where(keep, c_t, c_prev)
        y_t = jnp.where(keep, h_t, jnp.zeros_like(h_t))
        out = (y_t, gates, c_t) if keep_gates else y_t  # gates: 4 arrays (see the module note)
        return (h_t, c_t), out

    return jax.lax.scan(body, (h0, c0), (xs, valid))


def _backward_block(W_h, gates, cs, c_first, valid, dys, dh, dc, matmul_dtype, x=None, h_prev=None):
    """Reverse scan over one block of steps: the LSTM derivative given the stored activations.

    ``gates``: ``i, f, c̃, o``, each ``<float>[K, B, H]``; ``cs <float>[K, B, H]`` (carried ``c_t``),
    ``c_first`` the ``c`` before the block, ``dys <float>[K, B, H]``. Returns ``(dh, dc)`` before
    the block and ``dz <float>[K, B, 4H]`` (zero at invalid steps); given the block's inputs
    ``x <float>[K, B, F]`` and ``h_prev <float>[K, B, H]``, also ``(dW_x, db, dW_h)`` summed
    step by step inside the loop.
    """
    c_prev = jnp.concatenate([c_first[None], cs[:-1]], axis=0)  # (K, B, H)
    accumulate = x is not None
    # W_hᵀ made once, before the loop: inside it XLA folds the transpose into the product, whose
    # transposed operand ran 1.3-1.6× slower per step on a CPU (batch 16-32).
    W_hT = W_h.T  # (4H, H)

    def body(carry, inp):
        dh, dc = carry[:2]
        (i_t, f_t, c̃_t, o_t), c_t, c_p, valid_t, dy_t = inp[:5]
        keep = valid_t[:, None]
        dh_t = dh + dy_t
        tanh_c = jnp.tanh(c_t)
        do = dh_t * tanh_c
        dc_t = dc + dh_t * o_t * (1.0 - tanh_c * tanh_c)
        di = dc_t * c̃_t
        df = dc_t * c_p
        dc̃ = dc_t * i_t
        dz = jnp.concatenate(
            [di * i_t * (1.0 - i_t), df * f_t * (1.0 - f_t), dc̃ * (1.0 - c̃_t * c̃_t), do * o_t * (1.0 - o_t)], axis=-1
        )  # (B, 4H)
        dz = jnp.where(keep, dz, jnp.zeros_like(dz))
        dh_prev = jnp.where(keep, _dot(dz, W_hT, matmul_dtype), dh)
        dc_prev = jnp.where(keep, dc_t * f_t, dc)
        if not accumulate:
            return (dh_prev, dc_prev), dz
        x_t, h_prev_t = inp[5:]
        dW_x, db, dW_h = carry[2:]
        return (dh_prev, dc_prev, dW_x + _dot(x_t.T, dz, matmul_dtype), db + jnp.sum(dz, axis=0),
                dW_h + _dot(h_prev_t.T, dz, matmul_dtype)), dz

    inputs = (gates, cs, c_prev, valid, dys)
    if not accumulate:
        (dh, dc), dz = jax.lax.scan(body, (dh, dc), inputs, reverse=True)
        return dh, dc, dz
    width = W_h.shape[-1]
    # zeros_like W_h: typed like the parameters (varying over a shard_map axis where they are).
    zeros = tuple(jnp.zeros_like(W_h, dtype=dys.dtype, shape=shape)
                  for shape in ((x.shape[-1], width), (width,), W_h.shape))
    (dh, dc, *grads), dz = jax.lax.scan(body, (dh, dc, *zeros), inputs + (x, h_prev), reverse=True)
    return dh, dc, dz, tuple(grads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9, 10))
def _lstm_scan_tm(W_x, b, W_h, x, h0, c0, valid, hoist, remat_chunk, matmul_dtype, weight_grads):
    """Time-major LSTM scan: ``ys <float>[T, B, H]``, ``h_T``, ``c_T`` (no residuals kept)."""
    (h, c), ys = _forward(W_x, b, W_h, x, h0, c0, valid, hoist, matmul_dtype, keep_gates=False)
    return ys, h, c


def _lstm_scan_tm_fwd(W_x, b, W_h, x, h0, c0, valid, hoist, remat_chunk, matmul_dtype, weight_grads):
    params = (W_x, b, W_h)
    if remat_chunk is None:  # keep every step's gates and cell state
        (h, c), (ys, gates, cs) = _forward(*params, x, h0, c0, valid, hoist, matmul_dtype, keep_gates=True)
        return (ys, h, c), (params, x, h0, c0, valid, ys, (gates, cs))
    # Gradient checkpointing: keep only the carries entering each block of remat_chunk steps.
    T, B, F = x.shape
    n = T // remat_chunk

    def block(carry, inp):
        x_k, valid_k = inp
        new_carry, ys_k = _forward(*params, x_k, *carry, valid_k, hoist, matmul_dtype, keep_gates=False)
        return new_carry, (ys_k, carry)

    (h, c), (ys, starts) = jax.lax.scan(
        block, (h0, c0), (x.reshape(n, remat_chunk, B, F), valid.reshape(n, remat_chunk, B)))
    ys = ys.reshape(T, B, -1)  # (T, B, H)
    return (ys, h, c), (params, x, h0, c0, valid, ys, starts)


def _contract(a: Array, b: Array, matmul_dtype) -> Array:
    """``sum_{k,b} a[k, b, :]ᵀ b[k, b, :]``: ``<float>[K, B, M] × [K, B, N] -> [M, N]``.

    One ``dot_general`` over both leading axes rather than a reshape to ``[K·B, M]``: merging a
    batch axis that is split across devices into a larger one makes XLA gather the whole batch
    onto every device; contracting it keeps each device's share local (one all-reduce of the
    ``[M, N]`` result, as autodiff of the scan gives).
    """
    if matmul_dtype is None:
        return jnp.einsum("kbm,kbn->mn", a, b)
    return jnp.einsum("kbm,kbn->mn", a.astype(matmul_dtype), b.astype(matmul_dtype), preferred_element_type=a.dtype)


def _weight_grads(x, h_prev, dz, W_x, matmul_dtype):
    """``dW_x, db, dW_h, dx`` from ``dz <float>[K, B, 4H]``: large products over all ``K·B`` rows."""
    dW_h = _contract(h_prev, dz, matmul_dtype)  # (H, 4H)
    dW_x = _contract(x, dz, matmul_dtype)  # (F, 4H)
    return dW_x, jnp.sum(dz, axis=(0, 1)), dW_h, _dot(dz, W_x.T, matmul_dtype)  # dx: (K, B, F)


def _lstm_scan_tm_bwd(hoist, remat_chunk, matmul_dtype, weight_grads, res, cotangents):
    (W_x, b, W_h), x, h0, c0, valid, ys, saved = res
    dys, dh, dc = cotangents
    T, B, H = ys.shape
    F = x.shape[-1]
    # The h entering step t is y_{t-1} wherever step t is valid (right padding); dz is 0 elsewhere.
    h_prev = jnp.concatenate([h0[None], ys[:-1]], axis=0)  # (T, B, H)
    if remat_chunk is None:
        gates, cs = saved
        if weight_grads == "loop":  # summed step by step, beside the recurrent product
            dh0, dc0, dz, (dW_x, db, dW_h) = _backward_block(W_h, gates, cs, c0, valid, dys, dh, dc, matmul_dtype,
                                                              x=x, h_prev=h_prev)
            dx = _dot(dz, W_x.T, matmul_dtype)  # (T, B, F)
        else:  # once, after the loop, as large products over all T·B rows
            dh0, dc0, dz = _backward_block(W_h, gates, cs, c0, valid, dys, dh, dc, matmul_dtype)
            dW_x, db, dW_h, dx = _weight_grads(x, h_prev, dz, W_x, matmul_dtype)
    else:
        h_starts, c_starts = saved
        n, k = T // remat_chunk, remat_chunk

        def block(carry, inp):  # recompute one block's gates, run its backward, add its weight gradients
            dh, dc, dW_x, db, dW_h = carry
            x_k, valid_k, dys_k, h_prev_k, h_start, c_start = inp
            _, (_, gates_k, cs_k) = _forward(W_x, b, W_h, x_k, h_start, c_start, valid_k, hoist, matmul_dtype,
                                             keep_gates=True)
            dh, dc, dz_k = _backward_block(W_h, gates_k, cs_k, c_start, valid_k, dys_k, dh, dc, matmul_dtype)
            gx, gb, gh, dx_k = _weight_grads(x_k, h_prev_k, dz_k, W_x, matmul_dtype)
            return (dh, dc, dW_x + gx, db + gb, dW_h + gh), dx_k

        zeros = (jnp.zeros_like(W_x, dtype=dys.dtype), jnp.zeros_like(b, dtype=dys.dtype),
                 jnp.zeros_like(W_h, dtype=dys.dtype))
        inputs = (x.reshape(n, k, B, F), valid.reshape(n, k, B), dys.reshape(n, k, B, H),
                  h_prev.reshape(n, k, B, H), h_starts, c_starts)
        (dh0, dc0, dW_x, db, dW_h), dx = jax.lax.scan(block, (dh, dc, *zeros), inputs, reverse=True)
        dx = dx.reshape(T, B, F)
    return (dW_x.astype(W_x.dtype), db.astype(b.dtype), dW_h.astype(W_h.dtype), dx.astype(x.dtype),
            dh0, dc0, None)


_lstm_scan_tm.defvjp(_lstm_scan_tm_fwd, _lstm_scan_tm_bwd)


def lstm_scan(params: dict[str, Array], inputs: Array, carry: tuple[Array, Array], lengths: Array | None = None, *,
              hoist: bool = True, remat_chunk: int | None = None, matmul_dtype: Any = None,
              weight_grads: Literal["auto", "loop", "after"] = "auto"):
    """Run an LSTM over time, as ``scan_cell(cells.lstm_step, ...)``, with a fast hand-written gradient.

    Args:
      params: ``{"W_x": <float>[F, 4H], "W_h": <float>[H, 4H], "b": <float>[4H]}`` (gate order
        i, f, c̃, o, as :func:`lstmjax.nn.cells.lstm_step`).
      inputs: ``<float>[batch, time, features]``.
      carry: ``(h_0, c_0)``, each ``<float>[batch, hidden]``.
      lengths: ``<int>[batch]`` valid steps per sequence (right padding), or ``None``.
      hoist: compute the input projection ``x @ W_x + b`` for all steps in one matrix product
        before the loop (default), or step by step inside it. The backward pass is the same.
      remat_chunk: gradient checkpointing: keep activations only every ``remat_chunk`` steps and
        recompute the rest in the backward pass (``None``: keep all). Time is padded up to a
        multiple of it with invalid steps.
      matmul_dtype: e.g. ``jnp.bfloat16`` for lower-precision matrix products (float32
        accumulation); ``None`` (default) keeps the parameters' dtype.
      weight_grads: where the backward pass sums the weight gradients: ``"loop"`` (step by
        step), ``"after"`` (one product after the loop) or ``"auto"``: ``"loop"`` from batch
        :data:`LOOP_WEIGHT_GRADS_MIN_BATCH` up unless traced under a mesh that may split the
        batch (:func:`lstmjax.nn.scan.batch_partitioned`). The
        values are the same either way (to float rounding); only the speed differs. With
        ``remat_chunk``, each block's are summed after that block.

    Returns:
      ``((h_n, c_n), outputs)`` with ``h_n, c_n <float>[batch, hidden]`` at each sequence's true
      length and ``outputs <float>[batch, time, hidden]`` zero at padded steps.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax.nn import cells
      >>> from lstmjax.nn.scan import scan_cell
      >>> p = cells.init_lstm_params(jax.random.key(0), 3, 4)
      >>> x, lengths = jax.random.normal(jax.random.key(1), (2, 5, 3)), jnp.array([5, 2])
      >>> zeros = jnp.zeros((2, 4))
      >>> (h, c), y = lstm_scan(p, x, (zeros, zeros), lengths)
      >>> (h_ref, c_ref), y_ref = scan_cell(cells.lstm_step, p, x, (zeros, zeros), lengths)
      >>> bool(jnp.allclose(y, y_ref, atol=1e-6)), bool(jnp.allclose(h, h_ref, atol=1e-6))
      (True, True)
      >>> loss = lambda p: jnp.sum(lstm_scan(p, x, (zeros, zeros), lengths)[1] ** 2)
      >>> loss_ref = lambda p: jnp.sum(scan_cell(cells.lstm_step, p, x, (zeros, zeros), lengths)[1] ** 2)
      >>> g, g_ref = jax.grad(loss)(p), jax.grad(loss_ref)(p)
      >>> all(bool(jnp.allclose(g[k], g_ref[k], atol=1e-5)) for k in p)
      True
    """
    if remat_chunk is not None and remat_chunk < 1:
        raise ValueError(f"remat_chunk must be a positive number of steps or None; got {remat_chunk}")
    h0, c0 = carry
    B, T = inputs.shape[:2]
    x = jnp.swapaxes(inputs, 0, 1)  # (T, B, F): the scan runs over the leading axis
    valid = jnp.ones((T, B), jnp.bool_) if lengths is None else length_mask(lengths, T).T  # (T, B)
    pad = 0
    if remat_chunk is not None:
        remat_chunk = max(1, min(remat_chunk, T))
        pad = -T % remat_chunk
        if pad:  # invalid steps at the end: they change nothing
            x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)], axis=0)
            valid = jnp.concatenate([valid, jnp.zeros((pad, B), jnp.bool_)], axis=0)
    # Under shard_map: parameters the same on every device enter the custom-VJP loop as varying
    # (their per-device gradients vary; autodiff sums them over the mesh axis at this cast).
    W_x, b, W_h, h0, c0 = vary_like((params["W_x"], params["b"], params["W_h"], h0, c0), x, valid, h0, c0)
    ys, h, c = _lstm_scan_tm(W_x, b, W_h, x, h0, c0, valid,
                             hoist, remat_chunk, matmul_dtype, _resolve_weight_grads(weight_grads, B))
    if pad:
        ys = ys[:T]
    return (h, c), jnp.swapaxes(ys, 0, 1)  # (B, T, H)

r"""The time loop, written once: ``lax.scan`` of a pure cell step over right-padded sequences.

Everything the recurrent layers need to run a cell over time lives here:

* :func:`length_mask`: which steps of each sequence are real, from ``lengths`` (the one place
  the mask is computed; the layers, the fused loop, pooling, attributions and attacks call it);
* :func:`scan_cell`: ``step(params, carry, x_t)`` over time with that mask (the carry stops at
  each sequence's true length, padded outputs are zero);
* :func:`reverse_sequences`: each sequence's valid steps reversed in place (bidirectional layers);
* :func:`remat_scan_cell`: :func:`scan_cell` with gradient checkpointing over blocks of steps;
* tracing context: :func:`vary_like` types a loop's carry for ``jax.shard_map``, and
  :func:`batch_partitioned` says whether the trace runs under a mesh that may split the batch.
  The model part never creates devices or meshes; it only reads how JAX is tracing it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = ["batch_partitioned", "length_mask", "remat_scan_cell", "reverse_sequences", "scan_cell", "vary_like"]


def length_mask(lengths: Array, time: int) -> Array:
    """``mask[b, t] = t < lengths[b]``: the valid steps of right-padded sequences.

    Args:
      lengths: ``<int>[batch]``, each sequence's number of valid steps.
      time: the padded length ``T``.

    Returns:
      ``<bool>[batch, time]``.

    Example:
      >>> import jax.numpy as jnp
      >>> length_mask(jnp.array([2, 0, 3]), 3).astype(int).tolist()
      [[1, 1, 0], [0, 0, 0], [1, 1, 1]]
    """
    # An iota rather than arange(time)[None]: jax2onnx traces symbolic sizes through it (ONNX export).
    return jax.lax.broadcasted_iota(lengths.dtype, (lengths.shape[0], time), 1) < lengths[:, None]  # (B, T)


def scan_cell(step: Callable, params, inputs: Array, carry, lengths: Array | None = None):
    """Run ``step(params, carry, x_t) -> (carry, y_t)`` over time with ``lax.scan``.

    With ``lengths``, steps at ``t >= length`` leave the carry unchanged and output zeros, so
    the final carry is the state at each sequence's true length. ``y_t`` may be a pytree (e.g. a
    dict of gate activations for a trace); each of its leaves gets a time axis.

    Args:
      step: a pure cell step, e.g. :func:`lstmjax.nn.cells.lstm_step` (or a ``*_step_projected``
        with pre-projected inputs).
      params: the cell's parameter pytree.
      inputs: ``<float>[batch, time, features]``.
      carry: the initial carry (a pytree of ``<float>[batch, hidden]``).
      lengths: ``<int>[batch]`` valid steps per sequence, or ``None`` for all ``time`` steps.

    Returns:
      ``(final_carry, outputs)`` with outputs ``<float>[batch, time, hidden]`` (for each leaf of ``y_t``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax.nn import cells
      >>> p = cells.init_lstm_params(jax.random.key(0), 3, 4)
      >>> x = jnp.ones((2, 5, 3))
      >>> zeros = jnp.zeros((2, 4))
      >>> (h, c), y = scan_cell(cells.lstm_step, p, x, (zeros, zeros), jnp.array([5, 2]))
      >>> y.shape, bool(jnp.all(y[1, 2:] == 0)), bool(jnp.allclose(h[1], y[1, 1]))
      ((2, 5, 4), True, True)
    """
    xs = jnp.swapaxes(inputs, 0, 1)  # (T, B, F): scan runs over the leading axis

    if lengths is None:

        def body(carry, x_t):
            return step(params, carry, x_t)

        carry, ys = jax.lax.scan(body, vary_like(carry, xs, params), xs)
    else:
        valid = length_mask(lengths, xs.shape[0]).T  # (T, B)

        def body(carry, inp):
            x_t, valid_t = inp
            new_carry, y_t = step(params, carry, x_t)
            keep = valid_t[:, None]  # (B, 1)
            carry = jax.tree.map(lambda new, old: jnp.where(keep, new, old), new_carry, carry)
            return carry, jax.tree.map(lambda y: jnp.where(keep, y, jnp.zeros_like(y)), y_t)

        carry, ys = jax.lax.scan(body, vary_like(carry, xs, valid, params), (xs, valid))
    return carry, jax.tree.map(lambda y: jnp.swapaxes(y, 0, 1), ys)  # (B, T, H) per output


def reverse_sequences(inputs: Array, lengths: Array | None) -> Array:
    """Reverse each sequence's first ``length`` steps in place, leaving its padding where it is.

    ``[x0, x1, x2, pad] -> [x2, x1, x0, pad]`` for length 3. Applying it twice is the identity,
    so the same call maps a backward pass's outputs back to input order.

    Args:
      inputs: ``<any>[batch, time, ...]``.
      lengths: ``<int>[batch]``, or ``None`` to reverse the whole time axis.

    Returns:
      An array like ``inputs``.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(8).reshape(2, 4)
      >>> reverse_sequences(x, jnp.array([3, 0])).tolist()
      [[2, 1, 0, 3], [4, 5, 6, 7]]
    """
    if lengths is None:
        return jnp.flip(inputs, axis=1)
    t = jax.lax.broadcasted_iota(lengths.dtype, inputs.shape[:2], 1)  # (B, T): t[b, t] = t
    idx = jnp.where(length_mask(lengths, inputs.shape[1]), lengths[:, None] - 1 - t, t)  # (B, T)
    idx = idx.reshape(idx.shape + (1,) * (inputs.ndim - 2))
    return jnp.take_along_axis(inputs, idx, axis=1)


def remat_scan_cell(step: Callable, params, inputs: Array, carry, lengths: Array | None, remat_chunk: int):
    """:func:`scan_cell` with gradient checkpointing over blocks of ``remat_chunk`` steps.

    The time axis is split into blocks; each block's inner scan is wrapped in
    ``jax.checkpoint``, so autodiff keeps only the carries between blocks and recomputes a
    block's activations when its backward pass needs them. Works for any cell step (GRU,
    SimpleRNN, masked steps); the LSTM's fused loop has its own (``lstm_scan(remat_chunk=...)``).

    Args:
      step, params, inputs, carry, lengths: as :func:`scan_cell`
        (``inputs <float>[batch, time, features]``, ``lengths <int>[batch]`` or ``None``).
      remat_chunk: steps per checkpointed block (time is padded up to a multiple with invalid steps).

    Returns:
      ``(final_carry, outputs <float>[batch, time, hidden])``, equal to ``scan_cell``'s.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax.nn import cells
      >>> p = cells.init_gru_params(jax.random.key(0), 3, 4)
      >>> x, h0 = jnp.ones((2, 7, 3)), jnp.zeros((2, 4))
      >>> loss = lambda p: jnp.sum(remat_scan_cell(cells.gru_step, p, x, h0, None, 3)[1])
      >>> loss_ref = lambda p: jnp.sum(scan_cell(cells.gru_step, p, x, h0)[1])
      >>> bool(jnp.allclose(jax.grad(loss)(p)["W_h"], jax.grad(loss_ref)(p)["W_h"], atol=1e-6))
      True
    """
    if remat_chunk < 1:
        raise ValueError(f"remat_chunk must be a positive number of steps; got {remat_chunk}")
    B, T = inputs.shape[:2]
    k = max(1, min(remat_chunk, T))
    pad = -T % k
    if lengths is None and pad:
        lengths = jnp.full((B,), T, jnp.int32)
    if pad:  # invalid steps at the end: they change nothing
        inputs = jnp.concatenate([inputs, jnp.zeros((B, pad) + inputs.shape[2:], inputs.dtype)], axis=1)
    n = (T + pad) // k
    xs = jnp.swapaxes(inputs.reshape((B, n, k) + inputs.shape[2:]), 0, 1)  # (n, B, k, F)
    starts = jnp.arange(n, dtype=jnp.int32) * k  # first step of each block

    @jax.checkpoint
    def block(carry, inp):
        x_k, start = inp
        block_lengths = None if lengths is None else jnp.clip(lengths - start.astype(lengths.dtype), 0, k)
        return scan_cell(step, params, x_k, carry, block_lengths)

    carry, ys = jax.lax.scan(block, vary_like(carry, xs, params), (xs, starts))  # ys: (n, B, k, H) per leaf
    ys = jax.tree.map(lambda y: jnp.swapaxes(y, 0, 1).reshape((B, n * k) + y.shape[3:])[:, :T], ys)
    return carry, ys


# ---------------------------------------------------------------------------------------------
# Tracing context: shard_map typing, and whether a mesh may split the batch
# ---------------------------------------------------------------------------------------------


def _varying_axes(x) -> set:
    """The ``shard_map`` axes ``x`` varies over (``manual_axis_type.varying``; ``vma`` before JAX 0.10)."""
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)
    return set(manual.varying) if manual is not None else set(getattr(aval, "vma", ()))


def vary_like(tree, *refs):
    """``tree`` with every leaf varying over the ``shard_map`` mesh axes that any of ``refs`` varies over.

    A scan under ``jax.shard_map`` needs its initial carry typed like the carry its body returns:
    zeros made inside the map are the same on every device, while a carry computed from the
    batch shard varies over the mesh axis. Outside ``shard_map`` (no varying axes) this returns
    ``tree`` unchanged.

    Args:
      tree: a pytree of arrays, any shapes and dtypes.
      *refs: pytrees of arrays whose varying mesh axes ``tree`` should take on.

    Returns:
      ``tree``'s arrays with their shapes, dtypes and values unchanged, each cast
      (``jax.lax.pcast(..., to="varying")``) over the axes it lacked.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax.sharding import Mesh, PartitionSpec as P
      >>> mesh = Mesh(jax.devices()[:1], ("data",))
      >>> def total(x):  # a scan over time whose carry starts as zeros made inside the map
      ...     h0 = vary_like(jnp.zeros(x.shape[1:]), x)
      ...     return jax.lax.scan(lambda h, x_t: (h + x_t, None), h0, x)[0]
      >>> jax.jit(jax.shard_map(total, mesh=mesh, in_specs=P(None, "data"), out_specs=P("data")))(jnp.ones((3, 2)))
      Array([3., 3.], dtype=float32)
      >>> z = jnp.zeros(2)
      >>> vary_like(z, jnp.ones(3)) is z  # outside shard_map: the very same tree
      True
    """
    axes: set = set()
    for ref in jax.tree.leaves(refs):
        axes |= _varying_axes(ref)
    if not axes:
        return tree

    def cast(a):
        missing = tuple(sorted(axes - _varying_axes(a)))
        return jax.lax.pcast(a, missing, to="varying") if missing else a

    return jax.tree.map(cast, tree)


def batch_partitioned() -> bool:
    """Whether the current trace runs under a mesh whose compiler-partitioned axes may split the batch.

    True while tracing under ``jax.set_mesh(mesh)`` for a mesh with an ``Auto`` or ``Explicit``
    axis of more than one device (``jax.jit`` over a mesh: XLA partitions the batch, and a sum
    over it inside a loop becomes a per-step all-reduce). False outside any mesh, and inside
    ``jax.shard_map`` or ``jax.pmap`` (their axes are ``Manual``: each device's batch is local).
    :class:`lstmjax.parallel.DataParallel` traces its mesh steps under ``jax.set_mesh``; so can
    any code that shards the batch under its own ``jax.jit``.

    Returns:
      ``bool``.

    Example:
      >>> import jax
      >>> batch_partitioned()
      False
      >>> mesh = jax.make_mesh((2,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
      ...                      devices=jax.devices()[:2])
      >>> with jax.set_mesh(mesh):
      ...     batch_partitioned()
      True
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return False
    manual = jax.sharding.AxisType.Manual
    return any(size > 1 and kind != manual for size, kind in zip(mesh.axis_sizes, mesh.axis_types))

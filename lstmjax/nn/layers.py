r"""Flax Linen modules around the pure cells: one-step cells and recurrent layers.

The modules hold no logic of their own: they create the parameter pytree of
:mod:`lstmjax.nn.cells` (same names, same fused layout) and run the same pure step functions over
time with :func:`lstmjax.nn.scan.scan_cell` (or the LSTM's fused loop, :func:`lstmjax.nn.fused.lstm_scan`).

Conventions
-----------
* Inputs are batch-major, ``<float>[batch, time, features]``, right-padded; ``lengths
  <int>[batch]`` gives each sequence's number of valid steps (``0 <= length <= time``).
* Outputs are ``<float>[batch, time, directions*hidden]`` with padded positions set to zero.
* Final states follow PyTorch: ``<float>[num_layers*directions, batch, hidden]``, ordered
  ``layer_0 forward, layer_0 backward, layer_1 forward, ...``, each taken at the sequence's true
  length (for the backward direction: after reading the sequence's first token).
* The backward direction of a bidirectional layer reads each sequence's own valid tokens in
  reverse (``x_{L-1}, ..., x_0``), never the padding.
* Parameters live under ``layer_{l}_forward`` / ``layer_{l}_backward``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.nn import cells
from lstmjax.nn.checks import check_lengths
from lstmjax.nn.fused import lstm_scan
from lstmjax.nn.scan import remat_scan_cell, reverse_sequences, scan_cell

Array = jax.Array

__all__ = [
    "GRU",
    "HOIST_BELOW_BATCH",
    "LSTM",
    "GRUCell",
    "LSTMCell",
    "SimpleRNN",
    "SimpleRNNCell",
    "recurrent_dropout_mask",
    "stack_forward",
]

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}

HOIST_BELOW_BATCH = 64
"""``hoist_inputs=None`` hoists the fused LSTM loop's input projection below this batch size."""


# ---------------------------------------------------------------------------------------------
# Recurrent dropout
# ---------------------------------------------------------------------------------------------


def recurrent_dropout_mask(key: jax.Array, shape: tuple[int, ...], rate: float, dtype=jnp.float32) -> Array:
    """An inverted-dropout mask for the recurrent state: ``0`` with probability ``rate``, else ``1/(1-rate)``.

    Variational (recurrent) dropout (Gal & Ghahramani, 2016; Keras's ``recurrent_dropout``)
    draws one such mask per sequence, ``shape = (batch, hidden)``, *before* the time loop and
    multiplies ``h_{t-1}`` by it at every step where it enters ``W_h``. The expected value of
    ``mask * h`` is ``h``.

    Args:
      key: a ``jax.random.key``.
      shape: the mask's shape, ``(batch, hidden)``.
      rate: drop probability in ``[0, 1)``.
      dtype: the mask's dtype.

    Returns:
      ``<dtype>[*shape]`` with values in ``{0, 1/(1-rate)}``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> m = recurrent_dropout_mask(jax.random.key(0), (2, 1000), 0.25)
      >>> sorted({round(v, 4) for v in m.ravel().tolist()}), abs(float(m.mean()) - 1.0) < 0.05
      ([0.0, 1.3333], True)
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1); got {rate}")
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return jnp.where(keep, jnp.asarray(1.0 / (1.0 - rate), dtype), jnp.zeros((), dtype))


# ---------------------------------------------------------------------------------------------
# One-step cells (Linen)
# ---------------------------------------------------------------------------------------------


class _Cell(nn.Module):
    """Shared machinery: parameters from a pure ``init_*_params``; steps from pure functions."""

    _param_names: ClassVar[tuple[str, ...]]
    _input_bias: ClassVar[str]

    def _init_params(self, key, in_features: int):  # pragma: no cover - overridden
        raise NotImplementedError

    @nn.compact
    def cell_params(self, in_features: int) -> dict[str, Array]:
        """The cell's parameter pytree (created on first use), laid out as in :mod:`lstmjax.nn.cells`."""
        draw = functools.partial(self._init_params, in_features=in_features)
        return {name: self.param(name, lambda key, n=name: draw(key)[n]) for name in self._param_names}

    def __call__(self, carry, x_t: Array):
        params = self.cell_params(x_t.shape[-1])
        return self.step(params, carry, x_t)

    # Pure functions of (params, carry, input): what the layers scan over.
    def step(self, params, carry, x_t):  # pragma: no cover - overridden
        raise NotImplementedError

    def step_projected(self, params, carry, xw_t):  # pragma: no cover - overridden
        raise NotImplementedError

    def trace_step(self, params, carry, x_t):  # pragma: no cover - overridden
        """``step`` that outputs every gate and state: ``(carry, {gate: <float>[batch, hidden]})``."""
        raise NotImplementedError

    def masked_step(self, step: Callable, mask: Array, projected: bool) -> Callable:
        """``step`` (``projected``: a ``step_projected``) with ``h_{t-1}`` multiplied by ``mask <float>[batch, hidden]`` where it enters ``W_h``.

        For the LSTM and the simple RNN ``h_{t-1}`` is read only through ``W_h``, so the carry's
        ``h`` is masked on the way in (the carry itself, and so the outputs, are not masked).
        """

        del projected  # the carry is masked before either kind of step

        def masked(params, carry, x_t):
            if isinstance(carry, tuple):  # LSTM: (h, c); only h is dropped
                return step(params, (carry[0] * mask,) + tuple(carry[1:]), x_t)
            return step(params, carry * mask, x_t)

        return masked

    def project_inputs(self, params, inputs: Array) -> Array:
        """``inputs @ W_x + b`` for all steps at once: ``<float>[..., features] -> [..., G*hidden]``."""
        return inputs @ params["W_x"] + params[self._input_bias]

    def initial_carry(self, batch_size: int, dtype=jnp.float32):
        """A zero carry for ``batch_size`` sequences."""
        return jnp.zeros((batch_size, self.hidden_size), dtype)


class LSTMCell(_Cell):
    """An LSTM cell as a Linen module: the parameters and step of :func:`lstmjax.nn.cells.lstm_step`.

    Attributes:
      hidden_size: ``H``.
      initializer: initialisation preset, ``"keras"`` (default), ``"pytorch"`` or ``"flax"``.
      unit_forget_bias: forget-gate bias starts at 1 (default: ``True`` for ``"keras"``).
      param_dtype: parameter dtype.

    Call as ``cell.apply(variables, carry, x_t) -> ((h_t, c_t), h_t)`` with ``carry = (h, c)``,
    each ``<float>[batch, hidden]`` and ``x_t <float>[batch, features]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> cell = LSTMCell(5)
      >>> carry = cell.initial_carry(2)
      >>> variables = cell.init(jax.random.key(0), carry, jnp.ones((2, 3)))
      >>> (h, c), y = cell.apply(variables, carry, jnp.ones((2, 3)))
      >>> sorted(variables["params"]), h.shape
      (['W_h', 'W_x', 'b'], (2, 5))
    """

    hidden_size: int
    initializer: cells.InitPreset = "keras"
    unit_forget_bias: bool | None = None
    param_dtype: Any = jnp.float32

    _param_names = ("W_x", "W_h", "b")
    _input_bias = "b"

    def _init_params(self, key, in_features):
        return cells.init_lstm_params(
            key, in_features, self.hidden_size, initializer=self.initializer,
            unit_forget_bias=self.unit_forget_bias, dtype=self.param_dtype,
        )

    def step(self, params, carry, x_t):
        return cells.lstm_step(params, carry, x_t)

    def step_projected(self, params, carry, xw_t):
        return cells.lstm_step_projected(params, carry, xw_t)

    def trace_step(self, params, carry, x_t):
        h_prev, c_prev = carry
        z = x_t @ params["W_x"] + params["b"] + h_prev @ params["W_h"]  # (B, 4H), as lstm_step
        (h_t, c_t), (i_t, f_t, c̃_t, o_t) = cells.lstm_gates(z, c_prev)
        return (h_t, c_t), {"i": i_t, "f": f_t, "c_tilde": c̃_t, "o": o_t, "c": c_t, "h": h_t}

    def initial_carry(self, batch_size: int, dtype=jnp.float32):
        """A zero ``(h, c)`` carry for ``batch_size`` sequences."""
        zeros = jnp.zeros((batch_size, self.hidden_size), dtype)
        return zeros, zeros


class GRUCell(_Cell):
    """A GRU cell as a Linen module: parameters and step of :func:`lstmjax.nn.cells.gru_step`.

    Attributes:
      hidden_size: ``H``.
      initializer: initialisation preset, ``"keras"`` (default), ``"pytorch"`` or ``"flax"``.
      param_dtype: parameter dtype.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> cell = GRUCell(5)
      >>> h0 = cell.initial_carry(2)
      >>> variables = cell.init(jax.random.key(0), h0, jnp.ones((2, 3)))
      >>> h, y = cell.apply(variables, h0, jnp.ones((2, 3)))
      >>> sorted(variables["params"]), h.shape
      (['W_h', 'W_x', 'b_h', 'b_x'], (2, 5))
    """

    hidden_size: int
    initializer: cells.InitPreset = "keras"
    param_dtype: Any = jnp.float32

    _param_names = ("W_x", "W_h", "b_x", "b_h")
    _input_bias = "b_x"

    def _init_params(self, key, in_features):
        return cells.init_gru_params(key, in_features, self.hidden_size, initializer=self.initializer, dtype=self.param_dtype)

    def step(self, params, carry, x_t):
        return cells.gru_step(params, carry, x_t)

    def step_projected(self, params, carry, xw_t):
        return cells.gru_step_projected(params, carry, xw_t)

    def trace_step(self, params, carry, x_t):
        xw_t = x_t @ params["W_x"] + params["b_x"]  # (B, 3H), as gru_step
        hw_t = carry @ params["W_h"] + params["b_h"]  # (B, 3H)
        h_t, (r_t, z_t, n_t) = cells.gru_gates(xw_t, hw_t, carry)
        return h_t, {"r": r_t, "z": z_t, "n": n_t, "h": h_t}

    def masked_step(self, step: Callable, mask: Array, projected: bool) -> Callable:
        """The GRU reads ``h_{t-1}`` twice: in ``W_h h_{t-1}`` (masked) and in the update
        ``z_t ⊙ h_{t-1}`` (not masked), as Keras's ``GRU(recurrent_dropout=...)``."""
        def masked(params, h_prev, x_t):
            xw_t = x_t if projected else x_t @ params["W_x"] + params["b_x"]  # (B, 3H)
            hw_t = (h_prev * mask) @ params["W_h"] + params["b_h"]  # (B, 3H): masked recurrent input
            h_t, _ = cells.gru_gates(xw_t, hw_t, h_prev)  # the update still reads the unmasked h_{t-1}
            return h_t, h_t

        return masked


class SimpleRNNCell(_Cell):
    """A simple (Elman) RNN cell as a Linen module: :func:`lstmjax.nn.cells.rnn_step`.

    Attributes: those of :class:`GRUCell`, and ``activation``: ``"tanh"`` (default) or ``"relu"``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> relu = SimpleRNNCell(5, activation="relu")
      >>> x, h0 = jnp.ones((2, 3)), relu.initial_carry(2)
      >>> h, _ = relu.apply(relu.init(jax.random.key(0), h0, x), h0, x)
      >>> h.shape, bool((h >= 0).all())
      ((2, 5), True)
    """

    hidden_size: int
    initializer: cells.InitPreset = "keras"
    activation: str = "tanh"
    param_dtype: Any = jnp.float32

    _param_names = ("W_x", "W_h", "b")
    _input_bias = "b"

    def _init_params(self, key, in_features):
        return cells.init_rnn_params(key, in_features, self.hidden_size, initializer=self.initializer, dtype=self.param_dtype)

    def step(self, params, carry, x_t):
        return cells.rnn_step(params, carry, x_t, _ACTIVATIONS[self.activation])

    def step_projected(self, params, carry, xw_t):
        return cells.rnn_step_projected(params, carry, xw_t, _ACTIVATIONS[self.activation])

    def trace_step(self, params, carry, x_t):
        h_t, _ = self.step(params, carry, x_t)
        return h_t, {"h": h_t}


# ---------------------------------------------------------------------------------------------
# Recurrent layers: stacked, bidirectional, length-masked
# ---------------------------------------------------------------------------------------------


def _check_inputs(inputs: Array, lengths: Array | None, traced_check: bool = False) -> Array | None:
    """Shapes and dtypes checked; ``lengths`` checked against ``[0, time]`` (see :mod:`lstmjax.nn.checks`) and clipped."""
    if inputs.ndim != 3:
        raise ValueError(f"inputs must be <float>[batch, time, features]; got shape {inputs.shape}")
    if lengths is None:
        return None
    if lengths.shape != inputs.shape[:1]:
        raise ValueError(
            f"lengths must be <int>[batch] with batch={inputs.shape[0]}; got shape {lengths.shape}"
        )
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths must be integers; got dtype {lengths.dtype}")
    return check_lengths(lengths, inputs.shape[1], traced_check=traced_check)


class _RecurrentStack(nn.Module):
    """Stacked, optionally bidirectional recurrent layers over one cell type."""

    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    initializer: cells.InitPreset = "keras"
    hoist_inputs: bool | None = None
    param_dtype: Any = jnp.float32
    recurrent_dropout: float = 0.0
    fused: bool = True
    remat_chunk: int | None = None
    matmul_dtype: Any = None
    trace_gates: bool = False
    check_inputs: bool = False

    def _cell(self, name: str, **module_args) -> _Cell:  # pragma: no cover - overridden
        """The one-step cell of (layer, direction) ``name`` (``module_args``: e.g. ``parent=None``, unbound)."""
        raise NotImplementedError

    def _run(self, cell: _Cell, params, inputs, lengths, carry, reverse: bool, recurrent_mask: Array | None,
             sow: Callable[[str, Any], None]):
        """One (layer, direction): the time loop over ``inputs`` (reversed per sequence for ``reverse``)."""
        if carry is None:
            carry = cell.initial_carry(inputs.shape[0], inputs.dtype)
        if reverse:
            inputs = reverse_sequences(inputs, lengths)
        if self.trace_gates:
            carry, ys = self._trace(cell, params, inputs, carry, lengths, reverse, sow)
        else:
            carry, ys = self._scan(cell, params, inputs, carry, lengths, recurrent_mask)
        if reverse:
            ys = reverse_sequences(ys, lengths)
        return carry, ys

    def _trace(self, cell: _Cell, params, inputs, carry, lengths, reverse: bool, sow):
        """The cell equations keeping every gate, sown as ``intermediates`` ``{cell name: {"gates": (trace,)}}``."""
        carry, gates = scan_cell(cell.trace_step, params, inputs, carry, lengths)  # each (B, T, H)
        order = (lambda g: reverse_sequences(g, lengths)) if reverse else (lambda g: g)  # gates[:, t]: token t
        sow("gates", jax.tree.map(order, gates))
        return carry, gates["h"]

    def _fused(self, cell: _Cell, recurrent_mask) -> bool:
        return isinstance(cell, LSTMCell) and self.fused and recurrent_mask is None

    def _hoist(self, cell: _Cell, batch: int, recurrent_mask) -> bool:
        """``hoist_inputs``, or by default: hoist in the fused LSTM loop below batch :data:`HOIST_BELOW_BATCH`."""
        if self.hoist_inputs is not None:
            return self.hoist_inputs
        small = batch < HOIST_BELOW_BATCH if isinstance(batch, int) else True  # symbolic (jax.export): hoist
        return self._fused(cell, recurrent_mask) and small

    def _scan(self, cell: _Cell, params, inputs, carry, lengths, recurrent_mask):
        """The time loop: :func:`lstmjax.nn.fused.lstm_scan` for an LSTM without recurrent dropout
        (``fused=True``), else autodiff of :func:`~lstmjax.nn.scan.scan_cell` (chunk-checkpointed
        with ``remat_chunk``)."""
        hoist = self._hoist(cell, inputs.shape[0], recurrent_mask)
        if self._fused(cell, recurrent_mask):  # projects the inputs itself
            return lstm_scan(params, inputs, carry, lengths, hoist=hoist,
                             remat_chunk=self.remat_chunk, matmul_dtype=self.matmul_dtype)
        if self.matmul_dtype is not None:
            raise ValueError("matmul_dtype applies to the fused LSTM loop only (an LSTM with fused=True "
                             "and no recurrent dropout)")
        if hoist:  # one matrix product for all steps: (B, T, F) @ (F, G*H) -> (B, T, G*H)
            step, xs = cell.step_projected, cell.project_inputs(params, inputs)
        else:
            step, xs = cell.step, inputs
        if recurrent_mask is not None:  # variational dropout: the same mask on h_{t-1} at every step, before W_h
            step = cell.masked_step(step, recurrent_mask, projected=hoist)
        if self.remat_chunk is not None:
            return remat_scan_cell(step, params, xs, carry, lengths, self.remat_chunk)
        return scan_cell(step, params, xs, carry, lengths)

    @nn.compact
    def __call__(self, inputs: Array, lengths: Array | None = None, *, deterministic: bool = True,
                 initial_state=None):
        return stack_forward(self, _LinenHost(self, deterministic), inputs, lengths, deterministic=deterministic,
                             initial_state=initial_state)


class _LinenHost:
    """The Linen side of a stack: cells as submodules, parameters in ``params``, ``make_rng``, ``sow``."""

    def __init__(self, stack: _RecurrentStack, deterministic: bool):
        self.stack, self.deterministic, self.cells = stack, deterministic, {}

    def cell(self, name: str, in_features: int):
        cell = self.cells[name] = self.stack._cell(name)
        return cell, cell.cell_params(in_features)

    def dropout(self, x: Array) -> Array:
        return nn.Dropout(self.stack.dropout)(x, deterministic=self.deterministic)

    def dropout_key(self) -> Array:
        return self.stack.make_rng("dropout")

    def sow(self, owner: str | None, name: str, value) -> None:
        (self.stack if owner is None else self.cells[owner]).sow("intermediates", name, value)


def _check_stack(stack: _RecurrentStack) -> None:
    if stack.num_layers < 1:
        raise ValueError(f"num_layers must be >= 1; got {stack.num_layers}")
    if not 0.0 <= stack.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {stack.dropout}")
    if not 0.0 <= stack.recurrent_dropout < 1.0:
        raise ValueError(f"recurrent_dropout must be in [0, 1); got {stack.recurrent_dropout}")


def stack_forward(stack: _RecurrentStack, host, inputs: Array, lengths: Array | None = None, *,
                  deterministic: bool = True, initial_state=None):
    """A stacked, optionally bidirectional, length-masked recurrent layer, for any module framework.

    The one implementation behind the Linen layers (:class:`LSTM`, :class:`GRU`,
    :class:`SimpleRNN`) and their Flax NNX twins (:mod:`lstmjax.nn.nnx`). ``stack`` is the
    Linen layer, bound or not, read only for its attributes and pure methods; ``host`` is what
    the framework lends: ``host.cell(name, in_features) -> (cell, params)`` (a one-step Linen
    cell, whose pure step functions run, and its parameter pytree), ``host.dropout(x)``
    (between layers, while training), ``host.dropout_key()`` (recurrent dropout masks) and
    ``host.sow(owner, name, value)`` (``owner``: a cell's name, or ``None`` for the stack).

    Args:
      stack: an :class:`LSTM`, :class:`GRU` or :class:`SimpleRNN`.
      host: the framework's side, as above.
      inputs: ``<float>[batch, time, features]``.
      lengths: ``<int>[batch]`` valid steps per sequence, or ``None``.
      deterministic: no dropout.
      initial_state: as the layers' ``initial_state``.

    Returns:
      ``(outputs <float>[batch, time, directions*hidden], final states)``, as :class:`LSTM`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> gru = GRU(4)
      >>> x = jnp.ones((2, 3, 5))
      >>> variables = gru.init(jax.random.key(0), x)
      >>> class Host:  # parameters from a dict: what the NNX layers lend
      ...     def cell(self, name, in_features):
      ...         return gru._cell(name, parent=None), variables["params"][name]
      >>> y, h_n = stack_forward(gru, Host(), x)
      >>> bool(jnp.allclose(y, gru.apply(variables, x)[0]))
      True
    """
    lengths = _check_inputs(inputs, lengths, stack.check_inputs)
    _check_stack(stack)
    x = inputs.astype(stack.param_dtype)
    directions = ("forward", "backward") if stack.bidirectional else ("forward",)
    n = stack.num_layers * len(directions)
    initial = ([None] * n if initial_state is None else  # per (layer, direction), from [L*D, B, H]
               [jax.tree.map(lambda s, k=k: s[k].astype(x.dtype), initial_state) for k in range(n)])
    finals = []
    for layer in range(stack.num_layers):
        if layer > 0 and stack.dropout > 0.0 and not deterministic:
            x = host.dropout(x)  # between stacked layers, as in PyTorch and Keras
        outs = []
        for d, direction in enumerate(directions):
            name = f"layer_{layer}_{direction}"
            cell, params = host.cell(name, x.shape[-1])
            mask = None
            if stack.recurrent_dropout > 0.0 and not deterministic:
                mask = recurrent_dropout_mask(host.dropout_key(), (x.shape[0], stack.hidden_size),
                                              stack.recurrent_dropout, x.dtype)  # (B, H)
                host.sow(None, f"recurrent_mask_{layer}_{direction}", mask)
            sow = lambda key, value, name=name: host.sow(name, key, value)
            carry, ys = stack._run(cell, params, x, lengths, initial[layer * len(directions) + d],
                                   direction == "backward", mask, sow)
            finals.append(carry)
            outs.append(ys)
        x = jnp.concatenate(outs, axis=-1) if len(outs) > 1 else outs[0]  # (B, T, D*H)
    return x, jax.tree.map(lambda *xs: jnp.stack(xs), *finals)  # [L*D, B, H] per state


class LSTM(_RecurrentStack):
    """Stacked, optionally bidirectional LSTM over right-padded sequences (Linen module).

    ``LSTM(hidden_size, num_layers=1, bidirectional=False, dropout=0.0)``, called as
    ``module.apply(variables, inputs, lengths=None, *, deterministic=True, initial_state=None)``.

    Attributes:
      hidden_size: ``H``.
      num_layers: stacked layers; layer ``l > 0`` reads layer ``l-1``'s outputs.
      bidirectional: add a backward direction per layer; outputs concatenate ``[forward, backward]``.
      dropout: dropout rate on the inputs of layers ``1..L-1`` when ``deterministic=False``
        (supply ``rngs={"dropout": key}``), as PyTorch's ``dropout`` argument.
      recurrent_dropout: variational dropout rate on the recurrent state (as Keras's
        ``recurrent_dropout``): when ``deterministic=False``, each (layer, direction) draws one
        mask ``<float>[batch, hidden]`` (:func:`recurrent_dropout_mask`) from the ``"dropout"``
        rng before its time loop and applies it to ``h_{t-1}`` before ``W_h`` at every step;
        the masks are sown as ``intermediates`` ``recurrent_mask_{layer}_{direction}``.
      initializer: initialisation preset, ``"keras"`` (default), ``"pytorch"`` or ``"flax"``.
      unit_forget_bias: forget-gate bias starts at 1 (default: ``True`` for ``"keras"``).
      hoist_inputs: compute the input projection for all steps in one matrix product before the
        time loop (``True``), or step by step inside it (``False``). Same numbers to float
        rounding. ``None`` (default) chooses by batch size: hoisted in the fused LSTM loop below
        batch :data:`HOIST_BELOW_BATCH`, inside otherwise. Measured on a 2-core CPU (H = 128,
        T = 200): hoisting trains 1.1× and infers 1.2× faster at batch 32, but infers 1.5×
        slower at batch 256, where the hoisted ``[batch, time, 4H]`` temporary costs more memory
        traffic than the one large product saves (``benchmarks/speed.py``).
      param_dtype: parameter (and computation) dtype.
      fused: run the time loop with :func:`lstmjax.nn.fused.lstm_scan` (default), whose backward pass
        is hand-written (same values; gradients equal to float rounding; faster to train). Falls
        back to autodiff of :func:`~lstmjax.nn.scan.scan_cell` under recurrent dropout.
      remat_chunk: gradient checkpointing: keep activations only at every ``remat_chunk``-th step
        and recompute the rest during the backward pass (bounded memory for long sequences).
        ``None`` (default) keeps all.
      matmul_dtype: opt-in lower precision, e.g. ``jnp.bfloat16``: matrix products in that dtype
        with float32 accumulation (fused loop only). ``None`` (default): full precision.
      trace_gates: run the plain cell equations keeping every gate and state, and sow each
        (layer, direction)'s as ``intermediates`` ``{"layer_{l}_{direction}": {"gates": ({gate:
        <float>[batch, time, hidden]},)}}`` in input order (what :func:`lstmjax.explain.gate_traces`
        reads). The outputs are the same; the fused loop is not used. Default ``False``.
      check_inputs: under ``jax.jit``, check ``lengths`` with ``checkify`` (run the layer through
        :func:`lstmjax.nn.checks.checked`). Without it, traced lengths are clipped to ``[0, time]``;
        concrete ones outside it are a ``ValueError`` either way.

    Args (of ``__call__``):
      inputs: ``<float>[batch, time, features]``.
      lengths: ``<int>[batch]`` valid steps per sequence (right padding), or ``None``.
      deterministic: disable dropout.
      initial_state: optional ``(h_0, c_0)``, each ``<float>[num_layers*directions, batch, hidden]``.

    Returns:
      ``(outputs, (h_n, c_n))``: outputs ``<float>[batch, time, directions*hidden]`` (zero at
      padded steps); ``h_n``, ``c_n`` ``<float>[num_layers*directions, batch, hidden]`` at each
      sequence's true length.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> lstm = LSTM(8, num_layers=2, bidirectional=True)
      >>> x, lengths = jnp.ones((3, 6, 4)), jnp.array([6, 2, 0])
      >>> variables = lstm.init(jax.random.key(0), x, lengths)
      >>> y, (h_n, c_n) = lstm.apply(variables, x, lengths)
      >>> y.shape, h_n.shape, c_n.shape
      ((3, 6, 16), (4, 3, 8), (4, 3, 8))
      >>> sorted(variables["params"])
      ['layer_0_backward', 'layer_0_forward', 'layer_1_backward', 'layer_1_forward']
    """

    unit_forget_bias: bool | None = None

    def _cell(self, name, **module_args):
        return LSTMCell(self.hidden_size, initializer=self.initializer, unit_forget_bias=self.unit_forget_bias,
                        param_dtype=self.param_dtype, name=name, **module_args)


class GRU(_RecurrentStack):
    """Stacked, optionally bidirectional GRU over right-padded sequences (Linen module).

    Same signature and conventions as :class:`LSTM` (without ``unit_forget_bias``); the final
    state is ``h_n <float>[num_layers*directions, batch, hidden]`` and ``initial_state`` is ``h_0``.
    The cell is PyTorch's / Keras ``reset_after=True`` GRU (:func:`lstmjax.nn.cells.gru_step`).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> gru = GRU(8, num_layers=2)
      >>> x = jnp.ones((3, 6, 4))
      >>> variables = gru.init(jax.random.key(0), x)
      >>> y, h_n = gru.apply(variables, x, jnp.array([6, 2, 1]))
      >>> y.shape, h_n.shape
      ((3, 6, 8), (2, 3, 8))
    """

    def _cell(self, name, **module_args):
        return GRUCell(self.hidden_size, initializer=self.initializer, param_dtype=self.param_dtype, name=name,
                       **module_args)


class SimpleRNN(_RecurrentStack):
    """Stacked, optionally bidirectional simple (Elman) RNN over right-padded sequences.

    Same signature and conventions as :class:`GRU`, plus ``activation`` (``"tanh"`` or ``"relu"``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> rnn = SimpleRNN(8, bidirectional=True)
      >>> x = jnp.ones((3, 6, 4))
      >>> variables = rnn.init(jax.random.key(0), x)
      >>> y, h_n = rnn.apply(variables, x, jnp.array([6, 2, 1]))
      >>> y.shape, h_n.shape
      ((3, 6, 16), (2, 3, 8))
    """

    activation: str = "tanh"

    def _cell(self, name, **module_args):
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}; got {self.activation!r}")
        return SimpleRNNCell(self.hidden_size, initializer=self.initializer, activation=self.activation,
                             param_dtype=self.param_dtype, name=name, **module_args)

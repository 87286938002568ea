r"""Recurrent cells as pure functions of a parameter pytree.

Each cell is one function ``step(params, carry, x_t) -> (carry, y_t)``: no state, no
randomness, no devices. ``params`` is a plain dict of arrays, so it can be jitted, differentiated,
vmapped, saved and compared directly with PyTorch and Keras weights (:mod:`lstmjax.nn.interop`).

Layout (one convention, written once)
-------------------------------------
Inputs are ``<float>[batch, features]`` per step; states are ``<float>[batch, hidden]``.
Gate kernels are *fused*: one input kernel ``W_x <float>[features, G*hidden]`` and one recurrent
kernel ``W_h <float>[hidden, G*hidden]`` hold all ``G`` gates side by side, so a step is two
matrix products. The document writes each gate as :math:`W \cdot [h_{t-1}, x_t] + b`; that
concatenated weight is ``W = [W_h; W_x]`` stacked along the input axis, which is the same product.

======  ================  ===============================  =====================================
cell    gate order        biases                           carry
======  ================  ===============================  =====================================
LSTM    i, f, c̃, o        ``b <[4H]>`` (one)                 ``(h, c)``
GRU     r, z, n           ``b_x <[3H]>``, ``b_h <[3H]>``     ``h``
RNN     —                 ``b <[H]>`` (one)                  ``h``
======  ================  ===============================  =====================================

The LSTM gate order i, f, c̃, o is the order of both PyTorch (``i, f, g, o``) and Keras
(``i, f, c, o``). PyTorch keeps two biases (``b_ih + b_hh``); they only ever appear summed, so
lstmjax keeps one. The GRU needs two because the reset gate multiplies the recurrent part
*including its bias* (PyTorch's formulation, and Keras's ``reset_after=True``). Flax Linen's
``LSTMCell`` orders its carry ``(c, h)``; lstmjax uses ``(h, c)`` as PyTorch returns ``(h_n, c_n)``.

Every step function has a ``*_step_projected`` twin that takes the input projection
``x_t @ W_x + b`` already computed. The layers in :mod:`lstmjax.nn.layers` use it to compute the
projection for all time steps in one matrix product outside the time loop.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp

Array = jax.Array
Params = dict[str, Array]
InitPreset = Literal["keras", "pytorch", "flax"]

__all__ = [
    "INIT_PRESETS",
    "gru_gates",
    "gru_step",
    "gru_step_projected",
    "init_gru_params",
    "init_lstm_params",
    "init_rnn_params",
    "lstm_gates",
    "lstm_step",
    "lstm_step_projected",
    "rnn_step",
    "rnn_step_projected",
]

INIT_PRESETS = ("keras", "pytorch", "flax")
"""Names of the initialisation presets accepted by the ``init_*_params`` functions."""


# ---------------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------------


def lstm_step_projected(params: Params, carry: tuple[Array, Array], xw_t: Array):
    r"""One LSTM step from a precomputed input projection.

    .. math::

        \begin{aligned}
        i_t &= \sigma(W_{xi} x_t + W_{hi} h_{t-1} + b_i) && \text{input gate (输入门)}\\
        f_t &= \sigma(W_{xf} x_t + W_{hf} h_{t-1} + b_f) && \text{forget gate (遗忘门)}\\
        \tilde{c}_t &= \tanh(W_{xc} x_t + W_{hc} h_{t-1} + b_c) && \text{candidate cell state}\\
        o_t &= \sigma(W_{xo} x_t + W_{ho} h_{t-1} + b_o) && \text{output gate (输出门)}\\
        c_t &= f_t \odot c_{t-1} + i_t \odot \tilde{c}_t && \text{cell state (细胞状态)}\\
        h_t &= o_t \odot \tanh(c_t) && \text{hidden state}
        \end{aligned}

    The source document (§4.2) lists the gates but leaves out the cell-state update
    :math:`c_t`; without it :math:`h_t` is undefined. It is the line that lets gradients flow
    through time: :math:`\partial c_t / \partial c_{t-1} = f_t`.

    Args:
      params: ``{"W_h": <float>[hidden, 4*hidden], ...}`` (only ``W_h`` is read here).
      carry: ``(h_{t-1}, c_{t-1})``, each ``<float>[batch, hidden]``.
      xw_t: ``x_t @ W_x + b``, ``<float>[batch, 4*hidden]``, gates in order i, f, c̃, o.

    Returns:
      ``((h_t, c_t), h_t)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> p = init_lstm_params(jax.random.key(0), 3, 5)
      >>> h0 = c0 = jnp.zeros((2, 5))
      >>> x = jnp.ones((2, 3))
      >>> (h, c), y = lstm_step_projected(p, (h0, c0), x @ p["W_x"] + p["b"])
      >>> bool(jnp.allclose(h, lstm_step(p, (h0, c0), x)[1]))
      True
    """
    h_prev, c_prev = carry
    z = xw_t + h_prev @ params["W_h"]  # (B, 4H): all four gates' pre-activations
    (h_t, c_t), _ = lstm_gates(z, c_prev)
    return (h_t, c_t), h_t


def lstm_gates(z: Array, c_prev: Array):
    r"""The LSTM equations after the matrix products: pre-activations ``z`` to gates and state.

    ``z`` is :math:`W_x x_t + W_h h_{t-1} + b`, the four gates' pre-activations side by side
    (order i, f, c̃, o); the lines below are the equations of :func:`lstm_step_projected`. The
    layers' fast loop (:mod:`lstmjax.nn.fused`) and the gate traces (:mod:`lstmjax.explain`)
    call this function too, so the equations live in one place.

    Args:
      z: ``<float>[batch, 4*hidden]``.
      c_prev: ``c_{t-1} <float>[batch, hidden]``.

    Returns:
      ``((h_t, c_t), (i_t, f_t, c̃_t, o_t))``, each ``<float>[batch, hidden]``.

    Example:
      >>> import jax.numpy as jnp
      >>> (h, c), (i, f, c_tilde, o) = lstm_gates(jnp.zeros((1, 8)), jnp.ones((1, 2)))
      >>> f.tolist(), c.tolist()  # every gate half open; c = 0.5 · 1 + 0.5 · tanh(0)
      ([[0.5, 0.5]], [[0.5, 0.5]])
    """
    z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)  # 4 × (B, H)
    i_t = jax.nn.sigmoid(z_i)  # input gate (输入门)
    f_t = jax.nn.sigmoid(z_f)  # forget gate (遗忘门)
    c̃_t = jnp.tanh(z_c)  # candidate cell state
    o_t = jax.nn.sigmoid(z_o)  # output gate (输出门)
    c_t = f_t * c_prev + i_t * c̃_t  # cell state (细胞状态)
    h_t = o_t * jnp.tanh(c_t)  # hidden state
    return (h_t, c_t), (i_t, f_t, c̃_t, o_t)


def lstm_step(params: Params, carry: tuple[Array, Array], x_t: Array):
    r"""One LSTM step: :math:`(h_{t-1}, c_{t-1}), x_t \mapsto (h_t, c_t), h_t`.

    The equations are those of :func:`lstm_step_projected`, with the input projection
    :math:`W_x x_t + b` computed here.

    Args:
      params: ``{"W_x": <float>[features, 4*hidden], "W_h": <float>[hidden, 4*hidden],
        "b": <float>[4*hidden]}``, gates in order i, f, c̃, o.
      carry: ``(h_{t-1}, c_{t-1})``, each ``<float>[batch, hidden]``.
      x_t: ``<float>[batch, features]``.

    Returns:
      ``((h_t, c_t), h_t)``, each ``<float>[batch, hidden]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> p = init_lstm_params(jax.random.key(0), in_features=3, hidden_size=5)
      >>> carry = (jnp.zeros((2, 5)), jnp.zeros((2, 5)))
      >>> (h, c), y = lstm_step(p, carry, jnp.ones((2, 3)))
      >>> h.shape, c.shape
      ((2, 5), (2, 5))
    """
    return lstm_step_projected(params, carry, x_t @ params["W_x"] + params["b"])


# ---------------------------------------------------------------------------------------------
# GRU
# ---------------------------------------------------------------------------------------------


def gru_step_projected(params: Params, carry: Array, xw_t: Array):
    r"""One GRU step from a precomputed input projection.

    .. math::

        \begin{aligned}
        r_t &= \sigma(W_{xr} x_t + b_{xr} + W_{hr} h_{t-1} + b_{hr}) && \text{reset gate}\\
        z_t &= \sigma(W_{xz} x_t + b_{xz} + W_{hz} h_{t-1} + b_{hz}) && \text{update gate}\\
        n_t &= \tanh(W_{xn} x_t + b_{xn} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) && \text{candidate}\\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{aligned}

    This is PyTorch's ``nn.GRU`` and Keras's ``GRU(reset_after=True)``: the reset gate is
    applied *after* the recurrent matrix product (Cho et al. 2014 apply it before).

    Args:
      params: ``{"W_h": <float>[hidden, 3*hidden], "b_h": <float>[3*hidden], ...}``.
      carry: ``h_{t-1} <float>[batch, hidden]``.
      xw_t: ``x_t @ W_x + b_x``, ``<float>[batch, 3*hidden]``, gates in order r, z, n.

    Returns:
      ``(h_t, h_t)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> p = init_gru_params(jax.random.key(0), 3, 5)
      >>> x, h0 = jnp.ones((2, 3)), jnp.zeros((2, 5))
      >>> h, _ = gru_step_projected(p, h0, x @ p["W_x"] + p["b_x"])
      >>> bool(jnp.allclose(h, gru_step(p, h0, x)[0]))
      True
    """
    h_prev = carry
    hw = h_prev @ params["W_h"] + params["b_h"]  # (B, 3H): recurrent part, bias included
    h_t, _ = gru_gates(xw_t, hw, h_prev)
    return h_t, h_t


def gru_gates(xw_t: Array, hw_t: Array, h_prev: Array):
    r"""The GRU equations after the matrix products (those of :func:`gru_step_projected`).

    Args:
      xw_t: ``x_t @ W_x + b_x <float>[batch, 3*hidden]`` (order r, z, n).
      hw_t: ``h_{t-1} @ W_h + b_h <float>[batch, 3*hidden]``.
      h_prev: ``h_{t-1} <float>[batch, hidden]``.

    Returns:
      ``(h_t, (r_t, z_t, n_t))``, each ``<float>[batch, hidden]``.

    Example:
      >>> import jax.numpy as jnp
      >>> h, (r, z, n) = gru_gates(jnp.zeros((1, 6)), jnp.zeros((1, 6)), jnp.ones((1, 2)))
      >>> z.tolist(), h.tolist()  # h = (1 - 0.5) · tanh(0) + 0.5 · 1
      ([[0.5, 0.5]], [[0.5, 0.5]])
    """
    x_r, x_z, x_n = jnp.split(xw_t, 3, axis=-1)  # 3 × (B, H)
    h_r, h_z, h_n = jnp.split(hw_t, 3, axis=-1)  # 3 × (B, H)
    r_t = jax.nn.sigmoid(x_r + h_r)  # reset gate
    z_t = jax.nn.sigmoid(x_z + h_z)  # update gate
    n_t = jnp.tanh(x_n + r_t * h_n)  # candidate
    h_t = (1.0 - z_t) * n_t + z_t * h_prev
    return h_t, (r_t, z_t, n_t)


def gru_step(params: Params, carry: Array, x_t: Array):
    r"""One GRU step: :math:`h_{t-1}, x_t \mapsto h_t, h_t` (equations in :func:`gru_step_projected`).

    Args:
      params: ``{"W_x": <float>[features, 3*hidden], "W_h": <float>[hidden, 3*hidden],
        "b_x": <float>[3*hidden], "b_h": <float>[3*hidden]}``, gates in order r, z, n.
      carry: ``h_{t-1} <float>[batch, hidden]``.
      x_t: ``<float>[batch, features]``.

    Returns:
      ``(h_t, h_t)``, each ``<float>[batch, hidden]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> p = init_gru_params(jax.random.key(0), in_features=3, hidden_size=5)
      >>> h, y = gru_step(p, jnp.zeros((2, 5)), jnp.ones((2, 3)))
      >>> h.shape
      (2, 5)
    """
    return gru_step_projected(params, carry, x_t @ params["W_x"] + params["b_x"])


# ---------------------------------------------------------------------------------------------
# Simple (Elman) RNN
# ---------------------------------------------------------------------------------------------


def rnn_step_projected(params: Params, carry: Array, xw_t: Array, activation=jnp.tanh):
    r"""One simple-RNN step from a precomputed input projection.

    .. math::

        h_t = \tanh(W_x x_t + W_h h_{t-1} + b)

    Args:
      params: ``{"W_h": <float>[hidden, hidden], ...}``.
      carry: ``h_{t-1} <float>[batch, hidden]``.
      xw_t: ``x_t @ W_x + b``, ``<float>[batch, hidden]``.
      activation: the nonlinearity, ``jnp.tanh`` (default) or ``jax.nn.relu``.

    Returns:
      ``(h_t, h_t)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> p = init_rnn_params(jax.random.key(0), 3, 5)
      >>> h, _ = rnn_step_projected(p, jnp.zeros((2, 5)), jnp.ones((2, 5)))
      >>> h.shape
      (2, 5)
    """
    h_t = activation(xw_t + carry @ params["W_h"])
    return h_t, h_t


def rnn_step(params: Params, carry: Array, x_t: Array, activation=jnp.tanh):
    r"""One simple (Elman) RNN step: :math:`h_t = \tanh(W_x x_t + W_h h_{t-1} + b)`.

    Args:
      params: ``{"W_x": <float>[features, hidden], "W_h": <float>[hidden, hidden],
        "b": <float>[hidden]}``.
      carry: ``h_{t-1} <float>[batch, hidden]``.
      x_t: ``<float>[batch, features]``.
      activation: the nonlinearity, ``jnp.tanh`` (default) or ``jax.nn.relu``.

    Returns:
      ``(h_t, h_t)``, each ``<float>[batch, hidden]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> p = init_rnn_params(jax.random.key(0), in_features=3, hidden_size=5)
      >>> h, _ = rnn_step(p, jnp.zeros((2, 5)), jnp.ones((2, 3)), activation=jax.nn.relu)
      >>> h.shape, bool((h >= 0).all())   # ReLU: no negative state
      ((2, 5), True)
    """
    return rnn_step_projected(params, carry, x_t @ params["W_x"] + params["b"], activation)


# ---------------------------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------------------------


def _check_preset(init: str) -> None:
    if init not in INIT_PRESETS:
        raise ValueError(f"unknown init preset {init!r}; expected one of {INIT_PRESETS}")


def _init_kernels(key, init: str, in_features: int, hidden_size: int, gates: int, dtype):
    """``(W_x <[F, G*H]>, W_h <[H, G*H]>)`` drawn as the preset's library draws them."""
    k_x, k_h = jax.random.split(key)
    out_dtype, dtype = dtype, _draw_dtype(dtype)
    shape_x, shape_h = (in_features, gates * hidden_size), (hidden_size, gates * hidden_size)
    if init == "pytorch":
        # torch.nn.LSTM/GRU/RNN: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).
        bound = 1.0 / math.sqrt(hidden_size)
        W_x = jax.random.uniform(k_x, shape_x, dtype, -bound, bound)
        W_h = jax.random.uniform(k_h, shape_h, dtype, -bound, bound)
    elif init == "keras":
        # keras.layers.LSTM: glorot_uniform over the fused input kernel, orthogonal recurrent.
        W_x = jax.nn.initializers.glorot_uniform()(k_x, shape_x, dtype)
        W_h = jax.nn.initializers.orthogonal()(k_h, shape_h, dtype)
    else:
        # flax.linen.LSTMCell: lecun_normal input kernels, orthogonal recurrent, one per gate.
        kx = jax.random.split(k_x, gates)
        kh = jax.random.split(k_h, gates)
        W_x = jnp.concatenate(
            [jax.nn.initializers.lecun_normal()(k, (in_features, hidden_size), dtype) for k in kx], axis=-1
        )
        W_h = jnp.concatenate(
            [jax.nn.initializers.orthogonal()(k, (hidden_size, hidden_size), dtype) for k in kh], axis=-1
        )
    return W_x.astype(out_dtype), W_h.astype(out_dtype)


def _draw_dtype(dtype):
    """Draw in float32 (or float64) and cast: LAPACK's QR behind ``orthogonal`` has no bfloat16."""
    return jnp.float64 if jnp.dtype(dtype) == jnp.float64 else jnp.float32


def _init_bias(key, initializer: str, hidden_size: int, gates: int, dtype):
    if initializer == "pytorch":
        bound = 1.0 / math.sqrt(hidden_size)
        return jax.random.uniform(key, (gates * hidden_size,), _draw_dtype(dtype), -bound, bound).astype(dtype)
    return jnp.zeros((gates * hidden_size,), dtype)


def init_lstm_params(
    key: Array,
    in_features: int,
    hidden_size: int,
    *,
    initializer: InitPreset = "keras",
    unit_forget_bias: bool | None = None,
    dtype=jnp.float32,
) -> Params:
    """Draw LSTM parameters in lstmjax's fused layout.

    Presets follow each library's defaults: ``"keras"`` (Glorot-uniform input kernel,
    orthogonal recurrent kernel, zero bias, forget bias 1), ``"pytorch"`` (everything
    ``U(-1/√H, 1/√H)``; PyTorch's two biases drawn independently and summed), ``"flax"``
    (LeCun-normal input, orthogonal recurrent per gate, zero bias).

    Args:
      key: a ``jax.random.key``.
      in_features: ``F``, the size of ``x_t``.
      hidden_size: ``H``.
      initializer: the preset name.
      unit_forget_bias: add 1 to the forget-gate bias (Jozefowicz et al. 2015), so the cell
        starts by remembering. Defaults to ``True`` for ``"keras"``, ``False`` otherwise.
      dtype: parameter dtype.

    Returns:
      ``{"W_x": <dtype>[F, 4H], "W_h": <dtype>[H, 4H], "b": <dtype>[4H]}``, gates i, f, c̃, o.

    Example:
      >>> import jax
      >>> p = init_lstm_params(jax.random.key(0), 3, 5)
      >>> {k: v.shape for k, v in p.items()}
      {'W_x': (3, 20), 'W_h': (5, 20), 'b': (20,)}
      >>> p["b"][5:10].tolist()   # the forget gate's slice: unit forget bias
      [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    _check_preset(initializer)
    k_w, k_b, k_b2 = jax.random.split(key, 3)
    W_x, W_h = _init_kernels(k_w, initializer, in_features, hidden_size, 4, dtype)
    b = _init_bias(k_b, initializer, hidden_size, 4, dtype)
    if initializer == "pytorch":
        b = b + _init_bias(k_b2, initializer, hidden_size, 4, dtype)  # b_ih + b_hh
    if unit_forget_bias is None:
        unit_forget_bias = initializer == "keras"
    if unit_forget_bias:
        b = b.at[hidden_size : 2 * hidden_size].add(1.0)
    return {"W_x": W_x, "W_h": W_h, "b": b}


def init_gru_params(
    key: Array, in_features: int, hidden_size: int, *, initializer: InitPreset = "keras", dtype=jnp.float32
) -> Params:
    """Draw GRU parameters in lstmjax's fused layout (presets as in :func:`init_lstm_params`).

    Two biases, as PyTorch's: ``b_h`` stays inside the reset gate's product (see :func:`gru_step_projected`).

    Args:
      key, in_features, hidden_size, initializer, dtype: as :func:`init_lstm_params`.

    Returns:
      ``{"W_x": <dtype>[F, 3H], "W_h": <dtype>[H, 3H], "b_x": <dtype>[3H], "b_h": <dtype>[3H]}``,
      gates in order r, z, n.

    Example:
      >>> import jax
      >>> p = init_gru_params(jax.random.key(0), 3, 5)
      >>> {k: v.shape for k, v in p.items()}
      {'W_x': (3, 15), 'W_h': (5, 15), 'b_x': (15,), 'b_h': (15,)}
    """
    _check_preset(initializer)
    k_w, k_bx, k_bh = jax.random.split(key, 3)
    W_x, W_h = _init_kernels(k_w, initializer, in_features, hidden_size, 3, dtype)
    b_x = _init_bias(k_bx, initializer, hidden_size, 3, dtype)
    b_h = _init_bias(k_bh, initializer, hidden_size, 3, dtype)
    return {"W_x": W_x, "W_h": W_h, "b_x": b_x, "b_h": b_h}


def init_rnn_params(
    key: Array, in_features: int, hidden_size: int, *, initializer: InitPreset = "keras", dtype=jnp.float32
) -> Params:
    """Draw simple-RNN parameters (presets as in :func:`init_lstm_params`).

    Args:
      key, in_features, hidden_size, initializer, dtype: as :func:`init_lstm_params`.

    Returns:
      ``{"W_x": <dtype>[F, H], "W_h": <dtype>[H, H], "b": <dtype>[H]}``.

    Example:
      >>> import jax
      >>> jax.tree.map(jax.numpy.shape, init_rnn_params(jax.random.key(0), in_features=3, hidden_size=5))
      {'W_h': (5, 5), 'W_x': (3, 5), 'b': (5,)}
    """
    _check_preset(initializer)
    k_w, k_b, k_b2 = jax.random.split(key, 3)
    W_x, W_h = _init_kernels(k_w, initializer, in_features, hidden_size, 1, dtype)
    b = _init_bias(k_b, initializer, hidden_size, 1, dtype)
    if initializer == "pytorch":
        b = b + _init_bias(k_b2, initializer, hidden_size, 1, dtype)
    return {"W_x": W_x, "W_h": W_h, "b": b}

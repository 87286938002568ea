"""Move recurrent weights between lstmjax, PyTorch, Keras 3 and Flax NNX's own recurrent layers.

``from_torch(module)`` / ``from_keras(layer)`` / ``from_flax_nnx(layer)`` return lstmjax variables
(``{"params": ...}``) for the matching :class:`lstmjax.LSTM`, :class:`lstmjax.GRU` or
:class:`lstmjax.SimpleRNN` (:func:`layer_like` builds that module); ``to_torch`` / ``to_keras`` /
``to_flax_nnx`` write lstmjax variables into an existing PyTorch module, built Keras layer or
Flax NNX layer, in place, and return it.

Layout mapping
--------------
lstmjax keeps, per layer and direction, ``W_x <[F, G*H]>``, ``W_h <[H, G*H]>`` and biases
(see :mod:`lstmjax.nn.cells`). Kernels are transposed relative to PyTorch (``weight_ih_l{k}`` is
``<[G*H, F]>``, used as ``x @ W.T``) and equal to Keras's (``kernel``, ``recurrent_kernel``).

===========  ===========================  ==============================  =====================
cell         PyTorch                      Keras 3                         lstmjax
===========  ===========================  ==============================  =====================
LSTM gates   i, f, g, o                   i, f, c, o                      i, f, c̃, o
LSTM bias    ``b_ih + b_hh`` (two)        ``bias`` (one)                  ``b`` = their sum
GRU gates    r, z, n                      z, r, h                         r, z, n
GRU biases   ``b_ih``, ``b_hh``           ``bias[0]``, ``bias[1]``        ``b_x``, ``b_h``
RNN bias     ``b_ih + b_hh``              ``bias``                        ``b``
===========  ===========================  ==============================  =====================

Flax NNX (``flax.nnx``): ``LSTMCell`` keeps one ``Linear`` per gate (``ii, if_, ig, io`` without
bias, ``hi, hf, hg, ho`` with one), ``OptimizedLSTMCell`` two fused ones (``dense_i`` without bias,
``dense_h`` with it), both gates i, f, g, o and carry ``(c, h)``; ``GRUCell`` has ``dense_i`` (r, z,
n, with bias) and ``dense_h`` (no bias): lstmjax's GRU with ``b_h = 0``, so exporting one needs
``b_h``'s n block at zero (its r and z blocks fold into ``b_x``); ``SimpleCell`` (``residual=False``)
is lstmjax's simple RNN. ``nnx.RNN`` runs a cell over time; ``nnx.Bidirectional`` (concatenating)
is a bidirectional layer; a list of them is a stack. With ``seq_lengths``, ``nnx.RNN`` returns the
carry at each sequence's last valid step, as lstmjax does, except for length 0, where it returns
the carry after the whole padded row (lstmjax: the initial state); its outputs at padded steps are
not zeroed.

PyTorch's GRU applies the reset gate after the recurrent matrix product,
``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``; Keras does the same only with
``reset_after=True`` (its default), so ``reset_after=False`` layers are refused. Exporting to
PyTorch puts the whole LSTM/RNN bias in ``bias_ih`` and zeros ``bias_hh`` (only the sum matters).
Flax Linen's own ``LSTMCell`` keeps one ``Dense`` per gate and a ``(c, h)`` carry; lstmjax fuses
the gates and orders the carry ``(h, c)`` as PyTorch does.

The other libraries are optional: they are imported only by the functions that take their objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lstmjax.nn.layers import GRU, LSTM, SimpleRNN

__all__ = ["from_flax_nnx", "from_keras", "from_torch", "layer_like", "to_flax_nnx", "to_keras", "to_torch"]

_TORCH_KINDS = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}
_KERAS_KINDS = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}
_KERAS_GRU_TO_OURS = (1, 0, 2)  # Keras z, r, h  ->  lstmjax r, z, n (and back: the same swap)


def _swap_gate_blocks(a: np.ndarray, order: Sequence[int], axis: int = -1) -> np.ndarray:
    blocks = np.split(a, len(order), axis=axis)
    return np.concatenate([blocks[i] for i in order], axis=axis)


def _np(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _keras_np(variable) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable.value), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------


def _is_torch(module) -> bool:
    return type(module).__module__.startswith("torch.")


def _is_keras(layer) -> bool:
    return type(layer).__module__.startswith("keras.")


def _torch_kind(module) -> str:
    kind = _TORCH_KINDS.get(type(module).__name__) if _is_torch(module) else None
    if kind is None:
        raise TypeError(f"expected torch.nn.LSTM, GRU or RNN; got {type(module).__name__}")
    if kind == "lstm" and getattr(module, "proj_size", 0):
        raise ValueError(f"LSTM with proj_size={module.proj_size} has no lstmjax equivalent")
    return kind


def from_torch(module) -> dict[str, Any]:
    """Variables for lstmjax from a ``torch.nn.LSTM``, ``nn.GRU`` or ``nn.RNN``.

    Any ``num_layers``, ``bidirectional``, ``bias``; ``batch_first`` does not affect weights.

    Args:
      module: the PyTorch module.

    Returns:
      ``{"params": {"layer_{l}_{forward|backward}": {...}}}`` as NumPy float32 arrays, for the
      module :func:`layer_like` returns.

    Example:
      >>> import torch, numpy as np
      >>> torch_lstm = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True)
      >>> variables = from_torch(torch_lstm)
      >>> variables["params"]["layer_1_forward"]["W_h"].shape
      (4, 16)
    """
    kind = _torch_kind(module)
    sd = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    params = {}
    for layer in range(module.num_layers):
        for direction, suffix in (("forward", ""), ("backward", "_reverse"))[: 2 if module.bidirectional else 1]:
            key = f"l{layer}{suffix}"
            w_ih, w_hh = _np(sd[f"weight_ih_{key}"]), _np(sd[f"weight_hh_{key}"])
            zeros = np.zeros(w_ih.shape[0], np.float32)
            b_ih = _np(sd.get(f"bias_ih_{key}", zeros))
            b_hh = _np(sd.get(f"bias_hh_{key}", zeros))
            p = {"W_x": w_ih.T.copy(), "W_h": w_hh.T.copy()}
            if kind == "gru":
                p.update(b_x=b_ih, b_h=b_hh)
            else:
                p["b"] = b_ih + b_hh
            params[f"layer_{layer}_{direction}"] = p
    return {"params": params}


def to_torch(variables, module):
    """Write lstmjax variables into a ``torch.nn.LSTM``/``GRU``/``RNN`` in place; returns it.

    Args:
      variables: ``{"params": ...}`` of a matching lstmjax layer (or the ``params`` dict itself).
      module: a PyTorch module of the same kind, sizes, layers and directions.

    Returns:
      ``module``, with its weights replaced.

    Example:
      >>> import jax, jax.numpy as jnp, torch
      >>> from lstmjax import LSTM
      >>> variables = LSTM(4).init(jax.random.key(0), jnp.ones((1, 2, 3)))
      >>> m = to_torch(variables, torch.nn.LSTM(3, 4))
      >>> float(m.bias_hh_l0.detach().abs().sum())
      0.0
    """
    import torch

    kind = _torch_kind(module)
    params = variables.get("params", variables)
    directions = (("forward", ""), ("backward", "_reverse"))[: 2 if module.bidirectional else 1]
    expected = {f"layer_{l}_{d}" for l in range(module.num_layers) for d, _ in directions}
    if set(params) != expected:
        raise ValueError(f"variables hold {sorted(params)}; the PyTorch module needs {sorted(expected)}")
    new = {}
    for layer in range(module.num_layers):
        for direction, suffix in directions:
            p = {k: _np(v) for k, v in params[f"layer_{layer}_{direction}"].items()}
            key = f"l{layer}{suffix}"
            new[f"weight_ih_{key}"] = p["W_x"].T
            new[f"weight_hh_{key}"] = p["W_h"].T
            if kind == "gru":
                b_ih, b_hh = p["b_x"], p["b_h"]
            else:
                b_ih, b_hh = p["b"], np.zeros_like(p["b"])
            if module.bias:
                new[f"bias_ih_{key}"], new[f"bias_hh_{key}"] = b_ih, b_hh
            elif np.any(b_ih) or np.any(b_hh):
                raise ValueError(f"the PyTorch module has bias=False but layer_{layer}_{direction} has non-zero biases")
    with torch.no_grad():
        for name, tensor in module.named_parameters():
            value = new[name]
            if tuple(value.shape) != tuple(tensor.shape):
                raise ValueError(f"{name}: lstmjax gives shape {value.shape}, PyTorch expects {tuple(tensor.shape)}")
            tensor.copy_(torch.from_numpy(np.array(value, dtype=np.float32, copy=True)).to(tensor.dtype))
    return module


# ---------------------------------------------------------------------------------------------
# Keras 3
# ---------------------------------------------------------------------------------------------


def _keras_stack(layers) -> list:
    return list(layers) if isinstance(layers, (list, tuple)) else [layers]


def _keras_directions(layer) -> list[tuple[str, Any]]:
    """``[(direction, rnn_layer), ...]`` for a plain recurrent layer or a ``Bidirectional``."""
    if _is_keras(layer) and type(layer).__name__ == "Bidirectional":
        if layer.merge_mode != "concat":
            raise ValueError(f"Bidirectional merge_mode={layer.merge_mode!r}: lstmjax concatenates directions")
        return [("forward", layer.forward_layer), ("backward", layer.backward_layer)]
    return [("forward", layer)]


def _keras_kind(layer) -> str:
    kind = _KERAS_KINDS.get(type(layer).__name__) if _is_keras(layer) else None
    if kind is None:
        raise TypeError(f"expected keras.layers.LSTM, GRU, SimpleRNN or Bidirectional; got {type(layer).__name__}")
    cell = layer.cell
    act = getattr(cell.activation, "__name__", str(cell.activation))
    rec = getattr(getattr(cell, "recurrent_activation", None), "__name__", "sigmoid")
    if kind == "rnn":
        if act not in ("tanh", "relu"):
            raise ValueError(f"{layer.name}: activation {act!r} is not supported (tanh or relu)")
    elif act != "tanh" or rec != "sigmoid":
        raise ValueError(f"{layer.name}: lstmjax needs activation='tanh', recurrent_activation='sigmoid'; "
                         f"got {act!r}, {rec!r}")
    if kind == "gru" and not cell.reset_after:
        raise ValueError(f"{layer.name}: GRU(reset_after=False) differs from lstmjax's (PyTorch's) GRU")
    if not layer.built:
        raise ValueError(f"{layer.name} is not built: call it on an input or build(input_shape) first")
    return kind


def from_keras(layers) -> dict[str, Any]:
    """Variables for lstmjax from a built Keras 3 ``LSTM``/``GRU``/``SimpleRNN`` or ``Bidirectional``.

    Args:
      layers: one layer, or a list of them stacked (each reads the previous one's sequence
        output), all of the same cell kind and direction count.

    Returns:
      ``{"params": {"layer_{l}_{forward|backward}": {...}}}`` as NumPy float32 arrays.

    Example:
      >>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")
      'jax'
      >>> import keras
      >>> layer = keras.layers.GRU(4, return_sequences=True)
      >>> layer.build((None, 5, 3))
      >>> sorted(from_keras(layer)["params"]["layer_0_forward"])
      ['W_h', 'W_x', 'b_h', 'b_x']
    """
    params = {}
    for l, layer in enumerate(_keras_stack(layers)):
        for direction, rnn in _keras_directions(layer):
            kind = _keras_kind(rnn)
            cell = rnn.cell
            W_x, W_h = _keras_np(cell.kernel), _keras_np(cell.recurrent_kernel)
            gh = W_x.shape[1]
            bias = _keras_np(cell.bias) if cell.use_bias else np.zeros((2, gh) if kind == "gru" else gh, np.float32)
            if kind == "gru":
                p = {
                    "W_x": _swap_gate_blocks(W_x, _KERAS_GRU_TO_OURS),
                    "W_h": _swap_gate_blocks(W_h, _KERAS_GRU_TO_OURS),
                    "b_x": _swap_gate_blocks(bias[0], _KERAS_GRU_TO_OURS),
                    "b_h": _swap_gate_blocks(bias[1], _KERAS_GRU_TO_OURS),
                }
            else:
                p = {"W_x": W_x, "W_h": W_h, "b": bias}
            params[f"layer_{l}_{direction}"] = p
    return {"params": params}


def to_keras(variables, layers):
    """Write lstmjax variables into built Keras 3 recurrent layers in place; returns them.

    Args:
      variables: ``{"params": ...}`` of a matching lstmjax layer.
      layers: a built ``LSTM``/``GRU``/``SimpleRNN``/``Bidirectional`` layer or a list (stack).

    Returns:
      ``layers``, with weights replaced.

    Example:
      >>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")
      'jax'
      >>> import jax, jax.numpy as jnp, keras
      >>> from lstmjax import LSTM
      >>> variables = LSTM(4).init(jax.random.key(0), jnp.ones((1, 2, 3)))
      >>> layer = keras.layers.LSTM(4)
      >>> layer.build((None, 2, 3))
      >>> _ = to_keras(variables, layer)
      >>> bool((keras.ops.convert_to_numpy(layer.cell.kernel.value) == variables["params"]["layer_0_forward"]["W_x"]).all())
      True
    """
    params = variables.get("params", variables)
    stack = _keras_stack(layers)
    expected = {f"layer_{l}_{d}" for l, layer in enumerate(stack) for d, _ in _keras_directions(layer)}
    if set(params) != expected:
        raise ValueError(f"variables hold {sorted(params)}; the Keras layers need {sorted(expected)}")
    for l, layer in enumerate(stack):
        for direction, rnn in _keras_directions(layer):
            kind = _keras_kind(rnn)
            cell = rnn.cell
            p = {k: _np(v) for k, v in params[f"layer_{l}_{direction}"].items()}
            if kind == "gru":
                values = {
                    "kernel": _swap_gate_blocks(p["W_x"], _KERAS_GRU_TO_OURS),
                    "recurrent_kernel": _swap_gate_blocks(p["W_h"], _KERAS_GRU_TO_OURS),
                    "bias": np.stack([_swap_gate_blocks(p["b_x"], _KERAS_GRU_TO_OURS),
                                      _swap_gate_blocks(p["b_h"], _KERAS_GRU_TO_OURS)]),
                }
            else:
                values = {"kernel": p["W_x"], "recurrent_kernel": p["W_h"], "bias": p["b"]}
            for name, value in values.items():
                var = getattr(cell, name, None) if (name != "bias" or cell.use_bias) else None
                if var is None:
                    if np.any(value):
                        raise ValueError(f"{rnn.name} has use_bias=False but layer_{l}_{direction} has non-zero biases")
                    continue
                if tuple(var.shape) != value.shape:
                    raise ValueError(f"{rnn.name}.{name}: lstmjax gives shape {value.shape}, "
                                     f"Keras expects {tuple(var.shape)}")
                var.assign(value)
    return layers


# ---------------------------------------------------------------------------------------------
# Flax NNX (flax.nnx.LSTMCell, OptimizedLSTMCell, GRUCell, SimpleCell; nnx.RNN, nnx.Bidirectional)
# ---------------------------------------------------------------------------------------------

_FLAX_KINDS = {"LSTMCell": "lstm", "OptimizedLSTMCell": "lstm", "GRUCell": "gru", "SimpleCell": "rnn"}
_FLAX_LSTM_GATES = (("ii", "hi"), ("if_", "hf"), ("ig", "hg"), ("io", "ho"))  # LSTMCell: one Linear per gate


def _is_flax_nnx(obj) -> bool:
    return type(obj).__module__.startswith("flax.nnx")


def _flax_cell(rnn, direction: str):
    """The cell of an ``nnx.RNN`` (or a bare cell), checked for what lstmjax can represent."""
    if _is_flax_nnx(rnn) and type(rnn).__name__ == "RNN":
        if rnn.reverse and direction == "forward":
            raise ValueError("an nnx.RNN with reverse=True reads backwards: wrap it in nnx.Bidirectional")
        rnn = rnn.cell
    kind = _FLAX_KINDS.get(type(rnn).__name__) if _is_flax_nnx(rnn) else None
    if kind is None:
        raise TypeError("expected a flax.nnx LSTMCell, OptimizedLSTMCell, GRUCell or SimpleCell, an nnx.RNN "
                        f"or an nnx.Bidirectional; got {type(rnn).__name__}")
    act = getattr(rnn.activation_fn, "__name__", str(rnn.activation_fn))
    gate = getattr(getattr(rnn, "gate_fn", None), "__name__", "sigmoid")
    if kind == "rnn" and (rnn.residual or act not in ("tanh", "relu")):
        raise ValueError(f"SimpleCell(residual={rnn.residual}, activation_fn={act}): lstmjax's simple RNN is "
                         "residual=False with tanh or relu")
    if kind != "rnn" and (act != "tanh" or gate != "sigmoid"):
        raise ValueError(f"{type(rnn).__name__}: lstmjax needs activation_fn=tanh, gate_fn=sigmoid; got {act}, {gate}")
    return rnn, kind


def _flax_directions(layer) -> list[tuple[str, Any, str]]:
    """``[(direction, cell, kind), ...]`` for a cell, an ``nnx.RNN`` or an ``nnx.Bidirectional``."""
    if _is_flax_nnx(layer) and type(layer).__name__ == "Bidirectional":
        merge = getattr(layer.merge_fn, "__name__", "")
        if merge != "_concatenate":
            raise ValueError(f"nnx.Bidirectional merge_fn={merge or layer.merge_fn!r}: lstmjax concatenates directions")
        return [("forward", *_flax_cell(layer.forward_rnn, "forward")),
                ("backward", *_flax_cell(layer.backward_rnn, "backward"))]
    return [("forward", *_flax_cell(layer, "forward"))]


def _flax_value(variable) -> np.ndarray:
    return np.asarray(variable[...], dtype=np.float32)


def _from_flax_cell(cell, kind: str) -> dict[str, np.ndarray]:
    if type(cell).__name__ == "LSTMCell":
        W_x = np.concatenate([_flax_value(getattr(cell, i).kernel) for i, _ in _FLAX_LSTM_GATES], axis=1)
        W_h = np.concatenate([_flax_value(getattr(cell, h).kernel) for _, h in _FLAX_LSTM_GATES], axis=1)
        return {"W_x": W_x, "W_h": W_h, "b": np.concatenate([_flax_value(getattr(cell, h).bias)
                                                             for _, h in _FLAX_LSTM_GATES])}
    p = {"W_x": _flax_value(cell.dense_i.kernel), "W_h": _flax_value(cell.dense_h.kernel)}
    if kind == "lstm":  # OptimizedLSTMCell: the bias is dense_h's
        p["b"] = _flax_value(cell.dense_h.bias)
    elif kind == "gru":  # no recurrent bias: b_h = 0
        p.update(b_x=_flax_value(cell.dense_i.bias), b_h=np.zeros_like(_flax_value(cell.dense_i.bias)))
    else:
        p["b"] = _flax_value(cell.dense_i.bias)
    return p


def from_flax_nnx(layers) -> dict[str, Any]:
    """Variables for lstmjax from Flax NNX's own recurrent layers.

    Args:
      layers: a ``flax.nnx`` ``LSTMCell``, ``OptimizedLSTMCell``, ``GRUCell`` or ``SimpleCell``, an
        ``nnx.RNN`` of one, an ``nnx.Bidirectional`` of two, or a list of them stacked (each
        reading the previous one's outputs).

    Returns:
      ``{"params": {"layer_{l}_{forward|backward}": {...}}}`` as NumPy float32 arrays, for the
      module :func:`layer_like` returns.

    Example:
      >>> from flax import nnx
      >>> rnn = nnx.RNN(nnx.OptimizedLSTMCell(3, 4, rngs=nnx.Rngs(0)))
      >>> {k: v.shape for k, v in from_flax_nnx(rnn)["params"]["layer_0_forward"].items()}
      {'W_x': (3, 16), 'W_h': (4, 16), 'b': (16,)}
    """
    params = {}
    for l, layer in enumerate(_keras_stack(layers)):
        for direction, cell, kind in _flax_directions(layer):
            params[f"layer_{l}_{direction}"] = _from_flax_cell(cell, kind)
    return {"params": params}


def _flax_assign(variable, value: np.ndarray, where: str) -> None:
    if tuple(variable.shape) != value.shape:
        raise ValueError(f"{where}: lstmjax gives shape {value.shape}, Flax expects {tuple(variable.shape)}")
    variable[...] = np.asarray(value, dtype=variable.dtype)


def _to_flax_cell(p: dict[str, np.ndarray], cell, kind: str, where: str) -> None:
    if type(cell).__name__ == "LSTMCell":
        for (i, h), W_x, W_h, b in zip(_FLAX_LSTM_GATES, np.split(p["W_x"], 4, axis=1), np.split(p["W_h"], 4, axis=1),
                                       np.split(p["b"], 4)):
            _flax_assign(getattr(cell, i).kernel, W_x, f"{where}.{i}.kernel")
            _flax_assign(getattr(cell, h).kernel, W_h, f"{where}.{h}.kernel")
            _flax_assign(getattr(cell, h).bias, b, f"{where}.{h}.bias")
        return
    _flax_assign(cell.dense_i.kernel, p["W_x"], f"{where}.dense_i.kernel")
    _flax_assign(cell.dense_h.kernel, p["W_h"], f"{where}.dense_h.kernel")
    if kind == "lstm":
        _flax_assign(cell.dense_h.bias, p["b"], f"{where}.dense_h.bias")
    elif kind == "gru":
        b_hr, b_hz, b_hn = np.split(p["b_h"], 3)
        if np.any(b_hn):
            raise ValueError(f"{where}: flax.nnx.GRUCell has no recurrent bias; lstmjax's b_h has a non-zero n block "
                             "(inside the reset gate's product, it cannot move to b_x)")
        _flax_assign(cell.dense_i.bias, p["b_x"] + np.concatenate([b_hr, b_hz, b_hn]), f"{where}.dense_i.bias")
    else:
        _flax_assign(cell.dense_i.bias, p["b"], f"{where}.dense_i.bias")


def to_flax_nnx(variables, layers):
    """Write lstmjax variables into Flax NNX recurrent layers in place; returns them.

    Args:
      variables: ``{"params": ...}`` of a matching lstmjax layer.
      layers: what :func:`from_flax_nnx` takes (cells, ``nnx.RNN``, ``nnx.Bidirectional``, a list).

    Returns:
      ``layers``, with weights replaced. A GRU's recurrent bias ``b_h`` must have a zero n block
      (Flax's ``GRUCell`` has none); its r and z blocks are added to ``dense_i.bias``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from lstmjax import LSTM
      >>> variables = LSTM(4).init(jax.random.key(0), jnp.ones((1, 2, 3)))
      >>> cell = to_flax_nnx(variables, nnx.LSTMCell(3, 4, rngs=nnx.Rngs(0)))
      >>> bool((cell.hf.bias[...] == variables["params"]["layer_0_forward"]["b"][4:8]).all())  # forget gate
      True
    """
    params = variables.get("params", variables)
    stack = _keras_stack(layers)
    expected = {f"layer_{l}_{d}" for l, layer in enumerate(stack) for d, _, _ in _flax_directions(layer)}
    if set(params) != expected:
        raise ValueError(f"variables hold {sorted(params)}; the Flax layers need {sorted(expected)}")
    for l, layer in enumerate(stack):
        for direction, cell, kind in _flax_directions(layer):
            name = f"layer_{l}_{direction}"
            _to_flax_cell({k: _np(v) for k, v in params[name].items()}, cell, kind, name)
    return layers


# ---------------------------------------------------------------------------------------------
# The matching lstmjax module
# ---------------------------------------------------------------------------------------------


def layer_like(module):
    """The lstmjax layer (``LSTM``/``GRU``/``SimpleRNN``) with the same shape as a PyTorch module,
    a Keras layer or Flax NNX recurrent layer (or a list of stacked Keras or Flax NNX layers).

    Example:
      >>> import torch
      >>> layer_like(torch.nn.GRU(3, 8, num_layers=2, bidirectional=True))
      GRU(
          # attributes
          hidden_size = 8
          num_layers = 2
          bidirectional = True
          ...
      )
    """

    classes = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}
    if _is_torch(module):
        kind = _torch_kind(module)
        extra = {"activation": module.nonlinearity} if kind == "rnn" else {}
        return classes[kind](module.hidden_size, num_layers=module.num_layers,
                             bidirectional=module.bidirectional, **extra)
    stack = _keras_stack(module)
    if _is_flax_nnx(stack[0]):
        directions = _flax_directions(stack[0])
        cell, kind = directions[0][1:]
        extra = {"activation": cell.activation_fn.__name__} if kind == "rnn" else {}
        return classes[kind](cell.hidden_features, num_layers=len(stack), bidirectional=len(directions) == 2,
                             **extra)
    directions = _keras_directions(stack[0])
    rnn = directions[0][1]
    kind = _keras_kind(rnn)
    extra = {}
    if kind == "rnn":
        extra["activation"] = getattr(rnn.cell.activation, "__name__", "tanh")
    return classes[kind](rnn.cell.units, num_layers=len(stack), bidirectional=len(directions) == 2, **extra)

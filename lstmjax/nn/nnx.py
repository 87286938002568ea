r"""Flax NNX twins of lstmjax's Linen modules: the same parameters, the same pure cells, the same loop.

Flax has two module systems. **Linen** (``module.init`` / ``module.apply(variables, ...)``)
keeps the parameters outside the module, in a pytree passed to every call: the model is a pure
function of its parameters, which is how lstmjax's lessons are written. **NNX** (``flax.nnx``,
which the Flax team recommends for new code since flax 0.8 and calls "the core of Flax" from 0.12)
keeps them inside the module object, as ``nnx.Param`` attributes, and trains with
``nnx.Optimizer``. Choose Linen for the pure-functional lessons and for everything in
:mod:`lstmjax.training`; choose these modules when your own code base is NNX.

Every module here is a thin NNX shell over the Linen module of the same name, which it keeps as
``module.spec`` (an unbound Linen module: its attributes and pure methods):

* the parameters are ``nnx.Param`` attributes laid out exactly as the Linen module's ``params``
  collection (``recurrent/layer_0_forward/W_x``), so :func:`to_nnx` and :func:`from_nnx` move
  them without renaming or reshaping;
* the forward pass *is* the Linen one: :func:`lstmjax.nn.layers.stack_forward` with the NNX
  module lending its parameters and randomness, running the pure step functions of
  :mod:`lstmjax.nn.cells` through :func:`~lstmjax.nn.scan.scan_cell` or
  :func:`~lstmjax.nn.fused.lstm_scan`: no equation is written twice;
* randomness is NNX's: initialisation draws from ``rngs.params()``; dropout (between layers, on
  the embeddings and pooled features, and the recurrent masks) from the ``rngs.dropout`` stream
  (``default`` when there is none). Modules start in training mode, as ``nnx.Dropout`` does;
  ``model.eval()`` (or ``nnx.view(model, deterministic=True)``) turns dropout off.

``flax.nnx.bridge.ToNNX(linen_module)`` is the other way to use a Linen module from NNX code: it
wraps any Linen module, with the same parameter names, and initialises it lazily
(``nnx.bridge.lazy_init``) from a sample input. These native modules know their sizes up front,
take ``nnx.Rngs`` as every NNX layer does and need no sample input; both run the same Linen
equations. To move weights to and from Flax's own ``flax.nnx.LSTMCell``, ``OptimizedLSTMCell``,
``GRUCell``, ``SimpleCell``, ``nnx.RNN`` and ``nnx.Bidirectional``, see
:func:`lstmjax.nn.interop.from_flax_nnx`.

Another classifier plugs in by adding its NNX class (with a ``from_linen`` class method) to
:data:`NNX_TWINS`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lstmjax.nn import classifier, layers
from lstmjax.nn.checks import check_token_ids

Array = jax.Array

__all__ = [
    "GRU",
    "LSTM",
    "NNX_TWINS",
    "GRUCell",
    "LSTMCell",
    "SimpleRNN",
    "SimpleRNNCell",
    "TextClassifier",
    "from_nnx",
    "load_params",
    "to_nnx",
]


def _options(module, *skip: str) -> dict[str, Any]:
    """A Linen module's constructor arguments (its dataclass fields), less ``parent``, ``name`` and ``skip``."""
    return {f.name: getattr(module, f.name) for f in dataclasses.fields(module)
            if f.init and f.name not in ("parent", "name", *skip)}


# ---------------------------------------------------------------------------------------------
# One-step cells
# ---------------------------------------------------------------------------------------------


class _Cell(nnx.Module):
    """An NNX one-step cell: ``nnx.Param`` attributes named as the Linen cell's, and its pure step."""

    _linen: ClassVar[type[layers._Cell]]

    def __init__(self, in_features: int, hidden_size: int, *, rngs: nnx.Rngs, **options):
        self.spec = self._linen(hidden_size, **options)
        self.in_features = in_features
        self.hidden_features = hidden_size  # flax.nnx's name for it
        params = self.spec._init_params(rngs.params(), in_features)
        for name in self.spec._param_names:
            setattr(self, name, nnx.Param(params[name]))

    @classmethod
    def from_linen(cls, module: layers._Cell, params, *, rngs: nnx.Rngs, deterministic: bool = False):
        """The twin of a Linen cell, its parameters drawn afresh (:func:`to_nnx` then loads ``params``)."""
        del deterministic  # a cell has no dropout
        return cls(np.shape(params["W_x"])[0], **_options(module), rngs=rngs)

    def params(self) -> dict[str, Array]:
        """The parameter pytree of :mod:`lstmjax.nn.cells` (``{"W_x": ..., "W_h": ..., ...}``)."""
        return {name: getattr(self, name)[...] for name in self.spec._param_names}

    def __call__(self, carry, x_t: Array):
        return self.spec.step(self.params(), carry, x_t)

    def initialize_carry(self, input_shape: tuple[int, ...], rngs=None):
        """A zero carry for inputs of ``input_shape = (*batch, features)`` (``flax.nnx.RNN`` calls this)."""
        del rngs  # zeros need no randomness
        batch = tuple(input_shape[:-1])
        carry = self.spec.initial_carry(math.prod(batch), self.spec.param_dtype)
        return jax.tree.map(lambda z: z.reshape(batch + (self.hidden_features,)), carry)

    @property
    def num_feature_axes(self) -> int:
        """One feature axis (``flax.nnx.RNN`` reads this)."""
        return 1


class LSTMCell(_Cell):
    """The LSTM cell as an NNX module: :func:`lstmjax.nn.cells.lstm_step` on its ``nnx.Param`` attributes.

    ``LSTMCell(in_features, hidden_size, *, rngs, initializer="keras", unit_forget_bias=None,
    param_dtype=jnp.float32)``; called as ``cell((h, c), x_t) -> ((h_t, c_t), h_t)`` with
    ``h, c <float>[batch, hidden]`` and ``x_t <float>[batch, features]``. It has
    ``initialize_carry`` and ``num_feature_axes``, so ``flax.nnx.RNN`` runs it over time.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> cell = LSTMCell(3, 5, rngs=nnx.Rngs(0))
      >>> (h, c), y = cell(cell.initialize_carry((2, 3)), jnp.ones((2, 3)))
      >>> h.shape, sorted(nnx.to_pure_dict(nnx.state(cell, nnx.Param)))
      ((2, 5), ['W_h', 'W_x', 'b'])
      >>> nnx.RNN(cell)(jnp.ones((2, 7, 3))).shape  # Flax's own time loop over lstmjax's cell
      (2, 7, 5)
    """

    _linen = layers.LSTMCell


class GRUCell(_Cell):
    """The GRU cell as an NNX module: :func:`lstmjax.nn.cells.gru_step` (arguments as :class:`LSTMCell`).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> cell = GRUCell(3, 5, rngs=nnx.Rngs(0))
      >>> h, y = cell(cell.initialize_carry((2, 3)), jnp.ones((2, 3)))
      >>> h.shape, sorted(nnx.to_pure_dict(nnx.state(cell, nnx.Param)))
      ((2, 5), ['W_h', 'W_x', 'b_h', 'b_x'])
    """

    _linen = layers.GRUCell


class SimpleRNNCell(_Cell):
    """The simple (Elman) RNN cell as an NNX module: :func:`lstmjax.nn.cells.rnn_step`; ``activation="tanh"`` or ``"relu"``.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> cell = SimpleRNNCell(3, 5, activation="relu", rngs=nnx.Rngs(0))
      >>> h, _ = cell(cell.initialize_carry((2, 3)), jnp.ones((2, 3)))
      >>> h.shape, bool((h >= 0).all())
      ((2, 5), True)
    """

    _linen = layers.SimpleRNNCell


# ---------------------------------------------------------------------------------------------
# Recurrent layers
# ---------------------------------------------------------------------------------------------


class _Host:
    """What an NNX stack lends :func:`lstmjax.nn.layers.stack_forward`: its cells' parameters,
    its dropout and RNG stream, and ``nnx.Intermediate`` for gate traces (the recurrent dropout
    masks, which the Linen layers sow, are not kept: NNX keeps sown values only under ``nnx.capture``)."""

    def __init__(self, stack: _Stack):
        self.stack = stack

    def cell(self, name: str, in_features: int):
        cell = getattr(self.stack, name)
        if cell.in_features != in_features:
            raise ValueError(f"{name} was built for {cell.in_features} input features; got inputs with {in_features}")
        return cell.spec, cell.params()

    def dropout(self, x: Array) -> Array:
        return self.stack.drop(x, deterministic=False)

    def dropout_key(self) -> Array:
        return self.stack.rngs()

    def sow(self, owner: str | None, name: str, value) -> None:
        if owner is not None:  # gate traces (trace_gates=True); NNX reads them through nnx.capture
            getattr(self.stack, owner).sow(nnx.Intermediate, name, value)


class _Stack(nnx.Module):
    """Stacked, optionally bidirectional recurrent layers (NNX): cells ``layer_{l}_{direction}``."""

    _linen: ClassVar[type[layers._RecurrentStack]]
    _cell_type: ClassVar[type[_Cell]]

    def __init__(self, in_features: int, hidden_size: int, *, rngs: nnx.Rngs, deterministic: bool = False,
                 **options):
        self.spec = self._linen(hidden_size, **options)
        layers._check_stack(self.spec)
        directions = ("forward", "backward") if self.spec.bidirectional else ("forward",)
        for layer in range(self.spec.num_layers):
            features = in_features if layer == 0 else len(directions) * hidden_size
            for direction in directions:
                name = f"layer_{layer}_{direction}"
                cell = self.spec._cell(name, parent=None)  # the Linen cell: its options
                setattr(self, name, self._cell_type(features, hidden_size, rngs=rngs, **_options(cell, "hidden_size")))
        self.in_features = in_features
        self.drop = nnx.Dropout(self.spec.dropout, rngs=rngs)
        self.rngs = rngs["dropout"].fork() if self.spec.recurrent_dropout > 0 else None
        self.deterministic = deterministic

    @classmethod
    def from_linen(cls, module: layers._RecurrentStack, params, *, rngs: nnx.Rngs, deterministic: bool = False):
        """The twin of a Linen layer, its parameters drawn afresh (:func:`to_nnx` then loads ``params``)."""
        in_features = np.shape(params["layer_0_forward"]["W_x"])[0]
        return cls(in_features, **_options(module), rngs=rngs, deterministic=deterministic)

    def __call__(self, inputs: Array, lengths: Array | None = None, *, initial_state=None,
                 deterministic: bool | None = None):
        deterministic = self.deterministic if deterministic is None else deterministic
        return layers.stack_forward(self.spec, _Host(self), inputs, lengths, deterministic=deterministic,
                                    initial_state=initial_state)


class LSTM(_Stack):
    """Stacked, optionally bidirectional LSTM over right-padded sequences (NNX module).

    ``LSTM(in_features, hidden_size, *, rngs, deterministic=False, num_layers=1,
    bidirectional=False, dropout=0.0, recurrent_dropout=0.0, initializer="keras", ...)``: the
    attributes of :class:`lstmjax.LSTM`, whose conventions it keeps (batch-major inputs,
    ``lengths``, PyTorch-layout final states) and whose forward pass it runs. Called as
    ``lstm(inputs, lengths=None, *, initial_state=None, deterministic=None)``.

    Args (of ``__call__``):
      inputs: ``<float>[batch, time, in_features]``.
      lengths: ``<int>[batch]`` or ``None``.
      initial_state: ``(h_0, c_0)``, each ``<float>[num_layers*directions, batch, hidden]``, or ``None``.
      deterministic: no dropout (default: the module's ``deterministic``, set by ``eval()``/``train()``).

    Returns:
      ``(outputs <float>[batch, time, directions*hidden], (h_n, c_n))``.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> lstm = LSTM(4, 8, num_layers=2, bidirectional=True, rngs=nnx.Rngs(0))
      >>> y, (h_n, c_n) = lstm(jnp.ones((3, 6, 4)), jnp.array([6, 2, 0]))
      >>> y.shape, h_n.shape
      ((3, 6, 16), (4, 3, 8))
      >>> sorted(nnx.to_pure_dict(nnx.state(lstm, nnx.Param)))   # the Linen layer's parameter names
      ['layer_0_backward', 'layer_0_forward', 'layer_1_backward', 'layer_1_forward']
    """

    _linen = layers.LSTM
    _cell_type = LSTMCell


class GRU(_Stack):
    """Stacked, optionally bidirectional GRU (NNX module); as :class:`LSTM`, with final state ``h_n``.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> gru = GRU(4, 8, rngs=nnx.Rngs(0))
      >>> y, h_n = gru(jnp.ones((3, 6, 4)), jnp.array([6, 2, 1]))
      >>> h_n.shape, bool(jnp.allclose(y[1, 1], h_n[0, 1]))  # row 1's last valid output is its final state
      ((1, 3, 8), True)
    """

    _cell_type = GRUCell
    _linen = layers.GRU


class SimpleRNN(_Stack):
    """Stacked, optionally bidirectional simple RNN (NNX module); as :class:`GRU`, plus ``activation``.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> y, h_n = SimpleRNN(4, 8, activation="relu", rngs=nnx.Rngs(0))(jnp.ones((3, 6, 4)))
      >>> y.shape, bool((y >= 0).all())
      ((3, 6, 8), True)
    """

    _linen = layers.SimpleRNN
    _cell_type = SimpleRNNCell


_STACKS: dict[type, type[_Stack]] = {layers.LSTM: LSTM, layers.GRU: GRU, layers.SimpleRNN: SimpleRNN}


# ---------------------------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------------------------


class TextClassifier(nnx.Module):
    """The document's classifier as an NNX module: Embedding → recurrent stack → pool → Dense.

    ``TextClassifier(vocab_size, num_classes, *, rngs, deterministic=False, **attributes)`` with
    the attributes of :class:`lstmjax.TextClassifier` (``embed_dim=128``, ``cell="lstm"``,
    ``hidden_size=128``, ``pooling="last"``, dropout rates, ...), called as
    ``model(token_ids <int32>[batch, time], lengths <int32>[batch] | None = None, *,
    deterministic=None) -> <float32>[batch, num_classes]`` logits. The submodules are
    ``embedding`` (``nnx.Embed``), ``recurrent`` (:class:`LSTM`, :class:`GRU` or
    :class:`SimpleRNN`) and ``dense`` (``nnx.Linear``), named as the Linen model's parameters.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> model = TextClassifier(100, 2, embed_dim=16, hidden_size=16, rngs=nnx.Rngs(0))
      >>> ids = jnp.array([[5, 7, 9, 0], [3, 0, 0, 0]], jnp.int32)
      >>> model(ids).shape
      (2, 2)
      >>> sorted(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
      ['dense', 'embedding', 'recurrent']
    """

    def __init__(self, vocab_size: int, num_classes: int, *, rngs: nnx.Rngs, deterministic: bool = False,
                 **attributes):
        self.spec = spec = classifier.TextClassifier(vocab_size, num_classes, **attributes)
        spec._check_options()
        self.embedding = nnx.Embed(vocab_size, spec.embed_dim, embedding_init=classifier._keras_embedding_init,
                                   param_dtype=spec.param_dtype, rngs=rngs)
        stack = spec._recurrent_stack(parent=None)  # the Linen stack: its class and options
        self.recurrent = _STACKS[type(stack)](spec.embed_dim, **_options(stack), rngs=rngs,
                                              deterministic=deterministic)
        directions = 2 if spec.bidirectional else 1
        self.dense = nnx.Linear(directions * spec.hidden_size, num_classes, param_dtype=spec.param_dtype, rngs=rngs)
        self.embed_drop = nnx.Dropout(spec.embed_dropout, rngs=rngs)
        self.output_drop = nnx.Dropout(spec.output_dropout, rngs=rngs)
        self.deterministic = deterministic

    @classmethod
    def from_linen(cls, module: classifier.TextClassifier, params, *, rngs: nnx.Rngs, deterministic: bool = False):
        """The twin of a Linen classifier, its parameters drawn afresh (:func:`to_nnx` then loads ``params``)."""
        del params  # the Linen attributes give every size
        return cls(**_options(module), rngs=rngs, deterministic=deterministic)

    def __call__(self, token_ids: Array, lengths: Array | None = None, *, deterministic: bool | None = None) -> Array:
        deterministic = self.deterministic if deterministic is None else deterministic
        lengths = classifier.token_lengths(token_ids, lengths)
        if not jnp.issubdtype(token_ids.dtype, jnp.integer):
            raise TypeError(f"token_ids must be integers; got dtype {token_ids.dtype}")
        token_ids = check_token_ids(token_ids, self.spec.vocab_size, traced_check=self.spec.check_inputs)
        x = self.embed_drop(self.embedding(token_ids), deterministic=deterministic)  # (B, T, E)
        outputs, final = self.recurrent(x, lengths, deterministic=deterministic)
        features = self.output_drop(self.spec._features(outputs, final, lengths), deterministic=deterministic)
        return self.dense(features)  # (B, num_classes)


# ---------------------------------------------------------------------------------------------
# Linen variables ↔ NNX state
# ---------------------------------------------------------------------------------------------


#: Each lstmjax Linen module class → its NNX twin (a class with a ``from_linen`` class method); another
#: classifier plugs into :func:`to_nnx` by adding its pair here.
NNX_TWINS: dict[type, type] = {
    layers.LSTMCell: LSTMCell, layers.GRUCell: GRUCell, layers.SimpleRNNCell: SimpleRNNCell,
    layers.LSTM: LSTM, layers.GRU: GRU, layers.SimpleRNN: SimpleRNN,
    classifier.TextClassifier: TextClassifier,
}


def load_params(model: nnx.Module, params) -> nnx.Module:
    """Set an NNX model's ``nnx.Param`` values from a Linen-layout parameter pytree, in place.

    Args:
      model: an NNX module of this module (or any whose ``nnx.Param`` tree has ``params``' layout).
      params: nested dicts of arrays (a Linen ``variables["params"]``).

    Returns:
      ``model``.

    Raises:
      ValueError: naming the first path that is missing, unexpected or of another shape.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> cell = GRUCell(2, 3, rngs=nnx.Rngs(0))
      >>> zeros = {k: jnp.zeros_like(v) for k, v in cell.params().items()}
      >>> float(jnp.abs(load_params(cell, zeros).W_h[...]).sum())
      0.0
    """
    state = nnx.state(model, nnx.Param)
    expected = {path: np.shape(leaf) for path, leaf in _flat(nnx.to_pure_dict(state)).items()}
    given = {path: np.shape(leaf) for path, leaf in _flat(params).items()}
    for path in sorted(set(expected) | set(given)):
        if path not in given:
            raise ValueError(f"parameter {path} {expected[path]} is missing")
        if path not in expected:
            raise ValueError(f"unexpected parameter {path} {given[path]}; the model has no such parameter")
        if given[path] != expected[path]:
            raise ValueError(f"parameter {path}: shape {given[path]}, the model expects {expected[path]}")
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, _plain(params)))
    nnx.update(model, state)
    return model


def _plain(tree):
    """Nested mappings (``FrozenDict`` included) as plain dicts."""
    return {k: _plain(v) for k, v in tree.items()} if hasattr(tree, "items") else tree


def _flat(tree, prefix: str = "") -> dict[str, Any]:
    if not hasattr(tree, "items"):
        return {prefix: tree}
    out = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}/{key}" if prefix else str(key)))
    return out


def to_nnx(module, variables, *, rngs: nnx.Rngs | None = None, deterministic: bool = False) -> nnx.Module:
    """The NNX twin of an lstmjax Linen module, holding the same parameters (the same numbers).

    Args:
      module: an lstmjax Linen module (a key of :data:`NNX_TWINS`).
      variables: its variables, ``{"params": ...}`` (or the ``params`` pytree itself).
      rngs: the twin's RNG streams for dropout (default ``nnx.Rngs(0)``).
      deterministic: start in evaluation mode (default: training mode, as NNX layers do).

    Returns:
      The NNX module; ``model(...)`` equals ``module.apply(variables, ...)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier
      >>> linen = TextClassifier(vocab_size=50, num_classes=3, embed_dim=8, hidden_size=8)
      >>> ids = jnp.array([[4, 9, 2, 0]], jnp.int32)
      >>> variables = linen.init(jax.random.key(0), ids)
      >>> model = to_nnx(linen, variables)
      >>> bool(jnp.allclose(model(ids), linen.apply(variables, ids)))
      True
    """
    twin = NNX_TWINS.get(type(module))
    if twin is None:
        raise TypeError(f"no NNX twin for {type(module).__name__}; known: "
                        f"{', '.join(sorted(cls.__name__ for cls in NNX_TWINS))}")
    params = variables.get("params", variables)
    model = twin.from_linen(module, params, rngs=rngs if rngs is not None else nnx.Rngs(0),
                            deterministic=deterministic)
    return load_params(model, params)


def from_nnx(model: nnx.Module):
    """The Linen module and variables of an NNX twin: ``(module, {"params": ...})``, the same numbers.

    Args:
      model: a module of :mod:`lstmjax.nn.nnx` (trained with ``nnx.Optimizer``, say).

    Returns:
      ``(linen_module, variables)``: ``linen_module.apply(variables, ...)`` equals ``model(...)``
      in evaluation mode, and every lstmjax tool that takes Linen variables takes these.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> model = GRU(3, 4, rngs=nnx.Rngs(0))
      >>> linen, variables = from_nnx(model)
      >>> x = jnp.ones((2, 5, 3))
      >>> bool(jnp.allclose(linen.apply(variables, x)[0], model(x)[0]))
      True
    """
    spec = getattr(model, "spec", None)
    if spec is None or type(model) not in NNX_TWINS.values():
        raise TypeError(f"expected a module of lstmjax.nn.nnx; got {type(model).__name__}")
    return spec, {"params": nnx.to_pure_dict(nnx.state(model, nnx.Param))}

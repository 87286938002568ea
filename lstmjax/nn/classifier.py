"""The text classifier of the document's §4.3 and §5.2: Embedding → recurrent stack → pool → Dense.

The document's Keras model is the default::

    Sequential([Embedding(vocab_size, 128), LSTM(128), Dense(num_classes, activation="softmax")])

``TextClassifier`` returns *logits*; the softmax belongs to the loss (``optax`` cross-entropy)
and to :meth:`TextClassifier.predict_proba`, which is numerically safer than a softmax layer.
"""

from __future__ import annotations

from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from lstmjax.nn import cells
from lstmjax.nn.checks import check_token_ids
from lstmjax.nn.layers import GRU, LSTM, SimpleRNN
from lstmjax.nn.scan import length_mask

Array = jax.Array

__all__ = ["TextClassifier", "pool", "token_lengths"]

PAD_ID = 0  # the data part's padding id (lstmjax.data.vocab.PAD_ID); the model part imports no data code
Pooling = Literal["last", "mean", "max"]


def pool(outputs: Array, lengths: Array, method: Pooling, final_h: Array | None = None) -> Array:
    """Length-aware pooling of recurrent outputs over time.

    Args:
      outputs: ``<float>[batch, time, features]``, zero at padded steps.
      lengths: ``<int>[batch]``.
      method: ``"last"`` (the top layer's final hidden state(s): ``final_h`` is required),
        ``"mean"`` (over valid steps) or ``"max"`` (over valid steps). A sequence of length 0
        pools to zeros.
      final_h: for ``"last"``, the top layer's final states ``<float>[directions, batch, hidden]``.

    Returns:
      ``<float>[batch, features]``.

    Example:
      >>> import jax.numpy as jnp
      >>> y = jnp.array([[[1.0], [3.0], [0.0]], [[-2.0], [0.0], [0.0]]])
      >>> pool(y, jnp.array([2, 1]), "mean").tolist(), pool(y, jnp.array([2, 1]), "max").tolist()
      ([[2.0], [-2.0]], [[3.0], [-2.0]])
    """
    if method == "last":
        if final_h is None:
            raise ValueError("pooling 'last' needs the final hidden states")
        return jnp.concatenate(list(final_h), axis=-1)  # [forward, backward] → (B, D*H)
    valid = length_mask(lengths, outputs.shape[1])[..., None]  # (B, T, 1)
    if method == "mean":
        total = jnp.sum(jnp.where(valid, outputs, 0.0), axis=1)  # (B, F)
        count = jnp.maximum(lengths, 1).astype(outputs.dtype)[:, None]  # (B, 1)
        return total / count
    if method == "max":
        neg_inf = jnp.asarray(-jnp.inf, outputs.dtype)
        best = jnp.max(jnp.where(valid, outputs, neg_inf), axis=1)  # (B, F)
        return jnp.where((lengths > 0)[:, None], best, jnp.zeros_like(best))
    raise ValueError(f"pooling must be 'last', 'mean' or 'max'; got {method!r}")


def token_lengths(token_ids: Array, lengths: Array | None = None) -> Array:
    """``lengths``, or, without them, each row's number of non-PAD ids (right for right padding only).

    Args:
      token_ids: ``<int32>[batch, time]``.
      lengths: ``<int32>[batch]`` or ``None``.

    Returns:
      ``<int32>[batch]``.

    Example:
      >>> import jax.numpy as jnp
      >>> token_lengths(jnp.array([[5, 7, 0], [3, 0, 0]], jnp.int32)).tolist()
      [2, 1]
    """
    if token_ids.ndim != 2:
        raise ValueError(f"token_ids must be <int32>[batch, time]; got shape {token_ids.shape}")
    if lengths is None:
        lengths = jnp.sum(token_ids != PAD_ID, axis=1, dtype=jnp.int32)
    return lengths


def _keras_embedding_init(key, shape, dtype=jnp.float32):
    """Keras's ``Embedding`` default: ``U(-0.05, 0.05)`` (Flax's ``nn.Embed`` draws ``N(0, 1)``)."""
    return jax.random.uniform(key, shape, dtype, -0.05, 0.05)


class TextClassifier(nn.Module):
    """Embedding → recurrent stack → length-aware pooling → Dense to class logits.

    Attributes:
      vocab_size: number of token ids (PAD = 0 included).
      num_classes: number of labels.
      embed_dim: embedding size (document: 128).
      embed_dropout: dropout on the embeddings.
      cell: ``"lstm"`` (default), ``"gru"`` or ``"rnn"``.
      hidden_size: recurrent hidden size (document: 128).
      num_layers: stacked recurrent layers.
      bidirectional: bidirectional recurrent layers.
      initializer: recurrent initialisation preset (``"keras"`` default).
      dropout: dropout between stacked recurrent layers.
      recurrent_dropout: variational dropout on the recurrent state, one mask per sequence
        (see :class:`lstmjax.LSTM`).
      pooling: ``"last"`` (default, as Keras ``LSTM(128)``), ``"mean"`` or ``"max"``.
      output_dropout: dropout on the pooled features before the dense layer.
      fused, hoist_inputs, remat_chunk, matmul_dtype: the recurrent loop's speed and memory
        options; see :class:`lstmjax.LSTM` and ``tutorials/11_performance.md``.
      param_dtype: parameter dtype.
      trace_gates: sow every gate of every recurrent layer as ``intermediates`` (see
        :class:`lstmjax.LSTM`; :func:`lstmjax.explain.gate_traces` reads them).
      check_inputs: under ``jax.jit``, check token ids and lengths with ``checkify`` (run the
        model through :func:`lstmjax.nn.checks.checked`). Without it a token id outside
        ``[0, vocab_size)`` (negative ones too) gives NaN logits and lengths are clipped to
        ``[0, time]`` (:mod:`lstmjax.nn.checks`); eagerly, both are a ``ValueError`` either way.

    ``__call__(token_ids <int32>[batch, time], lengths <int32>[batch] | None, *, deterministic=True)``
    returns ``<float32>[batch, num_classes]`` logits. Without ``lengths`` they are computed as
    the number of non-PAD ids, which is right only for right padding (``[ids..., 0, 0]``):
    with Keras-style front padding (``pad_sequences``' default ``padding="pre"``), pass
    ``lengths`` or pad on the right. Dropout, when on, needs ``rngs={"dropout": key}``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = TextClassifier(vocab_size=100, num_classes=2, embed_dim=16, hidden_size=16)
      >>> ids = jnp.array([[5, 7, 9, 0], [3, 0, 0, 0]], dtype=jnp.int32)
      >>> variables = model.init(jax.random.key(0), ids)
      >>> model.apply(variables, ids).shape
      (2, 2)
      >>> sorted(variables["params"])
      ['dense', 'embedding', 'recurrent']
    """

    vocab_size: int
    num_classes: int
    # the embedding
    embed_dim: int = 128
    embed_dropout: float = 0.0
    # the recurrent stack
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    initializer: cells.InitPreset = "keras"
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    # pooling and the dense layer
    pooling: Pooling = "last"
    output_dropout: float = 0.0
    # the time loop's speed and memory, the parameters' dtype, gate traces
    fused: bool = True
    hoist_inputs: bool | None = None
    remat_chunk: int | None = None
    matmul_dtype: Any = None
    param_dtype: Any = jnp.float32
    trace_gates: bool = False
    check_inputs: bool = False

    @property
    def uses_dropout(self) -> bool:
        """Whether any dropout rate is set (a training step then draws dropout keys per example)."""
        return any(rate > 0 for rate in (self.dropout, self.embed_dropout, self.output_dropout,
                                         self.recurrent_dropout))

    def setup(self):
        self._check_options()
        self.embedding = nn.Embed(
            self.vocab_size, self.embed_dim, param_dtype=self.param_dtype,
            embedding_init=_keras_embedding_init,
        )
        self.recurrent = self._recurrent_stack()
        self.dense = nn.Dense(self.num_classes, param_dtype=self.param_dtype)
        self.embed_drop = nn.Dropout(self.embed_dropout)
        self.output_drop = nn.Dropout(self.output_dropout)

    def _check_options(self) -> None:
        if self.cell not in ("lstm", "gru", "rnn"):
            raise ValueError(f"cell must be 'lstm', 'gru' or 'rnn'; got {self.cell!r}")
        if self.pooling not in ("last", "mean", "max"):
            raise ValueError(f"pooling must be 'last', 'mean' or 'max'; got {self.pooling!r}")

    def _recurrent_stack(self, **module_args):
        """The recurrent layer these attributes describe (a Linen module; the NNX twin builds its own from it,
        unbound: ``parent=None``)."""
        stack = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}[self.cell]
        return stack(
            self.hidden_size, num_layers=self.num_layers, bidirectional=self.bidirectional,
            dropout=self.dropout, initializer=self.initializer, hoist_inputs=self.hoist_inputs,
            param_dtype=self.param_dtype, recurrent_dropout=self.recurrent_dropout,
            fused=self.fused, remat_chunk=self.remat_chunk, matmul_dtype=self.matmul_dtype,
            trace_gates=self.trace_gates, check_inputs=self.check_inputs, **module_args,
        )

    def _features(self, outputs: Array, final, lengths: Array) -> Array:
        """The recurrent stack's outputs and final states → pooled ``<float>[batch, directions*hidden]``."""
        if self.pooling == "last":
            h_n = final[0] if self.cell == "lstm" else final  # (L*D, B, H)
            directions = 2 if self.bidirectional else 1
            return pool(outputs, lengths, "last", final_h=h_n[-directions:])
        return pool(outputs, lengths, self.pooling)

    def embed(self, token_ids: Array) -> Array:
        """Token ids ``<int32>[batch, time]`` → embeddings ``<float>[batch, time, embed_dim]``.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> model = TextClassifier(vocab_size=10, num_classes=2, embed_dim=4, hidden_size=4)
          >>> ids = jnp.ones((1, 3), jnp.int32)
          >>> variables = model.init(jax.random.key(0), ids)
          >>> model.apply(variables, ids, method=model.embed).shape
          (1, 3, 4)
        """
        if not jnp.issubdtype(token_ids.dtype, jnp.integer):
            raise TypeError(f"token_ids must be integers; got dtype {token_ids.dtype}")
        return self.embedding(check_token_ids(token_ids, self.vocab_size, traced_check=self.check_inputs))

    def logits_from_embeddings(self, embedded: Array, lengths: Array, *, deterministic: bool = True) -> Array:
        """Embeddings ``<float>[batch, time, embed_dim]`` and ``lengths <int>[batch]`` → logits.

        The part of the model after the embedding lookup, separately callable so that
        attributions can differentiate with respect to the embeddings.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> model = TextClassifier(vocab_size=10, num_classes=3, embed_dim=4, hidden_size=4)
          >>> ids = jnp.ones((2, 3), jnp.int32)
          >>> variables = model.init(jax.random.key(0), ids)
          >>> e = model.apply(variables, ids, method=model.embed)
          >>> logits = model.apply(variables, e, jnp.array([3, 1]), method=model.logits_from_embeddings)
          >>> bool(jnp.allclose(logits, model.apply(variables, ids, jnp.array([3, 1]))))
          True
        """
        x = self.embed_drop(embedded, deterministic=deterministic)
        outputs, final = self.recurrent(x, lengths, deterministic=deterministic)
        features = self.output_drop(self._features(outputs, final, lengths), deterministic=deterministic)
        return self.dense(features)  # (B, num_classes)

    def __call__(self, token_ids: Array, lengths: Array | None = None, *, deterministic: bool = True) -> Array:
        lengths = token_lengths(token_ids, lengths)
        return self.logits_from_embeddings(self.embed(token_ids), lengths, deterministic=deterministic)

    def stream(self, token_ids: Array, lengths: Array | None = None, state: dict[str, Any] | None = None):
        """One chunk of long texts: the logits after it, and the state that carries the reading on.

        An LSTM (or GRU, simple RNN) reads left to right with a fixed-size state, so a text can
        come in chunks: the recurrent carry and the pooling's running sums move from one chunk
        to the next, and the logits after the last chunk equal those of the whole text (to
        float rounding), however it was cut. A Transformer cannot do this: its last token
        attends to every earlier one, so it must keep them all. A bidirectional model cannot
        either: its backward direction starts at the end.

        Args:
          token_ids: ``<int32>[batch, time]``, this chunk (``time`` may be 0).
          lengths: ``<int32>[batch]`` valid tokens of each row of the chunk, or ``None`` (non-PAD).
          state: what the previous chunk returned, or ``None`` at the start of the texts.

        Returns:
          ``(logits <float32>[batch, num_classes], state)``; ``state`` is a dict of arrays:
          ``carry`` (the recurrent stack's final states, as its ``initial_state``), ``sum`` and
          ``max`` ``<float>[batch, hidden]`` and ``count`` ``<int32>[batch]`` (for the pooling).

        Example:
          >>> import jax, jax.numpy as jnp
          >>> model = TextClassifier(vocab_size=20, num_classes=2, embed_dim=4, hidden_size=4, pooling="mean")
          >>> ids = jnp.array([[3, 4, 5, 6, 7]], jnp.int32)
          >>> variables = model.init(jax.random.key(0), ids)
          >>> _, state = model.apply(variables, ids[:, :2], None, None, method="stream")
          >>> logits, state = model.apply(variables, ids[:, 2:], None, state, method="stream")
          >>> bool(jnp.allclose(logits, model.apply(variables, ids), atol=1e-6)), state["count"].tolist()
          (True, [5])
        """
        if self.bidirectional:
            raise ValueError("stream needs a unidirectional model: a bidirectional one reads each text from its end too")
        lengths = token_lengths(token_ids, lengths)
        if state is None:
            state = self._stream_start(token_ids.shape[0])
        if token_ids.shape[1] > 0:  # an empty chunk leaves the state as it is
            outputs, carry = self.recurrent(self.embed(token_ids), lengths, initial_state=state["carry"])
            valid = length_mask(lengths, token_ids.shape[1])[..., None]  # (B, T, 1)
            state = {"carry": carry, "sum": state["sum"] + jnp.sum(jnp.where(valid, outputs, 0.0), axis=1),
                     "max": jnp.maximum(state["max"], jnp.max(jnp.where(valid, outputs, -jnp.inf), axis=1)),
                     "count": state["count"] + lengths}
        return self.dense(self._stream_features(state)), state

    def _stream_start(self, batch: int) -> dict[str, Any]:
        """The state before the first chunk: zero carries, empty pooling."""
        zeros = jnp.zeros((self.num_layers, batch, self.hidden_size), self.param_dtype)  # [L, B, H]
        return {"carry": (zeros, zeros) if self.cell == "lstm" else zeros, "sum": zeros[0],
                "max": jnp.full_like(zeros[0], -jnp.inf), "count": jnp.zeros((batch,), jnp.int32)}

    def _stream_features(self, state: dict[str, Any]) -> Array:
        """The pooled ``<float>[batch, hidden]`` of everything read so far (as :func:`pool` on the whole text)."""
        if self.pooling == "last":
            return (state["carry"][0] if self.cell == "lstm" else state["carry"])[-1]  # the top layer's h
        if self.pooling == "mean":
            return state["sum"] / jnp.maximum(state["count"], 1).astype(state["sum"].dtype)[:, None]
        return jnp.where((state["count"] > 0)[:, None], state["max"], jnp.zeros_like(state["max"]))

    def predict_proba(self, token_ids: Array, lengths: Array | None = None) -> Array:
        """Class probabilities ``<float32>[batch, num_classes]`` (softmax of the logits).

        Example:
          >>> import jax, jax.numpy as jnp
          >>> gru = TextClassifier(vocab_size=10, num_classes=4, cell="gru", embed_dim=4, hidden_size=4)
          >>> p = gru.apply(gru.init(jax.random.key(0), jnp.ones((1, 2), jnp.int32)), jnp.array([[3, 0]], jnp.int32),
          ...               method=gru.predict_proba)
          >>> p.shape, bool(jnp.allclose(p.sum(-1), 1.0))
          ((1, 4), True)
        """
        return jax.nn.softmax(self(token_ids, lengths))

"""The text CNN of the document's §2.2 (Kim 2014): Embedding → parallel 1-D convolutions → max over time → Dense.

Each convolution of width ``w`` slides over the embeddings and gives one feature per window of
``w`` consecutive tokens; ReLU, then the largest value over the text's windows is the feature the
text keeps ("max-over-time pooling"): the strongest n-gram detector response, wherever it is.

Padding never wins the max: a text of length ``ℓ`` has the ``ℓ - w + 1`` windows that lie inside
it, and a text shorter than ``w`` (but not empty) has one, its tokens followed by zero vectors (as
Kim's zero padding); an empty text pools to zeros. The result does not depend on how much padding
follows a text. In PyTorch terms one branch is ``Conv1d(embed_dim, filters, w)`` on the
``(batch, embed_dim, time)`` transpose of the embeddings, ReLU, and a max over the valid windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lstmjax.nn.checks import check_lengths, check_token_ids
from lstmjax.nn.classifier import _keras_embedding_init, pool, token_lengths
from lstmjax.nn.scan import length_mask

Array = jax.Array

__all__ = ["TextCNN", "window_counts"]


def window_counts(lengths: Array, width: int) -> Array:
    """The number of width-``width`` windows max-over-time pooling looks at, per text.

    ``max(length - width + 1, 1)`` for a non-empty text (one zero-padded window when it is
    shorter than ``width``), 0 for an empty one.

    Args:
      lengths: ``<int>[batch]``.
      width: the convolution's width, >= 1.

    Returns:
      ``<int32>[batch]``.

    Example:
      >>> import jax.numpy as jnp
      >>> window_counts(jnp.array([5, 2, 1, 0]), 3).tolist()
      [3, 1, 1, 0]
    """
    if width < 1:
        raise ValueError(f"width must be >= 1; got {width}")
    lengths = jnp.asarray(lengths, jnp.int32)
    return jnp.where(lengths > 0, jnp.maximum(lengths - (width - 1), 1), 0)


class TextCNN(nn.Module):
    """Embedding → one ``nn.Conv`` per width, ReLU, masked max over time → concatenate → Dense to logits.

    Attributes:
      vocab_size: number of token ids (PAD = 0 included).
      num_classes: number of labels.
      embed_dim: embedding size.
      embed_dropout: dropout on the embeddings.
      widths: the convolutions' widths in tokens (Kim: 3, 4, 5).
      filters: feature maps per width (Kim: 100).
      output_dropout: dropout on the pooled features before the dense layer (Kim: 0.5).
      param_dtype: parameter dtype.
      check_inputs: under ``jax.jit``, check token ids with ``checkify`` (see :mod:`lstmjax.nn.checks`).

    ``__call__(token_ids <int32>[batch, time], lengths <int32>[batch] | None, *, deterministic=True)``
    returns ``<float32>[batch, num_classes]`` logits; without ``lengths``, the non-PAD ids are
    counted (right padding). The parameters are ``embedding``, ``conv_0``, ``conv_1``, ... (one per
    width, kernels ``[width, embed_dim, filters]``) and ``dense``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = TextCNN(vocab_size=100, num_classes=2, embed_dim=8, widths=(2, 3), filters=4)
      >>> ids = jnp.array([[5, 7, 9, 0], [3, 0, 0, 0]], dtype=jnp.int32)
      >>> variables = model.init(jax.random.key(0), ids)
      >>> model.apply(variables, ids).shape
      (2, 2)
      >>> sorted(variables["params"]), variables["params"]["conv_1"]["kernel"].shape
      (['conv_0', 'conv_1', 'dense', 'embedding'], (3, 8, 4))
    """

    vocab_size: int
    num_classes: int
    embed_dim: int = 128
    embed_dropout: float = 0.0
    widths: Sequence[int] = (3, 4, 5)
    filters: int = 100
    output_dropout: float = 0.0
    param_dtype: Any = jnp.float32
    check_inputs: bool = False

    @property
    def uses_dropout(self) -> bool:
        """Whether any dropout rate is set (a training step then draws dropout keys per example)."""
        return self.embed_dropout > 0 or self.output_dropout > 0

    def setup(self):
        widths = tuple(self.widths)
        if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths must be one or more integers >= 1; got {self.widths!r}")
        if self.filters < 1:
            raise ValueError(f"filters must be >= 1; got {self.filters}")
        self.embedding = nn.Embed(self.vocab_size, self.embed_dim, param_dtype=self.param_dtype,
                                  embedding_init=_keras_embedding_init)
        # Right padding of width - 1 zeros: one output per position, window t covering tokens t .. t + w - 1.
        self.convs = [nn.Conv(self.filters, kernel_size=(w,), padding=((0, w - 1),), param_dtype=self.param_dtype,
                              name=f"conv_{i}") for i, w in enumerate(widths)]
        self.dense = nn.Dense(self.num_classes, param_dtype=self.param_dtype)
        self.embed_drop = nn.Dropout(self.embed_dropout)
        self.output_drop = nn.Dropout(self.output_dropout)

    def embed(self, token_ids: Array) -> Array:
        """Token ids ``<int32>[batch, time]`` → embeddings ``<float>[batch, time, embed_dim]``.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> model = TextCNN(vocab_size=10, num_classes=2, embed_dim=4, widths=(2,), filters=3)
          >>> ids = jnp.ones((1, 3), jnp.int32)
          >>> model.apply(model.init(jax.random.key(0), ids), ids, method=model.embed).shape
          (1, 3, 4)
        """
        if not jnp.issubdtype(token_ids.dtype, jnp.integer):
            raise TypeError(f"token_ids must be integers; got dtype {token_ids.dtype}")
        return self.embedding(check_token_ids(token_ids, self.vocab_size, traced_check=self.check_inputs))

    def conv_features(self, embedded: Array, lengths: Array) -> Array:
        """Embeddings ``<float>[batch, time, embed_dim]`` → pooled ``<float>[batch, len(widths) * filters]``.

        Each width's ReLU feature maps, max-pooled over the text's windows (:func:`window_counts`),
        the widths side by side in the order of ``widths``.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> model = TextCNN(vocab_size=10, num_classes=2, embed_dim=4, widths=(2, 3), filters=5)
          >>> ids = jnp.ones((2, 4), jnp.int32)
          >>> variables = model.init(jax.random.key(0), ids)
          >>> e = model.apply(variables, ids, method=model.embed)
          >>> model.apply(variables, e, jnp.array([4, 1]), method=model.conv_features).shape
          (2, 10)
        """
        time = embedded.shape[1]
        x = jnp.where(length_mask(lengths, time)[..., None], embedded, 0.0)  # (B, T, E), zeros after each text
        pooled = []
        for conv, width in zip(self.convs, tuple(self.widths)):
            maps = nn.relu(conv(x))  # (B, T, F): window t covers tokens t .. t + width - 1
            pooled.append(pool(maps, window_counts(lengths, width), "max"))  # (B, F)
        return jnp.concatenate(pooled, axis=-1)  # (B, len(widths) * F)

    def logits_from_embeddings(self, embedded: Array, lengths: Array, *, deterministic: bool = True) -> Array:
        """Embeddings ``<float>[batch, time, embed_dim]`` and ``lengths <int>[batch]`` → logits ``<float32>[batch, num_classes]``.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> model = TextCNN(vocab_size=10, num_classes=3, embed_dim=4, widths=(2,), filters=3)
          >>> ids = jnp.ones((2, 3), jnp.int32)
          >>> variables = model.init(jax.random.key(0), ids)
          >>> e = model.apply(variables, ids, method=model.embed)
          >>> logits = model.apply(variables, e, jnp.array([3, 1]), method=model.logits_from_embeddings)
          >>> bool(jnp.allclose(logits, model.apply(variables, ids, jnp.array([3, 1]))))
          True
        """
        lengths = check_lengths(lengths, embedded.shape[1], traced_check=self.check_inputs)
        x = self.embed_drop(embedded, deterministic=deterministic)
        features = self.output_drop(self.conv_features(x, lengths), deterministic=deterministic)
        return self.dense(features)  # (B, num_classes)

    def __call__(self, token_ids: Array, lengths: Array | None = None, *, deterministic: bool = True) -> Array:
        lengths = token_lengths(token_ids, lengths)
        return self.logits_from_embeddings(self.embed(token_ids), lengths, deterministic=deterministic)

    def predict_proba(self, token_ids: Array, lengths: Array | None = None) -> Array:
        """Class probabilities ``<float32>[batch, num_classes]`` (softmax of the logits).

        Example:
          >>> import jax, jax.numpy as jnp
          >>> cnn = TextCNN(vocab_size=10, num_classes=4, embed_dim=4, widths=(2,), filters=3)
          >>> p = cnn.apply(cnn.init(jax.random.key(0), jnp.ones((1, 2), jnp.int32)), jnp.array([[3, 0]], jnp.int32),
          ...               method=cnn.predict_proba)
          >>> p.shape, bool(jnp.allclose(p.sum(-1), 1.0))
          ((1, 4), True)
        """
        return jax.nn.softmax(self(token_ids, lengths))

"""Pretraining heads (the document's §6): a classifier's encoder with a head over the vocabulary.

Self-supervised pretraining trains the part of a classifier that reads text (the *encoder*) on
unlabelled text, with a head that predicts tokens; fine-tuning then keeps the encoder and puts a
new classification head on it (:func:`lstmjax.training.pretrain.init_encoder`). The encoders are
the classifiers' own modules, held as the attribute ``encoder``, so their parameters have the
classifier's names and shapes under ``params["encoder"]``:

* :class:`NextTokenModel`: a :class:`~lstmjax.nn.TextClassifier`'s embedding and recurrent stack
  as a language model: the stack's output at step ``t`` → ``Dense(vocab)`` → the logits of token
  ``t + 1`` (a left-to-right model: no bidirectional stack, which would see the answer);
* :class:`MaskedTokenModel`: a :class:`~lstmjax.nn.TransformerClassifier`'s embeddings and blocks
  with BERT's masked-token head: each position's final state → ``Dense(vocab)``.

**[MASK] is a learned vector, not a token id.** BERT gives [MASK] a row of the embedding table;
here the model holds it as one parameter ``mask_embedding <float>[embed_dim]`` and puts it in
place of the token embedding wherever ``masked`` is True, which is the same thing (a row of the
table is a learned vector) without an id: vocabularies keep PAD = 0, UNK = 1 and their saved ids,
and the fine-tuned classifier's embedding table has exactly the pretrained one's shape.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from lstmjax.nn.classifier import TextClassifier, token_lengths
from lstmjax.nn.transformer import TransformerClassifier

Array = jax.Array

__all__ = ["MaskedTokenModel", "NextTokenModel"]


class NextTokenModel(nn.Module):
    """A recurrent classifier's encoder as a language model: embedding → recurrent stack → ``Dense(vocab)``.

    Attributes:
      encoder: the :class:`~lstmjax.nn.TextClassifier` whose ``embedding`` and ``recurrent``
        stack are trained (its pooling and ``dense`` are not used; ``num_classes`` is ignored).
        It must be unidirectional.

    ``__call__(token_ids <int32>[batch, time], lengths <int32>[batch] | None, *, deterministic=True)``
    returns ``<float32>[batch, time, vocab_size]``: at step ``t``, the logits of the token at
    ``t + 1`` given the tokens up to ``t`` (:func:`lstmjax.training.pretrain.next_token_loss`).
    Parameters: ``encoder/embedding``, ``encoder/recurrent``, ``lm_head``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> lm = NextTokenModel(TextClassifier(vocab_size=30, num_classes=2, embed_dim=8, hidden_size=8))
      >>> ids = jnp.array([[5, 7, 9, 0], [3, 4, 0, 0]], jnp.int32)
      >>> variables = lm.init(jax.random.key(0), ids)
      >>> lm.apply(variables, ids).shape
      (2, 4, 30)
      >>> sorted(variables["params"]), sorted(variables["params"]["encoder"])
      (['encoder', 'lm_head'], ['embedding', 'recurrent'])
    """

    encoder: TextClassifier

    @nn.compact
    def __call__(self, token_ids: Array, lengths: Array | None = None, *, deterministic: bool = True) -> Array:
        if self.encoder.bidirectional:
            raise ValueError("a next-token language model reads left to right: its encoder must not be "
                             "bidirectional (the backward direction would see the token to predict)")
        lengths = token_lengths(token_ids, lengths)
        x = self.encoder.embed_drop(self.encoder.embed(token_ids), deterministic=deterministic)  # (B, T, E)
        outputs, _ = self.encoder.recurrent(x, lengths, deterministic=deterministic)  # (B, T, H)
        outputs = self.encoder.output_drop(outputs, deterministic=deterministic)
        return nn.Dense(self.encoder.vocab_size, param_dtype=self.encoder.param_dtype, name="lm_head")(outputs)


class MaskedTokenModel(nn.Module):
    """A Transformer classifier's encoder with BERT's masked-token head: final states → ``Dense(vocab)``.

    Attributes:
      encoder: the :class:`~lstmjax.nn.TransformerClassifier` whose embeddings, blocks and final
        LayerNorm are trained (its ``dense`` is not used; ``num_classes`` is ignored). With
        ``"cls"`` pooling the [CLS] vector is prepended as in the classifier and its output
        dropped here: every output position is a token's.

    ``__call__(token_ids <int32>[batch, time], lengths <int32>[batch] | None, masked <bool>[batch, time]
    | None, *, deterministic=True)`` returns ``<float32>[batch, time, vocab_size]``, the logits of
    the original token at each position. Where ``masked`` is True the token's embedding is replaced
    by the learned ``mask_embedding <float>[embed_dim]`` (the [MASK] token; see the module doc).
    Parameters: ``encoder/...`` (the classifier's names), ``mask_embedding``, ``mlm_head``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> encoder = TransformerClassifier(30, 2, embed_dim=8, max_len=8, num_heads=2, ff_size=16)
      >>> mlm = MaskedTokenModel(encoder)
      >>> ids = jnp.array([[5, 7, 9, 0], [3, 4, 0, 0]], jnp.int32)
      >>> variables = mlm.init(jax.random.key(0), ids)
      >>> masked = jnp.array([[False, True, False, False], [True, False, False, False]])
      >>> mlm.apply(variables, ids, None, masked).shape
      (2, 4, 30)
      >>> sorted(variables["params"])
      ['encoder', 'mask_embedding', 'mlm_head']
    """

    encoder: TransformerClassifier

    @nn.compact
    def __call__(self, token_ids: Array, lengths: Array | None = None, masked: Array | None = None, *,
                 deterministic: bool = True) -> Array:
        lengths = token_lengths(token_ids, lengths)
        mask_vector = self.param("mask_embedding", nn.initializers.normal(0.02), (self.encoder.embed_dim,),
                                 self.encoder.param_dtype)
        embedded = self.encoder.embed(token_ids)  # (B, T, E)
        if masked is not None:
            embedded = jnp.where(masked[..., None], mask_vector.astype(embedded.dtype), embedded)
        states, _ = self.encoder.encode(embedded, lengths, deterministic=deterministic)  # (B, T', E)
        if self.encoder.pooling == "cls":
            states = states[:, 1:]  # (B, T, E): drop the [CLS] position
        return nn.Dense(self.encoder.vocab_size, param_dtype=self.encoder.param_dtype, name="mlm_head")(states)

"""Self-supervised pretraining and the hand-over to fine-tuning (the document's §6, BERT's recipe).

Two objectives on unlabelled text, each a pure loss and a pure step:

* **next-token prediction** (a recurrent language model, :class:`~lstmjax.nn.pretraining.NextTokenModel`):
  the output at step ``t`` predicts token ``t + 1``; the loss is the mean cross-entropy over each
  text's ``length - 1`` pairs (:func:`next_token_loss`, :func:`next_token_step`);
* **masked-token prediction** (a Transformer, :class:`~lstmjax.nn.pretraining.MaskedTokenModel`):
  :func:`mask_tokens` chooses 15 % of each text's tokens (never padding); of those, 80 % are read
  as [MASK], 10 % as a random token, 10 % as themselves, and the model predicts the originals
  (:func:`masked_token_loss`, :func:`masked_token_step`).

Steps are ``step(state, batch, rng) -> (state, metrics)`` on the :class:`~lstmjax.training.TrainState`
of :func:`~lstmjax.training.create_train_state` (Optax Adam by default): pure, jitted where they
are used, the masking and dropout keys folded from ``rng``. Metrics are sums (``loss_sum``,
``correct``, ``count``: predicted tokens), as :func:`~lstmjax.training.train_step`'s.

Fine-tuning starts from a classifier's fresh parameters and :func:`init_encoder` puts the
pretrained encoder's arrays in (embedding and recurrent stack, or embeddings and Transformer
blocks); what the encoder lacks (the classification ``dense``, attention pooling) stays new. A
pretrained encoder that does not fit (another model type, other sizes, another vocabulary size)
is an :class:`EncoderMismatch` naming every parameter that differs.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from lstmjax.nn.scan import length_mask
from lstmjax.training.state import Batch, TrainState

Array = jax.Array

__all__ = ["MASK_RATE", "EncoderMismatch", "init_encoder", "mask_tokens", "masked_token_loss",
           "masked_token_step", "next_token_loss", "next_token_step"]

MASK_RATE = 0.15
"""BERT's share of each text's tokens chosen for prediction."""
FIRST_WORD_ID = 2
"""Random replacements are drawn from ``[2, vocab_size)``: never PAD (0) or UNK (1)."""


class EncoderMismatch(ValueError):
    """A pretrained encoder does not fit the classifier it should initialise; the message names each difference."""


def _token_cross_entropy(logits: Array, targets: Array, weights: Array) -> tuple[Array, Array, Array]:
    """Σ cross-entropy, Σ correct and the count over the positions where ``weights`` is True."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)  # (B, T)
    correct = (jnp.argmax(logits, -1) == targets) & weights
    return jnp.sum(jnp.where(weights, ce, 0.0)), jnp.sum(correct, dtype=jnp.int32), jnp.sum(weights, dtype=jnp.int32)


def next_token_loss(logits: Array, token_ids: Array, lengths: Array) -> tuple[Array, dict[str, Array]]:
    """The language model's loss: the mean cross-entropy of token ``t + 1`` given the output at ``t``.

    Only pairs inside each text count (``lengths[b] - 1`` of them): padding is never a target,
    and the last token predicts nothing.

    Args:
      logits: ``<float>[batch, time, vocab]``, the model's outputs.
      token_ids: ``<int32>[batch, time]``, right-padded.
      lengths: ``<int32>[batch]``.

    Returns:
      ``(mean_loss <float32>[], {"loss_sum", "correct", "count"})`` (sums over the predicted tokens).

    Example:
      >>> import jax.numpy as jnp
      >>> logits = jnp.zeros((1, 3, 4))   # uniform over 4 tokens: the loss is log 4
      >>> loss, sums = next_token_loss(logits, jnp.array([[2, 3, 0]], jnp.int32), jnp.array([2], jnp.int32))
      >>> round(float(loss), 4), int(sums["count"])
      (1.3863, 1)
    """
    targets = token_ids[:, 1:]  # (B, T-1): token t+1 ...
    pairs = length_mask(jnp.maximum(lengths - 1, 0), targets.shape[1])  # (B, T-1): ... inside the text
    loss_sum, correct, count = _token_cross_entropy(logits[:, :-1], targets, pairs)
    return loss_sum / jnp.maximum(count, 1).astype(jnp.float32), {"loss_sum": loss_sum, "correct": correct,
                                                                  "count": count}


def masked_token_loss(logits: Array, targets: Array, chosen: Array) -> tuple[Array, dict[str, Array]]:
    """BERT's loss: the mean cross-entropy of the original token at the chosen positions only.

    Args:
      logits: ``<float>[batch, time, vocab]``.
      targets: ``<int32>[batch, time]``, the original (uncorrupted) ids.
      chosen: ``<bool>[batch, time]``, the positions to predict (:func:`mask_tokens`).

    Returns:
      ``(mean_loss <float32>[], {"loss_sum", "correct", "count"})``.

    Example:
      >>> import jax.numpy as jnp
      >>> loss, sums = masked_token_loss(jnp.zeros((1, 2, 8)), jnp.array([[3, 4]], jnp.int32),
      ...                                jnp.array([[True, False]]))
      >>> round(float(loss), 4), int(sums["count"])   # log 8, one chosen position
      (2.0794, 1)
    """
    loss_sum, correct, count = _token_cross_entropy(logits, targets, chosen)
    return loss_sum / jnp.maximum(count, 1).astype(jnp.float32), {"loss_sum": loss_sum, "correct": correct,
                                                                  "count": count}


def mask_tokens(key: Array, token_ids: Array, lengths: Array, vocab_size: int, *,
                rate: float = MASK_RATE) -> dict[str, Array]:
    """BERT's corruption: choose ``rate`` of the valid tokens; of those 80 % [MASK], 10 % random, 10 % kept.

    Each valid token is chosen independently with probability ``rate`` (padding never is); a
    chosen one is read as [MASK] with probability 0.8, as a random id in ``[2, vocab_size)``
    (never PAD or UNK) with 0.1, and as itself with 0.1. [MASK] is not an id: ``masked`` says
    where :class:`~lstmjax.nn.pretraining.MaskedTokenModel` puts its learned [MASK] vector.

    Args:
      key: a ``jax.random.key``.
      token_ids: ``<int32>[batch, time]``, right-padded.
      lengths: ``<int32>[batch]``.
      vocab_size: the vocabulary's size (random replacements lie below it).
      rate: the share of tokens chosen.

    Returns:
      ``{"token_ids" <int32>[batch, time]`` (the inputs, with the random replacements),
      ``"masked" <bool>[batch, time]`` (read as [MASK]), ``"targets" <int32>[batch, time]`` (the
      originals), ``"chosen" <bool>[batch, time]`` (the positions the loss counts)``}``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> ids = jnp.full((4, 100), 7, jnp.int32)
      >>> out = mask_tokens(jax.random.key(0), ids, jnp.array([100, 100, 100, 50], jnp.int32), 50)
      >>> bool(out["chosen"][3, 50:].any()), bool((out["masked"] <= out["chosen"]).all())
      (False, True)
    """
    k_choose, k_how, k_random = jax.random.split(key, 3)
    valid = length_mask(lengths, token_ids.shape[1])  # (B, T)
    chosen = valid & jax.random.bernoulli(k_choose, rate, token_ids.shape)
    how = jax.random.uniform(k_how, token_ids.shape)
    masked = chosen & (how < 0.8)
    replaced = chosen & (how >= 0.8) & (how < 0.9)
    random_ids = jax.random.randint(k_random, token_ids.shape, FIRST_WORD_ID, max(vocab_size, FIRST_WORD_ID + 1),
                                    dtype=token_ids.dtype)
    return {"token_ids": jnp.where(replaced, random_ids, token_ids), "masked": masked, "targets": token_ids,
            "chosen": chosen}


def _apply_step(state: TrainState, loss_fn) -> tuple[TrainState, dict[str, Array]]:
    """Differentiate ``loss_fn(params) -> (mean_loss, sums)`` and update ``state``."""
    (_, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), sums


def next_token_step(state: TrainState, batch: Batch, rng: Array) -> tuple[TrainState, dict[str, Array]]:
    """One optimisation step of a :class:`~lstmjax.nn.pretraining.NextTokenModel` on a batch of texts.

    Args:
      state: its :class:`~lstmjax.training.TrainState` (``apply_fn`` the model's ``apply``).
      batch: ``token_ids <int32>[batch, time]``, ``lengths <int32>[batch]`` (labels, if any, ignored).
      rng: this step's key (dropout).

    Returns:
      ``(new_state, {"loss_sum", "correct", "count"})``, sums over the predicted tokens.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier, create_train_state, make_optimizer
      >>> from lstmjax.nn.pretraining import NextTokenModel
      >>> lm = NextTokenModel(TextClassifier(20, 2, embed_dim=8, hidden_size=8))
      >>> state = create_train_state(lm, jax.random.key(0), make_optimizer("adam", 1e-2))
      >>> batch = {"token_ids": jnp.array([[3, 4, 5, 0], [3, 4, 0, 0]], jnp.int32), "lengths": jnp.array([3, 2])}
      >>> state, first = jax.jit(next_token_step)(state, batch, jax.random.key(1))
      >>> int(first["count"]), int(state.step)   # 2 + 1 predicted tokens
      (3, 1)
    """

    def loss_fn(params):
        logits = state.apply_fn({"params": params}, batch["token_ids"], batch["lengths"], deterministic=False,
                                rngs={"dropout": rng})
        return next_token_loss(logits, batch["token_ids"], batch["lengths"])

    return _apply_step(state, loss_fn)


def masked_token_step(state: TrainState, batch: Batch, rng: Array, *, vocab_size: int,
                      rate: float = MASK_RATE) -> tuple[TrainState, dict[str, Array]]:
    """One optimisation step of a :class:`~lstmjax.nn.pretraining.MaskedTokenModel`: corrupt, predict, update.

    Args:
      state: its :class:`~lstmjax.training.TrainState`.
      batch: ``token_ids <int32>[batch, time]``, ``lengths <int32>[batch]``.
      rng: this step's key: the masking (:func:`mask_tokens`) and dropout keys are folded from it.
      vocab_size: the vocabulary's size; bind it with ``functools.partial`` before ``jax.jit``.
      rate: the share of tokens chosen.

    Returns:
      ``(new_state, {"loss_sum", "correct", "count"})``, sums over the chosen tokens.

    Example:
      >>> import functools, jax, jax.numpy as jnp
      >>> from lstmjax import TransformerClassifier, create_train_state, make_optimizer
      >>> from lstmjax.nn.pretraining import MaskedTokenModel
      >>> mlm = MaskedTokenModel(TransformerClassifier(20, 2, embed_dim=8, max_len=8, num_heads=2, ff_size=8))
      >>> state = create_train_state(mlm, jax.random.key(0), make_optimizer())
      >>> batch = {"token_ids": jnp.full((4, 8), 5, jnp.int32), "lengths": jnp.full((4,), 8, jnp.int32)}
      >>> step = jax.jit(functools.partial(masked_token_step, vocab_size=20))
      >>> state, sums = step(state, batch, jax.random.key(1))
      >>> int(state.step), 0 <= int(sums["count"]) <= 32
      (1, True)
    """
    corrupted = mask_tokens(jax.random.fold_in(rng, 0), batch["token_ids"], batch["lengths"], vocab_size, rate=rate)

    def loss_fn(params):
        logits = state.apply_fn({"params": params}, corrupted["token_ids"], batch["lengths"], corrupted["masked"],
                                deterministic=False, rngs={"dropout": jax.random.fold_in(rng, 1)})
        return masked_token_loss(logits, corrupted["targets"], corrupted["chosen"])

    return _apply_step(state, loss_fn)


def _flat(tree) -> dict[str, Any]:
    return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def init_encoder(params: dict[str, Any], pretrained: dict[str, Any]) -> dict[str, Any]:
    """A classifier's parameters with the pretrained encoder's put in; the rest (the head) as they were.

    Args:
      params: the classifier's (freshly initialised) parameters, e.g. ``{"embedding",
        "recurrent", "dense"}``.
      pretrained: a pretraining model's parameters (``{"encoder": ..., "lm_head"}``), or the
        encoder's alone; every encoder array must have a place of the same shape in ``params``.

    Returns:
      ``params`` with each of the encoder's top-level entries (``embedding``, ``recurrent``;
      ``embedding``, ``position``, ``cls``, ``blocks_<i>``, ``final_norm``) replaced by the
      pretrained arrays.

    Raises:
      EncoderMismatch: naming the parameters the classifier lacks (another model type) and those
        whose shapes differ (other sizes, another vocabulary), saved vs expected.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.nn.pretraining import NextTokenModel
      >>> clf = TextClassifier(20, 2, embed_dim=4, hidden_size=4)
      >>> ids = jnp.ones((1, 2), jnp.int32)
      >>> lm_params = NextTokenModel(clf).init(jax.random.key(1), ids)["params"]
      >>> params = init_encoder(clf.init(jax.random.key(0), ids)["params"], lm_params)
      >>> bool((params["embedding"]["embedding"] == lm_params["encoder"]["embedding"]["embedding"]).all())
      True
    """
    encoder = pretrained.get("encoder", pretrained)
    missing = sorted(k for k in encoder if k not in params)
    shared = [k for k in encoder if k in params]
    ours, theirs = _flat({k: params[k] for k in shared}), _flat({k: encoder[k] for k in shared})
    unmatched = sorted(set(ours) ^ set(theirs))
    shapes = [f"{path}: pretrained {tuple(jnp.shape(v))}, this model {tuple(jnp.shape(ours[path]))}"
              for path, v in theirs.items() if path in ours and jnp.shape(v) != jnp.shape(ours[path])]
    if missing or unmatched or shapes:
        parts = [f"the classifier has no {', '.join(missing)} (another model type?)"] if missing else []
        parts += [f"parameters only one side has: {', '.join(unmatched)} (other layers?)"] if unmatched else []
        parts += [f"shapes differ at {'; '.join(shapes)} (other sizes or another vocabulary?)"] if shapes else []
        raise EncoderMismatch("the pretrained encoder does not fit this model: " + "; ".join(parts))
    return {**params, **{k: jax.tree.map(jnp.asarray, encoder[k]) for k in shared}}

"""Ensembles: K models from K seeds, trained in one compiled program, predictions averaged.

An ensemble is one :class:`~lstmjax.training.TrainState` whose every leaf (params, optimizer state,
step, key) has a leading member axis ``K``: :func:`create_ensemble` is ``jax.vmap`` of
:func:`~lstmjax.training.create_train_state` over keys, and :func:`ensemble_train_step` is
``jax.vmap(train_step, in_axes=(0, None, 0))``: every member sees the same batch with its own
dropout key, in one program. :func:`ensemble_fit` is :func:`lstmjax.fit` with that step, and
:func:`ensemble_evaluate` is :func:`lstmjax.training.evaluate_sums` with the ensemble's eval step. Member ``k`` is exactly the model that ``create_train_state`` and
``train_step`` give with key ``keys[k]`` (to float rounding of the batched matmuls).

The ensemble predicts the mean of its members' softmax probabilities;
:func:`ensemble_evaluate` reports its metrics beside each member's.

The other way of training several models and aggregating their metrics, stratified k-fold
cross-validation, is in :mod:`lstmjax.training.crossval`.

Example:
  >>> import jax
  >>> from lstmjax import TextClassifier, make_optimizer
  >>> state = create_ensemble(TextClassifier(10, 2, embed_dim=4, hidden_size=4),
  ...                         jax.random.split(jax.random.key(0), 3), make_optimizer())
  >>> state.step.shape, state.params["dense"]["kernel"].shape
  ((3,), (3, 4, 2))
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from lstmjax.training.loop import evaluate_sums, fit
from lstmjax.training.metrics import classification_report, confusion_matrix
from lstmjax.training.placement import Placement
from lstmjax.training.state import Batch, TrainState, create_train_state
from lstmjax.training.steps import example_mask, step_key, train_step

__all__ = ["create_ensemble", "ensemble_evaluate", "ensemble_fit", "ensemble_logits",
           "ensemble_member", "ensemble_predict_proba", "ensemble_train_step", "member_keys"]


def create_ensemble(model: nn.Module, keys: jax.Array, tx: optax.GradientTransformation,
                    sample_batch: Batch | None = None) -> TrainState:
    """K independently initialised members as one :class:`TrainState` with a leading axis ``K``.

    Args:
      model: the (shared) model definition, e.g. :class:`lstmjax.TextClassifier`.
      keys: ``<key>[K]``, one per member (``jax.random.split(key, K)``).
      tx: the optimizer (shared definition; each member has its own state).
      sample_batch: as :func:`lstmjax.training.create_train_state`.

    Returns:
      A :class:`TrainState` whose leaves are the members' stacked: ``step <int32>[K]``,
      ``params[...] <float32>[K, ...]``.

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier, make_optimizer
      >>> keys = jax.random.split(jax.random.key(0), 2)
      >>> state = create_ensemble(TextClassifier(10, 2, embed_dim=4, hidden_size=4), keys, make_optimizer())
      >>> m1 = create_train_state(TextClassifier(10, 2, embed_dim=4, hidden_size=4), keys[1], make_optimizer())
      >>> bool((ensemble_member(state, 1).params["dense"]["kernel"] == m1.params["dense"]["kernel"]).all())
      True
    """
    if keys.ndim != 1:
        raise ValueError(f"keys must be <key>[K]; got shape {keys.shape}")
    # jitted: one compiled init for all members (op-by-op vmap dispatch is slower on a CPU)
    return jax.jit(jax.vmap(lambda key: create_train_state(model, key, tx, sample_batch)))(keys)


def ensemble_member(state: TrainState, k: int) -> TrainState:
    """Member ``k`` as an ordinary :class:`TrainState` (for ``evaluate``, ``Predictor``, checkpoints).

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier, make_optimizer
      >>> state = create_ensemble(TextClassifier(10, 2, embed_dim=4, hidden_size=4),
      ...                         jax.random.split(jax.random.key(0), 2), make_optimizer())
      >>> ensemble_member(state, 0).step.shape
      ()
    """
    return jax.tree.map(lambda leaf: leaf[k], state)


def member_keys(state: TrainState) -> jax.Array:
    """This step's dropout key for every member: ``fold_in(rng_k, step_k)``, as :func:`lstmjax.fit` draws.

    Returns:
      ``<key>[K]``.

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier, make_optimizer
      >>> state = create_ensemble(TextClassifier(10, 2, embed_dim=4, hidden_size=4),
      ...                         jax.random.split(jax.random.key(0), 3), make_optimizer())
      >>> member_keys(state).shape
      (3,)
    """
    return jax.vmap(step_key)(state)


def ensemble_train_step(state: TrainState, batch: Batch, rngs: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
    """:func:`lstmjax.training.train_step` for every member on the same batch: ``jax.vmap`` over members.

    Args:
      state: an ensemble state (leading axis ``K``).
      batch: one batch, shared by the members (as for ``train_step``).
      rngs: ``<key>[K]``, each member's dropout key (e.g. :func:`member_keys`).

    Returns:
      ``(new_state, metrics)``, metrics per member: ``loss_sum <float32>[K]``,
      ``correct <int32>[K]``, ``count <int32>[K]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier, make_optimizer
      >>> state = create_ensemble(TextClassifier(10, 2, embed_dim=4, hidden_size=4),
      ...                         jax.random.split(jax.random.key(0), 3), make_optimizer())
      >>> batch = {"token_ids": jnp.array([[3, 4], [5, 0]], jnp.int32), "lengths": jnp.array([2, 1], jnp.int32),
      ...          "labels": jnp.array([0, 1], jnp.int32)}
      >>> state, m = jax.jit(ensemble_train_step)(state, batch, member_keys(state))
      >>> state.step.tolist(), m["loss_sum"].shape
      ([1, 1, 1], (3,))
    """
    return jax.vmap(train_step, in_axes=(0, None, 0))(state, batch, rngs)


def ensemble_logits(state: TrainState, batch: Batch) -> jax.Array:
    """Every member's logits, dropout off.

    Args:
      state: an ensemble state.
      batch: ``token_ids <int32>[batch, time]``, ``lengths <int32>[batch]``.

    Returns:
      ``<float32>[K, batch, classes]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier, make_optimizer
      >>> state = create_ensemble(TextClassifier(10, 2, embed_dim=4, hidden_size=4),
      ...                         jax.random.split(jax.random.key(0), 3), make_optimizer())
      >>> batch = {"token_ids": jnp.array([[3, 4], [5, 0]], jnp.int32), "lengths": jnp.array([2, 1], jnp.int32)}
      >>> jax.jit(ensemble_logits)(state, batch).shape
      (3, 2, 2)
    """
    def one(params):
        return state.apply_fn({"params": params}, batch["token_ids"], batch["lengths"], deterministic=True)

    return jax.vmap(one)(state.params)  # (K, B, C)


def ensemble_predict_proba(state: TrainState, batch: Batch) -> jax.Array:
    """The ensemble's prediction: the mean over members of their softmax probabilities.

    Returns:
      ``<float32>[batch, classes]``, rows summing to 1.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier, make_optimizer
      >>> state = create_ensemble(TextClassifier(10, 3, embed_dim=4, hidden_size=4),
      ...                         jax.random.split(jax.random.key(0), 2), make_optimizer())
      >>> p = ensemble_predict_proba(state, {"token_ids": jnp.array([[3, 4]], jnp.int32),
      ...                                    "lengths": jnp.array([2], jnp.int32)})
      >>> p.shape, bool(jnp.allclose(p.sum(-1), 1.0))
      ((1, 3), True)
    """
    return jnp.mean(jax.nn.softmax(ensemble_logits(state, batch), axis=-1), axis=0)  # (B, C)


def _ensemble_eval_step(state: TrainState, batch: Batch, num_classes: int) -> dict[str, Any]:
    """Confusion matrices and loss sums for the ensemble (``[C, C]``) and each member (``[K, C, C]``)."""
    mask, labels = example_mask(batch), batch["labels"]
    log_probs = jax.nn.log_softmax(ensemble_logits(state, batch), axis=-1)  # (K, B, C)
    # log of the mean probability: logsumexp over members − log K
    mean_log_probs = jax.nn.logsumexp(log_probs, axis=0) - jnp.log(jnp.float32(log_probs.shape[0]))  # (B, C)

    def sums(lp):  # lp: (B, C) log-probabilities
        nll = -jnp.take_along_axis(lp, labels[:, None], axis=-1)[:, 0]  # (B,)
        predictions = jnp.argmax(lp, -1).astype(jnp.int32)
        return {"loss_sum": jnp.sum(jnp.where(mask, nll, 0.0)),
                "confusion": confusion_matrix(labels, predictions, num_classes, mask)}

    return {"ensemble": sums(mean_log_probs), "members": jax.vmap(sums)(log_probs)}


@functools.cache
def _ensemble_eval_fn(num_classes: int):
    """:func:`_ensemble_eval_step` for ``num_classes`` (one function per value: compiled once)."""
    return functools.partial(_ensemble_eval_step, num_classes=num_classes)


def _members_step(state: TrainState, batch: Batch):
    """Every member's :func:`~lstmjax.training.train_step` with its own key (fit's ``step``)."""
    return ensemble_train_step(state, batch, member_keys(state))


def _report(confusion, loss_sum, label_names) -> dict[str, Any]:
    report = classification_report(confusion, label_names)
    report["loss"] = float(loss_sum) / max(report["support"], 1)
    return report


def ensemble_evaluate(state: TrainState, dataset, *, batch_size: int | None = None, max_length: int | None = None,
                      label_names: Sequence[str] | None = None, num_classes: int | None = None,
                      parallel: Placement | None = None) -> dict[str, Any]:
    """The ensemble's metrics (mean-probability prediction) and each member's, over a whole split.

    Args:
      state: an ensemble state.
      dataset: an encoded split (``token_ids``, ``label``), as for :func:`lstmjax.evaluate`.
      batch_size, max_length, label_names, parallel: as :func:`lstmjax.evaluate`.
      num_classes: default ``len(label_names)`` or the model's number of logits.

    Returns:
      ``{"ensemble": report, "members": [report, ...]}``, each report as
      :func:`lstmjax.evaluate`'s (``loss`` is the mean negative log of the predicted
      probability of the true label; for the ensemble, of the averaged probability).

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier, make_optimizer
      >>> state = create_ensemble(TextClassifier(10, 2, embed_dim=4, hidden_size=4),
      ...                         jax.random.split(jax.random.key(0), 3), make_optimizer())
      >>> r = ensemble_evaluate(state, {"token_ids": [[2, 3], [4], [5, 6, 7]], "label": [0, 1, 1]}, batch_size=2)
      >>> len(r["members"]), r["ensemble"]["support"]
      (3, 3)
    """
    if num_classes is None and label_names is not None:
        num_classes = len(label_names)
    if num_classes is None:
        if "dense" not in state.params:
            raise ValueError("pass num_classes (the model has no 'dense' layer to read it from)")
        num_classes = int(state.params["dense"]["bias"].shape[-1])  # bias: (K, C)
    total = evaluate_sums(state, dataset, _ensemble_eval_fn(num_classes), batch_size=batch_size,
                          max_length=max_length, parallel=parallel)
    names = list(label_names) if label_names is not None else None
    return {
        "ensemble": _report(total["ensemble"]["confusion"], total["ensemble"]["loss_sum"], names),
        "members": [_report(c, l, names) for c, l in zip(total["members"]["confusion"], total["members"]["loss_sum"])],
    }


def ensemble_fit(state: TrainState, train_data, *, epochs: int, batch_size: int = 32, seed: int = 0,
                 max_length: int | None = None, **fit_kwargs) -> tuple[TrainState, dict[str, list]]:
    """:func:`lstmjax.fit` for every member on the same batches, in one jitted step.

    The batches are :func:`lstmjax.fit`'s (same ``seed``, shuffling and length buckets) and each
    member's dropout key is ``fold_in(rng_k, step_k)``, so member ``k`` ends where
    ``fit(ensemble_member(initial, k), train_data, ...)`` ends (to float rounding). Evaluate
    with :func:`ensemble_evaluate` (``fit``'s validation and early stopping read one model).

    Args:
      state: an ensemble state from :func:`create_ensemble`.
      train_data: the encoded training split (``token_ids``, ``label``).
      epochs, batch_size, seed, max_length: as :func:`lstmjax.fit`.
      **fit_kwargs: more :func:`lstmjax.fit` options (``callbacks``, ``parallel``, ``history``).

    Returns:
      ``(state, history)``; ``history["loss"]`` and ``history["accuracy"]`` are per-epoch lists
      of per-member lists ``[K]``.

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier, make_optimizer
      >>> state = create_ensemble(TextClassifier(10, 2, embed_dim=8, hidden_size=8),
      ...                         jax.random.split(jax.random.key(0), 2), make_optimizer("adam", 0.05))
      >>> data = {"token_ids": [[2, 3], [4, 5], [2, 2, 3], [4]] * 4, "label": [0, 1, 0, 1] * 4}
      >>> state, history = ensemble_fit(state, data, epochs=2, batch_size=4)
      >>> len(history["loss"]), len(history["loss"][0]), state.step.tolist()
      (2, 2, [8, 8])
    """
    return fit(state, train_data, epochs=epochs, batch_size=batch_size, seed=seed, max_length=max_length,
               step=_members_step, **fit_kwargs)

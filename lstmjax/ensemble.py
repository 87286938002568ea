"""Ensembles: K models from K seeds, trained in one compiled program, predictions averaged.

An ensemble is one :class:`~lstmjax.train.TrainState` whose every leaf (params, optimizer state,
step, key) has a leading member axis ``K``: :func:`create_ensemble` is ``jax.vmap`` of
:func:`~lstmjax.train.create_train_state` over keys, and :func:`ensemble_train_step` is
``jax.vmap(train_step, in_axes=(0, None, 0))``: every member sees the same batch with its own
dropout key, in one program. Member ``k`` is exactly the model that ``create_train_state`` and
``train_step`` give with key ``keys[k]`` (to float rounding of the batched matmuls).

The ensemble predicts the mean of its members' softmax probabilities;
:func:`ensemble_evaluate` reports its metrics beside each member's.

Also here, as the other way of training several models and aggregating their metrics:
stratified k-fold cross-validation (:func:`stratified_kfold`, :func:`cross_validate`).

Example:
  >>> import jax
  >>> from lstmjax import TextClassifier
  >>> from lstmjax.train import make_optimizer
  >>> state = create_ensemble(TextClassifier(10, 2, embed_dim=4, hidden_size=4),
  ...                         jax.random.split(jax.random.key(0), 3), make_optimizer())
  >>> state.step.shape, state.params["dense"]["kernel"].shape
  ((3,), (3, 4, 2))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lstmjax.batching import batches
from lstmjax.metrics import classification_report, confusion_matrix
from lstmjax.train import Batch, TrainState, create_train_state, train_step

__all__ = ["create_ensemble", "cross_validate", "ensemble_evaluate", "ensemble_fit", "ensemble_logits",
           "ensemble_member", "ensemble_predict_proba", "ensemble_train_step", "member_keys", "stratified_kfold"]


def create_ensemble(model: nn.Module, keys: jax.Array, tx: optax.GradientTransformation,
                    sample_batch: Batch | None = None) -> TrainState:
    """K independently initialised members as one :class:`TrainState` with a leading axis ``K``.

    Args:
      model: the (shared) model definition, e.g. :class:`lstmjax.TextClassifier`.
      keys: ``<key>[K]``, one per member (``jax.random.split(key, K)``).
      tx: the optimizer (shared definition; each member has its own state).
      sample_batch: as :func:`lstmjax.train.create_train_state`.

    Returns:
      A :class:`TrainState` whose leaves are the members' stacked: ``step <int32>[K]``,
      ``params[...] <float32>[K, ...]``.

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.train import make_optimizer
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
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.train import make_optimizer
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
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.train import make_optimizer
      >>> state = create_ensemble(TextClassifier(10, 2, embed_dim=4, hidden_size=4),
      ...                         jax.random.split(jax.random.key(0), 3), make_optimizer())
      >>> member_keys(state).shape
      (3,)
    """
    return jax.vmap(jax.random.fold_in)(state.rng, state.step)


def ensemble_train_step(state: TrainState, batch: Batch, rngs: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
    """:func:`lstmjax.train.train_step` for every member on the same batch: ``jax.vmap`` over members.

    Args:
      state: an ensemble state (leading axis ``K``).
      batch: one batch, shared by the members (as for ``train_step``).
      rngs: ``<key>[K]``, each member's dropout key (e.g. :func:`member_keys`).

    Returns:
      ``(new_state, metrics)``, metrics per member: ``loss_sum <float32>[K]``,
      ``correct <int32>[K]``, ``count <int32>[K]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.train import make_optimizer
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
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.train import make_optimizer
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
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.train import make_optimizer
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
    mask = batch["mask"] if "mask" in batch else jnp.ones(batch["labels"].shape, jnp.bool_)
    labels = batch["labels"]
    log_probs = jax.nn.log_softmax(ensemble_logits(state, batch), axis=-1)  # (K, B, C)
    # log of the mean probability: logsumexp over members − log K
    mean_log_probs = jax.nn.logsumexp(log_probs, axis=0) - jnp.log(jnp.float32(log_probs.shape[0]))  # (B, C)

    def sums(lp):  # lp: (B, C) log-probabilities
        nll = -jnp.take_along_axis(lp, labels[:, None], axis=-1)[:, 0]  # (B,)
        predictions = jnp.argmax(lp, -1).astype(jnp.int32)
        return {"loss_sum": jnp.sum(jnp.where(mask, nll, 0.0)),
                "confusion": confusion_matrix(labels, predictions, num_classes, mask)}

    return {"ensemble": sums(mean_log_probs), "members": jax.vmap(sums)(log_probs)}


def _report(confusion, loss_sum, label_names) -> dict[str, Any]:
    report = classification_report(confusion, label_names)
    report["loss"] = float(loss_sum) / max(report["support"], 1)
    return report


def ensemble_evaluate(state: TrainState, dataset, *, batch_size: int = 256, max_length: int | None = None,
                      label_names: Sequence[str] | None = None, num_classes: int | None = None) -> dict[str, Any]:
    """The ensemble's metrics (mean-probability prediction) and each member's, over a whole split.

    Args:
      state: an ensemble state.
      dataset: an encoded split (``token_ids``, ``label``), as for :func:`lstmjax.evaluate`.
      batch_size, max_length, label_names: as :func:`lstmjax.evaluate`.
      num_classes: default ``len(label_names)`` or the model's number of logits.

    Returns:
      ``{"ensemble": report, "members": [report, ...]}``, each report as
      :func:`lstmjax.evaluate`'s (``loss`` is the mean negative log of the predicted
      probability of the true label; for the ensemble, of the averaged probability).

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.train import make_optimizer
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
    step = jax.jit(_ensemble_eval_step, static_argnums=2)
    total = None
    for batch in batches(dataset, batch_size, max_length=max_length):
        m = step(state, batch, num_classes)
        total = m if total is None else jax.tree.map(lambda a, b: a + b, total, m)
    if total is None:
        raise ValueError("the evaluation split is empty")
    names = list(label_names) if label_names is not None else None
    total = jax.device_get(total)
    return {
        "ensemble": _report(total["ensemble"]["confusion"], total["ensemble"]["loss_sum"], names),
        "members": [_report(c, l, names) for c, l in zip(total["members"]["confusion"], total["members"]["loss_sum"])],
    }


def ensemble_fit(state: TrainState, train_data, *, epochs: int, batch_size: int = 32, seed: int = 0,
                 max_length: int | None = None) -> tuple[TrainState, dict[str, list]]:
    """Train every member for ``epochs`` epochs on the same batches, in one jitted step.

    The batches are :func:`lstmjax.fit`'s (same ``seed``, shuffling and length buckets) and each
    member's dropout key is ``fold_in(rng_k, step_k)``, so member ``k`` ends where
    ``fit(ensemble_member(initial, k), train_data, ...)`` ends (to float rounding). No
    validation, early stopping or checkpoints here (yet): evaluate with :func:`ensemble_evaluate`.

    Args:
      state: an ensemble state from :func:`create_ensemble`.
      train_data: the encoded training split (``token_ids``, ``label``).
      epochs, batch_size, seed, max_length: as :func:`lstmjax.fit`.

    Returns:
      ``(state, history)``; ``history["loss"]`` and ``history["accuracy"]`` are per-epoch lists
      of per-member lists ``[K]``.

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.train import make_optimizer
      >>> state = create_ensemble(TextClassifier(10, 2, embed_dim=8, hidden_size=8),
      ...                         jax.random.split(jax.random.key(0), 2), make_optimizer("adam", 0.05))
      >>> data = {"token_ids": [[2, 3], [4, 5], [2, 2, 3], [4]] * 4, "label": [0, 1, 0, 1] * 4}
      >>> state, history = ensemble_fit(state, data, epochs=2, batch_size=4)
      >>> len(history["loss"]), len(history["loss"][0]), state.step.tolist()
      (2, 2, [8, 8])
    """

    def step(state, batch):
        return ensemble_train_step(state, batch, member_keys(state))

    step = jax.jit(step)
    steps_per_epoch = math.ceil(len(train_data["label"]) / batch_size)
    history: dict[str, list] = {"loss": [], "accuracy": []}
    for epoch in range(epochs):
        total = None
        for batch in batches(train_data, batch_size, shuffle=True, seed=seed, epoch=epoch, sort_window=64,
                             num_batches=steps_per_epoch, max_length=max_length):
            state, m = step(state, batch)
            total = m if total is None else jax.tree.map(lambda a, b: a + b, total, m)
        total = jax.device_get(total)
        count = np.maximum(total["count"], 1)
        history["loss"].append((total["loss_sum"] / count).tolist())
        history["accuracy"].append((total["correct"] / count).tolist())
    return state, history


def stratified_kfold(labels: Sequence[int] | np.ndarray, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split example indices into ``k`` folds that keep the class proportions.

    Each class's indices are shuffled by ``numpy.random.default_rng(seed)`` and dealt round-robin
    (classes one after another) to the folds, so every fold holds ``n_c / k`` examples of class
    ``c`` (rounded either way) and the fold sizes differ by at most one. The same proportions as
    ``sklearn.model_selection.StratifiedKFold(k, shuffle=True)``, not the same indices.

    Args:
      labels: ``<int>[n]`` class labels.
      k: number of folds, ``2 <= k <= n``.
      seed: shuffling seed.

    Returns:
      ``k`` pairs ``(train_idx, val_idx)``, each ``<int64>[...]`` sorted; every index is in
      exactly one ``val_idx``.

    Example:
      >>> folds = stratified_kfold([0, 0, 0, 0, 1, 1], k=2, seed=0)
      >>> [len(v) for _, v in folds], [sorted(np.array([0, 0, 0, 0, 1, 1])[v].tolist()) for _, v in folds]
      ([3, 3], [[0, 0, 1], [0, 0, 1]])
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be <int>[n]; got shape {labels.shape}")
    if not 2 <= k <= len(labels):
        raise ValueError(f"k must be in [2, {len(labels)}] (the number of examples); got {k}")
    rng = np.random.default_rng(seed)
    dealt = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
    fold_of = np.empty(len(labels), np.int64)
    fold_of[dealt] = np.arange(len(labels)) % k
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


def _subset(dataset, idx: np.ndarray):
    if isinstance(dataset, dict):
        return {name: [values[i] for i in idx] for name, values in dataset.items()}
    return dataset.select(idx.tolist())


_CV_METRICS = ("accuracy", "precision", "recall", "f1", "loss")


def cross_validate(make_state: Callable[[int], TrainState], train_data, *, k: int = 5, seed: int = 0,
                   epochs: int, batch_size: int = 32, max_length: int | None = None,
                   label_names: Sequence[str] | None = None, **fit_kwargs) -> dict[str, Any]:
    """Stratified k-fold cross-validation with :func:`lstmjax.fit` and :func:`lstmjax.evaluate`.

    Fold ``f`` trains ``make_state(f)`` on the other folds and evaluates on fold ``f``. Only the
    training data goes in: the test split stays out of model selection.

    Args:
      make_state: fold index → a fresh :class:`TrainState` (e.g. ``lambda f: create_train_state(model,
        jax.random.key(f), tx)``).
      train_data: the encoded training split (``token_ids``, ``label``; a dict of lists or a
        ``datasets.Dataset``).
      k, seed: as :func:`stratified_kfold` (``seed`` also shuffles the training batches).
      epochs, batch_size, max_length, label_names: as :func:`lstmjax.fit`.
      **fit_kwargs: more :func:`lstmjax.fit` options (``patience`` uses the held-out fold).

    Returns:
      ``{"folds": [report, ...], "mean": {metric: float}, "std": {metric: float}}``: each
      report is :func:`lstmjax.evaluate`'s on the held-out fold; ``mean`` and ``std``
      (population, ``ddof=0``) over folds of ``accuracy``, ``precision``, ``recall``, ``f1``
      (macro) and ``loss``.

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.train import create_train_state, make_optimizer
      >>> model = TextClassifier(10, 2, embed_dim=4, hidden_size=4)
      >>> data = {"token_ids": [[2, 3], [4, 5], [2, 2], [5]] * 3, "label": [0, 1, 0, 1] * 3}
      >>> cv = cross_validate(lambda f: create_train_state(model, jax.random.key(f), make_optimizer()),
      ...                     data, k=2, epochs=1, batch_size=4, progress=False)
      >>> len(cv["folds"]), sorted(cv["mean"]) == sorted(cv["std"])
      (2, True)
    """
    from lstmjax.loop import evaluate, fit  # loop imports parallel; keep this module light to import

    reports = []
    for f, (train_idx, val_idx) in enumerate(stratified_kfold(train_data["label"], k, seed)):
        train, val = _subset(train_data, train_idx), _subset(train_data, val_idx)
        state, _ = fit(make_state(f), train, epochs=epochs, batch_size=batch_size, seed=seed,
                       max_length=max_length, label_names=label_names,
                       validation_data=val if fit_kwargs.get("patience") is not None else None, **fit_kwargs)
        reports.append(evaluate(state, val, batch_size=max(batch_size, 256), max_length=max_length,
                                label_names=label_names))
    values = {m: np.array([r[m] for r in reports], np.float64) for m in _CV_METRICS}
    return {"folds": reports, "mean": {m: float(v.mean()) for m, v in values.items()},
            "std": {m: float(v.std()) for m, v in values.items()}}

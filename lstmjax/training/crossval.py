"""Stratified k-fold cross-validation over the training split (document §9.2).

:func:`stratified_kfold` splits example indices into ``k`` folds with the class proportions of
the whole; :func:`cross_validate` trains a fresh model on ``k - 1`` folds and evaluates it on
the held-out one, ``k`` times, and reports each fold's metrics with their mean and standard
deviation. Only the training split goes in: the test split stays out of model selection.
``lstmjax train --cv K`` runs it on a config (:func:`lstmjax.app.run.train`).

Example:
  >>> folds = stratified_kfold([0, 1] * 5, k=5)
  >>> [len(v) for _, v in folds]
  [2, 2, 2, 2, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lstmjax.training.loop import evaluate, fit
from lstmjax.training.state import TrainState

__all__ = ["cross_validate", "stratified_kfold"]


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
                   label_names: Sequence[str] | None = None, origin: Sequence[int] | np.ndarray | None = None,
                   **fit_kwargs) -> dict[str, Any]:
    """Stratified k-fold cross-validation with :func:`lstmjax.fit` and :func:`lstmjax.evaluate`.

    Fold ``f`` trains ``make_state(f)`` on the other folds and evaluates on fold ``f``. Only the
    training data goes in: the test split stays out of model selection.

    Args:
      make_state: fold index → a fresh :class:`TrainState` (e.g. ``lambda f: create_train_state(model,
        jax.random.key(f), tx)``).
      train_data: the encoded training split (``token_ids``, ``label``; a dict of lists or a
        ``datasets.Dataset``).
      k, seed: as :func:`stratified_kfold` (``seed`` also shuffles the training batches).
      epochs, batch_size, max_length: as :func:`lstmjax.fit`; label_names: as :func:`lstmjax.evaluate`.
      origin: for augmented training data, ``<int>[n]``: the row each row was made from
        (``origin[i] == i`` for an original row; :func:`lstmjax.data.augment.augment_dataset`'s
        copies of row ``i`` have ``origin == i``). The folds are drawn over the original rows;
        a held-out fold holds only original rows and the training folds take the copies of
        their own rows, so no copy of a held-out text is trained on. Default: every row is original.
      **fit_kwargs: more :func:`lstmjax.fit` options (``callbacks``, ``parallel``; a callback that
        needs validation data, such as early stopping, gets the held-out fold).

    Returns:
      ``{"folds": [report, ...], "mean": {metric: float}, "std": {metric: float}}``: each
      report is :func:`lstmjax.evaluate`'s on the held-out fold; ``mean`` and ``std``
      (population, ``ddof=0``) over folds of ``accuracy``, ``precision``, ``recall``, ``f1``
      (macro) and ``loss``.

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier
      >>> from lstmjax import create_train_state, make_optimizer
      >>> model = TextClassifier(10, 2, embed_dim=4, hidden_size=4)
      >>> data = {"token_ids": [[2, 3], [4, 5], [2, 2], [5]] * 3, "label": [0, 1, 0, 1] * 3}
      >>> cv = cross_validate(lambda f: create_train_state(model, jax.random.key(f), make_optimizer()),
      ...                     data, k=2, epochs=1, batch_size=4)
      >>> len(cv["folds"]), sorted(cv["mean"]) == sorted(cv["std"])
      (2, True)
    """
    labels = np.asarray(train_data["label"])
    origin = np.arange(len(labels)) if origin is None else np.asarray(origin, np.int64)
    if origin.shape != labels.shape:
        raise ValueError(f"origin must have one entry per row ({len(labels)}); got shape {origin.shape}")
    originals = np.flatnonzero(origin == np.arange(len(labels)))  # (n_orig,) indices of original rows
    if not np.isin(origin, originals).all():
        bad = int(np.flatnonzero(~np.isin(origin, originals))[0])
        raise ValueError(f"origin[{bad}] = {int(origin[bad])} is not an original row")
    needs_validation = any(cb.needs_validation is not None for cb in fit_kwargs.get("callbacks") or ())
    reports = []
    for f, (train_pos, val_pos) in enumerate(stratified_kfold(labels[originals], k, seed)):
        val_idx = originals[val_pos]
        train_idx = np.flatnonzero(np.isin(origin, originals[train_pos]))  # originals and their copies
        train, val = _subset(train_data, train_idx), _subset(train_data, val_idx)
        state, _ = fit(make_state(f), train, epochs=epochs, batch_size=batch_size, seed=seed,
                       max_length=max_length, validation_data=val if needs_validation else None, **fit_kwargs)
        reports.append(evaluate(state, val, max_length=max_length, label_names=label_names,
                                parallel=fit_kwargs.get("parallel")))
    values = {m: np.array([r[m] for r in reports], np.float64) for m in _CV_METRICS}
    return {"folds": reports, "mean": {m: float(v.mean()) for m, v in values.items()},
            "std": {m: float(v.std()) for m, v in values.items()}}

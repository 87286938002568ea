"""The training loop (``fit``) and evaluation over a whole split (``evaluate``).

Host-side driving of the pure steps in :mod:`lstmjax.train`: batches come from
:func:`lstmjax.batching.batches` (shuffled per epoch from ``(seed, epoch)``, bucketed by length,
the last batch padded with masked filler so every example counts once), the steps are jitted
once here, metrics are summed on the device and divided on the host.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.batching import batches, num_eval_batches, prefetch
from lstmjax.metrics import classification_report
from lstmjax.parallel import DataParallel
from lstmjax.train import TrainState

__all__ = ["TrainingError", "evaluate", "fit", "plot_history"]


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message says where and why."""


def _parallel(parallel: DataParallel | str | None) -> DataParallel:
    return parallel if isinstance(parallel, DataParallel) else DataParallel.create(parallel or "none")


def _local_batch_size(batch_size: int) -> int:
    """This process's part of a global batch."""
    count = jax.process_count()
    if batch_size % count:
        raise ValueError(f"batch_size {batch_size} must divide by the number of processes ({count})")
    return batch_size // count


def _shape_kwargs(max_length: int | None) -> dict[str, Any]:
    """Batch shapes: length buckets in one process; one fixed length across several, whose
    batches must have equal shapes to form one global array."""
    if jax.process_count() == 1:
        return {"max_length": max_length}
    if max_length is None:
        raise ValueError("training or evaluating across processes needs max_length (one padded length for all)")
    return {"max_length": max_length, "length_buckets": (max_length,)}


def _num_rows(dataset) -> int:
    return len(dataset["label"])


def _global_rows(dataset) -> int:
    """Examples over all processes (each holds its own shard)."""
    if jax.process_count() == 1:
        return _num_rows(dataset)
    from jax.experimental import multihost_utils

    return int(np.sum(multihost_utils.process_allgather(np.array(_num_rows(dataset), np.int64))))


def _sum_metrics(total: dict | None, m: dict) -> dict:
    return m if total is None else jax.tree.map(lambda a, b: a + b, total, m)


def evaluate(state: TrainState, dataset, *, batch_size: int = 256, max_length: int | None = None,
             label_names: Sequence[str] | None = None, num_classes: int | None = None,
             parallel: DataParallel | str | None = None) -> dict[str, Any]:
    """Loss, accuracy, precision, recall, F1 and confusion matrix over a whole split.

    Every example is counted exactly once: the last batch is padded with masked filler rows.

    Args:
      state: a :class:`~lstmjax.train.TrainState`.
      dataset: an encoded split (``token_ids`` and ``label`` columns, from
        :func:`lstmjax.batching.prepare`) or a dict of such lists.
      batch_size: evaluation batch size.
      max_length: truncate longer texts (as in training).
      label_names: names for the per-class report.
      num_classes: number of classes (default: ``len(label_names)`` or the model's logits).
      parallel: a :class:`lstmjax.parallel.DataParallel` or its mode name (default: one
        device). The metrics are the same on any number of devices or processes (each process
        passes its own shard of the split and a ``batch_size`` that is the global one).

    Returns:
      :func:`lstmjax.metrics.classification_report`'s dict plus ``"loss"`` (mean cross-entropy).

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.train import create_train_state, make_optimizer
      >>> state = create_train_state(TextClassifier(10, 2, embed_dim=4, hidden_size=4),
      ...                            jax.random.key(0), make_optimizer())
      >>> data = {"token_ids": [[2, 3], [4], [5, 6, 7]], "label": [0, 1, 1]}
      >>> r = evaluate(state, data, batch_size=2, label_names=["neg", "pos"])
      >>> r["support"], sorted(r["per_class"]), 0.0 <= r["accuracy"] <= 1.0
      (3, ['neg', 'pos'], True)
    """
    if num_classes is None and label_names is not None:
        num_classes = len(label_names)
    dp = _parallel(parallel)
    step = dp.eval_step(num_classes)
    device_state = dp.put_state(state)
    local = _local_batch_size(batch_size)
    steps = num_eval_batches(_global_rows(dataset), local, jax.process_count()) if jax.process_count() > 1 else None
    total = None
    for batch in prefetch(batches(dataset, local, num_batches=steps, **_shape_kwargs(max_length))):
        total = _sum_metrics(total, step(device_state, dp.put_batch(batch)))
    if total is None:
        raise ValueError("the evaluation split is empty")
    total = dp.get_metrics(total)
    report = classification_report(total["confusion"], list(label_names) if label_names is not None else None)
    report["loss"] = float(total["loss_sum"]) / max(int(total["count"]), 1)
    return report


def _score(report: dict, monitor: str) -> float:
    """Higher is better."""
    return -report["loss"] if monitor == "loss" else report[monitor]


def fit(state: TrainState, train_data, *, epochs: int, batch_size: int = 32, validation_data=None,
        seed: int = 0, max_length: int | None = None, label_names: Sequence[str] | None = None,
        patience: int | None = None, monitor: str = "accuracy", checkpointer=None,
        history: dict | None = None, start_epoch: int = 0, best_params=None,
        parallel: DataParallel | str | None = None,
        progress: bool | None = None, on_epoch_end: Callable[[int, dict], None] | None = None,
        train_step: Callable | None = None, train_batches: Callable[[int], Any] | None = None):
    """Train for ``epochs`` epochs, validating after each; optional early stopping and checkpoints.

    Args:
      state: the initial :class:`~lstmjax.train.TrainState` (or a restored one).
      train_data: the encoded training split (``token_ids``, ``label``).
      epochs: total epochs (a resumed run continues from ``start_epoch`` up to this).
      batch_size: examples per training step (the last batch of an epoch is padded and masked).
      validation_data: an encoded split evaluated after every epoch (or ``None``).
      seed: shuffling seed; epoch ``e`` uses the order of ``(seed, e)``.
      max_length: truncate longer texts.
      label_names: label names for the reports.
      patience: stop after this many epochs without a better validation ``monitor`` score,
        and return the best epoch's parameters (needs ``validation_data``).
      monitor: ``"accuracy"``, ``"f1"`` (macro) or ``"loss"``.
      checkpointer: a :class:`lstmjax.checkpoint.Checkpointer`; the state is saved after each epoch.
      history, start_epoch, best_params: where a resumed run left off (from a checkpoint's meta).
      parallel: a :class:`lstmjax.parallel.DataParallel` or a mode, ``"none"`` (default),
        ``"pmap"``, ``"mesh"`` or ``"auto"``; the parameters agree across modes to float rounding.
        With several processes, each passes its own shard of ``train_data`` (and of
        ``validation_data``); ``batch_size`` stays the global batch size.
      progress: show a tqdm progress bar (default: only on an interactive terminal).
      on_epoch_end: called as ``on_epoch_end(epoch, record)`` after each epoch.
      train_step: the step to run instead of :func:`lstmjax.train.train_step`, same signature
        (e.g. :func:`lstmjax.privacy.dp_train_step`).
      train_batches: ``train_batches(epoch)`` gives that epoch's host batches instead of the
        shuffled, length-bucketed ones (e.g. :func:`lstmjax.privacy.poisson_batches`).

    Returns:
      ``(state, history)``: ``history`` holds per-epoch lists ``loss``, ``accuracy`` and, with
      validation data, ``val_loss``, ``val_accuracy``, ``val_f1``; plus ``best_epoch`` and
      ``stopped_early``. With ``patience``, ``state.params`` are the best epoch's.

    Raises:
      TrainingError: the training loss became NaN or infinite (names epoch and step).

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.train import create_train_state, make_optimizer
      >>> state = create_train_state(TextClassifier(10, 2, embed_dim=8, hidden_size=8),
      ...                            jax.random.key(0), make_optimizer("adam", 0.05))
      >>> data = {"token_ids": [[2, 3], [4, 5], [2, 2, 3], [4]] * 4, "label": [0, 1, 0, 1] * 4}
      >>> state, history = fit(state, data, epochs=15, batch_size=4, validation_data=data, progress=False)
      >>> len(history["loss"]), history["val_accuracy"][-1]
      (15, 1.0)
    """
    if monitor not in ("accuracy", "f1", "loss"):
        raise ValueError(f"monitor must be 'accuracy', 'f1' or 'loss'; got {monitor!r}")
    if patience is not None and validation_data is None:
        raise ValueError("early stopping (patience) needs validation_data")
    if _num_rows(train_data) == 0:
        raise ValueError("the training split is empty")
    if progress is None:
        progress = sys.stderr.isatty() and not os.environ.get("CI")
    num_classes = len(label_names) if label_names is not None else None
    # A copy, lists included: the caller's history (e.g. a checkpoint's) is not appended to.
    history = {k: list(v) if isinstance(v, list) else v for k, v in history.items()} if history else {
        "loss": [], "accuracy": []}
    history.setdefault("best_epoch", None)
    history.setdefault("stopped_early", False)
    best_score = -math.inf
    if history.get("best_epoch") is not None and validation_data is not None:
        best_score = history["best_score"]
    dp = _parallel(parallel)
    train = dp.train_step(train_step)
    local = _local_batch_size(batch_size)
    # Every process runs the same number of steps (shards differ in size by at most one).
    steps_per_epoch = num_eval_batches(_global_rows(train_data), local, jax.process_count())
    device_state = dp.put_state(state)

    for epoch in range(start_epoch, epochs):
        total = None
        epoch_batches = prefetch(train_batches(epoch) if train_batches is not None else
                                 batches(train_data, local, shuffle=True, seed=seed, epoch=epoch, sort_window=64,
                                         num_batches=steps_per_epoch, **_shape_kwargs(max_length)))
        if progress:
            from tqdm.auto import tqdm

            epoch_batches = tqdm(epoch_batches, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}",
                                 leave=False)
        for batch in epoch_batches:
            device_state, m = train(device_state, dp.put_batch(batch))
            total = _sum_metrics(total, m)
        total = dp.get_metrics(total)
        state = dp.get_state(device_state)
        count = max(int(total["count"]), 1)
        loss = float(total["loss_sum"]) / count
        if not math.isfinite(loss):
            raise TrainingError(f"the training loss became {loss} in epoch {epoch + 1} (step {int(state.step)}); "
                                "try a smaller learning rate or clip_norm")
        record = {"loss": loss, "accuracy": int(total["correct"]) / count}
        if validation_data is not None:
            report = evaluate(state, validation_data, batch_size=max(batch_size, 256 * jax.process_count()),
                              max_length=max_length, label_names=label_names, num_classes=num_classes, parallel=dp)
            record.update(val_loss=report["loss"], val_accuracy=report["accuracy"], val_f1=report["f1"])
            score = _score(report, monitor)
            if score > best_score:
                # A copy: the next step donates (and so frees) the state's buffers.
                best_score, best_params = score, jax.block_until_ready(jax.tree.map(jnp.copy, state.params))
                history.update(best_epoch=epoch + 1, best_score=score)
        for key, value in record.items():
            history.setdefault(key, []).append(value)
        if progress:
            print(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in record.items()),
                  file=sys.stderr)
        stop = (patience is not None and history["best_epoch"] is not None
                and epoch + 1 - history["best_epoch"] >= patience)
        history["stopped_early"] = bool(stop and epoch + 1 < epochs)
        if checkpointer is not None:
            checkpointer.save(epoch + 1, state, {"epoch": epoch + 1, "history": history}, best_params)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)
        if stop:
            break
    if patience is not None and best_params is not None:
        state = state.replace(params=best_params)
    return state, history


def plot_history(history: dict, path: str | os.PathLike | None = None):
    """Training curves: loss and accuracy per epoch, training and validation (matplotlib).

    Args:
      history: as returned by :func:`fit`.
      path: save the figure here (PNG) if given. The figure is then made without pyplot, so
        saving changes no backend and leaves no figure open in a notebook.

    Returns:
      The matplotlib ``Figure`` (a pyplot figure when ``path`` is ``None``, shown inline).

    Example:
      >>> fig = plot_history({"loss": [0.7, 0.5], "accuracy": [0.5, 0.8],
      ...                     "val_loss": [0.69, 0.6], "val_accuracy": [0.5, 0.7]})
      >>> [ax.get_title() for ax in fig.axes]
      ['loss', 'accuracy']
    """
    import matplotlib.ticker

    if path is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(9, 3.2))
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 2)
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[key], "o-", label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "s-", label="validation")
        if history.get("best_epoch"):
            ax.axvline(history["best_epoch"], color="grey", ls=":", label="best epoch")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig

"""The training loop (``fit``) and evaluation over a whole split (``evaluate``).

Host-side driving of the pure steps in :mod:`lstmjax.training.steps`: batches come from
:func:`lstmjax.data.batches` (shuffled per epoch from ``(seed, epoch)``, bucketed by length,
the last batch padded with masked filler so every example counts once), the steps run where a
placement puts them (:class:`~lstmjax.training.placement.OneDevice` by default, or
:class:`lstmjax.parallel.DataParallel`), metrics are summed on the device and divided on the host.
What the loop does besides training (early stopping, checkpoints, progress, logs) is a list of
callbacks (:mod:`lstmjax.training.callbacks`).
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import numpy as np

from lstmjax.data.batching import batches, prefetch
from lstmjax.training.callbacks import Callback, EpochLog, ProgressBar
from lstmjax.training.metrics import classification_report
from lstmjax.training.placement import OneDevice, Placement, StateStep, num_rows
from lstmjax.training.state import TrainState
from lstmjax.training.steps import eval_step

__all__ = ["EVAL_BATCH_SIZE", "TrainingError", "evaluate", "evaluate_sums", "fit", "model_vocab_size", "plot_history"]

EVAL_BATCH_SIZE = 256
"""Evaluation examples per process and step, unless ``batch_size`` says otherwise."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message says where and why."""


def _sum(total: dict | None, m: dict) -> dict:
    return m if total is None else jax.tree.map(lambda a, b: a + b, total, m)


@functools.cache
def _eval_fn(num_classes: int | None) -> Callable:
    """:func:`~lstmjax.training.steps.eval_step` for ``num_classes`` (one function per value: compiled once)."""
    return functools.partial(eval_step, num_classes=num_classes)


def evaluate_sums(state, dataset, step: Callable[[Any, dict], dict], *, batch_size: int | None = None,
                  max_length: int | None = None, parallel: Placement | None = None) -> dict[str, Any]:
    """A step's metric sums over every example of a split, as host NumPy values.

    Every example counts exactly once: the last batch is padded with masked filler rows.

    Args:
      state: the state the step reads (a :class:`~lstmjax.training.TrainState`, or an ensemble's).
      dataset: an encoded split (``token_ids`` and ``label`` columns) or a dict of such lists.
      step: ``step(state, batch) -> {name: sum}`` (e.g. :func:`~lstmjax.training.steps.eval_step`).
      batch_size: the global evaluation batch (default :data:`EVAL_BATCH_SIZE` per process).
      max_length: truncate longer texts (as in training).
      parallel: where the steps run (default :class:`~lstmjax.training.placement.OneDevice`).

    Returns:
      The sums, summed over batches (and devices, and processes).

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier, create_train_state, make_optimizer
      >>> from lstmjax.training.steps import eval_step
      >>> state = create_train_state(TextClassifier(10, 2, embed_dim=4, hidden_size=4), jax.random.key(0),
      ...                            make_optimizer())
      >>> int(evaluate_sums(state, {"token_ids": [[2, 3], [4], [5]], "label": [0, 1, 1]}, eval_step, batch_size=2)["count"])
      3
    """
    placement = parallel or OneDevice()
    run = placement.eval_step(step)
    device_state = placement.put_state(state)
    plan = {**placement.plan(dataset, batch_size or EVAL_BATCH_SIZE * placement.processes, max_length),
            "vocab_size": model_vocab_size(state)}
    total = None
    for batch in prefetch(batches(dataset, **plan)):
        total = _sum(total, run(device_state, placement.put_batch(batch)))
    if total is None:
        raise ValueError("the evaluation split is empty")
    return placement.get_metrics(total)


def evaluate(state: TrainState, dataset, *, batch_size: int | None = None, max_length: int | None = None,
             label_names: Sequence[str] | None = None, num_classes: int | None = None,
             parallel: Placement | None = None) -> dict[str, Any]:
    """Loss, accuracy, precision, recall, F1 and confusion matrix over a whole split.

    Args:
      state: a :class:`~lstmjax.training.TrainState`.
      dataset: an encoded split (``token_ids`` and ``label`` columns, from
        :func:`lstmjax.data.prepare`) or a dict of such lists.
      batch_size, max_length: as :func:`evaluate_sums`.
      label_names: names for the per-class report.
      num_classes: number of classes (default: ``len(label_names)`` or the model's logits).
      parallel: a placement (default: one device), e.g. :class:`lstmjax.parallel.DataParallel`.
        The metrics are the same on any number of devices or processes (each process passes
        the whole split and a ``batch_size`` that is the global one, and feeds its part of each batch).

    Returns:
      :func:`lstmjax.training.metrics.classification_report`'s dict plus ``"loss"`` (mean cross-entropy).

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier, create_train_state, make_optimizer
      >>> state = create_train_state(TextClassifier(10, 2, embed_dim=4, hidden_size=4),
      ...                            jax.random.key(0), make_optimizer())
      >>> data = {"token_ids": [[2, 3], [4], [5, 6, 7]], "label": [0, 1, 1]}
      >>> r = evaluate(state, data, batch_size=2, label_names=["neg", "pos"])
      >>> r["support"], sorted(r["per_class"]), 0.0 <= r["accuracy"] <= 1.0
      (3, ['neg', 'pos'], True)
    """
    if num_classes is None and label_names is not None:
        num_classes = len(label_names)
    total = evaluate_sums(state, dataset, _eval_fn(num_classes), batch_size=batch_size, max_length=max_length,
                          parallel=parallel)
    report = classification_report(total["confusion"], list(label_names) if label_names is not None else None)
    report["loss"] = float(total["loss_sum"]) / max(int(total["count"]), 1)
    return report


def model_vocab_size(state) -> int | None:
    """The vocabulary size of the model behind ``state.apply_fn`` (a Flax module's ``vocab_size``), or ``None``.

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier, create_train_state, make_optimizer
      >>> model_vocab_size(create_train_state(TextClassifier(10, 2, embed_dim=4, hidden_size=4), jax.random.key(0),
      ...                                     make_optimizer()))
      10
    """
    module = getattr(getattr(state, "apply_fn", None), "__self__", None)
    size = getattr(module, "vocab_size", None)
    return size if isinstance(size, int) else None


def _carried(progress: dict | None) -> dict | None:
    """A resumed epoch's metric sums, typed as they were on the devices."""
    if not progress:
        return None
    return {k: np.asarray(v, progress["dtypes"][k]) for k, v in progress["sums"].items()}


def _train_epoch(run: StateStep, device_state, placement: Placement, epoch: int, epoch_batches: Iterable,
                 callbacks: Sequence[Callback], history: dict, progress: dict | None):
    """One epoch of steps (from ``progress["batches"]`` on, resuming one); returns the device state
    and the epoch's summed metrics (host NumPy). After each step, callbacks may ask for a snapshot:
    the state and the history with ``epoch_progress`` (batches done, their metric sums).

    A resumed epoch's sums continue from the checkpoint's, added in the same order and dtype as
    an uninterrupted epoch's, so its record is the same to the last bit."""
    done, total = (progress["batches"] if progress else 0), _carried(progress)
    for batch in epoch_batches:
        device_state, m = run(device_state, placement.put_batch(batch))
        total, done = _sum(total, m), done + 1

        def snapshot(state=device_state, total=total, done=done):
            sums = placement.get_metrics(total)
            progress = {"batches": done, "sums": {k: np.asarray(v).tolist() for k, v in sums.items()},
                        "dtypes": {k: np.asarray(v).dtype.name for k, v in sums.items()}}
            return placement.get_state(state), {**history, "epoch_progress": progress}

        for cb in callbacks:
            cb.on_step_end(epoch, done, snapshot)
    return device_state, (placement.get_metrics(total) if progress is None or done > progress["batches"]
                          else total)


def _epoch_batches(epoch: int, train_data, plan: dict, seed: int, train_batches, start: int):
    """Epoch ``epoch``'s host batches from batch ``start`` on: shuffled and bucketed, or ``train_batches``'."""
    if train_batches is not None:
        return itertools.islice(train_batches(epoch - 1), start, None)
    return batches(train_data, shuffle=True, seed=seed, epoch=epoch - 1, sort_window=64, start=start, **plan)


def _record(total: dict, epoch: int, step: Any) -> dict[str, Any]:
    """The epoch's mean loss and accuracy (per ensemble member when the sums are arrays)."""
    count = np.maximum(total["count"], 1)
    loss, accuracy = total["loss_sum"] / count, total["correct"] / count
    if not np.all(np.isfinite(loss)):
        raise TrainingError(f"the training loss became {loss} in epoch {epoch} (step {np.max(step)}); "
                            "try a smaller learning rate or clip_norm")
    return {"loss": np.asarray(loss).tolist(), "accuracy": np.asarray(accuracy).tolist()}


def _validation(state, data, batch_size: int, max_length: int | None, placement: Placement) -> dict[str, float]:
    report = evaluate(state, data, batch_size=max(batch_size, EVAL_BATCH_SIZE * placement.processes),
                      max_length=max_length, parallel=placement)
    return {"val_loss": report["loss"], "val_accuracy": report["accuracy"], "val_f1": report["f1"]}


def _default_callbacks(callbacks: Sequence[Callback] | None) -> list[Callback]:
    """The given callbacks; by default, on an interactive terminal (not under CI), a progress bar
    and a line per epoch on stderr."""
    if callbacks is not None:
        return list(callbacks)
    if not sys.stderr.isatty() or os.environ.get("CI"):
        return []
    return [ProgressBar(), EpochLog(functools.partial(print, file=sys.stderr))]


def fit(state: TrainState, train_data, *, epochs: int, batch_size: int = 32, validation_data=None,
        seed: int = 0, max_length: int | None = None, callbacks: Sequence[Callback] | None = None,
        parallel: Placement | None = None, step: StateStep | None = None,
        train_batches: Callable[[int], Iterable] | None = None, history: dict | None = None):
    """Train for ``epochs`` epochs, validating after each; early stopping, checkpoints and logs are callbacks.

    Args:
      state: the initial :class:`~lstmjax.training.TrainState` (or a restored one).
      train_data: the encoded training split (``token_ids``, ``label``).
      epochs: total epochs (a resumed run continues from ``len(history["loss"])`` up to this).
      batch_size: examples per training step (the last batch of an epoch is padded and masked).
      validation_data: an encoded split evaluated after every epoch (``val_loss``,
        ``val_accuracy``, ``val_f1``), or ``None``.
      seed: shuffling seed; epoch ``e`` uses the order of ``(seed, e)``.
      max_length: truncate longer texts.
      callbacks: :class:`~lstmjax.training.callbacks.Callback` objects, called in order
        (:class:`~lstmjax.training.callbacks.EarlyStopping`,
        :class:`~lstmjax.training.callbacks.Checkpointing`, ...). Default: a progress bar on
        an interactive terminal, and a line per epoch.
      parallel: where the steps run: a placement such as :class:`lstmjax.parallel.DataParallel`
        (default: one device). With several processes, each passes the whole split and
        ``batch_size`` stays the global batch size; each feeds its part of every global batch.
      step: ``step(state, batch) -> (state, metric sums)`` instead of the standard one
        (:func:`~lstmjax.training.placement.keyed` of :func:`~lstmjax.training.steps.train_step`;
        e.g. ``keyed(lstmjax.privacy.dp_train_step)``, or an ensemble's step).
      train_batches: ``train_batches(epoch)`` gives that epoch's host batches instead of the
        shuffled, length-bucketed ones (e.g. :func:`lstmjax.data.poisson_batches` for DP-SGD).
      history: a resumed run's history (its checkpoint's); training continues after its last epoch,
        or, when it holds ``epoch_progress`` (a checkpoint taken in the middle of an epoch, see
        :class:`~lstmjax.training.callbacks.Checkpointing`), from the batch after the last one done,
        with the batches, dropout keys and epoch metrics an uninterrupted run has.

    Returns:
      ``(state, history)``: ``history`` holds per-epoch lists ``loss``, ``accuracy`` and, with
      validation data, ``val_loss``, ``val_accuracy``, ``val_f1`` (plus what callbacks add, e.g.
      ``best_epoch``).

    Raises:
      TrainingError: the training loss became NaN or infinite (names epoch and step).

    Example:
      >>> import jax
      >>> from lstmjax import TextClassifier, create_train_state, make_optimizer
      >>> state = create_train_state(TextClassifier(10, 2, embed_dim=8, hidden_size=8),
      ...                            jax.random.key(0), make_optimizer("adam", 0.05))
      >>> data = {"token_ids": [[2, 3], [4, 5], [2, 2, 3], [4]] * 4, "label": [0, 1, 0, 1] * 4}
      >>> state, history = fit(state, data, epochs=15, batch_size=4, validation_data=data)
      >>> len(history["loss"]), history["val_accuracy"][-1]
      (15, 1.0)
    """
    if num_rows(train_data) == 0:
        raise ValueError("the training split is empty")
    placement, callbacks = parallel or OneDevice(), _default_callbacks(callbacks)
    needs = [cb.needs_validation for cb in callbacks if cb.needs_validation]
    if needs and validation_data is None:
        raise ValueError(f"{needs[0]}: it needs validation_data")
    # A copy, lists included: the caller's history (e.g. a checkpoint's) is not appended to.
    history = {k: list(v) if isinstance(v, list) else v for k, v in (history or {"loss": [], "accuracy": []}).items()}
    progress = history.pop("epoch_progress", None)  # a checkpoint taken in the middle of an epoch
    run, device_state = placement.train_step(step), placement.put_state(state)
    plan = {**placement.plan(train_data, batch_size, max_length), "vocab_size": model_vocab_size(state)}
    for cb in callbacks:
        cb.on_train_begin(state, history, epochs)
    for epoch in range(len(history["loss"]) + 1, epochs + 1):
        start = progress["batches"] if progress else 0
        epoch_batches = prefetch(_epoch_batches(epoch, train_data, plan, seed, train_batches, start))
        for cb in callbacks:
            epoch_batches = cb.wrap_batches(epoch, epoch_batches, plan["num_batches"] - start)
        device_state, total = _train_epoch(run, device_state, placement, epoch, epoch_batches, callbacks, history,
                                           progress)
        progress, state = None, placement.get_state(device_state)
        record = _record(total, epoch, state.step)
        if validation_data is not None:
            record.update(_validation(state, validation_data, batch_size, max_length, placement))
        for key, value in record.items():
            history.setdefault(key, []).append(value)
        for cb in callbacks:
            cb.on_epoch_end(epoch, state, history)
        if any(cb.stop_training for cb in callbacks):
            break
    for cb in callbacks:
        state = cb.on_train_end(state, history)
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

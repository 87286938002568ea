"""What the training loop does besides training, one job per callback (the shape of Keras callbacks).

:func:`lstmjax.fit` calls each callback's hooks in order: ``on_train_begin(state, history, epochs)``
once, ``wrap_batches(epoch, batches, steps)`` around each epoch's batches, ``on_step_end(epoch,
batch, snapshot)`` after each training step, ``on_epoch_end(epoch, state, history)`` after each
epoch (``history`` already holds that epoch's record), and ``on_train_end(state, history) ->
state`` at the end. A callback sets ``stop_training`` to end the run after the current epoch.

* :class:`EarlyStopping`: keep the best epoch's parameters by a validation score, stop after
  ``patience`` epochs without a better one, and end with the best parameters.
* :class:`Checkpointing`: save the state (and the best parameters) after every epoch, and every
  ``every`` steps within epochs (exact resume from the middle of an epoch).
* :class:`ProgressBar`: a tqdm bar over each epoch's batches.
* :class:`EpochLog`: a line per epoch through any ``log`` function.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Callback", "Checkpointing", "EarlyStopping", "EpochLog", "ProgressBar", "last_record", "score"]

History = dict[str, Any]


class Callback:
    """The hooks of :func:`lstmjax.fit`; each does nothing unless overridden.

    Example:
      >>> class CountEpochs(Callback):
      ...     def __init__(self):
      ...         self.seen = []
      ...     def on_epoch_end(self, epoch, state, history):
      ...         self.seen.append(epoch)
      >>> c = CountEpochs(); c.on_epoch_end(1, None, {}); c.seen, c.stop_training
      ([1], False)
    """

    stop_training: bool = False  # set to end the run after the current epoch
    needs_validation: str | None = None  # why it needs validation data (fit refuses to start without it)

    def on_train_begin(self, state, history: History, epochs: int) -> None:
        """Before the first epoch of this call (a resumed run has epochs in ``history`` already);
        ``epochs`` is the run's total."""

    def wrap_batches(self, epoch: int, batches: Iterable, steps: int) -> Iterable:
        """Epoch ``epoch``'s (1-based) host batches, ``steps`` of them; return them (or a wrapper)."""
        return batches

    def on_step_end(self, epoch: int, batch: int, snapshot: Callable[[], tuple[Any, History]]) -> None:
        """After training step ``batch`` (1-based, counted from the epoch's start) of epoch ``epoch``.

        ``snapshot()`` gives ``(state, history)`` as they are now, ``history`` with an
        ``epoch_progress`` entry (batches done in this epoch and their metric sums) from which
        :func:`lstmjax.fit` resumes exactly. It costs a transfer from the devices: call it only when needed.
        """

    def on_epoch_end(self, epoch: int, state, history: History) -> None:
        """After epoch ``epoch`` (1-based); ``history`` holds its record."""

    def on_train_end(self, state, history: History):
        """After the last epoch; returns the state :func:`lstmjax.fit` returns."""
        return state


def score(history: History, monitor: str, epoch: int = -1) -> float:
    """The validation score of an epoch's record, higher is better (``-val_loss`` for ``"loss"``).

    Example:
      >>> score({"val_loss": [0.7, 0.5], "val_accuracy": [0.6, 0.8]}, "loss")
      -0.5
    """
    if monitor == "loss":
        return -history["val_loss"][epoch]
    return history[f"val_{monitor}"][epoch]


class EarlyStopping(Callback):
    """Track the best epoch by a validation score; stop after ``patience`` epochs without a better one.

    The best epoch's parameters are copied when it ends (the next step donates the state's
    buffers); :meth:`on_train_end` returns the state with them. ``history`` gets ``best_epoch``,
    ``best_score`` and ``stopped_early``. Needs validation data (``fit(validation_data=...)``).

    Args:
      patience: epochs without improvement before stopping (``None``: never stop; the best epoch
        is still tracked and its parameters kept for checkpoints).
      monitor: ``"accuracy"``, ``"f1"`` (macro) or ``"loss"``.
      restore_best: end with the best epoch's parameters (default: when ``patience`` is set).
      best_params: the best parameters so far (a resumed run's, from its checkpoint).

    Example:
      >>> es = EarlyStopping(patience=1)
      >>> h = {"val_accuracy": [0.6], "val_loss": [0.7], "val_f1": [0.6]}
      >>> es.on_train_begin(None, h, epochs=10)
      >>> es.on_epoch_end(1, None, h); h["val_accuracy"].append(0.5); es.on_epoch_end(2, None, h)
      >>> h["best_epoch"], es.stop_training, h["stopped_early"]
      (1, True, True)
    """

    needs_validation = "early stopping (patience) watches a validation score"

    def __init__(self, patience: int | None = None, monitor: str = "accuracy", *, restore_best: bool | None = None,
                 best_params=None):
        if monitor not in ("accuracy", "f1", "loss"):
            raise ValueError(f"monitor must be 'accuracy', 'f1' or 'loss'; got {monitor!r}")
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be >= 1; got {patience}")
        self.patience, self.monitor = patience, monitor
        self.restore_best = patience is not None if restore_best is None else restore_best
        self.best_params = best_params

    def on_train_begin(self, state, history: History, epochs: int) -> None:
        self.epochs, self.stop_training = epochs, False
        if history.get("best_epoch") is None:  # a new run (not a resumed one): nothing best yet
            self.best_params = None
        history.setdefault("best_epoch", None)
        history.setdefault("stopped_early", False)

    def on_epoch_end(self, epoch: int, state, history: History) -> None:
        current = score(history, self.monitor)
        if history.get("best_epoch") is None or current > history["best_score"]:
            history.update(best_epoch=epoch, best_score=current)
            if state is not None:  # a copy: the next step donates (and so frees) the state's buffers
                self.best_params = jax.block_until_ready(jax.tree.map(jnp.copy, state.params))
        self.stop_training = self.patience is not None and epoch - history["best_epoch"] >= self.patience
        history["stopped_early"] = self.stop_training and epoch < self.epochs  # epochs were left

    def on_train_end(self, state, history: History):
        if self.restore_best and self.best_params is not None:
            return state.replace(params=self.best_params)
        return state


class Checkpointing(Callback):
    """Save after every epoch, and every ``every`` training steps: the state, the best parameters
    so far, and ``{"epoch", "batch", "history"}``.

    Checkpoints are numbered by training steps done. ``meta["epoch"]`` counts the epochs
    complete; a checkpoint taken inside an epoch has ``meta["batch"]`` (batches done in the next
    one) and a history with ``epoch_progress``: :func:`lstmjax.fit` given that history resumes from
    the next batch and ends with the parameters of an uninterrupted run.

    Args:
      checkpointer: a :class:`lstmjax.training.checkpoint.Checkpointer`.
      best: an :class:`EarlyStopping` whose best parameters are saved beside the state (else the
        state's own).
      every: also save every this many training steps (``None``: after each epoch only).

    Example:
      >>> import tempfile, jax
      >>> from lstmjax import Checkpointer, TextClassifier, create_train_state, make_optimizer
      >>> state = create_train_state(TextClassifier(20, 2, embed_dim=4, hidden_size=4), jax.random.key(0),
      ...                            make_optimizer())
      >>> with Checkpointer(tempfile.mkdtemp()) as ckpt:
      ...     saving = Checkpointing(ckpt, every=2)
      ...     saving.on_train_begin(state, {"loss": []}, epochs=1)
      ...     for batch in (1, 2, 3):
      ...         saving.on_step_end(1, batch, lambda: (state, {"loss": [], "epoch_progress": {}}))
      ...     saving.on_epoch_end(1, state, {"loss": [0.7]})
      ...     ckpt.steps()
      [2, 3]
    """

    def __init__(self, checkpointer, best: EarlyStopping | None = None, every: int | None = None):
        if every is not None and every < 1:
            raise ValueError(f"every must be >= 1 (training steps); got {every}")
        self.checkpointer, self.best, self.every = checkpointer, best, every
        self.step = 0

    def on_train_begin(self, state, history: History, epochs: int) -> None:
        self.step = int(np.max(np.asarray(jax.device_get(state.step)))) if state is not None else 0

    def _best(self):
        return self.best.best_params if self.best is not None else None

    def on_step_end(self, epoch: int, batch: int, snapshot) -> None:
        self.step += 1
        if self.every and self.step % self.every == 0:
            state, history = snapshot()
            self.checkpointer.save(self.step, state, {"epoch": epoch - 1, "batch": batch, "history": history},
                                   self._best())

    def on_epoch_end(self, epoch: int, state, history: History) -> None:
        # overwrite: a save after the epoch's last step (every) holds the same state, less its validation
        self.checkpointer.save(self.step, state, {"epoch": epoch, "batch": 0, "history": history}, self._best(),
                               overwrite=True)


def _format(record: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())


def last_record(history: History) -> dict[str, Any]:
    """The last epoch's values of every per-epoch list in ``history``.

    Example:
      >>> last_record({"loss": [0.7, 0.5], "best_epoch": 2})
      {'loss': 0.5}
    """
    return {k: v[-1] for k, v in history.items() if isinstance(v, list) and v}


class ProgressBar(Callback):
    """A tqdm progress bar over each epoch's batches (on stderr).

    Example:
      >>> import io
      >>> out = io.StringIO()
      >>> bar = ProgressBar(file=out)
      >>> bar.on_train_begin(None, {}, epochs=2)
      >>> list(bar.wrap_batches(1, iter([10, 20]), steps=2)), "epoch 1/2" in out.getvalue()
      ([10, 20], True)
    """

    def __init__(self, file=None):
        self.file, self.epochs = file, None

    def on_train_begin(self, state, history: History, epochs: int) -> None:
        self.epochs = epochs

    def wrap_batches(self, epoch: int, batches: Iterable, steps: int) -> Iterable:
        from tqdm.auto import tqdm

        return tqdm(batches, total=steps, desc=f"epoch {epoch}/{self.epochs}", leave=False,
                    file=self.file or sys.stderr)


class EpochLog(Callback):
    """One line per epoch through ``log``: ``epoch 3/10: loss 0.4121, accuracy 0.8150, ...``.

    Args:
      log: where lines go (default ``print``).
      extra: ``extra(epoch) -> str`` appended to the line (e.g. the privacy spent so far).

    Example:
      >>> log = EpochLog()
      >>> log.on_train_begin(None, {}, epochs=10)
      >>> log.on_epoch_end(3, None, {"loss": [0.5, 0.45, 0.4121], "accuracy": [0.6, 0.7, 0.815]})
      epoch 3/10: loss 0.4121, accuracy 0.8150
    """

    def __init__(self, log: Callable[..., None] = print, extra: Callable[[int], str] | None = None):
        self.log, self.extra, self.epochs = log, extra, None

    def on_train_begin(self, state, history: History, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, state, history: History) -> None:
        record = last_record(history)
        self.log(f"epoch {epoch}/{self.epochs}: {_format(record)}" + (self.extra(epoch) if self.extra else ""))

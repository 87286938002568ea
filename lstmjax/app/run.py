"""Whole runs, from a :class:`~lstmjax.app.config.Config` to a run directory.

The data path end to end, each arrow one stage of :mod:`lstmjax.app.stages`::

    load_data ─▶ prepare_data (tokenize, Vocab, encode) ─▶ start_state (TextClassifier) ─▶ fit_model
        ─▶ evaluate ─▶ DIR/{config,vocab,tokenizer}.json, labels.txt, checkpoints/, metrics.json, history.png

``lstmjax train`` is a thin wrapper around :func:`train`; notebooks call the same function.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
from typing import Any

from lstmjax.app import stages
from lstmjax.app.config import Config
from lstmjax.parallel import process_count
from lstmjax.training import Checkpointer

__all__ = ["RunResult", "train"]


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What :func:`train` produced.

    Attributes:
      directory: the run directory.
      metrics: what ``metrics.json`` holds.
      state: the final :class:`~lstmjax.training.TrainState` (best parameters with early stopping).

    Example:
      >>> r = RunResult(pathlib.Path("runs/demo"), {"accuracy": 0.76}, state=None)
      >>> r.directory.name, r.metrics["accuracy"]
      ('demo', 0.76)
    """

    directory: pathlib.Path
    metrics: dict[str, Any]
    state: Any


def train(config: Config, directory: str | os.PathLike | None = None, *, resume: bool = False,
          cache_dir: str | None = None, progress: bool | None = None, log=print,
          allow_change: tuple[str, ...] = ()) -> RunResult:
    """Train the configured model, evaluate it, and write the run directory.

    Args:
      config: the run's :class:`~lstmjax.app.config.Config`.
      directory: the run directory (default: :func:`lstmjax.app.stages.default_run_dir`).
      resume: continue from the directory's newest intact checkpoint (the run must be the same:
        its options but ``epochs``, ``patience``, ``save_every``, ``parallel``, ``devices``, and its
        data); otherwise the directory must not already hold a run (a checkpoint). A run that
        stopped before its first checkpoint starts again from the beginning.
      allow_change: with ``resume``, fields that may change on purpose (e.g. ``("lr",)`` to
        fine-tune); each change is recorded in ``changes.json`` and ``metrics.json``.
      cache_dir: the ``datasets`` cache.
      progress: progress bars (default: off).
      log: where progress lines go.

    Returns:
      A :class:`RunResult`; ``metrics`` has ``accuracy``, ``precision``, ``recall``, ``f1``
      (macro), per-class figures, the confusion matrix and the training ``history``.

    Example:
      >>> import tempfile
      >>> c = Config(epochs=1, hidden=8, embed_dim=8, max_len=16, vocab_size=500, batch_size=64)
      >>> r = train(c, tempfile.mkdtemp() + "/run", cache_dir=tempfile.mkdtemp(), log=lambda *a: None)
      >>> sorted(k for k in r.metrics if k in ("accuracy", "precision", "recall", "f1", "history"))
      ['accuracy', 'f1', 'history', 'precision', 'recall']
    """
    run = stages.open_run(config, directory, resume=resume, cache_dir=cache_dir, progress=progress, log=log,
                          allow_change=allow_change)
    config = run.config  # its data as the user meant it (local data: an absolute path)
    data, eval_split, validation = stages.load_data(run)
    data, origin, augmentation = stages.augment_training_split(config, data, log)  # training split only
    prepared = stages.prepare_data(run, data)
    model, state, resumed = stages.start_state(run, prepared)
    labels = prepared.label_names
    extras: dict[str, Any] = {"augmentation": augmentation}
    if config.cv:
        extras["cv"] = stages.cross_validation(config, model, state.tx, prepared["train"], labels, origin,
                                               run.parallel, log)
    if config.ensemble > 1:
        with Checkpointer(run.directory) if run.primary else contextlib.nullcontext() as ckpt:
            state, history, report, extras["ensemble"] = stages.train_ensemble(
                config, state, prepared["train"], prepared[eval_split], labels, ckpt, log)
    else:
        state, history, extras["privacy"] = stages.fit_model(
            run, state, prepared["train"], prepared[validation] if validation else None, resumed)
        state, extras["pruning"] = stages.finish_pruning(config, state, log)
        if extras["pruning"] is not None and run.primary:  # the saved model is the pruned one
            with Checkpointer(run.directory) as ckpt:
                ckpt.save(ckpt.latest_step(), state, {"epoch": len(history["loss"]), "batch": 0, "history": history},
                          state.params, overwrite=True)
        report = stages.evaluate_state(config, state, prepared[eval_split], labels, run.parallel)
    if config.quantize:
        extras["quantization"] = stages.quantize(config, state, prepared[eval_split], labels,
                                                 run.directory if run.primary else None, report["accuracy"], log)
    if process_count() == 1:  # the overfitting diagnostic: train (original rows), validation, test
        extras["generalization"] = stages.generalization(
            config, state, {"train": stages.originals(prepared["train"], origin),
                            "validation": prepared[validation] if validation else None},
            labels, run.parallel, known={eval_split: report["accuracy"]})
    metrics = stages.run_metrics(run, report, eval_split, history, state, labels, extras)
    stages.write_outputs(run, metrics)
    return RunResult(run.directory, metrics, state)

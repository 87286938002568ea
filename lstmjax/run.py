"""Whole runs, from a :class:`~lstmjax.config.Config` to a run directory and back.

The data path end to end, each arrow one function::

    load_dataset ─▶ prepare (tokenize, Vocab, encode) ─▶ TextClassifier ─▶ fit ─▶ evaluate
        ─▶ DIR/{config,vocab,tokenizer}.json, labels.txt, checkpoints/, metrics.json, history.png

``lstmjax train``/``evaluate``/``predict`` are thin wrappers around :func:`train`,
:func:`evaluate_run` and :class:`Predictor`; notebooks call the same functions.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from lstmjax import _remedies
from lstmjax import checkpoint as ckpt
from lstmjax.batching import pad_sequences, prepare
from lstmjax.classifier import TextClassifier
from lstmjax.config import Config
from lstmjax.datasets import load_dataset
from lstmjax.batching import process_shard
from lstmjax.loop import evaluate, fit, plot_history
from lstmjax.parallel import DataParallel
from lstmjax.robustness import CheckedTexts, check_texts
from lstmjax.train import create_train_state, make_optimizer
from lstmjax.vocab import Vocab

__all__ = ["Predictor", "RunResult", "build_model", "evaluate_run", "train"]


def build_model(config: Config, vocab_size: int, num_classes: int) -> TextClassifier:
    """The classifier a config describes.

    Example:
      >>> build_model(Config(hidden=64), vocab_size=100, num_classes=2).hidden_size
      64
    """
    return TextClassifier(
        vocab_size=vocab_size, num_classes=num_classes, embed_dim=config.embed_dim, cell=config.cell,
        hidden_size=config.hidden, num_layers=config.layers, bidirectional=config.bidirectional,
        dropout=config.dropout, embed_dropout=config.embed_dropout, output_dropout=config.output_dropout,
        recurrent_dropout=config.recurrent_dropout, pooling=config.pooling,
    )


def _optimizer(config: Config):
    if config.dp_noise_multiplier is not None:  # DP-SGD: per-example clipping and noise before the optimizer
        from lstmjax.privacy import make_dp_optimizer

        return make_dp_optimizer(config.optimizer, config.lr, clip_norm=config.dp_clip_norm,
                                 noise_multiplier=config.dp_noise_multiplier, batch_size=config.batch_size,
                                 key=jax.random.fold_in(jax.random.key(config.seed), 8_3), weight_decay=config.weight_decay)
    return make_optimizer(config.optimizer, config.lr, clip_norm=config.clip_norm, weight_decay=config.weight_decay)


def _dp_plan(config: Config, train_split) -> dict[str, Any]:
    """DP-SGD's sampling and accounting for a run: Poisson batches of expected size ``batch_size``."""
    from lstmjax import privacy

    if jax.process_count() > 1:
        raise ValueError("DP training (dp_noise_multiplier) runs in one process")
    if config.parallel == "pmap":
        raise ValueError("DP training runs with parallel 'none' or 'mesh', not 'pmap'")
    n = train_split.num_rows
    rate = min(1.0, config.batch_size / n)
    steps = max(1, round(n / config.batch_size))  # one epoch in expectation

    def account(epochs: int) -> float:
        return privacy.epsilon(config.dp_noise_multiplier, rate, epochs * steps, config.dp_delta)

    def train_batches(epoch: int):
        return privacy.poisson_batches(train_split, rate, steps, seed=config.seed, epoch=epoch,
                                       max_length=config.max_len)

    return {"rate": rate, "steps_per_epoch": steps, "account": account, "train_batches": train_batches,
            "train_step": privacy.dp_train_step}


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What :func:`train` produced."""

    directory: pathlib.Path  # the run directory
    metrics: dict[str, Any]  # what metrics.json holds
    state: Any  # the final TrainState (best parameters with early stopping)


def _eval_split(splits, requested: str | None = None) -> str:
    if requested is not None:
        if requested not in splits:
            raise ValueError(f"no split {requested!r}; the dataset has {', '.join(splits)}")
        return requested
    for name in ("test", "validation"):
        if name in splits:
            return name
    raise ValueError(f"no test or validation split to evaluate on; the dataset has {', '.join(splits)}")


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def default_run_dir(config: Config) -> pathlib.Path:
    """``runs/<data>-<YYYYmmdd-HHMMSS>``."""
    name = pathlib.Path(config.data.rstrip("/")).name.replace("/", "_") or "data"
    return pathlib.Path("runs") / f"{name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"


def train(config: Config, directory: str | os.PathLike | None = None, *, resume: bool = False,
          cache_dir: str | None = None, progress: bool | None = None, log=print) -> RunResult:
    """Train the configured model, evaluate it, and write the run directory.

    Args:
      config: the run's :class:`~lstmjax.config.Config`.
      directory: the run directory (default: :func:`default_run_dir`).
      resume: continue from the directory's last checkpoint (its model config and vocabulary
        must match); otherwise the directory must not already hold a run.
      cache_dir: the ``datasets`` cache.
      progress: progress bars (default: on an interactive terminal).
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
    directory = pathlib.Path(directory) if directory is not None else default_run_dir(config)
    started = time.perf_counter()
    primary = jax.process_index() == 0  # with several processes, process 0 writes the files
    # --devices counts one process's devices; several processes use all of theirs together.
    parallel = DataParallel.create(config.parallel, config.devices if jax.process_count() == 1 else None)
    data = load_dataset(config.data, cache_dir=cache_dir)
    if "train" not in data.splits:
        raise ValueError(f"{config.data}: no 'train' split (found {', '.join(data.splits)})")
    if data["train"].num_rows == 0:
        raise ValueError(f"{config.data}: the training split is empty")
    eval_split = _eval_split(data.splits)
    validation = "validation" if "validation" in data.splits and eval_split != "validation" else None
    if config.patience is not None and validation is None:
        raise ValueError("early stopping (patience) needs a validation split besides the evaluation split")
    if config.ensemble > 1 and resume:
        raise ValueError("an ensemble run cannot be resumed (yet): train it again in a new directory")
    data, origin, augmentation = _remedies.augment_training_split(config, data, log)  # training split only

    prior = None
    if resume:
        prior = ckpt.load_run_files(directory)
        prepared = prepare(data, prior.tokenizer, vocab=prior.vocab)
        ckpt.check_compatible(directory, config, prepared.vocab, prepared.label_names)
    else:
        if (directory / "checkpoints").exists():
            raise ckpt.CheckpointError(f"{directory} already holds a run; pass --resume to continue it "
                                       "or choose another --out")
        prepared = prepare(data, config.tokenizer, min_freq=config.min_freq, max_size=config.vocab_size)
    log(f"data: {config.data}: " + ", ".join(f"{k} {v.num_rows}" for k, v in prepared.splits.items())
        + f"; vocabulary {len(prepared.vocab)}; labels {', '.join(prepared.label_names)}")

    model = build_model(config, len(prepared.vocab), len(prepared.label_names))
    tx = _remedies.optimizer(config, _optimizer(config), prepared["train"].num_rows)  # + penalties, pruning
    state = _remedies.initial_state(config, model, tx, jax.random.key(config.seed))  # one model or K members
    checkpointer = ckpt.Checkpointer(directory)
    fit_kwargs: dict[str, Any] = {}
    if resume:
        state, meta, best = checkpointer.restore(state)
        fit_kwargs = {"history": meta["history"], "start_epoch": meta["epoch"], "best_params": best}
        log(f"resuming {directory} after epoch {meta['epoch']}")
    elif primary:
        ckpt.save_run_files(directory, config, prepared.vocab, prepared.tokenizer, prepared.label_names)
    params_count = sum(x.size for x in jax.tree.leaves(state.params))
    log(f"model: {config.cell.upper()} classifier, {params_count:,} parameters; training {config.epochs} epochs "
        f"of batch {config.batch_size} on {parallel.num_devices} {jax.devices()[0].platform} device(s) "
        f"({parallel.mode}) in {jax.process_count()} process(es)")

    def shard(split):  # each process reads only its part
        return process_shard(prepared[split], jax.process_index(), jax.process_count())

    dp = _dp_plan(config, prepared["train"]) if config.dp_noise_multiplier is not None else None
    if dp is not None:
        fit_kwargs.update(train_step=dp["train_step"], train_batches=dp["train_batches"])

    def on_epoch_end(e, r):
        spent = f", epsilon {dp['account'](e):.3f} (delta {config.dp_delta:g})" if dp is not None else ""
        log(f"epoch {e}/{config.epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items()) + spent)

    cv = (_remedies.cross_validation(config, model, tx, shard("train"), prepared.label_names, origin, parallel, log)
          if config.cv else None)
    ensemble_info = pruning = None
    if config.ensemble > 1:
        state, history, report, ensemble_info = _remedies.train_ensemble(
            config, state, shard("train"), shard(eval_split), prepared.label_names, checkpointer if primary else None, log)
    else:
        state, history = fit(
            state, shard("train"), epochs=config.epochs, batch_size=config.batch_size,
            validation_data=shard(validation) if validation else None, seed=config.seed,
            max_length=config.max_len, label_names=prepared.label_names, patience=config.patience,
            monitor=config.monitor, checkpointer=checkpointer, parallel=parallel, progress=progress and primary,
            on_epoch_end=on_epoch_end,
            **fit_kwargs,
        )
        state, pruning = _remedies.finish_pruning(config, state, log)
        if pruning is not None and primary:  # the saved model is the pruned one
            last = len(history["loss"])
            checkpointer.save(last, state, {"epoch": last, "history": history}, state.params, overwrite=True)
        report = evaluate(state, shard(eval_split), batch_size=256 * jax.process_count(), max_length=config.max_len,
                          label_names=prepared.label_names, parallel=parallel)
    remedies = {"augmentation": augmentation, "cv": cv, "ensemble": ensemble_info, "pruning": pruning}
    if config.quantize:
        remedies["quantization"] = _remedies.quantize(config, state, shard(eval_split), prepared.label_names,
                                                      directory if primary else None, report["accuracy"], log)
    if jax.process_count() == 1:  # the overfitting diagnostic: train (original rows), validation, test
        remedies["generalization"] = _remedies.generalization(
            config, state, {"train": _remedies.originals(prepared["train"], origin),
                            "validation": prepared[validation] if validation else None},
            prepared.label_names, parallel, known={eval_split: report["accuracy"]})
    metrics = {
        **{k: report[k] for k in ("accuracy", "precision", "recall", "f1", "loss")},
        "split": eval_split,
        "support": report["support"],
        "per_class": report["per_class"],
        "macro": report["macro"],
        "micro": report["micro"],
        "weighted": report["weighted"],
        "confusion_matrix": report["confusion_matrix"],
        "label_names": list(prepared.label_names),
        "history": history,
        "config": dataclasses.asdict(config),
        "parameters": params_count,
        "devices": parallel.num_devices,
        "parallel": parallel.mode,
        "processes": jax.process_count(),
        "seconds": round(time.perf_counter() - started, 2),
        **{k: v for k, v in remedies.items() if v is not None},
    }
    if dp is not None:
        # No noise spends an unbounded budget: JSON has no infinity, so that is written as null.
        per_epoch = [_finite_or_none(dp["account"](e)) for e in range(1, len(history["loss"]) + 1)]
        metrics["privacy"] = {
            "epsilon": per_epoch[-1] if per_epoch else 0.0,  # null: no privacy (no noise)
            "delta": config.dp_delta,
            "epsilon_per_epoch": per_epoch, "noise_multiplier": config.dp_noise_multiplier,
            "clip_norm": config.dp_clip_norm, "sample_rate": dp["rate"], "steps_per_epoch": dp["steps_per_epoch"],
            "sampling": "poisson", "accountant": "rdp",
        }
    if primary:
        (directory / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        try:
            import matplotlib  # noqa: F401

            plot_history(history, directory / "history.png")
        except ImportError:  # matplotlib is optional for the library
            pass
    return RunResult(directory, metrics, state)


def _restore_params(directory: pathlib.Path, files: ckpt.RunFiles):
    model = build_model(files.config, len(files.vocab), len(files.label_names))
    tx = _remedies.optimizer(files.config, _optimizer(files.config), None)
    state = _remedies.initial_state(files.config, model, tx, jax.random.key(0))
    state, _, best = ckpt.Checkpointer(directory).restore(state)
    if files.config.patience is not None:
        state = state.replace(params=best)
    return state


def evaluate_run(directory: str | os.PathLike, *, data: str | None = None, split: str | None = None,
                 cache_dir: str | None = None) -> dict[str, Any]:
    """Evaluate a run directory's model on a split (default: its own data's test split).

    The texts are tokenised and encoded with the run's own tokenizer and vocabulary.
    """
    directory = pathlib.Path(directory)
    files = ckpt.load_run_files(directory)
    dataset = load_dataset(data or files.config.data, cache_dir=cache_dir)
    if tuple(dataset.label_names) != files.label_names:
        raise ckpt.CheckpointError(f"{data or files.config.data}: labels {dataset.label_names} differ from the "
                                   f"model's {files.label_names}")
    name = _eval_split(dataset.splits, split)
    prepared = prepare(dataset, files.tokenizer, vocab=files.vocab)
    state = _restore_params(directory, files)
    report = _remedies.evaluate_state(files.config, state, prepared[name], files.label_names)
    report["split"] = name
    return report


class Predictor:
    """A trained run, loaded once, that turns texts into label probabilities.

    Example:
      >>> import tempfile
      >>> c = Config(epochs=1, hidden=8, embed_dim=8, max_len=16, vocab_size=500, batch_size=64)
      >>> r = train(c, tempfile.mkdtemp() + "/run", cache_dir=tempfile.mkdtemp(), log=lambda *a: None)
      >>> p = Predictor(r.directory).predict_proba(["a gorgeous, moving film", ""])
      >>> p.shape, bool(abs(p.sum(-1) - 1).max() < 1e-5)
      ((2, 2), True)
      >>> Predictor(r.directory).check(["a moving\\x00 film"]).reports[0].issues[0]
      '1 control character(s) replaced by spaces'
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = pathlib.Path(directory)
        self.files = ckpt.load_run_files(self.directory)
        self.state = _restore_params(self.directory, self.files)
        self.label_names = self.files.label_names
        # softmax, or the mean of the ensemble members' softmax
        self._proba = jax.jit(_remedies.proba_fn(self.files.config, self.state.apply_fn))

    @property
    def vocab(self) -> Vocab:
        return self.files.vocab

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Texts → ``token_ids <int32>[batch, max_len]``, ``lengths <int32>[batch]`` (the run's tokenizer and vocabulary)."""
        ids = [self.vocab.encode(self.files.tokenizer(t)) for t in texts]
        return pad_sequences(ids, maxlen=self.files.config.max_len)

    def check(self, texts: Sequence[str]) -> CheckedTexts:
        """Untrusted texts checked with this run's tokenizer, vocabulary and ``max_len``
        (:func:`lstmjax.robustness.check_texts`): cleaned texts and one report each."""
        return check_texts(texts, tokenizer=self.files.tokenizer, vocab=self.vocab,
                           max_tokens=self.files.config.max_len)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``<float32>[len(texts), num_labels]`` probabilities.

        Each text first goes through :func:`lstmjax.robustness.check_texts` (non-``str`` items
        are a ``TypeError``; control characters are removed, over-long texts cut); see
        :meth:`check` for the reports.
        """
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a list of texts, not one string")
        ids, lengths = self.encode(check_texts(texts).texts)
        return np.asarray(self._proba(self.state.params, ids, lengths))

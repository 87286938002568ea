"""The stages of a training run, in the order :func:`lstmjax.app.run.train` calls them.

Each stage is one function that applies the :class:`~lstmjax.app.config.Config` options of one
concern with the library's own pieces (nothing is reimplemented here)::

    open_run ─▶ load_data ─▶ augment_training_split ─▶ prepare_data ─▶ build_model, make_optimizer
      ─▶ start_state ─▶ cross_validation ─▶ fit_model | train_ensemble ─▶ finish_pruning
      ─▶ evaluate_state ─▶ quantize ─▶ generalization ─▶ run_metrics ─▶ write_outputs

The remedies of §9.2 and the compression of §8.2 are stages like any other:

* ``augment``, ``augment_alpha``, ``synonyms`` → :func:`lstmjax.data.augment_dataset` on the
  training split only (:func:`augment_training_split`);
* ``l1``, ``l2`` → :func:`lstmjax.training.regularization.add_penalty_gradient` chained before
  the optimizer; ``prune_schedule="gradual"`` → :func:`lstmjax.compress.gradual_pruning` after it
  (:func:`make_optimizer`); ``dp_noise_multiplier`` → :func:`lstmjax.privacy.dp.make_dp_optimizer`;
* ``ensemble`` → :mod:`lstmjax.training.ensemble` (:func:`initial_state`, :func:`train_ensemble`);
* ``cv`` → :func:`lstmjax.training.crossval.cross_validate` (:func:`cross_validation`);
* ``prune`` → :func:`lstmjax.compress.magnitude_masks` at the end (:func:`finish_pruning`);
* ``quantize`` → :func:`lstmjax.compress.quantize_int8` (:func:`quantize`);
* ``dropout``, ``embed_dropout``, ``output_dropout``, ``recurrent_dropout`` go to the model
  (:func:`build_model`), ``weight_decay`` to ``optax.adamw``, ``patience`` to
  :class:`lstmjax.training.callbacks.EarlyStopping`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import pathlib
import time
import warnings
from collections.abc import Callable
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lstmjax import compress
from lstmjax.app import rundir
from lstmjax.app.config import Config, ConfigError
from lstmjax.data import (
    DataWarning,
    Prepared,
    TextDataset,
    load_dataset,
    poisson_batches,
    prepare,
)
from lstmjax.data.loading import data_source
from lstmjax.nn import TextClassifier
from lstmjax.parallel import DataParallel, process_count, process_index
from lstmjax.training import (
    Checkpointer,
    CheckpointError,
    Checkpointing,
    EarlyStopping,
    EpochLog,
    ProgressBar,
    create_train_state,
    saved_steps,
    evaluate,
    fit,
    keyed,
    plot_history,
)
from lstmjax.training import make_optimizer as make_base_optimizer

__all__ = [
    "INT8_FILE",
    "Run",
    "augment_training_split",
    "build_model",
    "cross_validation",
    "data_info",
    "default_run_dir",
    "evaluate_state",
    "evaluation_split",
    "finish_pruning",
    "fit_model",
    "generalization",
    "initial_state",
    "load_data",
    "make_optimizer",
    "open_run",
    "prepare_data",
    "proba_fn",
    "quantize",
    "run_metrics",
    "start_state",
    "train_ensemble",
    "write_outputs",
]

#: The int8 model a ``quantize`` run writes into its run directory (Flax msgpack, no pickle).
INT8_FILE = "model_int8.msgpack"
_REPORT_KEYS = ("accuracy", "precision", "recall", "f1", "loss", "support")


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in _REPORT_KEYS if k in report}


# --------------------------------------------------------------------------------------------- the run


@dataclasses.dataclass
class Run:
    """A training run in progress: what every stage reads.

    Attributes:
      config: the run's configuration.
      directory: the run directory.
      resume: continuing from the directory's last checkpoint.
      parallel: where the steps run (devices, processes).
      log: where progress lines go.
      progress: progress bars.
      cache_dir: the ``datasets`` cache.
      allow_change: fields a resumed run may change on purpose (``--allow-change``).
      changes: the deliberate changes of a resumed run (:func:`lstmjax.app.rundir.check_compatible`).
      data: :func:`data_info` of the run's data, once loaded.
      started: ``time.perf_counter()`` at the start.
    """

    config: Config
    directory: pathlib.Path
    resume: bool
    parallel: DataParallel
    log: Callable[..., None] = print
    progress: bool = False
    cache_dir: str | None = None
    allow_change: tuple[str, ...] = ()
    changes: list = dataclasses.field(default_factory=list)
    data: dict | None = None
    started: float = dataclasses.field(default_factory=time.perf_counter)

    @property
    def primary(self) -> bool:
        """Whether this process writes the run's files (process 0 of several)."""
        return process_index() == 0


def default_run_dir(config: Config) -> pathlib.Path:
    """``runs/<data>-<YYYYmmdd-HHMMSS>``.

    Example:
      >>> str(default_run_dir(Config(data="../shared/data/sst2/"))).startswith("runs/sst2-")
      True
    """
    name = pathlib.Path(config.data.rstrip("/")).name.replace("/", "_") or "data"
    return pathlib.Path("runs") / f"{name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"


def open_run(config: Config, directory=None, *, resume: bool = False, cache_dir: str | None = None,
             progress: bool | None = None, log=print, allow_change: tuple[str, ...] = ()) -> Run:
    """Check that the run can start where asked, and choose where its steps run. Writes nothing.

    The config's ``data`` becomes what the user meant from any folder (local data: an absolute
    path). A directory holds a run once it has a checkpoint: a run that stopped before its first
    one (killed, diverged, a bad option found late) starts again from the beginning, with or
    without ``resume``. ``--devices`` counts one process's devices; several processes use all
    of theirs together.

    Example:
      >>> import tempfile
      >>> run = open_run(Config(parallel="none"), tempfile.mkdtemp())
      >>> run.parallel.mode, run.primary, run.resume
      ('none', True, False)
    """
    config = config.replace(data=data_source(config.data))
    directory = pathlib.Path(directory) if directory is not None else default_run_dir(config)
    if config.ensemble > 1 and resume:
        raise ValueError("an ensemble run cannot be resumed (yet): train it again in a new directory")
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = [name for name in allow_change if name not in fields]
    if unknown:
        raise ValueError(f"--allow-change {unknown[0]}: no such option (options: {', '.join(sorted(fields))})")
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory}: not a directory (--out names the run directory)")
    steps = saved_steps(directory)
    if not resume and steps:
        raise CheckpointError(f"{directory} already holds a run (checkpoints after step(s) "
                              f"{', '.join(map(str, steps))}); pass --resume to continue it or choose another --out")
    if resume and not steps:
        if not (directory / "config.json").is_file():
            raise CheckpointError(f"{directory}: nothing to resume (no run there); run the same command without --resume")
        log(f"{directory} holds no checkpoint yet (its run stopped before the first save): starting from the beginning")
        resume = False
    parallel = DataParallel.create(config.parallel, config.devices if process_count() == 1 else None)
    return Run(config, directory, resume, parallel, log, bool(progress) and process_index() == 0, cache_dir,
               tuple(allow_change))


# --------------------------------------------------------------------------------------------- data


def evaluation_split(splits, requested: str | None = None) -> str:
    """The split to evaluate on: ``requested`` (checked), else ``test``, else ``validation``.

    Example:
      >>> evaluation_split(("train", "validation", "test")), evaluation_split(("train", "validation"))
      ('test', 'validation')
    """
    if requested is not None:
        if requested not in splits:
            raise ValueError(f"no split {requested!r}; the dataset has {', '.join(splits)}")
        return requested
    for name in ("test", "validation"):
        if name in splits:
            return name
    raise ValueError(f"no test or validation split to evaluate on; the dataset has {', '.join(splits)}")


def load_data(run: Run) -> tuple[TextDataset, str, str | None]:
    """The run's dataset, the split it is evaluated on and the one it validates on (or ``None``).

    Checks what only the data can tell before anything is written: at least two labels, and
    ``cv`` within the training rows; warns (:class:`~lstmjax.data.DataWarning`) when the training
    split holds one class only, or another split holds labels the training split never shows.

    Example:
      >>> import tempfile
      >>> run = open_run(Config(parallel="none"), tempfile.mkdtemp(), cache_dir=tempfile.mkdtemp())
      >>> data, eval_split, validation = load_data(run)
      >>> eval_split, validation, data["train"].num_rows
      ('test', 'validation', 8530)
    """
    config = run.config
    data = load_dataset(config.data, cache_dir=run.cache_dir)
    if "train" not in data.splits:
        raise ValueError(f"{config.data}: no 'train' split (found {', '.join(data.splits)})")
    if data["train"].num_rows == 0:
        raise ValueError(f"{config.data}: the training split is empty")
    if data.num_labels < 2:
        raise ValueError(f"{config.data}: {data.num_labels} label name(s) ({', '.join(data.label_names)}); "
                         "a classifier needs at least 2")
    eval_split = evaluation_split(data.splits)
    validation = "validation" if "validation" in data.splits and eval_split != "validation" else None
    if config.patience is not None and validation is None:
        raise ValueError("early stopping (patience) needs a validation split besides the evaluation split")
    if config.cv > data["train"].num_rows:
        raise ConfigError(f"cv {config.cv}: more folds than the {data['train'].num_rows} training examples", "cv")
    _warn_about_labels(data, config.data)
    run.data = data_info(data)
    return data, eval_split, validation


def _label_counts(split) -> np.ndarray:
    return np.asarray(split.with_format("arrow")[:].column("label").to_numpy(zero_copy_only=False))


def _warn_about_labels(data: TextDataset, source: str) -> None:
    """DataWarnings for a training split with one class only, and for labels only other splits have."""
    names = data.label_names
    train = set(np.unique(_label_counts(data["train"])).tolist())
    if len(train) < 2:
        warnings.warn(f"{source}: the training split holds one class only ({names[min(train)]!r}): the model can "
                      "learn nothing but that class", DataWarning, stacklevel=3)
    for split in data.splits:
        unseen = sorted(set(np.unique(_label_counts(data[split])).tolist()) - train) if split != "train" else []
        if unseen:
            warnings.warn(f"{source}: the {split} split holds label(s) the training split never shows: "
                          f"{', '.join(repr(names[i]) for i in unseen)}", DataWarning, stacklevel=3)


def data_info(data: TextDataset) -> dict[str, Any]:
    """What identifies a run's data: each split's rows and a SHA-256 of its texts and labels, in order.

    Example:
      >>> import datasets
      >>> one = TextDataset(datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a"], "label": [0]})}),
      ...                   ("neg", "pos"))
      >>> info = data_info(one)
      >>> info["rows"], len(info["sha256"]["train"])
      ({'train': 1}, 64)
    """
    rows, digests = {}, {}
    for name, split in data.splits.items():
        digest = hashlib.sha256()
        for chunk in split.with_format("arrow").iter(batch_size=10_000):
            for text, label in zip(chunk.column("text").to_pylist(), chunk.column("label").to_pylist()):
                digest.update(f"{label}\x1f{text}\x1e".encode())
        rows[name], digests[name] = split.num_rows, digest.hexdigest()
    return {"labels": list(data.label_names), "rows": rows, "sha256": digests}


def _augment_tokenizer(name: str) -> tuple[Callable[[str], list[str]], Callable[[list[str]], str]]:
    """Word-level tokens for EDA (the subword tokenizers see whole words here) and how to join them."""
    from lstmjax.data import get_tokenizer

    if name in ("jieba", "char"):
        return get_tokenizer(name), "".join
    return get_tokenizer("english"), " ".join


def augment_training_split(config: Config, data: TextDataset, log=print):
    """``data`` with EDA copies added to its training split, and each training row's origin.

    Returns:
      ``(data, origin, info)``: ``origin <int64>[rows]`` (``origin[i] == i`` for original rows,
      ``i`` for the copies of row ``i``) or ``None`` without augmentation; ``info`` for metrics.json.

    Example:
      >>> import datasets
      >>> train = datasets.Dataset.from_dict({"text": ["a good film"], "label": [1]})
      >>> data = TextDataset(datasets.DatasetDict({"train": train}), ("neg", "pos"))
      >>> data, origin, info = augment_training_split(Config(augment=2), data, log=lambda *a: None)
      >>> origin.tolist(), info["train_rows_after"]
      ([0, 0, 0], 3)
    """
    if config.augment == 0:
        return data, None, None
    import datasets as hf

    from lstmjax.data import augment_dataset, load_synonyms

    if data.streaming:
        raise ValueError("augment needs a dataset in memory, not a streaming one")
    synonyms = None if config.synonyms == "none" else load_synonyms(config.synonyms)
    tokenize, detokenize = _augment_tokenizer(config.tokenizer)
    train = data["train"]
    augmented = augment_dataset(train, n_aug=config.augment, seed=config.seed, synonyms=synonyms,
                                alpha=config.augment_alpha, tokenize=tokenize, detokenize=detokenize)
    n = train.num_rows
    origin = np.concatenate([np.arange(n), np.repeat(np.arange(n), config.augment)])
    splits = hf.DatasetDict({**data.splits, "train": augmented})
    info = {"copies": config.augment, "alpha": config.augment_alpha, "synonyms": config.synonyms,
            "synonym_entries": len(synonyms or {}), "train_rows_before": n, "train_rows_after": augmented.num_rows}
    log(f"augmentation (EDA, training split only): {n} → {augmented.num_rows} rows "
        f"({config.augment} copies each, alpha {config.augment_alpha}, synonyms {config.synonyms})")
    return dataclasses.replace(data, splits=splits), origin, info


def originals(dataset, origin: np.ndarray | None):
    """The original (not augmented) rows of an encoded training split."""
    if origin is None:
        return dataset
    return dataset.select(np.flatnonzero(origin == np.arange(len(origin))).tolist())


def prepare_data(run: Run, data: TextDataset) -> Prepared:
    """Tokenise, build the vocabulary (or take a resumed run's), encode.

    A resumed run keeps its vocabulary and tokenizer, and must be the same run
    (:func:`lstmjax.app.rundir.check_compatible`: the same options but those a resume may change,
    the same data, or changes asked for by name, kept in ``run.changes``). A vocabulary of
    nothing but PAD and UNK is a :class:`~lstmjax.data.DataWarning`.

    Example:
      >>> import tempfile
      >>> run = open_run(Config(parallel="none", vocab_size=500), tempfile.mkdtemp(), cache_dir=tempfile.mkdtemp())
      >>> prepared = prepare_data(run, load_data(run)[0])
      data: builtin: train 8530, validation 1066, test 1066; vocabulary 500; labels neg, pos
      >>> len(prepared.vocab), prepared.label_names
      (500, ('neg', 'pos'))
    """
    config = run.config
    if run.resume:
        saved = rundir.load_run_files(run.directory)
        prepared = prepare(data, saved.tokenizer, vocab=saved.vocab)
        run.changes = rundir.check_compatible(run.directory, config, label_names=prepared.label_names, data=run.data,
                                              allow=run.allow_change)
    else:
        prepared = prepare(data, config.tokenizer, min_freq=config.min_freq, max_size=config.vocab_size)
        if len(prepared.vocab) <= 2:
            warnings.warn(f"the vocabulary holds only PAD and UNK: no token occurs {config.min_freq} times in the "
                          "training split (--min-freq), so every text reads as unknown tokens", DataWarning,
                          stacklevel=2)
    run.log(f"data: {config.data}: " + ", ".join(f"{k} {v.num_rows}" for k, v in prepared.splits.items())
            + f"; vocabulary {len(prepared.vocab)}; labels {', '.join(prepared.label_names)}")
    return prepared


# --------------------------------------------------------------------------------------------- model and optimizer


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


def _steps_per_epoch(config: Config, train_rows: int) -> int:
    return max(1, math.ceil(train_rows / config.batch_size))


def make_optimizer(config: Config, train_rows: int | None) -> optax.GradientTransformation:
    """The run's optimizer: Adam (or the configured one) or DP-SGD's, with the L1/L2 penalty
    gradient in front and gradual pruning behind, as configured.

    ``train_rows`` sets the pruning schedule's length (``None``: only the structure matters, as
    when a checkpoint is restored).

    Example:
      >>> import jax.numpy as jnp
      >>> tx = make_optimizer(Config(l2=1e-3, prune=0.5, prune_schedule="gradual"), train_rows=100)
      >>> state = tx.init({"kernel": jnp.ones((2, 2))})
      >>> len(state)   # penalty, Adam, pruning
      3
    """
    from lstmjax.training.regularization import add_penalty_gradient

    if config.dp_noise_multiplier is not None:  # DP-SGD: per-example clipping and noise before the optimizer
        from lstmjax.privacy import make_dp_optimizer

        tx = make_dp_optimizer(config.optimizer, config.lr, clip_norm=config.dp_clip_norm,
                               noise_multiplier=config.dp_noise_multiplier, batch_size=config.batch_size,
                               key=jax.random.fold_in(jax.random.key(config.seed), 8_3),
                               weight_decay=config.weight_decay)
    else:
        tx = make_base_optimizer(config.optimizer, config.lr, clip_norm=config.clip_norm,
                                 weight_decay=config.weight_decay)
    parts = [add_penalty_gradient(l1=config.l1, l2=config.l2)] if config.l1 or config.l2 else []
    parts.append(tx)
    if config.prune and config.prune_schedule == "gradual":
        total = config.epochs * _steps_per_epoch(config, train_rows or config.batch_size)
        # Zhu & Gupta: prune during the first 3/4 of training, fine-tune the rest at the target.
        end = max(1, (3 * total) // 4)
        schedule = compress.polynomial_sparsity_schedule(config.prune, 0, end)
        parts.append(compress.gradual_pruning(schedule, every=max(1, end // 20), scope=config.prune_scope))
    return parts[0] if len(parts) == 1 else optax.chain(*parts)


def initial_state(config: Config, model, tx, key: jax.Array):
    """One :class:`~lstmjax.training.TrainState`, or an ensemble's (leading axis ``config.ensemble``).

    Example:
      >>> import jax
      >>> c = Config(ensemble=3, hidden=4, embed_dim=4)
      >>> state = initial_state(c, build_model(c, 20, 2), make_optimizer(c, 10), jax.random.key(0))
      >>> state.step.shape
      (3,)
    """
    from lstmjax.training.ensemble import create_ensemble

    if config.ensemble > 1:
        return create_ensemble(model, jax.random.split(key, config.ensemble), tx)
    return create_train_state(model, key, tx)


def start_state(run: Run, prepared: Prepared):
    """The model and its state: fresh (and the run's files written), or restored from the last checkpoint.

    Returns:
      ``(model, state, resumed)``: ``resumed`` is ``{"history", "best_params"}`` of the restored
      checkpoint, or ``None``.
    """
    config = run.config
    model = build_model(config, len(prepared.vocab), len(prepared.label_names))
    tx = make_optimizer(config, prepared["train"].num_rows)
    state = initial_state(config, model, tx, jax.random.key(config.seed))  # one model or K members
    resumed = None
    if run.resume:
        state, resumed = _restore(run, state, prepared)
    elif run.primary:
        rundir.save_run_files(run.directory, config, prepared.vocab, prepared.tokenizer, prepared.label_names,
                              run.data)
    count = sum(x.size for x in jax.tree.leaves(state.params))
    run.log(f"model: {config.cell.upper()} classifier, {count:,} parameters; training {config.epochs} epochs "
            f"of batch {config.batch_size} on {run.parallel.num_devices} {run.parallel.devices[0].platform} "
            f"device(s) ({run.parallel.mode}) in {process_count()} process(es)")
    return model, state, resumed


def _restore(run: Run, state, prepared: Prepared):
    """The newest intact checkpoint (damaged newer ones set aside), and deliberate changes recorded."""
    with Checkpointer(run.directory) as ckpt:
        state, meta, best = ckpt.restore(state)
        if ckpt.skipped and run.primary:
            folder = ckpt.set_aside([step for step, _ in ckpt.skipped])
            run.log(f"damaged checkpoint(s) {', '.join(str(s) for s, _ in ckpt.skipped)} moved to {folder}")
        step = ckpt.restored_step
    batch = meta.get("batch") or 0
    where = f"after epoch {meta['epoch']}" + (f" and {batch} batch(es) of epoch {meta['epoch'] + 1}" if batch else "")
    run.log(f"resuming {run.directory} {where} (checkpoint {step})")
    if run.changes and run.primary:
        rundir.record_changes(run.directory, run.changes, step=step, epoch=meta["epoch"], batch=batch)
        rundir.save_run_files(run.directory, run.config, prepared.vocab, prepared.tokenizer, prepared.label_names,
                              run.data)
        run.log("changed on purpose: " + "; ".join(f"{c['field']} {c['saved']!r} → {c['given']!r}" for c in run.changes))
    return state, {"history": meta["history"], "best_params": best}


# --------------------------------------------------------------------------------------------- training


def _dp_plan(config: Config, train_split) -> dict[str, Any]:
    """DP-SGD's sampling and accounting for a run: Poisson batches of expected size ``batch_size``."""
    from lstmjax import privacy

    if process_count() > 1:
        raise ValueError("DP training (dp_noise_multiplier) runs in one process")
    if config.parallel == "pmap":
        raise ValueError("DP training runs with parallel 'none' or 'mesh', not 'pmap'")
    n = train_split.num_rows
    rate = min(1.0, config.batch_size / n)
    steps = max(1, round(n / config.batch_size))  # one epoch in expectation

    def account(epochs: int) -> float:
        return privacy.epsilon(config.dp_noise_multiplier, rate, epochs * steps, config.dp_delta)

    def train_batches(epoch: int):
        return poisson_batches(train_split, rate, steps, seed=config.seed, epoch=epoch, max_length=config.max_len)

    return {"rate": rate, "steps_per_epoch": steps, "account": account, "train_batches": train_batches,
            "step": keyed(privacy.dp_train_step)}


def _privacy_record(config: Config, dp: dict[str, Any], epochs: int) -> dict[str, Any]:
    """metrics.json's ``privacy``: ε after each epoch (no noise spends an unbounded budget: ``null``)."""
    per_epoch = [float(e) if np.isfinite(e) else None for e in (dp["account"](k) for k in range(1, epochs + 1))]
    return {"epsilon": per_epoch[-1] if per_epoch else 0.0, "delta": config.dp_delta,
            "epsilon_per_epoch": per_epoch, "noise_multiplier": config.dp_noise_multiplier,
            "clip_norm": config.dp_clip_norm, "sample_rate": dp["rate"], "steps_per_epoch": dp["steps_per_epoch"],
            "sampling": "poisson", "accountant": "rdp"}


def fit_model(run: Run, state, train_data, validation_data, resumed: dict | None):
    """:func:`lstmjax.fit` with the run's callbacks: early stopping (best epoch tracked whenever
    there is validation data), a checkpoint after each epoch, a log line per epoch; DP-SGD's
    sampling and step when configured.

    Returns:
      ``(state, history, privacy)``: ``privacy`` is metrics.json's DP record, or ``None``.
    """
    config = run.config
    dp = _dp_plan(config, train_data) if config.dp_noise_multiplier is not None else None
    best = (EarlyStopping(config.patience, config.monitor, best_params=resumed and resumed["best_params"])
            if validation_data is not None else None)
    spent = (lambda e: f", epsilon {dp['account'](e):.3f} (delta {config.dp_delta:g})") if dp else None
    with Checkpointer(run.directory) as ckpt:
        callbacks = [cb for cb in (best, Checkpointing(ckpt, best, every=config.save_every),
                                   EpochLog(run.log, spent), ProgressBar() if run.progress else None) if cb]
        state, history = fit(state, train_data, epochs=config.epochs, batch_size=config.batch_size,
                             validation_data=validation_data, seed=config.seed, max_length=config.max_len,
                             callbacks=callbacks, parallel=run.parallel, history=resumed and resumed["history"],
                             step=dp and dp["step"], train_batches=dp and dp["train_batches"])
    history.setdefault("best_epoch", None)  # metrics.json has them whether or not there was validation
    history.setdefault("stopped_early", False)
    return state, history, (_privacy_record(config, dp, len(history["loss"])) if dp else None)


def train_ensemble(config: Config, state, train_data, eval_data, label_names, checkpointer, log=print):
    """Train all members in one program, checkpoint them, and evaluate ensemble and members.

    Returns:
      ``(state, history, report, info)``: ``report`` is the ensemble's (as :func:`lstmjax.evaluate`),
      ``info`` the members' summaries for metrics.json.
    """
    from lstmjax.training.ensemble import ensemble_evaluate, ensemble_fit

    state, history = ensemble_fit(state, train_data, epochs=config.epochs, batch_size=config.batch_size,
                                  seed=config.seed, max_length=config.max_len, callbacks=[])
    for e, (loss, acc) in enumerate(zip(history["loss"], history["accuracy"]), 1):
        log(f"epoch {e}/{config.epochs}: member loss {' '.join(f'{v:.4f}' for v in loss)}; "
            f"member accuracy {' '.join(f'{v:.4f}' for v in acc)}")
    history = {**history, "best_epoch": None, "stopped_early": False}
    if checkpointer is not None:
        checkpointer.save(int(np.max(jax.device_get(state.step))), state,
                          {"epoch": config.epochs, "batch": 0, "history": history})
    result = ensemble_evaluate(state, eval_data, max_length=config.max_len, label_names=label_names)
    members = [_summary(r) for r in result["members"]]
    accs = np.array([m["accuracy"] for m in members])
    info = {"members": config.ensemble, "member_metrics": members,
            "member_accuracy_mean": float(accs.mean()), "member_accuracy_std": float(accs.std()),
            "ensemble_accuracy": result["ensemble"]["accuracy"],
            "gain_over_mean_member": result["ensemble"]["accuracy"] - float(accs.mean())}
    log(f"ensemble of {config.ensemble}: accuracy {info['ensemble_accuracy']:.4f}; members "
        + ", ".join(f"{a:.4f}" for a in accs) + f" (mean {accs.mean():.4f} ± {accs.std():.4f})")
    return state, history, result["ensemble"], info


def evaluate_state(config: Config, state, dataset, label_names, parallel=None) -> dict[str, Any]:
    """:func:`lstmjax.evaluate` for one model, the ensemble's report for an ensemble."""
    from lstmjax.training.ensemble import ensemble_evaluate

    if config.ensemble > 1:
        return ensemble_evaluate(state, dataset, max_length=config.max_len, label_names=label_names)["ensemble"]
    return evaluate(state, dataset, max_length=config.max_len, label_names=label_names, parallel=parallel)


def proba_fn(config: Config, apply_fn) -> Callable:
    """``fn(params, ids, lengths) -> <float32>[batch, classes]``: softmax, or the members' mean softmax.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> c = Config(hidden=4, embed_dim=4)
      >>> model = build_model(c, 20, 2)
      >>> ids, lengths = jnp.array([[3, 4]], jnp.int32), jnp.array([2], jnp.int32)
      >>> proba_fn(c, model.apply)(model.init(jax.random.key(0), ids)["params"], ids, lengths).shape
      (1, 2)
    """

    def one(params, ids, lengths):
        return jax.nn.softmax(apply_fn({"params": params}, ids, lengths))

    if config.ensemble > 1:
        return lambda params, ids, lengths: jnp.mean(jax.vmap(one, in_axes=(0, None, None))(params, ids, lengths), 0)
    return one


def cross_validation(config: Config, model, tx, train_data, label_names, origin, parallel=None, log=print):
    """Stratified k-fold over the training split (augmented copies follow their original row)."""
    from lstmjax.training.crossval import cross_validate

    if process_count() > 1:
        raise ValueError("cross-validation (cv) runs in one process")
    base = jax.random.fold_in(jax.random.key(config.seed), 1_000)

    def make_state(fold: int):
        return create_train_state(model, jax.random.fold_in(base, fold), tx)

    cv = cross_validate(make_state, train_data, k=config.cv, seed=config.seed, epochs=config.epochs,
                        batch_size=config.batch_size, max_length=config.max_len, label_names=label_names,
                        origin=origin, callbacks=[], parallel=parallel)
    folds = [_summary(r) for r in cv["folds"]]
    for f, r in enumerate(folds, 1):
        log(f"cv fold {f}/{config.cv}: accuracy {r['accuracy']:.4f}, f1 {r['f1']:.4f}, loss {r['loss']:.4f} "
            f"({r['support']} held out)")
    log(f"cv {config.cv}-fold: accuracy {cv['mean']['accuracy']:.4f} ± {cv['std']['accuracy']:.4f}, "
        f"f1 {cv['mean']['f1']:.4f} ± {cv['std']['f1']:.4f}")
    return {"k": config.cv, "folds": folds, "mean": cv["mean"], "std": cv["std"]}


# --------------------------------------------------------------------------------------------- compression


def finish_pruning(config: Config, state, log=print):
    """Prune to the target sparsity (one-shot; after gradual pruning, top up to the exact target).

    Returns ``(state, info)``; ``info`` has the *measured* sparsity (zeros counted).
    """
    if not config.prune:
        return state, None
    masks = None
    if config.prune_schedule == "gradual":  # keep what the training pruned
        masks = jax.tree.map(lambda p: p != 0, state.params)
    masks = compress.magnitude_masks(state.params, config.prune, scope=config.prune_scope, masks=masks)
    state = state.replace(params=compress.apply_masks(state.params, masks))
    measured = compress.sparsity(state.params)
    info = {"target": config.prune, "schedule": config.prune_schedule, "scope": config.prune_scope,
            "sparsity": measured["overall"], "sparsity_all_parameters": measured["all"],
            "zeros": measured["zeros"], "prunable": measured["total"], "per_leaf": measured["per_leaf"]}
    log(f"pruning ({config.prune_schedule}, {config.prune_scope}): measured sparsity {measured['overall']:.4f} "
        f"of {measured['total']:,} weights (target {config.prune})")
    return state, info


def quantize(config: Config, state, eval_data, label_names, directory: pathlib.Path | None,
             float_accuracy: float, log=print):
    """int8-quantise the weight matrices, write ``INT8_FILE``, evaluate the quantised model."""
    qparams = compress.quantize_int8(state.params)
    payload = flax.serialization.to_bytes(jax.device_get(qparams))
    float_bytes = compress.serialized_nbytes(state.params)
    if directory is not None:
        (directory / INT8_FILE).write_bytes(payload)
    report = evaluate(state.replace(params=compress.dequantize(qparams)), eval_data,
                      max_length=config.max_len, label_names=label_names)
    info = {"file": INT8_FILE, "float_bytes": float_bytes, "int8_bytes": len(payload),
            "ratio": float_bytes / len(payload), "accuracy": report["accuracy"], "f1": report["f1"],
            "float_accuracy": float_accuracy}
    log(f"int8 quantisation: {float_bytes:,} → {len(payload):,} bytes ({info['ratio']:.2f}x smaller); "
        f"accuracy {report['accuracy']:.4f} (float {float_accuracy:.4f})")
    return info


def generalization(config: Config, state, splits: dict[str, Any], label_names, parallel=None, *,
                   known: dict[str, float] | None = None) -> dict[str, Any]:
    """Accuracy on each named split and the train–test gap (train = the original training rows).

    ``known`` gives accuracies already measured (``{"test": 0.75}``), not evaluated again.
    """
    out = {f"{name}_accuracy": evaluate_state(config, state, data, label_names, parallel)["accuracy"]
           for name, data in splits.items() if data is not None and name not in (known or {})}
    out.update({f"{name}_accuracy": value for name, value in (known or {}).items()})
    test = out.get("test_accuracy", out.get("validation_accuracy"))
    if "train_accuracy" in out and test is not None:
        out["train_test_gap"] = out["train_accuracy"] - test
    return out


# --------------------------------------------------------------------------------------------- outputs


def run_metrics(run: Run, report: dict[str, Any], eval_split: str, history: dict, state, label_names,
                extras: dict[str, Any]) -> dict[str, Any]:
    """What ``metrics.json`` holds: the evaluation report, the history, the config, where it ran, the extras."""
    return {
        **{k: report[k] for k in ("accuracy", "precision", "recall", "f1", "loss")},
        "split": eval_split,
        **{k: report[k] for k in ("support", "per_class", "macro", "micro", "weighted", "confusion_matrix")},
        "label_names": list(label_names),
        "history": history,
        "config": dataclasses.asdict(run.config),
        "parameters": sum(x.size for x in jax.tree.leaves(state.params)),
        "devices": run.parallel.num_devices,
        "parallel": run.parallel.mode,
        "processes": process_count(),
        "seconds": round(time.perf_counter() - run.started, 2),
        **({"changes": rundir.load_changes(run.directory)} if (run.directory / "changes.json").exists() else {}),
        **{k: v for k, v in extras.items() if v is not None},
    }


def write_outputs(run: Run, metrics: dict[str, Any]) -> None:
    """``metrics.json`` and ``history.png`` (the latter when matplotlib is installed), by process 0."""
    if not run.primary:
        return
    (run.directory / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # matplotlib is optional for the library
        return
    plot_history(metrics["history"], run.directory / "history.png")

"""The overfitting remedies (§9.2) and compression (§8.2) of a :func:`lstmjax.run.train` run.

:mod:`lstmjax.run` calls these helpers; each applies one :class:`~lstmjax.config.Config` option
with the library's own pieces (nothing is reimplemented here):

* ``augment``, ``augment_alpha``, ``synonyms`` → :func:`lstmjax.augment.augment_dataset` on the
  training split only (:func:`augment_training_split`);
* ``l1``, ``l2`` → :func:`lstmjax.regularization.add_penalty_gradient` chained before the
  optimizer; ``prune_schedule="gradual"`` → :func:`lstmjax.compression.gradual_pruning` chained
  after it (:func:`optimizer`);
* ``ensemble`` → :mod:`lstmjax.ensemble` (:func:`initial_state`, :func:`train_ensemble`);
* ``cv`` → :func:`lstmjax.crossval.cross_validate` (:func:`cross_validation`);
* ``prune`` → :func:`lstmjax.compression.magnitude_masks` at the end (:func:`finish_pruning`);
* ``quantize`` → :func:`lstmjax.compression.quantize_int8` (:func:`quantize`).

``dropout``, ``embed_dropout``, ``output_dropout`` and ``recurrent_dropout`` go to the model
(:func:`lstmjax.run.build_model`); ``weight_decay`` to ``optax.adamw`` (:func:`lstmjax.make_optimizer`).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Callable
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lstmjax import compression
from lstmjax.config import Config

INT8_FILE = "model_int8.msgpack"
_REPORT_KEYS = ("accuracy", "precision", "recall", "f1", "loss", "support")


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in _REPORT_KEYS if k in report}


# --------------------------------------------------------------------------------------------- data


def _augment_tokenizer(name: str) -> tuple[Callable[[str], list[str]], Callable[[list[str]], str]]:
    """Word-level tokens for EDA (the subword tokenizers see whole words here) and how to join them."""
    from lstmjax.tokenizers import get_tokenizer

    if name in ("jieba", "char"):
        return get_tokenizer(name), "".join
    return get_tokenizer("english"), " ".join


def augment_training_split(config: Config, data, log=print):
    """``data`` with EDA copies added to its training split, and each training row's origin.

    Returns:
      ``(data, origin, info)``: ``origin <int64>[rows]`` (``origin[i] == i`` for original rows,
      ``i`` for the copies of row ``i``) or ``None`` without augmentation; ``info`` for metrics.json.
    """
    if config.augment == 0:
        return data, None, None
    import datasets as hf

    from lstmjax.augment import augment_dataset, load_synonyms

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


# --------------------------------------------------------------------------------------------- optimizer


def steps_per_epoch(config: Config, train_rows: int) -> int:
    return max(1, math.ceil(train_rows / config.batch_size))


def optimizer(config: Config, tx: optax.GradientTransformation, train_rows: int | None) -> optax.GradientTransformation:
    """``tx`` with the L1/L2 penalty gradient in front and gradual pruning behind, as configured.

    ``train_rows`` sets the pruning schedule's length (``None``: only the structure matters, as
    when a checkpoint is restored).
    """
    from lstmjax.regularization import add_penalty_gradient

    parts = []
    if config.l1 or config.l2:
        parts.append(add_penalty_gradient(l1=config.l1, l2=config.l2))
    parts.append(tx)
    if config.prune and config.prune_schedule == "gradual":
        total = config.epochs * steps_per_epoch(config, train_rows or config.batch_size)
        # Zhu & Gupta: prune during the first 3/4 of training, fine-tune the rest at the target.
        end = max(1, (3 * total) // 4)
        schedule = compression.polynomial_sparsity_schedule(config.prune, 0, end)
        parts.append(compression.gradual_pruning(schedule, every=max(1, end // 20), scope=config.prune_scope))
    return parts[0] if len(parts) == 1 else optax.chain(*parts)


# --------------------------------------------------------------------------------------------- ensembles


def initial_state(config: Config, model, tx, key: jax.Array):
    """One :class:`~lstmjax.train.TrainState`, or an ensemble's (leading axis ``config.ensemble``)."""
    from lstmjax.ensemble import create_ensemble
    from lstmjax.train import create_train_state

    if config.ensemble > 1:
        return create_ensemble(model, jax.random.split(key, config.ensemble), tx)
    return create_train_state(model, key, tx)


def train_ensemble(config: Config, state, train_data, eval_data, label_names, checkpointer, log=print):
    """Train all members in one program, checkpoint them, and evaluate ensemble and members.

    Returns:
      ``(state, history, report, info)``: ``report`` is the ensemble's (as :func:`lstmjax.evaluate`),
      ``info`` the members' summaries for metrics.json.
    """
    from lstmjax.ensemble import ensemble_evaluate, ensemble_fit

    state, history = ensemble_fit(state, train_data, epochs=config.epochs, batch_size=config.batch_size,
                                  seed=config.seed, max_length=config.max_len)
    for e, (loss, acc) in enumerate(zip(history["loss"], history["accuracy"]), 1):
        log(f"epoch {e}/{config.epochs}: member loss {' '.join(f'{v:.4f}' for v in loss)}; "
            f"member accuracy {' '.join(f'{v:.4f}' for v in acc)}")
    history = {**history, "best_epoch": None, "stopped_early": False}
    if checkpointer is not None:
        checkpointer.save(config.epochs, state, {"epoch": config.epochs, "history": history})
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
    from lstmjax.ensemble import ensemble_evaluate
    from lstmjax.loop import evaluate

    if config.ensemble > 1:
        return ensemble_evaluate(state, dataset, max_length=config.max_len, label_names=label_names)["ensemble"]
    return evaluate(state, dataset, batch_size=256 * jax.process_count(), max_length=config.max_len,
                    label_names=label_names, parallel=parallel)


def proba_fn(config: Config, apply_fn) -> Callable:
    """``fn(params, ids, lengths) -> <float32>[batch, classes]``: softmax, or the members' mean softmax."""

    def one(params, ids, lengths):
        return jax.nn.softmax(apply_fn({"params": params}, ids, lengths))

    if config.ensemble > 1:
        return lambda params, ids, lengths: jnp.mean(jax.vmap(one, in_axes=(0, None, None))(params, ids, lengths), 0)
    return one


# --------------------------------------------------------------------------------------------- cross-validation


def cross_validation(config: Config, model, tx, train_data, label_names, origin, parallel=None, log=print):
    """Stratified k-fold over the training split (augmented copies follow their original row)."""
    from lstmjax.crossval import cross_validate
    from lstmjax.train import create_train_state

    if jax.process_count() > 1:
        raise ValueError("cross-validation (cv) runs in one process")
    base = jax.random.fold_in(jax.random.key(config.seed), 1_000)

    def make_state(fold: int):
        return create_train_state(model, jax.random.fold_in(base, fold), tx)

    cv = cross_validate(make_state, train_data, k=config.cv, seed=config.seed, epochs=config.epochs,
                        batch_size=config.batch_size, max_length=config.max_len, label_names=label_names,
                        origin=origin, progress=False, parallel=parallel)
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
    masks = compression.magnitude_masks(state.params, config.prune, scope=config.prune_scope, masks=masks)
    state = state.replace(params=compression.apply_masks(state.params, masks))
    measured = compression.sparsity(state.params)
    info = {"target": config.prune, "schedule": config.prune_schedule, "scope": config.prune_scope,
            "sparsity": measured["overall"], "sparsity_all_parameters": measured["all"],
            "zeros": measured["zeros"], "prunable": measured["total"], "per_leaf": measured["per_leaf"]}
    log(f"pruning ({config.prune_schedule}, {config.prune_scope}): measured sparsity {measured['overall']:.4f} "
        f"of {measured['total']:,} weights (target {config.prune})")
    return state, info


def quantize(config: Config, state, eval_data, label_names, directory: pathlib.Path | None,
             float_accuracy: float, log=print):
    """int8-quantise the weight matrices, write ``INT8_FILE``, evaluate the quantised model."""
    from lstmjax.loop import evaluate

    qparams = compression.quantize_int8(state.params)
    payload = flax.serialization.to_bytes(jax.device_get(qparams))
    float_bytes = compression.serialized_nbytes(state.params)
    if directory is not None:
        (directory / INT8_FILE).write_bytes(payload)
    report = evaluate(state.replace(params=compression.dequantize(qparams)), eval_data,
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

"""Pretraining runs (the document's §6): ``lstmjax pretrain`` and the encoder ``lstmjax train --init-from`` loads.

A pretraining run reads the texts of a data set's training split (its labels ignored), builds a
vocabulary from them, trains a classifier's encoder with a token-predicting head
(:mod:`lstmjax.training.pretrain`) for a budget of steps, epochs and seconds, whichever ends
first, and writes::

    DIR/pretrain.json      the PretrainConfig (JSON)
    DIR/vocab.json         the vocabulary (PAD 0, UNK 1; [MASK] is a learned vector, not an id)
    DIR/tokenizer.json     the tokenizer's settings
    DIR/checkpoints/N/     the model after N steps (lstmjax.training.checkpoint: arrays and JSON, no pickle)
    DIR/metrics.json       the loss and token accuracy, every logged step

``lstmjax train --init-from DIR`` (``Config.init_from``) fine-tunes on labelled data: the
classifier is the pretrained encoder's model (:func:`encoder_model`) with a new classification
head; the run takes DIR's vocabulary and tokenizer (so the ids mean what they meant in
pretraining), its ``max_len`` and, for a recurrent encoder, its sizes (:func:`implied_config`);
:func:`lstmjax.training.pretrain.init_encoder` puts the pretrained arrays in.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import time
from typing import Any

import jax

from lstmjax.app.config import Config, ConfigError
from lstmjax.app.pretrain_config import RECURRENT, PretrainConfig
from lstmjax.app.rundir import read_inside
from lstmjax.data import Vocab, batches, load_dataset, prepare, tokenizer_from_config
from lstmjax.nn import TextClassifier, TransformerClassifier
from lstmjax.nn.pretraining import MaskedTokenModel, NextTokenModel
from lstmjax.training import (
    Checkpointer,
    CheckpointError,
    create_train_state,
    make_optimizer,
)
from lstmjax.training.pretrain import masked_token_step, next_token_step

__all__ = ["Pretrained", "encoder_model", "implied_config", "load_pretrained", "pretrain"]

CONFIG_FILE = "pretrain.json"


def encoder_model(config: PretrainConfig, vocab_size: int, num_classes: int = 2, *, fine_tune: Config | None = None):
    """The classifier whose encoder a pretraining config describes (its head is what fine-tuning adds).

    Args:
      config: the pretraining config.
      vocab_size: the vocabulary's size.
      num_classes: the labels of the fine-tuning data (ignored in pretraining).
      fine_tune: the fine-tuning run's config: its dropout rates (and, for a recurrent model,
        pooling) apply; the encoder's shape is ``config``'s.

    Returns:
      A :class:`~lstmjax.nn.TextClassifier` or :class:`~lstmjax.nn.TransformerClassifier`.

    Example:
      >>> encoder_model(PretrainConfig(model="transformer", embed_dim=16, heads=2), 100).num_layers
      1
    """
    tune = fine_tune or Config()
    if config.model in RECURRENT:
        return TextClassifier(vocab_size, num_classes, embed_dim=config.embed_dim, cell=config.model,
                              hidden_size=config.hidden, num_layers=config.layers, dropout=tune.dropout,
                              embed_dropout=tune.embed_dropout, output_dropout=tune.output_dropout,
                              recurrent_dropout=tune.recurrent_dropout,
                              pooling=tune.model_pooling if tune.family == "recurrent" else "last")
    dropout = config.dropout if fine_tune is None else tune.dropout
    return TransformerClassifier(vocab_size, num_classes, embed_dim=config.embed_dim, max_len=config.max_len,
                                 num_layers=config.layers, num_heads=config.heads, ff_size=config.ff_size,
                                 dropout=dropout, embed_dropout=tune.embed_dropout,
                                 output_dropout=tune.output_dropout, pooling=config.pooling)


def _pretraining_model(config: PretrainConfig, vocab_size: int):
    """The encoder with its token head, and the step that trains it."""
    encoder = encoder_model(config, vocab_size)
    if config.model in RECURRENT:
        return NextTokenModel(encoder), next_token_step
    return MaskedTokenModel(encoder), functools.partial(masked_token_step, vocab_size=vocab_size,
                                                        rate=config.mask_rate)


def _initial_state(config: PretrainConfig, vocab_size: int):
    model, step = _pretraining_model(config, vocab_size)
    return create_train_state(model, jax.random.key(config.seed), make_optimizer("adam", config.lr)), step


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A pretraining run read back: its config, vocabulary, tokenizer and trained parameters.

    Attributes:
      directory: the run folder.
      config: its :class:`PretrainConfig`.
      vocab: its vocabulary.
      tokenizer: its tokenizer.
      params: the pretraining model's parameters (``{"encoder": ..., <head>}``).
      step: the checkpoint's step.

    Example:
      >>> p = Pretrained(pathlib.Path("runs/lm"), PretrainConfig(), Vocab(("<pad>", "<unk>", "a")), None, None, 100)
      >>> p.config.objective, len(p.vocab)
      ('next token', 3)
    """

    directory: pathlib.Path
    config: PretrainConfig
    vocab: Vocab
    tokenizer: Any
    params: Any
    step: int


def load_pretrained(directory: str | os.PathLike, *, params: bool = True) -> Pretrained:
    """Read a folder written by :func:`pretrain` (``lstmjax pretrain``); every file is data (JSON, Orbax arrays).

    With ``params=False`` only the config, vocabulary and tokenizer are read (``params`` is
    ``None``, ``step`` -1).

    Raises:
      CheckpointError: not a pretraining run (a classifier's run folder is named as one), or a
        file missing or damaged.

    Example:
      >>> load_pretrained("no/such/run")
      Traceback (most recent call last):
      ...
      lstmjax.training.checkpoint.CheckpointError: no/such/run: no such pretraining run (a folder written by 'lstmjax pretrain --out')
    """
    d = pathlib.Path(directory)
    if not d.is_dir():
        raise CheckpointError(f"{d}: no such pretraining run (a folder written by 'lstmjax pretrain --out')")
    if not (d / CONFIG_FILE).exists() and (d / "labels.txt").exists():
        raise CheckpointError(f"{d} is a classifier's run (lstmjax train), not a pretraining run (lstmjax pretrain): "
                              "--init-from takes the folder written by 'lstmjax pretrain --out'")
    try:
        config = PretrainConfig.from_json(read_inside(d, CONFIG_FILE))
        tokenizer = tokenizer_from_config(json.loads(read_inside(d, "tokenizer.json")))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{d}: not a readable pretraining run ({e})") from e
    read_inside(d, "vocab.json")
    vocab = Vocab.load(d / "vocab.json", tokenizer=tokenizer)
    if not params:
        return Pretrained(d, config, vocab, tokenizer, None, -1)
    template, _ = _initial_state(config, len(vocab))
    with Checkpointer(d, create=False) as ckpt:
        state, _, _ = ckpt.restore(template)
        step = ckpt.restored_step
    return Pretrained(d, config, vocab, tokenizer, state.params, int(step))


def implied_config(config: Config, pretrained: Pretrained, given: set[str] | None = None) -> Config:
    """The fine-tuning config: what the pretrained encoder decides taken from it, a conflict an error.

    The tokenizer, ``max_len`` and ``vocab_size`` (the vocabulary's size) always come from the
    pretraining run; for a recurrent encoder also ``model``/``cell``, ``layers``, ``embed_dim``,
    ``hidden`` (and ``bidirectional=False``), for a Transformer ``model``, ``layers``, ``embed_dim``,
    ``heads``, ``ff_size`` and ``pooling``, so the fine-tuned run rebuilds its model from its own config. A field in ``given`` (the options the user set; default: those
    that differ from :class:`Config`'s defaults) that asks for another value is a
    :class:`~lstmjax.app.config.ConfigError` naming it.

    Example:
      >>> p = Pretrained(pathlib.Path("p"), PretrainConfig(hidden=32, max_len=40), Vocab(("<pad>", "<unk>", "a")),
      ...                None, None, 1)
      >>> c = implied_config(Config(epochs=2), p)
      >>> c.hidden, c.max_len, c.vocab_size, c.epochs
      (32, 40, 3, 2)
    """
    pre = pretrained.config
    wanted = {"tokenizer": pre.tokenizer, "max_len": pre.max_len, "vocab_size": len(pretrained.vocab)}
    if pre.model in RECURRENT:
        wanted.update(model=pre.model, cell=pre.model, layers=pre.layers, bidirectional=False,
                      embed_dim=pre.embed_dim, hidden=pre.hidden)
    else:  # the fine-tuned run's config describes its Transformer: it needs the pretraining folder no more
        wanted.update(model="transformer", layers=pre.layers, embed_dim=pre.embed_dim, heads=pre.heads,
                      ff_size=pre.ff_size, pooling=pre.pooling)
    defaults = Config()
    if given is None:
        given = {name for name in wanted if getattr(config, name) != getattr(defaults, name)}
    clashes = [f"{name} {getattr(config, name)!r} (the pretrained encoder's: {value!r})"
               for name, value in wanted.items() if name in given and getattr(config, name) != value]
    if clashes:
        raise ConfigError(f"init_from {pretrained.directory}: the pretrained {pre.model} encoder decides "
                          + "; ".join(clashes) + ": leave these options out", "init_from")
    return config.replace(**wanted)


def _texts(config: PretrainConfig, cache_dir: str | None):
    """The training split's texts, tokenised and encoded with a vocabulary built from them."""
    data = load_dataset(config.data, cache_dir=cache_dir)
    if "train" not in data.splits or data["train"].num_rows == 0:
        raise ValueError(f"{config.data}: no texts in a 'train' split to pretrain on")
    return prepare(data, config.tokenizer, min_freq=config.min_freq, max_size=config.vocab_size)


def _write_json(path: pathlib.Path, value) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(value if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)


def _open(directory: pathlib.Path) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ValueError(f"{directory}: exists and is not an empty folder (--out names a new pretraining run)")
    directory.mkdir(parents=True, exist_ok=True)


def _batches(config: PretrainConfig, train, epoch: int):
    drop = train.num_rows >= config.batch_size
    for b in batches(train, config.batch_size, shuffle=True, seed=config.seed, epoch=epoch, drop_remainder=drop,
                     sort_window=64, max_length=config.max_len):
        yield {"token_ids": b["token_ids"], "lengths": b["lengths"]}


def _record(config: PretrainConfig, history: list, sums, done: int, epoch: int, seconds: float, log) -> None:
    """Append one logged window (mean loss and accuracy over its predicted tokens) to ``history``."""
    s = jax.device_get(sums)
    count = max(int(s["count"]), 1)
    history.append({"step": done, "epoch": epoch, "seconds": round(seconds, 2),
                    "loss": float(s["loss_sum"]) / count, "accuracy": int(s["correct"]) / count})
    log(f"step {done} (epoch {epoch}, {seconds:.0f} s): {config.objective} loss {history[-1]['loss']:.4f}, "
        f"accuracy {history[-1]['accuracy']:.4f}")


def _train(config: PretrainConfig, state, step_fn, train, log) -> tuple[Any, list[dict[str, float]]]:
    """Steps until the budget ends; the history of (step, epoch, seconds, loss, accuracy) per logged window.

    Seconds count from the end of the first step (its compilation is not training time)."""
    step_fn = jax.jit(step_fn)
    started, history, sums, done, seconds, epoch = None, [], None, 0, 0.0, 0
    for epoch in range(1, config.epochs + 1):
        for batch in _batches(config, train, epoch - 1):
            state, m = step_fn(state, batch, jax.random.fold_in(state.rng, done))
            sums = m if sums is None else jax.tree.map(lambda a, b: a + b, sums, m)
            done += 1
            if started is None:  # the clock starts after the first step, which compiles
                jax.block_until_ready(m)
                started = time.perf_counter()
            seconds = time.perf_counter() - started
            out_of_budget = (config.steps is not None and done >= config.steps) or (
                config.time_limit is not None and seconds >= config.time_limit)
            if done % config.log_every == 0 or out_of_budget:
                _record(config, history, sums, done, epoch, seconds, log)
                sums = None
            if out_of_budget:
                return state, history
    if sums is not None:  # the epochs ended inside a window
        _record(config, history, sums, done, epoch, seconds, log)
    return state, history


def pretrain(config: PretrainConfig, directory: str | os.PathLike, *, cache_dir: str | None = None,
             log=print) -> Pretrained:
    """Pretrain the configured encoder on the texts of ``config.data`` and write the run folder.

    Returns:
      The run, as :func:`load_pretrained` reads it back.

    Example:
      >>> import tempfile
      >>> c = PretrainConfig(steps=2, embed_dim=8, hidden=8, vocab_size=300, max_len=16, batch_size=16)
      >>> run = pretrain(c, tempfile.mkdtemp() + "/lm", cache_dir=tempfile.mkdtemp(), log=lambda *a: None)
      >>> run.step, sorted(run.params)
      (2, ['encoder', 'lm_head'])
    """
    d = pathlib.Path(directory)
    _open(d)
    prepared = _texts(config, cache_dir)
    vocab = prepared.vocab
    _write_json(d / CONFIG_FILE, config.to_json() + "\n")
    _write_json(d / "vocab.json", vocab.to_json())
    _write_json(d / "tokenizer.json", prepared.tokenizer.config())
    state, step_fn = _initial_state(config, len(vocab))
    count = sum(x.size for x in jax.tree.leaves(state.params))
    log(f"pretraining a {config.model} encoder ({config.objective}, {count:,} parameters) on "
        f"{prepared['train'].num_rows} texts of {config.data}; vocabulary {len(vocab)}")
    state, history = _train(config, state, step_fn, prepared["train"], log)
    step = int(jax.device_get(state.step))
    with Checkpointer(d) as ckpt:
        ckpt.save(step, state, {"epoch": history[-1]["epoch"] if history else 0, "batch": 0, "history": history})
    _write_json(d / "metrics.json", {"objective": config.objective, "steps": step, "texts": prepared["train"].num_rows,
                                     "parameters": int(count), "history": history,
                                     "final_loss": history[-1]["loss"] if history else None})
    log(f"wrote {d / 'checkpoints'} (step {step}), {d / 'vocab.json'} and {d / CONFIG_FILE}")
    return Pretrained(d, config, vocab, prepared.tokenizer, state.params, step)

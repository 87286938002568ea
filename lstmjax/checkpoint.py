"""Run directories and checkpoints: the train state through Orbax, everything else as JSON.

A run directory holds::

    DIR/config.json        the Config (JSON)
    DIR/vocab.json         the Vocab (JSON), tied to its tokenizer by fingerprint
    DIR/tokenizer.json     the tokenizer's settings (a trained subword model included)
    DIR/labels.txt         one label name per line
    DIR/checkpoints/N/     Orbax checkpoint after epoch N: train state, best parameters, run meta
    DIR/metrics.json       written by the command at the end

Nothing here executes code from the files it reads (no pickle). Orbax writes each checkpoint
into a temporary folder and renames it into place when complete, and the JSON files are written
to a temporary file and renamed, so a crash while saving leaves the last good checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from lstmjax.config import MODEL_FIELDS, Config
from lstmjax.tokenizers import Tokenizer, tokenizer_from_config
from lstmjax.vocab import Vocab

__all__ = ["CheckpointError", "Checkpointer", "RunFiles", "check_compatible", "load_run_files", "save_run_files"]


class CheckpointError(ValueError):
    """A checkpoint or run directory is missing, damaged, or does not match the run."""


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """What a run directory says about how its model reads text."""

    config: Config
    vocab: Vocab
    tokenizer: Tokenizer
    label_names: tuple[str, ...]


def _write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_run_files(directory: str | os.PathLike, config: Config, vocab: Vocab, tokenizer: Tokenizer,
                   label_names: tuple[str, ...]) -> None:
    """Write ``config.json``, ``vocab.json``, ``tokenizer.json`` and ``labels.txt`` into ``directory``.

    Example:
      >>> import tempfile
      >>> from lstmjax.tokenizers import get_tokenizer
      >>> tok = get_tokenizer("english")
      >>> d = tempfile.mkdtemp()
      >>> save_run_files(d, Config(), Vocab.build([tok("a fine film")], tokenizer=tok), tok, ("neg", "pos"))
      >>> load_run_files(d).label_names
      ('neg', 'pos')
    """
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _write_atomic(d / "config.json", config.to_json() + "\n")
    _write_atomic(d / "vocab.json", json.dumps(vocab.to_json(), ensure_ascii=False) + "\n")
    _write_atomic(d / "tokenizer.json", json.dumps(tokenizer.config(), ensure_ascii=False, indent=1) + "\n")
    _write_atomic(d / "labels.txt", "".join(f"{name}\n" for name in label_names))


def load_run_files(directory: str | os.PathLike) -> RunFiles:
    """Read a run directory's config, tokenizer, vocabulary (checked against the tokenizer) and labels.

    Raises:
      CheckpointError: naming the missing or malformed file.
    """
    d = pathlib.Path(directory)
    if not d.is_dir():
        raise CheckpointError(f"{d}: no such run directory")
    for name in ("config.json", "vocab.json", "tokenizer.json", "labels.txt"):
        if not (d / name).is_file():
            raise CheckpointError(f"{d / name}: missing; is {d} a directory written by 'lstmjax train'?")
    try:
        config = Config.from_json((d / "config.json").read_text(encoding="utf-8"))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{d / 'config.json'}: {e}") from e
    try:
        tokenizer = tokenizer_from_config(json.loads((d / "tokenizer.json").read_text(encoding="utf-8")))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{d / 'tokenizer.json'}: {e}") from e
    try:
        vocab = Vocab.load(d / "vocab.json", tokenizer=tokenizer)
    except ValueError as e:
        raise CheckpointError(str(e)) from e
    labels = tuple(line for line in (d / "labels.txt").read_text(encoding="utf-8").splitlines() if line)
    if len(labels) < 2:
        raise CheckpointError(f"{d / 'labels.txt'}: needs at least 2 label names; found {len(labels)}")
    return RunFiles(config, vocab, tokenizer, labels)


def check_compatible(directory: str | os.PathLike, config: Config, vocab: Vocab | None = None,
                     label_names: tuple[str, ...] | None = None) -> RunFiles:
    """Check that a run directory's model can be resumed under ``config`` (and ``vocab``, labels).

    Raises:
      CheckpointError: listing each model field that differs (saved vs given), or the vocabulary
        or label mismatch.
    """
    saved = load_run_files(directory)
    diffs = [f"{name}: saved {getattr(saved.config, name)!r}, given {getattr(config, name)!r}"
             for name in MODEL_FIELDS if getattr(saved.config, name) != getattr(config, name)]
    if diffs:
        raise CheckpointError(f"{directory}: the checkpoint's model does not match this run's config; "
                              + "; ".join(diffs))
    if vocab is not None and vocab.tokens != saved.vocab.tokens:
        first = next((i for i, (a, b) in enumerate(zip(vocab.tokens, saved.vocab.tokens)) if a != b),
                     min(len(vocab), len(saved.vocab)))
        raise CheckpointError(f"{directory}/vocab.json: the vocabulary differs from this run's "
                              f"({len(saved.vocab)} vs {len(vocab)} tokens, first difference at id {first})")
    if label_names is not None and tuple(label_names) != saved.label_names:
        raise CheckpointError(f"{directory}/labels.txt: labels {saved.label_names} differ from this run's "
                              f"{tuple(label_names)}")
    return saved


class Checkpointer:
    """Save and restore the train state after each epoch (Orbax ``CheckpointManager``).

    Each checkpoint holds the state's arrays (``step``, ``params``, ``opt_state``, the RNG key's
    data), the best parameters so far (early stopping), and a JSON ``meta`` dict (epoch,
    history, best score).

    Args:
      directory: the run directory (checkpoints go to ``directory/checkpoints``).
      max_to_keep: how many recent checkpoints to keep.

    Example:
      >>> import tempfile, jax
      >>> from lstmjax import TextClassifier
      >>> from lstmjax.train import create_train_state, make_optimizer
      >>> state = create_train_state(TextClassifier(20, 2, embed_dim=4, hidden_size=4),
      ...                            jax.random.key(0), make_optimizer())
      >>> ckpt = Checkpointer(tempfile.mkdtemp())
      >>> ckpt.save(1, state, {"epoch": 1})
      >>> restored, meta, best = ckpt.restore(state)
      >>> meta, ckpt.latest_epoch()
      ({'epoch': 1}, 1)
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
        self.directory = pathlib.Path(directory).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                               enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    @staticmethod
    def _arrays(state, best_params) -> dict[str, Any]:
        return {
            "step": state.step,
            "params": state.params,
            "opt_state": state.opt_state,
            "rng": jax.random.key_data(state.rng),
            "best_params": state.params if best_params is None else best_params,
        }

    def save(self, epoch: int, state, meta: dict[str, Any], best_params=None, *, overwrite: bool = False) -> None:
        """Save after ``epoch`` (an int); ``meta`` must be JSON-serialisable.

        ``overwrite`` replaces an existing checkpoint of the same epoch (e.g. with pruned weights).
        """
        if overwrite and epoch in self._manager.all_steps():
            self._manager.delete(epoch)
        self._manager.save(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardSave(self._arrays(state, best_params)),
            meta=ocp.args.JsonSave(meta),
        ))
        self._manager.wait_until_finished()

    def latest_epoch(self) -> int | None:
        """The newest complete checkpoint's epoch, or ``None``."""
        self._manager.reload()
        return self._manager.latest_step()

    def restore(self, state, epoch: int | None = None):
        """Restore into the structure of ``state`` (a freshly created :class:`~lstmjax.train.TrainState`).

        Returns:
          ``(state, meta, best_params)``.

        Raises:
          CheckpointError: no checkpoint, or one whose arrays do not fit ``state``'s shapes.
        """
        epoch = self.latest_epoch() if epoch is None else epoch
        if epoch is None:
            raise CheckpointError(f"{self.directory}: no checkpoint to restore")
        template = self._arrays(state, None)
        try:
            restored = self._manager.restore(epoch, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(template), meta=ocp.args.JsonRestore()))
        except (ValueError, KeyError, FileNotFoundError) as e:
            raise CheckpointError(f"{self.directory}/{epoch}: cannot restore into this model: {e}") from e
        arrays = restored["state"]
        mismatched = [
            jax.tree_util.keystr(path)
            for path, a, b in _zip_with_path(template["params"], arrays["params"])
            if np.shape(a) != np.shape(b)
        ]
        if mismatched:
            raise CheckpointError(f"{self.directory}/{epoch}: parameter shapes differ at {', '.join(mismatched)}")
        state = state.replace(
            step=arrays["step"], params=arrays["params"], opt_state=arrays["opt_state"],
            rng=jax.random.wrap_key_data(arrays["rng"], impl=jax.random.key_impl(state.rng)),
        )
        return state, dict(restored["meta"]), arrays["best_params"]


def _zip_with_path(a, b):
    flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
    flat_b = jax.tree.leaves(b)
    return [(path, x, y) for (path, x), y in zip(flat_a, flat_b)]

"""Run directories: what a trained run needs to read text again, as JSON beside its checkpoints.

A run directory holds::

    DIR/config.json        the Config (JSON)
    DIR/vocab.json         the Vocab (JSON), tied to its tokenizer by fingerprint
    DIR/tokenizer.json     the tokenizer's settings (a trained subword model included)
    DIR/labels.txt         one label name per line
    DIR/checkpoints/N/     Orbax checkpoint after epoch N (lstmjax.training.checkpoint)
    DIR/metrics.json       written at the end of the run

Nothing here executes code from the files it reads (no pickle); the JSON files are written to a
temporary file and renamed, so a crash while saving leaves the last good version intact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

from lstmjax.app.config import MODEL_FIELDS, Config
from lstmjax.data.tokenizer import Tokenizer, tokenizer_from_config
from lstmjax.data.vocab import Vocab
from lstmjax.training.checkpoint import CheckpointError

__all__ = ["RunFiles", "check_compatible", "load_run_files", "save_run_files"]


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
      >>> from lstmjax.data.tokenizer import get_tokenizer
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

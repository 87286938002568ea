"""Run directories: what a trained run needs to read text again, as JSON beside its checkpoints.

A run directory holds::

    DIR/config.json        the Config (JSON); its data is what the user meant (local data: an absolute path)
    DIR/vocab.json         the Vocab (JSON), tied to its tokenizer by fingerprint
    DIR/tokenizer.json     the tokenizer's settings (a trained subword model included)
    DIR/labels.txt         one label name per line
    DIR/data.json          the data the run trained on: rows and a SHA-256 per split
    DIR/changes.json       deliberate changes made when the run was resumed (``--allow-change``)
    DIR/checkpoints/N/     Orbax checkpoint after N training steps (lstmjax.training.checkpoint)
    DIR/metrics.json       written at the end of the run

Nothing here executes code from the files it reads (no pickle); every file read must be a regular
file inside the directory (a symbolic link out of it is refused), and an error quotes at most a
short excerpt of what it read. The JSON files are written to a temporary file and renamed, so a
crash while saving leaves the last good version intact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

from lstmjax.app.config import FIXED_FIELDS, RESUME_FIELDS, Config
from lstmjax.data.loading import data_source
from lstmjax.data.tokenizer import Tokenizer, tokenizer_from_config
from lstmjax.data.vocab import Vocab
from lstmjax.training.checkpoint import CheckpointError

__all__ = ["RunFiles", "check_compatible", "excerpt", "load_changes", "load_run_files", "read_inside",
           "record_changes", "save_run_files"]

RUN_FILES = ("config.json", "vocab.json", "tokenizer.json", "labels.txt")
MAX_FILE_BYTES = 1 << 30  # a run file larger than this is not one lstmjax wrote


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """What a run directory says about how its model reads text.

    Attributes:
      config: the run's :class:`~lstmjax.app.config.Config`.
      vocab: its vocabulary.
      tokenizer: its tokenizer.
      label_names: the name of each label id.
      data: ``data.json`` (rows and SHA-256 of each split the run trained on), or ``None`` for
        runs written before it existed.
    """

    config: Config
    vocab: Vocab
    tokenizer: Tokenizer
    label_names: tuple[str, ...]
    data: dict[str, Any] | None = None


def excerpt(value: Any, limit: int = 80) -> str:
    """A short quote of ``value`` for an error message (what a file held may be anything).

    Example:
      >>> excerpt("x" * 100, limit=10)
      "'xxxxxxxxxx'... (100 characters)"
    """
    text = value if isinstance(value, str) else repr(value)
    if isinstance(value, str):
        return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text):,} characters)"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def read_inside(directory: str | os.PathLike, name: str) -> str:
    """The UTF-8 text of ``directory/name``, which must be a regular file inside ``directory``.

    Raises:
      CheckpointError: the file is missing, a symbolic link out of the directory, not a regular
        file, too large, or not UTF-8.

    Example:
      >>> import tempfile, pathlib
      >>> d = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (d / "labels.txt").write_text("neg\\npos\\n")
      >>> read_inside(d, "labels.txt")
      'neg\\npos\\n'
      >>> (d / "config.json").symlink_to("/etc/hostname")
      >>> read_inside(d, "config.json")
      Traceback (most recent call last):
      ...
      lstmjax.training.checkpoint.CheckpointError: .../config.json is a symbolic link out of the run directory ...
    """
    d = pathlib.Path(directory)
    path = d / name
    if not path.exists() and not path.is_symlink():
        raise CheckpointError(f"{path}: missing; is {d} a directory written by 'lstmjax train'?")
    if not path.resolve().is_relative_to(d.resolve()):
        raise CheckpointError(f"{path} is a symbolic link out of the run directory (to {os.readlink(path)}); "
                              "files of a run must lie inside it")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size:,} bytes, too large for a file of a run directory")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: not UTF-8 text (byte {e.start})") from None


def _write_atomic(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_run_files(directory: str | os.PathLike, config: Config, vocab: Vocab, tokenizer: Tokenizer,
                   label_names: tuple[str, ...], data: dict[str, Any] | None = None) -> None:
    """Write ``config.json``, ``vocab.json``, ``tokenizer.json``, ``labels.txt`` (and ``data.json``) into ``directory``.

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
    if data is not None:
        _write_atomic(d / "data.json", json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def _parse(d: pathlib.Path, name: str, read):
    try:
        return read(read_inside(d, name))
    except CheckpointError:
        raise
    except (ValueError, TypeError) as e:  # JSON syntax, unknown fields, bad values
        raise CheckpointError(f"{d / name}: {excerpt(str(e), 300)}") from e


def _vocab(d: pathlib.Path, tokenizer: Tokenizer) -> Vocab:
    read_inside(d, "vocab.json")  # inside the directory, a regular UTF-8 file
    try:
        return Vocab.load(d / "vocab.json", tokenizer=tokenizer)
    except ValueError as e:
        raise CheckpointError(excerpt(str(e), 300)) from e


def load_run_files(directory: str | os.PathLike) -> RunFiles:
    """Read a run directory's config, tokenizer, vocabulary (checked against the tokenizer) and labels.

    Raises:
      CheckpointError: naming the missing, malformed or misplaced file.
    """
    d = pathlib.Path(directory)
    if not d.is_dir():
        raise CheckpointError(f"{d}: no such run directory")
    for name in RUN_FILES:
        read_inside(d, name)
    config = _parse(d, "config.json", Config.from_json)
    tokenizer = _parse(d, "tokenizer.json", lambda text: tokenizer_from_config(json.loads(text)))
    vocab = _vocab(d, tokenizer)
    labels = tuple(line for line in read_inside(d, "labels.txt").splitlines() if line)
    if len(labels) < 2:
        raise CheckpointError(f"{d / 'labels.txt'}: needs at least 2 label names; found {len(labels)}")
    data = _parse(d, "data.json", json.loads) if (d / "data.json").exists() or (d / "data.json").is_symlink() else None
    return RunFiles(config, vocab, tokenizer, labels, data if isinstance(data, dict) else None)


def _data_differences(saved: dict[str, Any] | None, data: dict[str, Any] | None) -> list[str]:
    """The splits whose rows or contents differ between a run's ``data.json`` and the data given now."""
    if saved is None or data is None:
        return []
    out = []
    for split in sorted(set(saved.get("sha256", {})) | set(data.get("sha256", {}))):
        before, now = saved.get("sha256", {}).get(split), data.get("sha256", {}).get(split)
        if before != now:
            rows = saved.get("rows", {}).get(split), data.get("rows", {}).get(split)
            out.append(f"split {split!r} differs ({rows[0]} rows, sha256 {str(before)[:12]} saved; "
                       f"{rows[1]} rows, sha256 {str(now)[:12]} given)")
    return out


def check_compatible(directory: str | os.PathLike, config: Config, vocab: Vocab | None = None,
                     label_names: tuple[str, ...] | None = None, *, data: dict[str, Any] | None = None,
                     allow: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Check that a run directory's run can be continued under ``config`` (and ``vocab``, labels, data).

    Fields of :data:`~lstmjax.app.config.RESUME_FIELDS` may differ; fields of
    :data:`~lstmjax.app.config.FIXED_FIELDS` never; any other only when named in ``allow``
    (``"data"`` also allows different data contents, ``data`` being :func:`data_info`'s dict).

    Returns:
      The allowed changes, ``[{"field", "saved", "given"}]`` (empty when nothing changes).

    Raises:
      CheckpointError: listing each field that differs (saved vs given) and may not, or the
        vocabulary, label or data mismatch.

    Example:
      >>> import tempfile
      >>> from lstmjax.data.tokenizer import get_tokenizer
      >>> tok, d = get_tokenizer("english"), tempfile.mkdtemp()
      >>> save_run_files(d, Config(), Vocab.build([tok("a fine film")], tokenizer=tok), tok, ("neg", "pos"))
      >>> check_compatible(d, Config(epochs=20))
      []
      >>> check_compatible(d, Config(lr=0.01), allow=("lr",))
      [{'field': 'lr', 'saved': 0.001, 'given': 0.01}]
      >>> check_compatible(d, Config(lr=0.01))
      Traceback (most recent call last):
      ...
      lstmjax.training.checkpoint.CheckpointError: ...: resuming would make it a different run: lr: saved 0.001, given 0.01; ...
    """
    saved = load_run_files(directory)
    # data as the user meant it: a run written before config.json held absolute paths still matches
    saved = dataclasses.replace(saved, config=saved.config.replace(data=data_source(saved.config.data)))
    differing = [f.name for f in dataclasses.fields(Config)
                 if f.name not in RESUME_FIELDS and getattr(saved.config, f.name) != getattr(config, f.name)]
    fixed = [name for name in differing if name in FIXED_FIELDS]
    refused = [name for name in differing if name not in FIXED_FIELDS and name not in allow]

    def show(name: str) -> str:
        return f"{name}: saved {excerpt(getattr(saved.config, name))}, given {excerpt(getattr(config, name))}"

    if fixed:
        raise CheckpointError(f"{directory}: the checkpoint's model does not match this run's config; "
                              + "; ".join(map(show, fixed)))
    data_diffs = _data_differences(saved.data, data)
    if "data" in allow:
        differing += [] if "data" in differing or not data_diffs else ["data"]
        data_diffs = []
    if refused or data_diffs:
        named = ", ".join("--" + n.replace("_", "-") for n in refused) or "--data"
        raise CheckpointError(
            f"{directory}: resuming would make it a different run: " + "; ".join([*map(show, refused), *data_diffs])
            + f"; continue with the run's options, or pass --allow-change for each ({named}) to change it on "
              "purpose (recorded in changes.json)")
    _check_vocab_and_labels(directory, saved, vocab, label_names)
    return [{"field": n, "saved": getattr(saved.config, n), "given": getattr(config, n)} for n in differing]


def _check_vocab_and_labels(directory, saved: RunFiles, vocab: Vocab | None, label_names) -> None:
    if vocab is not None and vocab.tokens != saved.vocab.tokens:
        first = next((i for i, (a, b) in enumerate(zip(vocab.tokens, saved.vocab.tokens)) if a != b),
                     min(len(vocab), len(saved.vocab)))
        raise CheckpointError(f"{directory}/vocab.json: the vocabulary differs from this run's "
                              f"({len(saved.vocab)} vs {len(vocab)} tokens, first difference at id {first})")
    if label_names is not None and tuple(label_names) != saved.label_names:
        raise CheckpointError(f"{directory}/labels.txt: labels {excerpt(saved.label_names)} differ from this run's "
                              f"{excerpt(tuple(label_names))}")


def record_changes(directory: str | os.PathLike, changes: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    """Append deliberate changes (``check_compatible``'s) to ``changes.json``, each with ``where``
    (e.g. ``step=402``), and return the whole list.

    Example:
      >>> import tempfile
      >>> d = tempfile.mkdtemp()
      >>> record_changes(d, [{"field": "lr", "saved": 0.001, "given": 0.0001}], step=402)
      [{'field': 'lr', 'saved': 0.001, 'given': 0.0001, 'step': 402}]
      >>> len(load_changes(d))
      1
    """
    everything = load_changes(directory) + [{**c, **where} for c in changes]
    if changes:
        _write_atomic(pathlib.Path(directory) / "changes.json", json.dumps(everything, indent=1) + "\n")
    return everything


def load_changes(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """The deliberate changes recorded in ``changes.json`` (``[]`` when there is none)."""
    d = pathlib.Path(directory)
    if not (d / "changes.json").exists():
        return []
    changes = _parse(d, "changes.json", json.loads)
    if not isinstance(changes, list):
        raise CheckpointError(f"{d / 'changes.json'}: expected a JSON list of changes")
    return changes

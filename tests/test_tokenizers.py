"""Tokenizers: the documented English rules, jieba 分词, characters, trained subwords, configs."""

import json
import pickle

import pytest

from lstmjax.data import tokenizer as T


@pytest.mark.parametrize("text, tokens", [
    ("Hello, World!", ["hello", ",", "world", "!"]),
    ("don't stop-believing", ["don't", "stop", "-", "believing"]),
    ("it 's does n't", ["it", "'s", "does", "n't"]),  # treebank clitics, as in SST-2
    ("ＦＵＬＬ　ｗｉｄｔｈ１２", ["full", "width12"]),  # NFKC folds full-width letters and spaces
    ("café Café CAFÉ", ["café", "café", "café"]),
    ("a<br />b &amp; c", ["a", "b", "&", "c"]),
    ("snake_case", ["snake", "_", "case"]),  # nothing but whitespace is dropped
    ("   ", []),
])
def test_english(text, tokens):
    assert T.get_tokenizer("english")(text) == tokens


def test_english_drops_only_whitespace():
    text = "Ünïcode — “quotes”, 3.14 & emoji 🙂!"
    tokens = T.EnglishTokenizer(lowercase=False)(text)
    assert "".join(tokens) == "".join(T.normalize_text(text, lowercase=False).split())


def test_jieba_segments_words():
    jieba = pytest.importorskip("jieba")
    tok = T.get_tokenizer("jieba")
    text = "我爱北京天安门，送餐很快"
    assert tok(text) == ["我", "爱", "北京", "天安门", ",", "送餐", "很快"]
    assert tok(text) == [t for t in jieba.lcut(T.normalize_text(text)) if t.strip()]


def test_char():
    assert T.get_tokenizer("char")("好吃 ok") == ["好", "吃", "o", "k"]


@pytest.mark.parametrize("model", ["bpe", "wordpiece"])
def test_subword_trains_roundtrips_and_pickles(model):
    texts = ["the film was good", "the films were bad", "good good films", "外卖很快"] * 20
    untrained = T.get_tokenizer(model, vocab_size=80)
    with pytest.raises(ValueError, match="not trained"):
        untrained("x")
    tok = untrained.train(texts)
    tokens = tok("The goodfilms 外卖")
    assert "外" in tokens and "卖" in tokens  # CJK split per character before subwords
    assert len(tok("the")) == 1
    rebuilt = T.tokenizer_from_config(json.loads(json.dumps(tok.config())))
    assert rebuilt == tok and rebuilt("The goodfilms 外卖") == tokens
    assert pickle.loads(pickle.dumps(tok))("good films") == tok("good films")
    assert T.fingerprint(tok) != T.fingerprint(untrained)


@pytest.mark.parametrize("name, kw", [("english", {"lowercase": False}), ("char", {}), ("jieba", {"hmm": False})])
def test_config_roundtrip_through_json(name, kw):
    tok = T.get_tokenizer(name, **kw)
    assert isinstance(tok, T.Tokenizer)
    again = T.tokenizer_from_config(json.loads(json.dumps(tok.config())))
    assert again == tok and T.fingerprint(again) == T.fingerprint(tok)


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown tokenizer 'spacy'"):
        T.get_tokenizer("spacy")

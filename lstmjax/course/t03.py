"""Tutorial 03 (preprocessing): checkers for its exercises."""

from __future__ import annotations

import functools
import math
import pathlib
import tempfile

import numpy as np

from lstmjax.course._check import Wrong, check_share, exercise


def _none(got) -> None:
    if got is None:
        raise Wrong("your function returned None (is its body still `...`?).")


@exercise("03.1", "Token coverage of a vocabulary")
def _coverage(fn):
    from lstmjax.data.tokenizer import get_tokenizer
    from lstmjax.data.vocab import Vocab

    char = get_tokenizer("char")
    train = ["送餐很快，味道不错", "酒店服务态度太差了", "这本书让我重新审视自己的生活", "味道很差"]
    test = ["送餐太慢了", "服务很好，味道不错", "生活很快"]
    vocab = Vocab.build([char(t) for t in train], min_freq=1)
    token_lists = [char(t) for t in test]
    cases = [(vocab, token_lists), (Vocab.build([["a", "b"]]), [["a", "b", "c", "a"]]),
             (Vocab.build([["a"]]), [["b", "b", "b", "a"]])]
    for v, lists in cases:
        got = fn(v, lists)
        _none(got)
        types = {t for toks in lists for t in toks}
        check_share(got, v.coverage(lists), where=f"on {lists}", likely_mistake=sum(t in v for t in types) / len(types),
                    hint=" That is the share of *distinct* tokens (types); coverage counts every occurrence.")
    return "coverage = known tokens / all tokens, as Vocab.coverage."


@exercise("03.2", "A BPE vocabulary: how many unknown tokens are left?")
def _bpe(prepared):
    from lstmjax.data.tokenizer import SubwordTokenizer
    from lstmjax.data.vocab import UNK_ID

    if prepared is None:
        raise Wrong("pass the result of lstmjax.prepare(en, lstmjax.get_tokenizer('bpe', vocab_size=4000)).")
    tok = getattr(prepared, "tokenizer", None)
    if not isinstance(tok, SubwordTokenizer) or tok.model != "bpe":
        raise Wrong(f"the dataset was prepared with {tok!r}, not a BPE tokenizer.")
    if tok.vocab_size != 4000:
        raise Wrong(f"the exercise asks for vocab_size=4000, got {tok.vocab_size}.")
    if len(prepared.vocab) > 4000 + 2:
        raise Wrong(f"the vocabulary has {len(prepared.vocab)} ids; a 4000-piece BPE needs at most 4002.")
    if "validation" not in prepared.splits:
        raise Wrong("prepare the whole built-in data set (train, validation, test).")
    ids = np.concatenate([np.asarray(r, np.int64) for r in prepared["validation"]["token_ids"][:]])
    unknown = float(np.mean(ids == UNK_ID))
    if unknown > 0.01:
        raise Wrong(f"{unknown:.2%} of the validation tokens are unknown: was the vocabulary built with "
                    "min_freq or max_size that drops BPE pieces?")
    return (f"{len(prepared.vocab):,} ids; {unknown:.3%} of {ids.size:,} validation tokens are unknown "
            "(pieces not seen in training, mostly rare characters).")


@functools.lru_cache(maxsize=1)
def _waste_by_window(windows):
    from lstmjax.data.batching import batches, prepare
    from lstmjax.data.loading import load_dataset

    cache = tempfile.mkdtemp(prefix="lstmjax-course-")
    train = prepare(load_dataset("builtin", cache_dir=cache), "english", min_freq=2)["train"]
    want = {}
    for w in windows:
        out = list(batches(train, 32, shuffle=True, seed=0, drop_remainder=True, sort_window=w))
        padded = sum(int(b["mask"].sum()) * b["token_ids"].shape[1] for b in out)
        want[w] = padded / sum(int(b["lengths"].sum()) for b in out)
    return want


@exercise("03.3", "Padding waste against sort_window")
def _waste(answer):
    windows = (1, 4, 16, 64, 256)
    if not isinstance(answer, dict) or sorted(answer) != list(windows):
        raise Wrong(f"return a dict {{window: waste}} for the windows {windows}.")
    want = _waste_by_window(windows)
    for w in windows:
        if not math.isclose(float(answer[w]), want[w], rel_tol=1e-6):
            raise Wrong(f"sort_window={w}: you have waste {float(answer[w]):.4f}, expected {want[w]:.4f} "
                        "(batches(prepared['train'], 32, shuffle=True, seed=0, drop_remainder=True, "
                        "sort_window=w), waste = padded cells of real rows / real tokens).")
    gains = {w: want[prev] - want[w] for prev, w in zip(windows, windows[1:])}
    return ("waste " + ", ".join(f"{w}: {want[w]:.2f}" for w in windows)
            + f"; the last step (64 → 256) saves only {gains[256]:.3f}.")


@exercise("03.4", "Which tokens does the model see after truncation?")
def _visible(fn):
    from lstmjax.data.batching import pad_sequences

    rng = np.random.default_rng(5)
    for _ in range(20):
        seq = rng.integers(2, 100, int(rng.integers(0, 30))).tolist()
        for truncating in ("post", "pre"):
            ids, lengths = pad_sequences([seq], 16, truncating=truncating)
            want = ids[0, : lengths[0]].tolist()
            got = fn(list(seq), 16, truncating)
            _none(got)
            if list(got) != want:
                raise Wrong(f"visible({seq}, 16, {truncating!r}) = {list(got)}, expected {want}: "
                            "'post' drops tokens from the end (keeps the opening), 'pre' from the start "
                            "(keeps the conclusion).")
    return "'post' keeps the first 16 tokens, 'pre' the last 16, as lstmjax.pad_sequences."


@exercise("03.5", "Re-encode a GBK file as UTF-8")
def _to_utf8(fn):
    from lstmjax.data.errors import DataError
    from lstmjax.data.loading import load_dataset

    folder = pathlib.Path(tempfile.mkdtemp(prefix="lstmjax-course-"))
    (folder / "labels.txt").write_text("neg\npos\n", encoding="utf-8")
    rows = [("great film", "pos"), ("酒店服务态度太差了", "neg"), ("送餐很快，味道不错", "pos")]
    text = "text,label\n" + "".join(f"{t},{label}\n" for t, label in rows)
    (folder / "train.csv").write_bytes(text.encode("gbk"))
    try:
        load_dataset(str(folder), splits=["train"], cache_dir=str(folder / "cache"))
    except DataError as error:
        if "train.csv" not in str(error) or "line 3" not in str(error):
            raise AssertionError(f"lstmjax's error should name the file and line: {error}") from None
    else:
        raise AssertionError("lstmjax loaded a GBK file without complaint")
    fn(str(folder / "train.csv"))  # rewrites the file in place
    try:
        data = load_dataset(str(folder), splits=["train"], cache_dir=str(folder / "cache2"))
    except DataError as error:
        raise Wrong(f"after your function the file still does not load: {error}") from None
    got = list(data["train"]["text"][:])
    if got != [t for t, _ in rows]:
        raise Wrong(f"the file loads but the texts are {got}, expected {[t for t, _ in rows]} "
                    "(decode as 'gbk' or 'gb18030', not 'latin-1').")
    return "the file loads after re-encoding and the Chinese texts are intact."

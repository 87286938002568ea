"""Tutorial 03 (preprocessing): checkers for its exercises."""

from __future__ import annotations

import collections
import itertools
import pathlib
import tempfile

import numpy as np

from lstmjax.course._check import Wrong, check_share, exercise, returned
from lstmjax.course._i18n import tr


def _none(got) -> None:
    if got is None:
        raise Wrong(tr("your function returned None (is its body still `...`?)."))


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
        check_share(got, v.coverage(lists), where=tr("on {lists}", lists=lists),
                    likely_mistake=sum(t in v for t in types) / len(types),
                    hint=tr(" That is the share of *distinct* tokens (types); coverage counts every occurrence."))
    return tr("coverage = known tokens / all tokens, as Vocab.coverage.")


def _merge(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    """``symbols`` with every occurrence of ``pair`` merged into one symbol, left to right."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def learn_bpe_reference(word_counts: dict[str, int], num_merges: int) -> list[tuple[str, str]]:
    """The merges byte-pair encoding learns (Sennrich et al. 2016), the rule of exercise 03.2.

    Each word starts as its characters and ``"</w>"``; each round merges the most frequent
    adjacent pair (counted over all words, weighted by their counts; ties: the smallest pair).

    Example:
      >>> learn_bpe_reference({"low": 5, "lower": 2, "newest": 6, "widest": 3}, 4)
      [('e', 's'), ('es', 't'), ('est', '</w>'), ('l', 'o')]
    """
    words = collections.Counter({tuple(w) + ("</w>",): c for w, c in word_counts.items()})
    merges = []
    for _ in range(num_merges):
        pairs = collections.Counter()
        for symbols, c in words.items():
            for pair in itertools.pairwise(symbols):
                pairs[pair] += c
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        merged = collections.Counter()
        for symbols, c in words.items():
            merged[_merge(symbols, best)] += c
        words = merged
    return merges


@exercise("03.2", "Byte-pair encoding from scratch: learn the merges")
def _bpe(learn_bpe):
    rng = np.random.default_rng(32)
    letters = list("abcdeu")
    random_words = {"".join(rng.choice(letters, int(rng.integers(1, 7)))): int(rng.integers(1, 9)) for _ in range(40)}
    cases = [({"low": 5, "lower": 2, "newest": 6, "widest": 3}, 10),  # Sennrich et al.'s example
             ({"cd": 1, "ab": 1}, 2),  # a tie: the smaller pair first, whatever the order of the words
             ({"aaaa": 3, "aa": 1}, 3),  # overlapping pairs: merge left to right, without overlap
             ({"a": 2}, 5),  # nothing left to merge after one round: stop early
             (random_words, 25)]
    for word_counts, n in cases:
        want = learn_bpe_reference(word_counts, n)
        got = returned(learn_bpe(dict(word_counts), n), "learn_bpe")
        got = [tuple(pair) for pair in got]
        if got == want:
            continue
        first = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        unweighted = learn_bpe_reference({w: 1 for w in word_counts}, n)
        if got == unweighted and got != want:
            hint = tr(" Those are the merges of the word *types*: weight each pair by its word's count.")
        elif len(got) != len(want):
            hint = tr(" Expected {n} merges (stop early only when no pair is left).", n=len(want))
        else:
            hint = tr(" Ties go to the smallest pair (min over (-count, pair)); a word is its characters plus "
                      "'</w>'; merge left to right without overlap ('a a a' → 'aa a').")
        call = f"learn_bpe({word_counts if len(word_counts) < 6 else '...'}, {n})"
        raise Wrong(tr("{call}: merge {k} is {got}, expected {want}.{hint}", call=call, k=first + 1,
                       got=got[first] if first < len(got) else None, want=want[first] if first < len(want) else None,
                       hint=hint))
    return tr("the merges equal the reference on Sennrich et al.'s example, ties, overlaps and random words.")


def window_batches_reference(lengths, batch_size: int, window: int, seed: int) -> list[np.ndarray]:
    """The grouping of exercise 03.3: shuffle, sort by length within windows of batches, cut.

    Example:
      >>> [b.tolist() for b in window_batches_reference([5, 1, 4, 2, 3, 6], 2, 3, seed=0)]
      [[1, 3], [4, 2], [0, 5]]
    """
    lengths = np.asarray(lengths)
    return _windows(lengths, np.random.default_rng(seed).permutation(len(lengths)), batch_size, window, "stable")


def _windows(lengths: np.ndarray, order: np.ndarray, batch_size: int, window: int, kind: str) -> list[np.ndarray]:
    out = []
    for start in range(0, len(order), window * batch_size):
        rows = order[start:start + window * batch_size]
        rows = rows[np.argsort(lengths[rows], kind=kind)]
        out += [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    return out


def _same_groups(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _padding_waste(lengths: np.ndarray, groups) -> float:
    return sum(len(g) * int(lengths[g].max()) for g in groups) / int(lengths.sum())


@exercise("03.3", "Length bucketing from scratch: batches sorted within windows")
def _window_batches(window_batches):
    rng = np.random.default_rng(33)
    lengths = np.minimum(rng.geometric(1 / 20, 1000), 59)  # like the reviews: many short, few long, ties
    for batch_size, window, seed in ((32, 1, 0), (32, 4, 1), (8, 16, 2), (32, 64, 3), (10, 3, 4)):
        want = window_batches_reference(lengths, batch_size, window, seed)
        got = returned(window_batches(lengths.copy(), batch_size, window, seed), "window_batches")
        got = [np.asarray(g) for g in got]
        where = f"window_batches(lengths, {batch_size}, {window}, seed={seed})"
        flat = np.concatenate(got) if got else np.array([], int)
        if sorted(flat.tolist()) != list(range(len(lengths))):
            raise Wrong(tr("{where}: every index must appear in exactly one batch.", where=where))
        if _same_groups(got, want):
            continue
        if np.array_equal(flat, np.argsort(lengths, kind="stable")):
            raise Wrong(tr("{where}: you sort the whole data set; sort only within each window of {window} × "
                           "{batch_size} shuffled examples, so that batches still differ from epoch to epoch.",
                           where=where, window=window, batch_size=batch_size))
        unshuffled = _windows(lengths, np.arange(len(lengths)), batch_size, window, "stable")
        if _same_groups(got, unshuffled):
            raise Wrong(tr("{where}: the windows are cut from the data in its stored order; shuffle first "
                           "(np.random.default_rng(seed).permutation(n)), then cut windows of window × batch_size.",
                           where=where))
        order = np.random.default_rng(seed).permutation(len(lengths))
        if _same_groups(got, _windows(lengths, order, batch_size, window, "quicksort")):
            raise Wrong(tr("{where}: reviews of equal length come out in another order: use a stable sort "
                           "(np.argsort(..., kind='stable')), which keeps the shuffled order among equal lengths.",
                           where=where))
        raise Wrong(tr("{where}: the batches differ from the expected ones. Shuffle with "
                       "np.random.default_rng(seed).permutation(n), cut windows of window × batch_size, sort each "
                       "with a stable sort, then cut batches of batch_size (the window's last may be short).",
                       where=where))
    waste = {w: _padding_waste(lengths, window_batches_reference(lengths, 32, w, 0)) for w in (1, 4, 16, 64)}
    return tr("the batches are right. Padding per real token on these lengths: window 1: {w1:.2f}, window 4: "
              "{w4:.2f}, window 16: {w16:.2f}, window 64: {w64:.2f}.", w1=waste[1], w4=waste[4], w16=waste[16],
              w64=waste[64])


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
                call = f"visible({seq}, 16, {truncating!r})"
                raise Wrong(tr("{call} = {got}, expected {want}: 'post' drops tokens from the end (keeps the "
                               "opening), 'pre' from the start (keeps the conclusion).", call=call, got=list(got),
                               want=want))
    return tr("'post' keeps the first 16 tokens, 'pre' the last 16, as lstmjax.pad_sequences.")


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
    before = (folder / "train.csv").read_bytes()
    fn(str(folder / "train.csv"))  # rewrites the file in place
    if (folder / "train.csv").read_bytes() == before:
        raise Wrong(tr("the file is unchanged after your function (is its body still `...`?): read its bytes, "
                       "decode them as GB18030 and write the text back as UTF-8."))
    try:
        data = load_dataset(str(folder), splits=["train"], cache_dir=str(folder / "cache2"))
    except DataError as error:
        raise Wrong(tr("after your function the file still does not load: {error}", error=error)) from None
    got = list(data["train"]["text"][:])
    if got != [t for t, _ in rows]:
        raise Wrong(tr("the file loads but the texts are {got}, expected {want} (decode as 'gbk' or 'gb18030', "
                       "not 'latin-1').", got=got, want=[t for t, _ in rows]))
    return tr("the file loads after re-encoding and the Chinese texts are intact.")

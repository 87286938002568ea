"""EDA augmentation: each operation's behaviour, determinism, edge cases, one split only."""

import collections

import datasets as hf
import numpy as np
import pytest

from lstmjax.data.augment import (
    OPERATIONS,
    augment_dataset,
    augment_tokens,
    random_deletion,
    random_insertion,
    random_swap,
    synonym_replacement,
)

TOKENS = "the quick brown fox jumps over the lazy dog".split()
SYN = {"quick": ["fast", "rapid"], "lazy": ["idle"], "dog": ["hound", "mutt"]}


def _rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("seed", range(5))
def test_deletion_keeps_order_and_subset(seed):
    out = random_deletion(TOKENS, 0.3, _rng(seed))
    it = iter(TOKENS)
    assert 1 <= len(out) <= len(TOKENS) and all(t in it for t in out)  # an ordered subsequence


def test_deletion_rate():
    kept = sum(len(random_deletion(TOKENS, 0.25, _rng(s))) for s in range(400))
    assert abs(kept / (400 * len(TOKENS)) - 0.75) < 0.03


def test_deletion_never_empties():
    for s in range(20):
        assert len(random_deletion(TOKENS, 1.0, _rng(s))) == 1
    assert random_deletion(["one"], 1.0, _rng()) == ["one"]
    assert random_deletion([], 0.5, _rng()) == []
    with pytest.raises(ValueError):
        random_deletion(TOKENS, 1.5, _rng())


@pytest.mark.parametrize("n", [0, 1, 3])
def test_swap_is_permutation(n):
    out = random_swap(TOKENS, n, _rng(n))
    assert collections.Counter(out) == collections.Counter(TOKENS)
    if n == 0:
        assert out == TOKENS
    if n == 1:
        assert sum(a != b for a, b in zip(out, TOKENS)) == 2
    assert random_swap([], n, _rng()) == [] and random_swap(["x"], n, _rng()) == ["x"]


def test_insertion_adds_synonyms():
    out = random_insertion(TOKENS, 3, SYN, _rng(1))
    assert len(out) == len(TOKENS) + 3
    added = collections.Counter(out) - collections.Counter(TOKENS)
    assert sum(added.values()) == 3
    assert set(added) <= {s for v in SYN.values() for s in v}
    assert random_insertion(["a", "b"], 2, SYN, _rng()) == ["a", "b"]  # no synonyms: unchanged
    assert random_insertion([], 2, SYN, _rng()) == []


def test_synonym_replacement():
    out = synonym_replacement(TOKENS, 2, SYN, _rng(2))
    assert len(out) == len(TOKENS)
    changed = [(a, b) for a, b in zip(TOKENS, out) if a != b]
    assert len({a for a, _ in changed}) == 2
    assert all(b in SYN[a] for a, b in changed)
    everything = synonym_replacement(TOKENS, 10, SYN, _rng(0))
    assert all(t not in SYN for t in everything)
    assert synonym_replacement(["dog"], 1, SYN, _rng()) in (["hound"], ["mutt"])
    assert synonym_replacement([], 1, SYN, _rng()) == []


def test_inputs_not_mutated():
    tokens = list(TOKENS)
    for op in (lambda r: random_deletion(tokens, 0.5, r), lambda r: random_swap(tokens, 3, r),
               lambda r: random_insertion(tokens, 2, SYN, r), lambda r: synonym_replacement(tokens, 2, SYN, r)):
        op(_rng())
    assert tokens == TOKENS


@pytest.mark.parametrize("op", OPERATIONS)
def test_each_op_is_deterministic(op):
    a = [augment_tokens(TOKENS, _rng(s), synonyms=SYN, alpha=0.3, ops=[op]) for s in range(5)]
    b = [augment_tokens(TOKENS, _rng(s), synonyms=SYN, alpha=0.3, ops=[op]) for s in range(5)]
    assert a == b and any(x != TOKENS for x in a)


def test_augment_tokens_errors():
    with pytest.raises(ValueError, match="unknown"):
        augment_tokens(TOKENS, _rng(), ops=["back_translation"])
    with pytest.raises(ValueError, match="synonyms"):
        augment_tokens(TOKENS, _rng(), ops=["synonym_replacement"])


SPLIT = {"text": ["the quick dog", "a lazy fox sat", "", "dog"], "label": [0, 1, 1, 0], "id": [10, 11, 12, 13]}


def test_augment_dataset_rows_and_labels():
    out = augment_dataset(SPLIT, n_aug=3, seed=0, synonyms=SYN, alpha=0.5)
    assert out["text"][:4] == SPLIT["text"] and out["label"][:4] == SPLIT["label"]
    assert len(out["text"]) == len(out["label"]) == len(out["id"]) == 16
    assert out["label"][4:] == [0] * 3 + [1] * 3 + [1] * 3 + [0] * 3
    assert out["id"][4:] == [10] * 3 + [11] * 3 + [12] * 3 + [13] * 3
    assert out["text"][10:13] == ["", "", ""]  # an empty text stays empty
    assert all(t.strip() for i, t in enumerate(out["text"]) if SPLIT["text"][(i - 4) // 3 if i >= 4 else i])
    assert SPLIT["text"] == ["the quick dog", "a lazy fox sat", "", "dog"]  # input untouched


def test_augment_dataset_reproducible():
    a = augment_dataset(SPLIT, n_aug=2, seed=7, synonyms=SYN, alpha=0.5)
    b = augment_dataset(SPLIT, n_aug=2, seed=7, synonyms=SYN, alpha=0.5)
    assert a == b
    outs = {tuple(augment_dataset(SPLIT, n_aug=2, seed=s, synonyms=SYN, alpha=0.5)["text"]) for s in range(6)}
    assert len(outs) > 1
    # a row's augmentations depend on the seed and the row only, not on the other rows
    full = augment_dataset({k: v[:2] for k, v in SPLIT.items()}, n_aug=2, seed=7, synonyms=SYN, alpha=0.5)
    changed = augment_dataset({k: ["dog", v[1]] for k, v in SPLIT.items() if k == "text"} | {"label": [0, 1]},
                              n_aug=2, seed=7, synonyms=SYN, alpha=0.5)
    assert full["text"][4:6] == changed["text"][4:6]  # row 1's copies: unaffected by row 0's text


def test_augment_dataset_n_aug_zero_and_errors():
    assert augment_dataset(SPLIT, n_aug=0) == SPLIT
    with pytest.raises(ValueError):
        augment_dataset(SPLIT, n_aug=-1)
    with pytest.raises(KeyError, match="sentence"):
        augment_dataset(SPLIT, text_field="sentence")


def test_only_one_split():
    with pytest.raises(TypeError, match="one split"):
        augment_dataset({"train": SPLIT, "test": SPLIT})
    dd = hf.DatasetDict({"train": hf.Dataset.from_dict(SPLIT), "test": hf.Dataset.from_dict(SPLIT)})
    with pytest.raises(TypeError, match="one split"):
        augment_dataset(dd)


def test_hf_dataset_in_and_out():
    ds = hf.Dataset.from_dict(SPLIT)
    out = augment_dataset(ds, n_aug=1, seed=3, synonyms=SYN)
    assert isinstance(out, hf.Dataset) and out.num_rows == 8 and out.features == ds.features
    assert out.to_dict() == augment_dataset(SPLIT, n_aug=1, seed=3, synonyms=SYN)


def test_custom_tokenizer_chinese():
    out = augment_dataset({"text": ["这部电影很好看"], "label": [1]}, n_aug=2, seed=0, tokenize=list,
                          detokenize="".join, ops=["random_swap"])
    assert all(sorted(t) == sorted("这部电影很好看") for t in out["text"])

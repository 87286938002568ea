"""Untrusted input and the greedy word-substitution attack, on a tiny model trained here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from lstmjax import TextClassifier, Vocab, get_tokenizer
from lstmjax.robustness import (
    attack_examples,
    check_texts,
    embedding_neighbours,
    greedy_substitution_attack,
    synonym_candidates,
)
from lstmjax.training.state import create_train_state, make_optimizer
from lstmjax.training.steps import train_step

POS = [f"good{i}" for i in range(4)]
NEG = [f"bad{i}" for i in range(4)]
NEUTRAL = [f"the{i}" for i in range(6)]
T = 6


@pytest.fixture(scope="module")
def tiny():
    """A model trained on 'more positive than negative words → 1', and a synonym table that
    maps sentiment words to neutral ones (the attack's weapon)."""
    vocab = Vocab.build([POS + NEG + NEUTRAL])
    rng = np.random.default_rng(0)
    words = np.array(POS + NEG + NEUTRAL)
    n = 256
    ids = np.zeros((n, T), np.int32)
    lengths = rng.integers(3, T + 1, n).astype(np.int32)
    labels = np.zeros(n, np.int32)
    for i in range(n):
        while True:
            sent = rng.choice(words, lengths[i])
            pos, neg = np.isin(sent, POS).sum(), np.isin(sent, NEG).sum()
            if pos != neg:
                break
        ids[i, : lengths[i]] = vocab.encode(list(sent))
        labels[i] = int(pos > neg)
    model = TextClassifier(len(vocab), 2, embed_dim=8, hidden_size=8, pooling="mean")
    state = create_train_state(model, jax.random.key(0), make_optimizer(learning_rate=0.03))
    step = jax.jit(train_step)
    batch = {"token_ids": ids, "lengths": lengths, "labels": labels}
    for k in range(100):
        state, _ = step(state, batch, jax.random.key(k))
    logits = model.apply({"params": state.params}, ids, lengths)
    accuracy = float((np.asarray(logits).argmax(-1) == labels).mean())
    table = {w: NEUTRAL for w in POS + NEG}
    return {"vocab": vocab, "model": model, "params": state.params, "ids": ids[:64], "lengths": lengths[:64],
            "labels": labels[:64], "cand": synonym_candidates(vocab, table), "accuracy": accuracy}


def _predict(t, ids, lengths):
    return np.asarray(t["model"].apply({"params": t["params"]}, jnp.asarray(ids), jnp.asarray(lengths))).argmax(-1)


def test_the_tiny_model_learned(tiny):
    assert tiny["accuracy"] > 0.85


def test_budget_zero_flips_nothing(tiny):
    r = greedy_substitution_attack(tiny["model"].apply, tiny["params"], tiny["ids"], tiny["lengths"],
                                   tiny["labels"], tiny["cand"], budget=0)
    assert r.flip_rate == 0.0 and not r.flipped.any() and (r.substitutions == 0).all()
    np.testing.assert_array_equal(r.token_ids, tiny["ids"])
    np.testing.assert_array_equal(r.adversarial_prob, r.original_prob)


def test_attack_flips_really_flip(tiny):
    budget = 3
    r = greedy_substitution_attack(tiny["model"].apply, tiny["params"], tiny["ids"], tiny["lengths"],
                                   tiny["labels"], tiny["cand"], budget=budget, batch_size=24)  # 3 batches, last padded
    assert 0.0 <= r.flip_rate <= 1.0
    assert r.flip_rate > 0.2  # replacing sentiment words by neutral ones must flip many
    assert r.attacked.sum() == (_predict(tiny, tiny["ids"], tiny["lengths"]) == tiny["labels"]).sum()
    # re-evaluated from scratch, the adversarial texts really change the prediction
    again = _predict(tiny, r.token_ids, tiny["lengths"])
    np.testing.assert_array_equal(again, r.adversarial_pred)
    assert (again[r.flipped] != tiny["labels"][r.flipped]).all()
    assert (again[r.attacked & ~r.flipped] == tiny["labels"][r.attacked & ~r.flipped]).all()
    # substitutions: counted right, within budget, inside the text, from the candidate table
    changed = r.token_ids != tiny["ids"]
    np.testing.assert_array_equal(changed.sum(1), r.substitutions)
    assert r.substitutions.max() <= budget
    assert not changed[np.arange(T)[None, :] >= tiny["lengths"][:, None]].any()
    for b, t in zip(*np.nonzero(changed)):
        assert r.token_ids[b, t] in tiny["cand"][tiny["ids"][b, t]]
    assert not changed[~r.attacked].any()  # misclassified examples are left alone
    assert (r.adversarial_prob <= r.original_prob + 1e-6).all()
    assert 1 <= r.mean_substitutions <= budget
    examples = attack_examples(r, tiny["ids"], tiny["lengths"], tiny["vocab"], label_names=["neg", "pos"], limit=3)
    assert len(examples) == min(3, int(r.flipped.sum()))
    for e in examples:
        assert e["label"] != e["new_prediction"] and 1 <= len(e["changes"]) <= budget
        assert all(new in NEUTRAL for _, new in e["changes"])


def test_matches_a_python_loop_of_single_substitutions(tiny):
    """An independent greedy search: one model call per candidate, plain Python."""
    apply = jax.jit(lambda ids, lengths: jax.nn.softmax(tiny["model"].apply({"params": tiny["params"]}, ids, lengths)))
    pick = [i for i in range(16) if _predict(tiny, tiny["ids"][i:i + 1], tiny["lengths"][i:i + 1])[0] == tiny["labels"][i]][:3]
    r = greedy_substitution_attack(tiny["model"].apply, tiny["params"], tiny["ids"][pick], tiny["lengths"][pick],
                                   tiny["labels"][pick], tiny["cand"], budget=2)
    for row, i in enumerate(pick):
        ids, n, y = tiny["ids"][i].copy(), int(tiny["lengths"][i]), int(tiny["labels"][i])
        length = np.array([n], np.int32)
        p = float(apply(ids[None], length)[0, y])
        used = set()
        for _ in range(2):
            best = (p, None, None)
            for t in range(n):
                if t in used:
                    continue
                for c in tiny["cand"][ids[t]]:
                    if c < 0 or c == ids[t]:
                        continue
                    trial = ids.copy()
                    trial[t] = c
                    q = float(apply(trial[None], length)[0, y])
                    if q < best[0]:
                        best = (q, t, c)
            if best[1] is None:
                break
            p, ids[best[1]] = best[0], best[2]
            used.add(best[1])
            if int(np.asarray(apply(ids[None], length)).argmax()) != y:
                break
        np.testing.assert_array_equal(r.token_ids[row], ids)
        np.testing.assert_allclose(r.adversarial_prob[row], p, atol=1e-5)


def test_embedding_neighbours_match_sklearn_cosine():
    e = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)
    got = embedding_neighbours(e, 3)
    sim = cosine_similarity(e)
    for i in range(2, 12):
        order = [j for j in np.argsort(-sim[i], kind="stable") if j not in (0, 1, i)]
        assert got[i].tolist() == order[:3]
    assert (got[:2] == -1).all()
    with pytest.raises(ValueError, match="k must be in"):
        embedding_neighbours(e, 10)


def test_attack_checks_its_inputs(tiny):
    args = (tiny["model"].apply, tiny["params"], tiny["ids"], tiny["lengths"], tiny["labels"], tiny["cand"])
    with pytest.raises(ValueError, match="budget must be an int ≥ 0"):
        greedy_substitution_attack(*args, budget=-1)
    with pytest.raises(ValueError, match="has no row in the candidate table"):
        greedy_substitution_attack(*args[:5], tiny["cand"][:3])
    with pytest.raises(ValueError, match="lengths and labels"):
        greedy_substitution_attack(*args[:4], tiny["labels"][:3], tiny["cand"])
    with pytest.raises(ValueError, match=r"labels\[0\] = 2 is not a class of this 2-class model"):
        greedy_substitution_attack(*args[:4], np.full(64, 2, np.int32), tiny["cand"])


# --------------------------------------------------------------------------- untrusted input


def test_check_texts_cleans_and_reports():
    texts = ["fine", "x" * 50, "", "  \t ", "a\x00b\x1bc", "zero\u200bwidth\u202e", "private\ue000", "tab\tand\nnewline"]
    checked = check_texts(texts, max_chars=20)
    assert len(checked.texts) == len(texts)
    by = {r.index: r for r in checked.reports}
    assert by[0].ok and checked.texts[0] == "fine"
    assert checked.texts[1] == "x" * 20 and by[1].issues == ("truncated from 50 to 20 characters",)
    assert by[1].original_chars == 50
    for i in (2, 3):
        assert checked.texts[i] == "" and "empty text" in by[i].issues[0]
    assert checked.texts[4] == "a b c" and "2 control character(s)" in by[4].issues[0]
    assert checked.texts[5] == "zerowidth" and "2 invisible format" in by[5].issues[0]
    assert checked.texts[6] == "private\ufffd" and "private-use or unassigned" in by[6].issues[0]
    assert by[7].ok and checked.texts[7] == "tab\tand\nnewline"
    assert [r.index for r in checked.problems] == [1, 2, 3, 4, 5, 6]


def test_check_texts_with_tokenizer_and_vocab():
    tok = get_tokenizer("english")
    vocab = Vocab.build([["a", "good", "film"]])
    checked = check_texts(["a good film", "a splendid zork film a good film"], tokenizer=tok, vocab=vocab, max_tokens=5)
    first, second = checked.reports
    assert first.ok and first.num_tokens == 3
    assert second.num_tokens == 7 and second.unknown_tokens == ("splendid", "zork")
    assert "7 tokens: the model reads only the first 5" in second.issues
    assert "2 of 7 tokens unknown to the vocabulary (read as UNK): 'splendid', 'zork'" in second.issues


def test_check_texts_refuses_what_is_not_text():
    with pytest.raises(TypeError, match="not one string"):
        check_texts("one text")
    with pytest.raises(TypeError, match=r"text 2: expected str, got int \(5\)"):
        check_texts(["a", "b", 5])
    with pytest.raises(TypeError, match=r"text 0: expected str, got bytes .*decode bytes first"):
        check_texts([b"raw"])
    with pytest.raises(ValueError, match="text 1 is empty after cleaning"):
        check_texts(["ok", "\x00"], on_empty="raise")
    with pytest.raises(ValueError, match="max_chars"):
        check_texts(["ok"], max_chars=0)

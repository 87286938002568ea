"""Ensembles: one compiled program for K members; member k = the model trained alone; averaging."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmjax import TextClassifier
from lstmjax.training.ensemble import (
    create_ensemble,
    ensemble_evaluate,
    ensemble_fit,
    ensemble_logits,
    ensemble_member,
    ensemble_predict_proba,
    ensemble_train_step,
    member_keys,
)
from lstmjax.training.loop import evaluate, fit
from lstmjax.training.state import create_train_state, make_optimizer
from lstmjax.training.steps import train_step

K = 3
# dropout everywhere, so each member's own dropout key matters
MODEL = TextClassifier(vocab_size=30, num_classes=3, embed_dim=8, hidden_size=8,
                       embed_dropout=0.2, output_dropout=0.1)




def _data(seed=0, n=24):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    ids = [[int(2 + 3 * y + rng.integers(3))] * int(rng.integers(1, 6)) for y in labels]
    return {"token_ids": ids, "label": labels.tolist()}


def _assert_tree_close(a, b, atol=1e-5):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-5), a, b)


def _keys():
    return jax.random.split(jax.random.key(42), K)


# one compiled init for every individually trained model (eager init costs ~1 s each on a CPU)
_create = jax.jit(create_train_state, static_argnums=(0, 2))


def test_members_train_in_one_program_and_match_alone(make_batch):
    tx = make_optimizer("adam", 1e-2)
    state = create_ensemble(MODEL, _keys(), tx)
    assert state.step.shape == (K,) and state.params["dense"]["kernel"].shape == (K, 8, 3)
    step = jax.jit(ensemble_train_step)
    for i in range(3):
        state, m = step(state, make_batch(i), member_keys(state))
    assert step._cache_size() == 1  # one compiled program for all K members and all steps
    assert m["loss_sum"].shape == (K,) and state.step.tolist() == [3] * K

    alone_step = jax.jit(train_step)
    losses = []
    for k in range(K):
        alone = _create(MODEL, _keys()[k], tx)
        for i in range(3):
            alone, m_alone = alone_step(alone, make_batch(i), jax.random.fold_in(alone.rng, alone.step))
        _assert_tree_close(ensemble_member(state, k).params, alone.params)
        _assert_tree_close(ensemble_member(state, k).opt_state, alone.opt_state)
        np.testing.assert_allclose(float(m["loss_sum"][k]), float(m_alone["loss_sum"]), rtol=1e-5)
        losses.append(float(m_alone["loss_sum"]))
    assert len(set(losses)) == K  # the members differ


def test_members_differ_at_init():
    state = create_ensemble(MODEL, _keys(), make_optimizer())
    w = np.asarray(state.params["recurrent"]["layer_0_forward"]["W_h"])
    assert not np.allclose(w[0], w[1]) and not np.allclose(w[1], w[2])


def test_bad_keys_shape():
    with pytest.raises(ValueError, match="K"):
        create_ensemble(MODEL, jax.random.key(0), make_optimizer())


def test_average_is_mean_of_member_softmax(make_batch):
    state = create_ensemble(MODEL, _keys(), make_optimizer())
    batch = make_batch(1)
    logits = jax.jit(ensemble_logits)(state, batch)
    assert logits.shape == (K, 6, 3) and logits.dtype == jnp.float32
    for k in range(K):
        member = ensemble_member(state, k)
        alone = MODEL.apply({"params": member.params}, batch["token_ids"], batch["lengths"])
        np.testing.assert_allclose(np.asarray(logits[k]), np.asarray(alone), atol=1e-6)
    expected = np.mean([np.asarray(jax.nn.softmax(logits[k])) for k in range(K)], axis=0)
    np.testing.assert_allclose(np.asarray(jax.jit(ensemble_predict_proba)(state, batch)), expected, atol=1e-6)


def test_fit_matches_loop_fit_per_member():
    tx = make_optimizer("adam", 2e-2)
    data = _data()
    initial = create_ensemble(MODEL, _keys(), tx)
    state, history = ensemble_fit(initial, data, epochs=2, batch_size=8, seed=3)
    assert len(history["loss"]) == 2 and len(history["loss"][0]) == K
    for k in (K - 1,):
        alone, h = fit(_create(MODEL, _keys()[k], tx), data, epochs=2, batch_size=8, seed=3)
        _assert_tree_close(ensemble_member(state, k).params, alone.params)
        np.testing.assert_allclose(history["loss"][-1][k], h["loss"][-1], rtol=1e-5)


def test_evaluate_members_and_ensemble():
    tx = make_optimizer("adam", 2e-2)
    data = _data(1, n=30)
    state, _ = ensemble_fit(create_ensemble(MODEL, _keys(), tx), _data(0), epochs=2, batch_size=8)
    r = ensemble_evaluate(state, data, batch_size=8, label_names=["a", "b", "c"])
    assert r["ensemble"]["support"] == 30 and len(r["members"]) == K
    alone = evaluate(ensemble_member(state, 1), data, batch_size=8, label_names=["a", "b", "c"])
    assert r["members"][1]["confusion_matrix"] == alone["confusion_matrix"]  # a member's report is evaluate's
    np.testing.assert_allclose(r["members"][1]["loss"], alone["loss"], rtol=1e-5)
    # the ensemble's predictions are the argmax of the mean probability
    ids = np.zeros((30, 5), np.int32)
    for i, row in enumerate(data["token_ids"]):
        ids[i, :len(row)] = row
    batch = {"token_ids": jnp.asarray(ids), "lengths": jnp.asarray([len(r) for r in data["token_ids"]], jnp.int32)}
    proba = np.asarray(ensemble_predict_proba(state, batch))
    pred = proba.argmax(-1)
    def confusion(pred):
        cm = np.zeros((3, 3), int)
        np.add.at(cm, (np.asarray(data["label"]), pred), 1)
        return cm.tolist()

    assert r["ensemble"]["confusion_matrix"] == confusion(pred)
    member_pred = np.asarray(ensemble_logits(state, batch)).argmax(-1)  # (K, B)
    assert [m["confusion_matrix"] for m in r["members"]] == [confusion(p) for p in member_pred]
    nll = -np.log(proba[np.arange(30), data["label"]]).mean()
    np.testing.assert_allclose(r["ensemble"]["loss"], nll, rtol=1e-4)
    # averaging probabilities never has a worse log-loss than the members' mean (Jensen)
    assert r["ensemble"]["loss"] <= np.mean([m["loss"] for m in r["members"]]) + 1e-6

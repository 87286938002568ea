"""Tests of :mod:`lstmjax.compress`: magnitude pruning and int8 quantisation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstmjax import (
    TextClassifier,
    batches,
    create_train_state,
    load_dataset,
    make_optimizer,
    prepare,
    train_step,
)
from lstmjax import compress as C
from lstmjax.nn.params import leaves_with_paths

MATRICES = ["dense/kernel", "embedding/embedding", "recurrent/layer_0_forward/W_h", "recurrent/layer_0_forward/W_x"]


def _model(vocab=50, classes=3, dim=8):
    return TextClassifier(vocab, classes, embed_dim=dim, hidden_size=dim)


def _params(key=0, **kw):
    """Model-shaped params with N(0, 1) entries: no exact zeros, no ties, non-zero biases."""
    ref = _model(**kw).init(jax.random.key(0), jnp.ones((1, 1), jnp.int32))["params"]
    leaves, treedef = jax.tree.flatten(ref)
    keys = jax.random.split(jax.random.key(key), len(leaves))
    return jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])


def _named(tree):
    return dict(leaves_with_paths(tree))


# ------------------------------------------------------------------------------------------ pruning


@pytest.mark.parametrize("scope", ["global", "per_layer"])
def test_zero_pruning_is_the_identity(scope):
    params = _params()
    masks = jax.jit(C.magnitude_masks, static_argnames="scope")(params, 0.0, scope=scope)
    assert all(bool(m.all()) for m in jax.tree.leaves(masks))
    jax.tree.map(np.testing.assert_array_equal, jax.jit(C.apply_masks)(params, masks), params)


@pytest.mark.parametrize("scope", ["global", "per_layer"])
@pytest.mark.parametrize("target", [0.5, 0.8, 0.9])
def test_exact_sparsity_and_biases_untouched(scope, target):
    params = _params()
    masks = jax.jit(C.magnitude_masks, static_argnames="scope")(params, target, scope=scope)
    pruned = C.apply_masks(params, masks)
    report = C.sparsity(pruned)
    named, named_masks = _named(params), _named(masks)
    sizes = {k: named[k].size for k in MATRICES}
    if scope == "global":
        assert report["zeros"] == round(target * sum(sizes.values()))
        kept = np.concatenate([np.abs(np.asarray(named[k]))[np.asarray(named_masks[k])] for k in MATRICES])
        dropped = np.concatenate([np.abs(np.asarray(named[k]))[~np.asarray(named_masks[k])] for k in MATRICES])
        assert kept.min() >= dropped.max()  # the largest magnitudes are the ones kept
    else:
        for k in MATRICES:
            assert report["per_leaf"][k] == round(target * sizes[k]) / sizes[k], k
    assert report["overall"] == pytest.approx(target, abs=1e-3)
    for k in ("dense/bias", "recurrent/layer_0_forward/b"):  # biases: never pruned by default
        assert bool(named_masks[k].all())
        np.testing.assert_array_equal(_named(pruned)[k], named[k])
        assert report["per_leaf"][k] == 0.0


def test_ties_are_broken_by_position():
    params = {"w": jnp.ones((2, 3))}
    np.testing.assert_array_equal(C.magnitude_masks(params, 0.5)["w"], [[False, False, False], [True, True, True]])


def test_include_predicate_selects_leaves():
    params = _params()
    masks = C.magnitude_masks(params, 0.5, include=lambda path, x: path.startswith("recurrent") and x.ndim == 2)
    named = _named(masks)
    assert bool(named["embedding/embedding"].all()) and bool(named["dense/kernel"].all())
    assert not bool(named["recurrent/layer_0_forward/W_h"].all())


def _train(tx, params, make_batch, steps=15):
    state = create_train_state(_model(), jax.random.key(0), tx).replace(params=params)
    step = jax.jit(train_step)
    for i in range(steps):
        state, _ = step(state, make_batch(i, n=8, t=6, vocab=50), jax.random.key(100 + i))
    return state


def test_pruned_weights_stay_zero_under_adam(make_batch):
    """With ``keep_pruned_zero`` chained after Adam, pruned weights are exactly 0 after 15 steps;
    without it Adam moves them (so this test can fail)."""
    state0 = create_train_state(_model(), jax.random.key(0), make_optimizer("adam", 1e-2))
    masks = C.magnitude_masks(state0.params, 0.7)
    pruned = C.apply_masks(state0.params, masks)

    kept = _train(optax.chain(make_optimizer("adam", 1e-2), C.keep_pruned_zero(masks)), pruned, make_batch)
    free = _train(make_optimizer("adam", 1e-2), pruned, make_batch)

    for k in MATRICES:
        m = np.asarray(_named(masks)[k])
        assert np.all(np.asarray(_named(kept.params)[k])[~m] == 0.0), k
        assert np.mean(np.asarray(_named(free.params)[k])[~m] != 0.0) > 0.5, k  # moved without the mask
    report = C.sparsity(kept.params)
    assert report["zeros"] >= round(0.7 * report["total"])
    changed = np.asarray(_named(kept.params)["dense/kernel"]) != np.asarray(_named(pruned)["dense/kernel"])
    assert changed[np.asarray(_named(masks)["dense/kernel"])].any()  # the kept weights still train


def test_polynomial_schedule_values():
    sched = C.polynomial_sparsity_schedule(0.9, begin_step=10, end_step=110, power=3)
    values = [float(sched(jnp.asarray(t, jnp.int32))) for t in (0, 10, 60, 110, 500)]
    # middle: 0.9 + (0 - 0.9) * (1 - 0.5)^3 = 0.7875
    np.testing.assert_allclose(values, [0.0, 0.0, 0.7875, 0.9, 0.9], atol=1e-6)
    with_initial = C.polynomial_sparsity_schedule(0.8, 0, 10, initial_sparsity=0.2)
    np.testing.assert_allclose([float(with_initial(0)), float(with_initial(10))], [0.2, 0.8], atol=1e-6)


def test_gradual_pruning_during_training(make_batch):
    """``prune_step`` every step along the schedule: the sparsity never falls, a weight once pruned
    stays pruned, and the final sparsity is the target exactly."""
    sched = C.polynomial_sparsity_schedule(0.8, begin_step=2, end_step=12)
    state = create_train_state(_model(), jax.random.key(0), optax.chain(make_optimizer("adam", 1e-2),
                                                                        C.keep_pruned_zero()))
    masks = C.magnitude_masks(state.params, 0.0)
    prune = jax.jit(lambda s, m: C.prune_step(s, m, sched))
    step = jax.jit(train_step)
    total = sum(_named(state.params)[k].size for k in MATRICES)
    previous = 0
    for i in range(16):
        new_state, new_masks = prune(state, masks)
        for old, new in zip(jax.tree.leaves(masks), jax.tree.leaves(new_masks)):
            assert not bool((new & ~old).any())  # nothing un-pruned
        pruned_count = sum(int((~m).sum()) for m in jax.tree.leaves(new_masks))
        assert pruned_count == round(float(sched(new_state.step)) * total) >= previous
        previous, masks = pruned_count, new_masks
        state, _ = step(new_state, make_batch(i, n=8, t=6, vocab=50), jax.random.key(100 + i))
        for k in MATRICES:
            assert np.all(np.asarray(_named(state.params)[k])[~np.asarray(_named(masks)[k])] == 0.0)
    assert C.sparsity(state.params)["zeros"] >= round(0.8 * total)
    assert previous == round(0.8 * total)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_sparsity_raises(bad):
    with pytest.raises(ValueError, match=f"sparsity must be in \\[0, 1\\); got {bad!r}"):
        C.magnitude_masks(_params(), bad)
    with pytest.raises(ValueError, match=repr(bad)):
        C.polynomial_sparsity_schedule(bad, 0, 10)


def test_bad_scope_and_steps_raise():
    with pytest.raises(ValueError, match="'layer'"):
        C.magnitude_masks(_params(), 0.5, scope="layer")
    with pytest.raises(ValueError, match="end_step"):
        C.polynomial_sparsity_schedule(0.5, 10, 10)


# ------------------------------------------------------------------------------------------ quantisation


def test_quantise_dequantise_error_within_half_a_scale():
    params = _params(vocab=200, dim=16)
    q = jax.jit(C.quantize_int8)(params)
    back = jax.jit(C.dequantize)(q)
    named, named_q, named_back = _named(params), q, _named(back)
    for k in MATRICES:
        qt = named_q
        for part in k.split("/"):
            qt = qt[part]
        assert isinstance(qt, C.QuantizedTensor) and qt.q.dtype == jnp.int8 and qt.scale.dtype == jnp.float32
        w = np.asarray(named[k])
        axis = 0 if k.endswith("embedding") else 1  # the per-channel axis: embedding rows, kernel columns
        expected_scale_shape = (w.shape[0], 1) if axis == 0 else (1, w.shape[1])
        assert qt.scale.shape == expected_scale_shape
        scale = np.asarray(qt.scale)
        err = np.abs(np.asarray(named_back[k]) - w)
        assert np.all(err <= scale / 2 * (1 + 1e-6)), (k, float((err / scale).max()))
        assert np.abs(np.asarray(qt.q)).max() == 127 and np.all(np.abs(np.asarray(qt.q)).max(axis=1 - axis) == 127)
    for k in ("dense/bias", "recurrent/layer_0_forward/b"):  # vectors stay float, exactly
        np.testing.assert_array_equal(named_back[k], named[k])


def test_all_zero_channel_quantises_to_zero():
    q = C.quantize_int8({"k": jnp.zeros((3, 2))})["k"]
    np.testing.assert_array_equal(C.dequantize({"k": q})["k"], np.zeros((3, 2)))


def test_int8_model_is_about_a_quarter_of_float32():
    """vocab 2000, 64-d embedding, 64 hidden, 2 classes: 161,154 parameters.

    Measured: 644,616 bytes float32 → 171,984 bytes int8 + float32 scales (26.7 %); saved with
    ``flax.serialization.to_bytes``: 644,825 → 172,287 bytes (26.7 %). The 1.7 points above a
    quarter are the scales, mostly the embedding's one per row (2,000 × 4 bytes) and the float
    biases."""
    model = TextClassifier(2000, 2, embed_dim=64, hidden_size=64)
    params = model.init(jax.random.key(0), jnp.ones((1, 1), jnp.int32))["params"]
    q = C.quantize_int8(params)
    before, after = C.nbytes(params), C.nbytes(q)
    matrices = 2000 * 64 + 64 * 256 + 64 * 256 + 64 * 2
    vectors = 256 + 2
    scales = 2000 + 256 + 256 + 2
    assert before == 4 * (matrices + vectors) == 644_616
    assert after == matrices + 4 * (vectors + scales) == 171_984
    assert 0.25 < after / before < 0.27
    assert 0.25 < C.serialized_nbytes(q) / C.serialized_nbytes(params) < 0.27


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained for 2 epochs on 2,000 sentences of the built-in (rotten tomatoes) set."""
    data = prepare(load_dataset("builtin", cache_dir=str(tmp_path_factory.mktemp("hf"))), "english", max_size=3000)
    train = data["train"].shuffle(seed=0).select(range(2000))
    test = data["test"]
    model = TextClassifier(len(data.vocab), 2, embed_dim=32, hidden_size=32)
    state = create_train_state(model, jax.random.key(0), make_optimizer("adam", 3e-3))
    step = jax.jit(train_step)
    for epoch in range(2):
        for i, batch in enumerate(batches(train, 32, shuffle=True, seed=0, epoch=epoch, drop_remainder=True,
                                          max_length=40)):
            state, _ = step(state, batch, jax.random.key(i))
    return model, state.params, test


def test_quantised_predictions_agree_with_float(trained):
    """On the 1,066 test sentences the int8 model's predicted class equals the float model's on
    1,064/1,066 (99.8 %; required: at least 95 %); the logits differ by at most 2.9e-3."""
    model, params, test = trained
    predict_q = C.make_quantized_predict(model)
    predict_f = jax.jit(lambda p, ids, n: model.apply({"params": p}, ids, n))
    qparams = C.quantize_int8(params)
    agree = total = 0
    max_diff = 0.0
    for batch in batches(test, 256, max_length=40):
        mask = np.asarray(batch["mask"]) if "mask" in batch else np.ones(len(batch["labels"]), bool)
        lf = np.asarray(predict_f(params, batch["token_ids"], batch["lengths"]))
        lq = np.asarray(predict_q(qparams, batch["token_ids"], batch["lengths"]))
        agree += int(np.sum((lf.argmax(-1) == lq.argmax(-1)) & mask))
        total += int(mask.sum())
        max_diff = max(max_diff, float(np.abs(lf - lq)[mask].max()))
    print(f"agreement {agree}/{total} = {agree / total:.4f}; max |logit diff| {max_diff:.2e}")
    assert total == len(test)
    assert agree / total >= 0.95

"""Train and eval steps: padding examples count for nothing, reproducibility, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstmjax import TextClassifier
from lstmjax.training.state import create_train_state, make_optimizer
from lstmjax.training.steps import (
    categorical_cross_entropy,
    eval_step,
    sparse_cross_entropy,
    train_step,
)

MODEL = TextClassifier(vocab_size=30, num_classes=3, embed_dim=8, hidden_size=8, embed_dropout=0.2)




def _state(seed=0):
    return create_train_state(MODEL, jax.random.key(seed), make_optimizer("adam", 1e-2))


def test_padding_examples_contribute_nothing(make_batch):
    """A batch padded with filler examples (mask False) updates exactly like the real batch."""
    batch = make_batch()
    filler = {k: jnp.concatenate([v, jnp.zeros((2,) + v.shape[1:], v.dtype)]) for k, v in batch.items()}
    filler["mask"] = jnp.array([True] * 6 + [False] * 2)
    step = jax.jit(train_step)
    # With dropout on: each example's mask comes from its own key, so the filler rows change nothing.
    s = _state()
    a, ma = step(s, batch, jax.random.key(5))
    b, mb = step(s, filler, jax.random.key(5))
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, atol=1e-7), a.params, b.params)
    assert int(mb["count"]) == 6 and float(ma["loss_sum"]) == pytest.approx(float(mb["loss_sum"]), rel=1e-6)
    e = jax.jit(eval_step)(s, filler)
    assert int(e["count"]) == 6 and int(e["confusion"].sum()) == 6


def test_sparse_equals_categorical():
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(5, 4)), jnp.float32)
    labels = jnp.array([0, 3, 1, 1, 2], jnp.int32)
    mask = jnp.array([True, True, False, True, True])
    a = sparse_cross_entropy(logits, labels, mask)
    b = categorical_cross_entropy(logits, jax.nn.one_hot(labels, 4), mask)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    ref = -np.log(np.asarray(jax.nn.softmax(logits)))[np.arange(5), labels][np.asarray(mask)].sum()
    np.testing.assert_allclose(a, ref, rtol=1e-5)


def test_reproducible_bit_identical(make_batch):
    def run():
        state = _state(3)
        for i in range(3):
            state, _ = jax.jit(train_step)(state, make_batch(i), jax.random.fold_in(state.rng, state.step))
        return state.params

    jax.tree.map(np.testing.assert_array_equal, run(), run())


def test_learns_a_separable_task():
    """Label = whether token 2 occurs: loss falls and eval accuracy reaches 100 %."""
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 30, (64, 6)).astype(np.int32)
    labels = (rng.random(64) < 0.5).astype(np.int32)
    ids[labels == 1, rng.integers(0, 6)] = 2
    batch = {"token_ids": jnp.asarray(ids), "lengths": jnp.full((64,), 6, jnp.int32), "labels": jnp.asarray(labels)}
    model = TextClassifier(vocab_size=30, num_classes=2, embed_dim=16, hidden_size=16)
    state = create_train_state(model, jax.random.key(0), make_optimizer("adam", 3e-2))
    step = jax.jit(train_step)
    first = None
    for i in range(60):
        state, m = step(state, batch, jax.random.key(i))
        first = first if first is not None else float(m["loss_sum"])
    assert float(m["loss_sum"]) < 0.1 * first
    assert int(jax.jit(eval_step)(state, batch)["correct"]) == 64


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "momentum"])
def test_optimizers_by_name(name, make_batch):
    tx = make_optimizer(name, optax.linear_schedule(1e-2, 0.0, 10), weight_decay=0.01 if name == "adamw" else 0.0)
    state = create_train_state(MODEL, jax.random.key(0), tx)
    state, m = jax.jit(train_step)(state, make_batch(), jax.random.key(1))
    assert int(state.step) == 1 and np.isfinite(float(m["loss_sum"]))


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'"):
        make_optimizer("adagrad")
    with pytest.raises(ValueError, match="weight_decay applies to 'adamw'"):
        make_optimizer("adam", weight_decay=0.1)
    with pytest.raises(ValueError, match="clip_norm must be positive"):
        make_optimizer("adam", clip_norm=0.0)


def test_no_dropout_model_takes_the_batched_path(make_batch):
    """Without dropout the per-example map is skipped; the step gives the same numbers either way."""
    plain = TextClassifier(vocab_size=30, num_classes=3, embed_dim=8, hidden_size=8)
    assert not plain.uses_dropout and MODEL.uses_dropout
    s = create_train_state(plain, jax.random.key(0), make_optimizer("adam", 1e-2))
    a, _ = jax.jit(train_step)(s, make_batch(), jax.random.key(1))
    # The same model behind a plain function, which does not say whether it uses dropout: the
    # step assumes it does and takes the per-example map.
    unknown = s.replace(apply_fn=lambda *args, **kwargs: plain.apply(*args, **kwargs))
    b, _ = jax.jit(train_step)(unknown, make_batch(), jax.random.key(1))
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, atol=1e-6), a.params, b.params)

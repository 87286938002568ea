"""L1/L2 penalties: values against NumPy, gradients against jax.grad, the zero penalty is plain training."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstmjax import TextClassifier
from lstmjax.nn.params import leaves_with_paths, param_paths
from lstmjax.parallel import DataParallel
from lstmjax.training.regularization import (
    add_penalty_gradient,
    penalized,
    penalty,
    penalty_gradient,
)
from lstmjax.training.state import create_train_state, make_optimizer
from lstmjax.training.steps import sparse_cross_entropy, train_step

MODEL = TextClassifier(vocab_size=20, num_classes=3, embed_dim=4, hidden_size=5)


@functools.cache  # initialising eagerly costs ~1 s on a CPU; the params are never mutated
def _params(seed=0):
    return create_train_state(MODEL, jax.random.key(seed), make_optimizer()).params




def test_paths_and_default_group():
    paths = param_paths(_params())
    assert "recurrent/layer_0_forward/W_h" in paths and "embedding/embedding" in paths
    chosen = sorted(p for p, leaf in leaves_with_paths(_params()) if penalized(p, leaf))
    assert chosen == ["dense/kernel", "recurrent/layer_0_forward/W_h", "recurrent/layer_0_forward/W_x"]


@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (0.01, 0.0), (0.0, 0.1), (0.03, 0.2)])
@pytest.mark.parametrize("everything", [False, True])
def test_penalty_matches_numpy(l1, l2, everything):
    params = _params()
    include = (lambda p, leaf: True) if everything else penalized
    expected = 0.0
    for path, leaf in zip(param_paths(params), jax.tree.leaves(params)):
        if include(path, leaf):
            w = np.asarray(leaf, np.float64)
            expected += l1 * np.abs(w).sum() + 0.5 * l2 * (w**2).sum()
    got = jax.jit(lambda p: penalty(p, l1=l1, l2=l2, include=include))(params)
    assert got.dtype == jnp.float32 and got.shape == ()
    np.testing.assert_allclose(float(got), expected, rtol=1e-5, atol=1e-7)


def test_penalty_on_one_group():
    params = _params()
    w_h = np.asarray(params["recurrent"]["layer_0_forward"]["W_h"], np.float64)
    got = penalty(params, l2=2.0, include=lambda p, leaf: p.endswith("W_h"))
    np.testing.assert_allclose(float(got), (w_h**2).sum(), rtol=1e-5)


@pytest.mark.parametrize("l1,l2", [(0.0, 0.3), (0.2, 0.0), (0.1, 0.05)])
def test_gradient_is_l1_sign_plus_l2_w(l1, l2):
    params = _params()
    auto = jax.jit(jax.grad(lambda p: penalty(p, l1=l1, l2=l2)))(params)
    closed = penalty_gradient(params, l1=l1, l2=l2)
    for path, a, c, w in zip(param_paths(params), jax.tree.leaves(auto), jax.tree.leaves(closed),
                             jax.tree.leaves(params)):
        expected = l1 * np.sign(np.asarray(w)) + l2 * np.asarray(w) if penalized(path, w) else np.zeros(w.shape)
        np.testing.assert_allclose(np.asarray(a), expected, rtol=1e-5, atol=1e-7, err_msg=path)
        np.testing.assert_allclose(np.asarray(c), expected, rtol=1e-5, atol=1e-7, err_msg=path)


def test_negative_strength_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        penalty({}, l2=-1.0)
    with pytest.raises(ValueError, match="non-negative"):
        add_penalty_gradient(l1=-1.0)


def test_zero_penalty_is_plain_training(make_batch):
    batch, key = make_batch(vocab=20), jax.random.key(3)
    plain = create_train_state(MODEL, jax.random.key(0), make_optimizer("adam", 1e-2))
    zero = create_train_state(MODEL, jax.random.key(0),
                              optax.chain(add_penalty_gradient(), make_optimizer("adam", 1e-2)))
    step = jax.jit(train_step)
    for _ in range(3):
        plain, m_plain = step(plain, batch, key)
        zero, m_zero = step(zero, batch, key)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), plain.params, zero.params)
    assert float(m_plain["loss_sum"]) == float(m_zero["loss_sum"])


@pytest.mark.parametrize("l1,l2", [(0.0, 0.5), (0.05, 0.1)])
def test_train_step_minimises_loss_plus_penalty(l1, l2, make_batch):
    """One SGD step with the chained transformation = one step on grad(mean loss + penalty)."""
    batch, key, lr = make_batch(vocab=20), jax.random.key(3), 0.1
    tx = optax.chain(add_penalty_gradient(l1=l1, l2=l2), optax.sgd(lr))
    state = create_train_state(MODEL, jax.random.key(0), tx)
    new, _ = jax.jit(train_step)(state, batch, key)

    def objective(params):  # MODEL has no dropout: the forward pass is deterministic
        logits = MODEL.apply({"params": params}, batch["token_ids"], batch["lengths"])
        mask = jnp.ones(batch["labels"].shape, jnp.bool_)
        return (sparse_cross_entropy(logits, batch["labels"], mask) / jnp.float32(batch["labels"].shape[0])
                + penalty(params, l1=l1, l2=l2))

    grads = jax.jit(jax.grad(objective))(state.params)
    expected = jax.tree.map(lambda w, g: w - lr * g, state.params, grads)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6),
                 new.params, expected)


def test_l2_shrinks_weights(make_batch):
    batch, key = make_batch(vocab=20), jax.random.key(3)
    norms = []
    for l2 in (0.0, 1.0):
        state = create_train_state(MODEL, jax.random.key(0),
                                   optax.chain(add_penalty_gradient(l2=l2), optax.sgd(0.1)))
        step = jax.jit(train_step)
        for _ in range(10):
            state, _ = step(state, batch, key)
        norms.append(float(penalty(state.params, l2=1.0)))
    assert norms[1] < norms[0]


def test_penalty_added_once_across_devices():
    """Under pmap the gradient is summed over devices first, then the penalty is added once."""
    from lstmjax.training.loop import fit

    rng = np.random.default_rng(0)
    data = {"token_ids": [[int(x) for x in rng.integers(2, 20, rng.integers(1, 6))] for _ in range(16)],
            "label": rng.integers(0, 3, 16).tolist()}
    params = []
    for mode in ("none", "pmap"):
        tx = optax.chain(add_penalty_gradient(l1=0.01, l2=0.5), optax.sgd(0.1))
        state, _ = fit(create_train_state(MODEL, jax.random.key(0), tx), data, epochs=1, batch_size=16,
                       parallel=DataParallel.create(mode))
        params.append(state.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6), *params)


def test_adamw_decay_is_decoupled():
    """make_optimizer("adamw") decays weights by lr · wd · w even where the gradient is zero."""
    lr, wd = 0.1, 0.5
    tx = make_optimizer("adamw", lr, weight_decay=wd)
    params = {"w": jnp.array([2.0, -4.0])}
    updates, _ = jax.jit(tx.update)({"w": jnp.zeros(2)}, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["w"]), -lr * wd * np.array([2.0, -4.0]), rtol=1e-6)


def test_dropout_is_off_at_evaluation(make_batch):
    """eval_step of a model with every dropout set equals the same parameters without dropout."""
    from lstmjax.training.steps import eval_step

    dropped = TextClassifier(vocab_size=20, num_classes=3, embed_dim=4, hidden_size=5, num_layers=2, dropout=0.5,
                             embed_dropout=0.5, output_dropout=0.5)
    plain = TextClassifier(vocab_size=20, num_classes=3, embed_dim=4, hidden_size=5, num_layers=2)
    state = create_train_state(dropped, jax.random.key(0), make_optimizer())
    same = create_train_state(plain, jax.random.key(0), make_optimizer())
    a, b = jax.jit(eval_step)(state, make_batch(vocab=20)), jax.jit(eval_step)(same, make_batch(vocab=20))
    assert float(a["loss_sum"]) == float(b["loss_sum"])
    np.testing.assert_array_equal(np.asarray(a["confusion"]), np.asarray(b["confusion"]))

"""Variational (recurrent) dropout: one mask on h_{t-1} per sequence, the same at every step.

The reference is a NumPy loop over time that multiplies h_{t-1} by the mask the layer sowed
(the layer's own mask, read back from ``intermediates``) before ``W_h``; for the GRU the update
``z ⊙ h_{t-1}`` reads the unmasked state, as Keras's ``GRU(recurrent_dropout=...)``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstmjax import GRU, LSTM, SimpleRNN, TextClassifier
from lstmjax.nn.layers import recurrent_dropout_mask
from lstmjax.training.state import create_train_state, make_optimizer
from lstmjax.training.steps import train_step

LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _reference(kind, p, x, lengths, mask):
    """NumPy loop: outputs (B, T, H) (zero at padding) and final h (B, H)."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    x, mask = np.asarray(x, np.float64), np.asarray(mask, np.float64)
    batch, time, _ = x.shape
    hidden = p["W_h"].shape[0]
    h, c = np.zeros((batch, hidden)), np.zeros((batch, hidden))
    ys = np.zeros((batch, time, hidden))
    for t in range(time):
        hm = h * mask  # the same mask at every step
        if kind == "lstm":
            z = x[:, t] @ p["W_x"] + p["b"] + hm @ p["W_h"]
            i, f, g, o = np.split(z, 4, axis=-1)
            c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h_new = _sigmoid(o) * np.tanh(c_new)
        elif kind == "gru":
            x_r, x_z, x_n = np.split(x[:, t] @ p["W_x"] + p["b_x"], 3, axis=-1)
            h_r, h_z, h_n = np.split(hm @ p["W_h"] + p["b_h"], 3, axis=-1)
            r, z = _sigmoid(x_r + h_r), _sigmoid(x_z + h_z)
            n = np.tanh(x_n + r * h_n)
            h_new, c_new = (1 - z) * n + z * h, c  # the update reads the unmasked h
        else:
            h_new, c_new = np.tanh(x[:, t] @ p["W_x"] + p["b"] + hm @ p["W_h"]), c
        valid = (t < lengths)[:, None]
        h, c = np.where(valid, h_new, h), np.where(valid, c_new, c)
        ys[:, t] = np.where(valid, h_new, 0.0)
    return ys, h


def _apply(layer, variables, x, lengths, key, deterministic=False):
    (y, final), state = layer.apply(variables, x, lengths, deterministic=deterministic,
                                    rngs={"dropout": key}, mutable=["intermediates"])
    return y, final, state.get("intermediates", {})


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("hoist", [True, False])
def test_equals_python_loop_with_one_mask_per_sequence(kind, hoist):
    x = jax.random.normal(jax.random.key(1), (4, 6, 3))
    lengths = jnp.array([6, 3, 1, 0], jnp.int32)
    layer = LAYERS[kind](5, recurrent_dropout=0.4, hoist_inputs=hoist)
    variables = layer.init(jax.random.key(0), x, lengths)
    y, final, inter = _apply(layer, variables, x, lengths, jax.random.key(7))
    (mask,) = inter["recurrent_mask_0_forward"]
    assert mask.shape == (4, 5)
    ref_y, ref_h = _reference(kind, variables["params"]["layer_0_forward"], x, np.asarray(lengths), mask)
    np.testing.assert_allclose(y, ref_y, atol=1e-5)
    h_n = final[0] if kind == "lstm" else final
    np.testing.assert_allclose(h_n[0], ref_h, atol=1e-5)
    # the mask did something: the loop without it differs
    no_mask_y, _ = _reference(kind, variables["params"]["layer_0_forward"], x, np.asarray(lengths), np.ones((4, 5)))
    assert np.abs(no_mask_y - ref_y).max() > 1e-3


def test_hoisted_and_in_loop_agree_under_the_same_key():
    x = jax.random.normal(jax.random.key(1), (3, 5, 4))
    a, b = LSTM(6, recurrent_dropout=0.3), LSTM(6, recurrent_dropout=0.3, hoist_inputs=False)
    variables = a.init(jax.random.key(0), x)
    ya, _, _ = _apply(a, variables, x, None, jax.random.key(2))
    yb, _, _ = _apply(b, variables, x, None, jax.random.key(2))
    np.testing.assert_allclose(ya, yb, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_rate_zero_and_deterministic_are_the_identity(kind):
    x = jax.random.normal(jax.random.key(1), (3, 5, 4))
    lengths = jnp.array([5, 2, 4], jnp.int32)
    plain = LAYERS[kind](6, num_layers=2, bidirectional=True)
    variables = plain.init(jax.random.key(0), x, lengths)
    y0, _ = plain.apply(variables, x, lengths)
    dropped = LAYERS[kind](6, num_layers=2, bidirectional=True, recurrent_dropout=0.5)
    y_det, _, inter = _apply(dropped, variables, x, lengths, jax.random.key(3), deterministic=True)
    y_zero, _, inter0 = _apply(plain, variables, x, lengths, jax.random.key(3), deterministic=False)
    np.testing.assert_array_equal(y_det, y0)
    np.testing.assert_array_equal(y_zero, y0)
    assert inter == {} and inter0 == {}  # no mask drawn
    y_train, _, _ = _apply(dropped, variables, x, lengths, jax.random.key(3))
    assert not np.allclose(y_train, y0)


def test_masks_differ_between_sequences_layers_and_directions():
    x = jnp.ones((8, 4, 3))
    layer = LSTM(16, num_layers=2, bidirectional=True, recurrent_dropout=0.5)
    variables = layer.init(jax.random.key(0), x)
    _, _, inter = _apply(layer, variables, x, None, jax.random.key(5))
    masks = {k: np.asarray(v[0]) for k, v in inter.items()}
    assert sorted(masks) == ["recurrent_mask_0_backward", "recurrent_mask_0_forward",
                             "recurrent_mask_1_backward", "recurrent_mask_1_forward"]
    for m in masks.values():
        assert len({row.tobytes() for row in m}) == 8  # one mask per sequence
    assert len({m.tobytes() for m in masks.values()}) == 4
    # another key, other masks
    _, _, other = _apply(layer, variables, x, None, jax.random.key(6))
    assert not np.array_equal(other["recurrent_mask_0_forward"][0], masks["recurrent_mask_0_forward"])


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_inverted_scaling_keeps_the_expected_value(rate):
    m = np.asarray(recurrent_dropout_mask(jax.random.key(0), (400, 500), rate))
    assert set(np.unique(m).tolist()) <= {0.0, np.float32(1 / (1 - rate))}
    assert abs((m == 0).mean() - rate) < 0.01
    assert abs(m.mean() - 1.0) < 0.02


def test_bad_rate():
    x = jnp.ones((2, 3, 4))
    with pytest.raises(ValueError, match="recurrent_dropout must be in"):
        LSTM(4, recurrent_dropout=1.0).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="rate must be in"):
        recurrent_dropout_mask(jax.random.key(0), (2, 2), -0.1)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_classifier_training_step_has_finite_gradients(cell):
    model = TextClassifier(30, 2, embed_dim=8, hidden_size=8, cell=cell, recurrent_dropout=0.5)
    state = create_train_state(model, jax.random.key(0), make_optimizer("adam", 1e-2))
    batch = {"token_ids": jnp.array([[3, 4, 5, 0], [6, 7, 0, 0], [8, 9, 10, 11]], jnp.int32),
             "lengths": jnp.array([3, 2, 4], jnp.int32), "labels": jnp.array([0, 1, 0], jnp.int32)}

    def loss(params, key):
        logits = model.apply({"params": params}, batch["token_ids"], batch["lengths"], deterministic=False,
                             rngs={"dropout": key})
        return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, batch["labels"][:, None], -1)[:, 0])

    grads = jax.jit(jax.grad(loss))(state.params, jax.random.key(1))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    w_h = grads["recurrent"]["layer_0_forward"]["W_h"]
    assert float(jnp.abs(w_h).max()) > 0
    step = jax.jit(train_step)
    for i in range(3):
        state, m = step(state, batch, jax.random.key(i))
        assert np.isfinite(float(m["loss_sum"]))

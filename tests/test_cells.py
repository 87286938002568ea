"""The pure cells: equations against a NumPy reference, gradients, initialisers."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from lstmjax.nn import cells

F, H, B = 3, 5, 4


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _lstm_numpy(p, h, c, x):
    """The textbook LSTM, gate by gate with separate matrices and the concatenated [h, x] input."""
    W = np.concatenate([p["W_h"], p["W_x"]], axis=0)  # the document's W·[h_{t-1}, x_t]
    hx = np.concatenate([h, x], axis=1)
    W_i, W_f, W_c, W_o = np.split(W, 4, axis=1)
    b_i, b_f, b_c, b_o = np.split(p["b"], 4)
    f = _sigmoid(hx @ W_f + b_f)
    i = _sigmoid(hx @ W_i + b_i)
    c_bar = np.tanh(hx @ W_c + b_c)
    o = _sigmoid(hx @ W_o + b_o)
    c_new = f * c + i * c_bar
    return o * np.tanh(c_new), c_new


def _gru_numpy(p, h, x):
    Wx_r, Wx_z, Wx_n = np.split(p["W_x"], 3, axis=1)
    Wh_r, Wh_z, Wh_n = np.split(p["W_h"], 3, axis=1)
    bx_r, bx_z, bx_n = np.split(p["b_x"], 3)
    bh_r, bh_z, bh_n = np.split(p["b_h"], 3)
    r = _sigmoid(x @ Wx_r + bx_r + h @ Wh_r + bh_r)
    z = _sigmoid(x @ Wx_z + bx_z + h @ Wh_z + bh_z)
    n = np.tanh(x @ Wx_n + bx_n + r * (h @ Wh_n + bh_n))
    return (1 - z) * n + z * h


def _random_params(init_fn, seed=0):
    p = init_fn(jax.random.key(seed), F, H, initializer="pytorch")
    return {k: np.asarray(v, np.float64) for k, v in p.items()}


@pytest.fixture
def state():
    rng = np.random.default_rng(0)
    return rng.normal(size=(B, H)), rng.normal(size=(B, H)), rng.normal(size=(B, F))


def _f32(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


def test_lstm_step_matches_numpy(state):
    h, c, x = state
    p = _random_params(cells.init_lstm_params)
    (h1, c1), y = jax.jit(cells.lstm_step)(_f32(p), _f32((h, c)), _f32(x))
    h_ref, c_ref = _lstm_numpy(p, h, c, x)
    np.testing.assert_allclose(h1, h_ref, atol=1e-6)
    np.testing.assert_allclose(c1, c_ref, atol=1e-6)
    np.testing.assert_array_equal(y, h1)


def test_gru_step_matches_numpy(state):
    h, _, x = state
    p = _random_params(cells.init_gru_params)
    h1, y = jax.jit(cells.gru_step)(_f32(p), _f32(h), _f32(x))
    np.testing.assert_allclose(h1, _gru_numpy(p, h, x), atol=1e-6)
    np.testing.assert_array_equal(y, h1)


@pytest.mark.parametrize("activation,ref", [(jnp.tanh, np.tanh), (jax.nn.relu, lambda v: np.maximum(v, 0))])
def test_rnn_step_matches_numpy(state, activation, ref):
    h, _, x = state
    p = _random_params(cells.init_rnn_params)
    h1, _ = jax.jit(functools.partial(cells.rnn_step, activation=activation))(_f32(p), _f32(h), _f32(x))
    np.testing.assert_allclose(h1, ref(x @ p["W_x"] + h @ p["W_h"] + p["b"]), atol=1e-6)


def test_cell_state_update_is_the_missing_equation(state):
    """With i = 0 and f = 1 (huge biases) the cell state is carried unchanged: c_t = c_{t-1}."""
    h, c, x = state
    p = _random_params(cells.init_lstm_params)
    p["b"][:H] = -50.0  # input gate shut
    p["b"][H : 2 * H] = 50.0  # forget gate open
    (_, c1), _ = cells.lstm_step(_f32(p), _f32((h, c)), _f32(x))
    np.testing.assert_allclose(c1, c, atol=1e-6)


@pytest.mark.parametrize(
    "step,init_fn,carry",
    [
        (cells.lstm_step, cells.init_lstm_params, "hc"),
        (cells.gru_step, cells.init_gru_params, "h"),
        (cells.rnn_step, cells.init_rnn_params, "h"),
    ],
    ids=["lstm", "gru", "rnn"],
)
def test_check_grads(step, init_fn, carry):
    """Autodiff of each cell against finite differences, first and second order, in float64."""
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        p = init_fn(jax.random.key(0), F, H, initializer="pytorch", dtype=jnp.float64)
        h = jnp.asarray(rng.normal(size=(2, H)), jnp.float64)
        x = jnp.asarray(rng.normal(size=(2, F)), jnp.float64)
        c = (h, h * 0.5) if carry == "hc" else h

        def f(p, c, x):
            new_carry, y = step(p, c, x)
            return jnp.sum(y**2) + sum(jnp.sum(s) for s in jax.tree.leaves(new_carry))

        check_grads(f, (p, c, x), order=2, modes=("rev", "fwd"))


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_projected_step_equals_full_step(name, state):
    h, c, x = _f32(state)
    init = getattr(cells, f"init_{name}_params")
    step = getattr(cells, f"{name}_step")
    projected = getattr(cells, f"{name}_step_projected")
    p = init(jax.random.key(3), F, H, initializer="pytorch")
    carry = (h, c) if name == "lstm" else h
    bias = p["b_x"] if name == "gru" else p["b"]
    a = step(p, carry, x)
    b = projected(p, carry, x @ p["W_x"] + bias)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, atol=1e-6), a, b)


class TestInitialisers:
    def test_keras_preset(self):
        p = cells.init_lstm_params(jax.random.key(0), 64, 32)
        # orthogonal recurrent kernel: rows are orthonormal ([H, 4H] with H < 4H)
        np.testing.assert_allclose(p["W_h"] @ p["W_h"].T, np.eye(32), atol=1e-5)
        limit = np.sqrt(6 / (64 + 128))  # glorot_uniform over the fused [F, 4H] kernel
        assert float(jnp.max(jnp.abs(p["W_x"]))) <= limit
        assert float(jnp.max(jnp.abs(p["W_x"]))) > 0.9 * limit
        expected_b = np.zeros(128, np.float32)
        expected_b[32:64] = 1.0  # unit forget bias
        np.testing.assert_array_equal(p["b"], expected_b)

    def test_pytorch_preset(self):
        p = cells.init_lstm_params(jax.random.key(0), 64, 32, initializer="pytorch")
        bound = 1 / np.sqrt(32)
        for name in ("W_x", "W_h"):
            assert float(jnp.max(jnp.abs(p[name]))) <= bound
            assert abs(float(jnp.std(p[name])) - bound / np.sqrt(3)) < 0.01  # std of U(-a, a)
        assert float(jnp.max(jnp.abs(p["b"]))) <= 2 * bound  # b_ih + b_hh

    def test_flax_preset_orthogonal_per_gate(self):
        p = cells.init_gru_params(jax.random.key(0), 16, 8, initializer="flax")
        for block in np.split(np.asarray(p["W_h"]), 3, axis=1):
            np.testing.assert_allclose(block.T @ block, np.eye(8), atol=1e-5)
        np.testing.assert_array_equal(p["b_x"], np.zeros(24))

    def test_unit_forget_bias_switch(self):
        p = cells.init_lstm_params(jax.random.key(0), 4, 3, initializer="flax", unit_forget_bias=True)
        np.testing.assert_array_equal(p["b"], np.r_[np.zeros(3), np.ones(3), np.zeros(6)])
        q = cells.init_lstm_params(jax.random.key(0), 4, 3, initializer="keras", unit_forget_bias=False)
        np.testing.assert_array_equal(q["b"], np.zeros(12))

    def test_unknown_preset(self):
        with pytest.raises(ValueError, match="unknown init preset 'glorot'"):
            cells.init_rnn_params(jax.random.key(0), 4, 3, initializer="glorot")

    def test_dtype(self):
        p = cells.init_lstm_params(jax.random.key(0), 4, 3, dtype=jnp.bfloat16)
        assert all(v.dtype == jnp.bfloat16 for v in p.values())

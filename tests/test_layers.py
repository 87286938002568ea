"""Recurrent layers: scan vs a Python loop, masking, bidirectional, stacking, dropout, bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmjax
from lstmjax.nn import cells
from lstmjax.nn.scan import reverse_sequences, scan_cell

B, T, F, H = 4, 6, 3, 5
LENGTHS = np.array([6, 3, 0, 1], np.int32)  # full, middle, empty, one

LAYERS = {"lstm": lstmjax.LSTM, "gru": lstmjax.GRU, "rnn": lstmjax.SimpleRNN}
STEPS = {"lstm": cells.lstm_step, "gru": cells.gru_step, "rnn": cells.rnn_step}


def _inputs(seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(B, T, F)), jnp.float32)


def _hn(kind, final):
    return final[0] if kind == "lstm" else final


def _zero_carry(kind, batch):
    z = jnp.zeros((batch, H), jnp.float32)
    return (z, z) if kind == "lstm" else z


def _loop(kind, params, x_seq, carry):
    """A plain Python loop of the cell over one unpadded sequence: the independent reference."""
    ys = []
    for t in range(x_seq.shape[1]):
        carry, y = STEPS[kind](params, carry, x_seq[:, t])
        ys.append(y)
    return carry, (jnp.stack(ys, axis=1) if ys else jnp.zeros((x_seq.shape[0], 0, H), jnp.float32))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_scan_equals_python_loop(kind):
    p = getattr(cells, f"init_{kind}_params")(jax.random.key(0), F, H, initializer="pytorch")
    x = _inputs()
    carry, ys = jax.jit(functools.partial(scan_cell, STEPS[kind]))(p, x, _zero_carry(kind, B))
    carry_ref, ys_ref = _loop(kind, p, x, _zero_carry(kind, B))
    np.testing.assert_allclose(ys, ys_ref, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), carry, carry_ref)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_masked_padded_equals_unpadded(kind, num_layers, bidirectional):
    """Each padded sequence gives what the same sequence gives alone, unpadded; padding is zero."""
    layer = LAYERS[kind](H, num_layers=num_layers, bidirectional=bidirectional, initializer="pytorch")
    x = _inputs()
    variables = layer.init(jax.random.key(1), x)
    apply = jax.jit(layer.apply)
    y, final = apply(variables, x, jnp.asarray(LENGTHS))
    d = 2 if bidirectional else 1
    assert y.shape == (B, T, d * H)
    h_n = _hn(kind, final)
    assert h_n.shape == (num_layers * d, B, H)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(y[b, n:], 0.0)
        if n == 0:
            np.testing.assert_array_equal(h_n[:, b], 0.0)
            continue
        y_alone, final_alone = layer.apply(variables, x[b : b + 1, :n])
        np.testing.assert_allclose(y[b, :n], y_alone[0], atol=1e-6)
        jax.tree.map(lambda s, r: np.testing.assert_allclose(s[:, b], r[:, 0], atol=1e-6), final, final_alone)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_layer_equals_python_loop_per_direction(kind):
    """A bidirectional layer = a loop forward over x[:n] and a loop over reversed x[:n]."""
    layer = LAYERS[kind](H, bidirectional=True)
    x = _inputs(2)
    variables = layer.init(jax.random.key(2), x)
    y, final = layer.apply(variables, x, jnp.asarray(LENGTHS))
    pf, pb = variables["params"]["layer_0_forward"], variables["params"]["layer_0_backward"]
    for b, n in enumerate(LENGTHS):
        seq = x[b : b + 1, :n]
        cf, yf = _loop(kind, pf, seq, _zero_carry(kind, 1))
        cb, yb = _loop(kind, pb, seq[:, ::-1], _zero_carry(kind, 1))
        np.testing.assert_allclose(y[b, :n, :H], yf[0], atol=1e-6)
        np.testing.assert_allclose(y[b, :n, H:], yb[0, ::-1], atol=1e-6)
        np.testing.assert_allclose(_hn(kind, final)[0, b], _hn(kind, cf)[0], atol=1e-6)
        np.testing.assert_allclose(_hn(kind, final)[1, b], _hn(kind, cb)[0], atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_hoisted_projection_equals_in_loop(kind):
    x, lengths = _inputs(3), jnp.asarray(LENGTHS)
    a = LAYERS[kind](H, num_layers=2, bidirectional=True, hoist_inputs=True)
    b = LAYERS[kind](H, num_layers=2, bidirectional=True, hoist_inputs=False)
    variables = a.init(jax.random.key(0), x)
    out_a = a.apply(variables, x, lengths)
    out_b = b.apply(variables, x, lengths)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, atol=1e-6), out_a, out_b)


def test_no_lengths_equals_full_lengths():
    layer = lstmjax.LSTM(H, bidirectional=True)
    x = _inputs()
    variables = layer.init(jax.random.key(0), x)
    full = layer.apply(variables, x, jnp.full((B,), T, jnp.int32))
    none = layer.apply(variables, x)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, atol=1e-6), full, none)


def test_initial_state_is_used():
    layer = lstmjax.LSTM(H, num_layers=2)
    x = _inputs()
    variables = layer.init(jax.random.key(0), x)
    rng = np.random.default_rng(0)
    h0 = jnp.asarray(rng.normal(size=(2, B, H)), jnp.float32)
    c0 = jnp.asarray(rng.normal(size=(2, B, H)), jnp.float32)
    _, (h_n, c_n) = layer.apply(variables, x, jnp.asarray(LENGTHS), initial_state=(h0, c0))
    # Length 0: the final state is the initial state, for every layer.
    np.testing.assert_array_equal(h_n[:, 2], h0[:, 2])
    np.testing.assert_array_equal(c_n[:, 2], c0[:, 2])
    # Length 1, first layer: one step of the cell from (h0, c0).
    p0 = variables["params"]["layer_0_forward"]
    (h1, c1), _ = cells.lstm_step(p0, (h0[0, 3:4], c0[0, 3:4]), x[3:4, 0])
    np.testing.assert_allclose(h_n[0, 3], h1[0], atol=1e-6)


def test_reverse_sequences_is_an_involution():
    x = _inputs()
    lengths = jnp.asarray(LENGTHS)
    r = reverse_sequences(x, lengths)
    np.testing.assert_array_equal(reverse_sequences(r, lengths), x)
    np.testing.assert_array_equal(r[1, :3], x[1, 2::-1])
    np.testing.assert_array_equal(r[1, 3:], x[1, 3:])  # padding stays in place


class TestDropout:
    def test_deterministic_ignores_rate(self):
        x = _inputs()
        a = lstmjax.LSTM(H, num_layers=2, dropout=0.5)
        b = lstmjax.LSTM(H, num_layers=2)
        variables = a.init(jax.random.key(0), x)
        np.testing.assert_array_equal(a.apply(variables, x)[0], b.apply(variables, x)[0])

    def test_explicit_rng(self):
        x = _inputs()
        layer = lstmjax.LSTM(H, num_layers=2, dropout=0.5)
        variables = layer.init(jax.random.key(0), x)
        run = jax.jit(lambda k: layer.apply(variables, x, deterministic=False, rngs={"dropout": k})[0])
        y1, y2, y3 = run(jax.random.key(1)), run(jax.random.key(1)), run(jax.random.key(2))
        np.testing.assert_array_equal(y1, y2)  # same key, same mask
        assert not np.allclose(y1, y3)  # another key, another mask
        assert not np.allclose(y1, layer.apply(variables, x)[0])
        with pytest.raises(Exception, match="dropout"):
            layer.apply(variables, x, deterministic=False)  # no key: an error, not a hidden default

    def test_single_layer_has_no_dropout(self):
        x = _inputs()
        layer = lstmjax.LSTM(H, dropout=0.5)  # PyTorch too: dropout only between layers
        variables = layer.init(jax.random.key(0), x)
        np.testing.assert_array_equal(
            layer.apply(variables, x, deterministic=False, rngs={"dropout": jax.random.key(1)})[0],
            layer.apply(variables, x)[0],
        )


class TestBadInput:
    def setup_method(self):
        self.layer = lstmjax.LSTM(H)
        self.x = _inputs()
        self.variables = self.layer.init(jax.random.key(0), self.x)

    def test_length_out_of_range(self):
        with pytest.raises(ValueError, match=r"lengths\[1\] = 7 is outside \[0, time=6\]"):
            self.layer.apply(self.variables, self.x, jnp.array([6, 7, 0, 1], jnp.int32))

    def test_negative_length(self):
        with pytest.raises(ValueError, match=r"lengths\[0\] = -1"):
            self.layer.apply(self.variables, self.x, jnp.array([-1, 1, 0, 1], jnp.int32))

    def test_lengths_shape(self):
        with pytest.raises(ValueError, match="lengths must be <int>\\[batch\\] with batch=4"):
            self.layer.apply(self.variables, self.x, jnp.array([1, 2], jnp.int32))

    def test_float_lengths(self):
        with pytest.raises(TypeError, match="lengths must be integers"):
            self.layer.apply(self.variables, self.x, jnp.ones((B,), jnp.float32))

    def test_rank(self):
        with pytest.raises(ValueError, match="batch, time, features"):
            self.layer.apply(self.variables, self.x[0])

    def test_bad_dropout_and_layers(self):
        with pytest.raises(ValueError, match="dropout must be in"):
            lstmjax.LSTM(H, dropout=1.5).init(jax.random.key(0), self.x)
        with pytest.raises(ValueError, match="num_layers must be >= 1"):
            lstmjax.LSTM(H, num_layers=0).init(jax.random.key(0), self.x)

    def test_bad_activation(self):
        with pytest.raises(ValueError, match="activation must be one of"):
            lstmjax.SimpleRNN(H, activation="gelu").init(jax.random.key(0), self.x)


def test_cell_modules_share_the_pure_functions():
    """The Linen cell has exactly the pure cell's parameters and computes the same step."""
    cell = lstmjax.LSTMCell(H, initializer="pytorch")
    carry = cell.initial_carry(B)
    x = _inputs()[:, 0]
    variables = cell.init(jax.random.key(0), carry, x)
    out = cell.apply(variables, carry, x)
    ref = cells.lstm_step(variables["params"], carry, x)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), out, ref)
    assert {k: v.shape for k, v in variables["params"].items()} == {"W_x": (F, 4 * H), "W_h": (H, 4 * H), "b": (4 * H,)}


def test_conftest_simulates_eight_devices():
    assert jax.device_count() == 8
    assert jax.config.jax_numpy_dtype_promotion == "strict"

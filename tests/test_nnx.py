"""Flax NNX: lstmjax's NNX twins against its Linen modules, and weights to and from flax.nnx's own layers.

Each check compares outputs, final states and gradients (≤ 1e-5) with the independent
implementation: lstmjax's Linen modules for the twins, and Flax's ``nnx.LSTMCell``,
``OptimizedLSTMCell``, ``GRUCell``, ``SimpleCell`` run by ``nnx.RNN`` / ``nnx.Bidirectional``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import lstmjax
from lstmjax.nn import interop, layers
from lstmjax.nn import nnx as lnnx

TOL = {"atol": 1e-5, "rtol": 1e-5}
B, T, F, H = 3, 5, 3, 4
LENGTHS = jnp.array([5, 2, 1], jnp.int32)
STACKS = {"lstm": layers.LSTM, "gru": layers.GRU, "rnn": layers.SimpleRNN}


def _inputs(seed=1, shape=(B, T, F)):
    return jax.random.normal(jax.random.key(seed), shape)


def _close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **TOL)


def _loss(outputs, final, lengths):
    """A loss that reads every valid output and every final state, with distinct weights."""
    valid = lstmjax.nn.length_mask(lengths, outputs.shape[1])[..., None]
    w = jnp.sin(jnp.arange(outputs.size, dtype=outputs.dtype)).reshape(outputs.shape)
    total = jnp.sum(jnp.where(valid, outputs * w, 0.0))
    for k, state in enumerate(jax.tree.leaves(final)):
        total = total + (k + 2.0) * jnp.sum(state * jnp.cos(jnp.arange(state.size, dtype=state.dtype)).reshape(state.shape))
    return total


# ------------------------------------------------------------------ Linen ↔ NNX twins


@pytest.mark.parametrize("cell, num_layers, bidirectional", [("lstm", 2, True), ("gru", 1, True), ("rnn", 2, False)])
def test_nnx_stack_equals_linen(cell, num_layers, bidirectional):
    linen = STACKS[cell](H, num_layers=num_layers, bidirectional=bidirectional)
    x, lengths = _inputs(), jnp.array([5, 2, 0], jnp.int32)  # a length-0 row too
    variables = linen.init(jax.random.key(0), x, lengths)
    model = lstmjax.to_nnx(linen, variables, deterministic=True)

    def nnx_loss(m):
        outputs, final = m(x, lengths)
        return _loss(outputs, final, lengths), (outputs, final)

    def linen_loss(p):
        outputs, final = linen.apply({"params": p}, x, lengths)
        return _loss(outputs, final, lengths), (outputs, final)

    (_, out), grads = nnx.jit(nnx.value_and_grad(nnx_loss, has_aux=True))(model)
    (_, linen_out), linen_grads = jax.jit(jax.value_and_grad(linen_loss, has_aux=True))(variables["params"])
    _close(out, linen_out)
    _close(nnx.to_pure_dict(grads), linen_grads)
    back, back_vars = lstmjax.from_nnx(model)
    assert back == linen
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), back_vars["params"], variables["params"]))


@pytest.mark.parametrize("kw", [{}, {"cell": "gru", "pooling": "mean", "bidirectional": True},
                                {"cell": "rnn", "pooling": "max", "num_layers": 2}])
def test_nnx_classifier_equals_linen(kw):
    linen = lstmjax.TextClassifier(vocab_size=30, num_classes=3, embed_dim=6, hidden_size=5, **kw)
    ids = jnp.array([[4, 9, 2, 7, 0], [3, 0, 0, 0, 0], [5, 6, 7, 8, 9]], jnp.int32)
    variables = linen.init(jax.random.key(0), ids)
    model = lstmjax.to_nnx(linen, variables, deterministic=True)
    np.testing.assert_allclose(model(ids), linen.apply(variables, ids), **TOL)
    loss = lambda logits: jnp.sum(jax.nn.log_softmax(logits)[:, 1])
    grads = nnx.grad(lambda m: loss(m(ids)))(model)
    _close(nnx.to_pure_dict(grads), jax.grad(lambda p: loss(linen.apply({"params": p}, ids)))(variables["params"]))


def test_nnx_initialisation_and_dropout_use_rng_streams():
    kw = {"embed_dim": 6, "hidden_size": 5, "num_layers": 2, "dropout": 0.3, "embed_dropout": 0.2, "recurrent_dropout": 0.25}
    ids = jnp.array([[4, 9, 2, 7, 1], [3, 1, 0, 0, 0]], jnp.int32)
    a = lnnx.TextClassifier(30, 2, rngs=nnx.Rngs(params=0, dropout=1), **kw)
    b = lnnx.TextClassifier(30, 2, rngs=nnx.Rngs(params=0, dropout=1), **kw)
    c = lnnx.TextClassifier(30, 2, rngs=nnx.Rngs(params=1, dropout=1), **kw)
    assert not np.allclose(a.dense.kernel[...], c.dense.kernel[...])  # params stream → initialisation
    first, again = a(ids), a(ids)
    assert not np.allclose(first, again)  # training mode: the dropout stream advances every call
    np.testing.assert_array_equal(first, b(ids))  # same streams, same masks
    a.eval()
    assert a.recurrent.deterministic and a.embed_drop.deterministic
    linen, variables = lstmjax.from_nnx(a)
    np.testing.assert_allclose(a(ids), linen.apply(variables, ids), **TOL)  # eval mode: no dropout at all
    a.train()
    assert not np.allclose(a(ids), linen.apply(variables, ids))


def test_nnx_training_with_optimizer_then_back_to_linen():
    model = lnnx.TextClassifier(20, 2, embed_dim=8, hidden_size=8, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, lstmjax.make_optimizer("adam", 1e-2), wrt=nnx.Param)  # Optax's Adam
    ids = jax.random.randint(jax.random.key(2), (8, 6), 1, 20)
    labels = (ids[:, 0] > 10).astype(jnp.int32)

    @nnx.jit
    def step(model, optimizer):
        def loss_fn(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(ids), labels).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    linen, variables = lstmjax.from_nnx(model)
    model.eval()
    np.testing.assert_allclose(linen.apply(variables, ids), model(ids), **TOL)


def test_nnx_cell_runs_inside_flax_rnn():
    cell = lnnx.LSTMCell(F, H, rngs=nnx.Rngs(0))
    x = _inputs()
    carry, ys = nnx.RNN(cell, return_carry=True)(x, seq_lengths=LENGTHS)
    linen = layers.LSTM(H)
    ys_ref, (h_n, c_n) = linen.apply({"params": {"layer_0_forward": cell.params()}}, x, LENGTHS)
    valid = np.asarray(lstmjax.nn.length_mask(LENGTHS, T))
    np.testing.assert_allclose(np.asarray(ys)[valid], np.asarray(ys_ref)[valid], **TOL)
    _close(carry, (h_n[0], c_n[0]))


def test_to_nnx_and_from_nnx_refuse_bad_input():
    linen = layers.GRU(H)
    variables = linen.init(jax.random.key(0), _inputs())
    bad = jax.tree.map(lambda a: a, variables["params"])
    bad["layer_0_forward"]["W_h"] = jnp.zeros((H + 1, 3 * H))
    with pytest.raises(ValueError, match=r"layer_0_forward/W_h: shape \(5, 12\), the model expects \(4, 12\)"):
        lstmjax.to_nnx(linen, {"params": bad})
    missing = {"layer_0_forward": {k: v for k, v in variables["params"]["layer_0_forward"].items() if k != "b_h"}}
    with pytest.raises(ValueError, match="layer_0_forward/b_h .* is missing"):
        lstmjax.to_nnx(linen, missing)
    with pytest.raises(TypeError, match="no NNX twin for Dense"):
        lstmjax.to_nnx(lstmjax.nn.classifier.nn.Dense(3), {})
    with pytest.raises(TypeError, match="expected a module of lstmjax.nn.nnx"):
        lstmjax.from_nnx(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="built for 3 input features; got inputs with 2"):
        lnnx.GRU(F, H, rngs=nnx.Rngs(0))(jnp.ones((1, 2, 2)))


# ------------------------------------------------------------------ flax.nnx's own cells


def _flax_cell(kind, key, in_features=F):
    rngs = nnx.Rngs(key)
    cell = {"LSTMCell": nnx.LSTMCell, "OptimizedLSTMCell": nnx.OptimizedLSTMCell, "GRUCell": nnx.GRUCell,
            "SimpleCell": nnx.SimpleCell}[kind](in_features, H, rngs=rngs)
    for i, (_, variable) in enumerate(nnx.iter_graph(cell)):  # Flax starts its biases at zero: make them not
        if isinstance(variable, nnx.Param) and variable.ndim == 1:
            variable[...] = jax.random.normal(jax.random.key(100 + key + i), variable.shape)
    return cell


def _flax_layer(kind, bidirectional, key, in_features=F):
    forward = nnx.RNN(_flax_cell(kind, key, in_features))
    if not bidirectional:
        return forward
    return nnx.Bidirectional(forward, nnx.RNN(_flax_cell(kind, key + 1, in_features)))


def _flax_run(stack, x, lengths):
    """Outputs and final states of stacked Flax layers, carries as lstmjax orders them ((h, c); [L*D, B, H])."""
    finals = []
    for layer in stack:
        carry, x = layer(x, seq_lengths=lengths, return_carry=True)
        carries = carry if isinstance(layer, nnx.Bidirectional) else (carry,)
        finals += [(c[1], c[0]) if isinstance(c, tuple) else c for c in carries]  # Flax's (c, h) → (h, c)
    return x, jax.tree.map(lambda *s: jnp.stack(s), *finals)


# Each cell once (the cells' conversions are independent of the direction logic, which every cell shares);
# both directions and the stack are covered across the four; the round trip below takes the other mode.
LAYER_CASES = [("LSTMCell", True), ("OptimizedLSTMCell", False), ("GRUCell", True), ("SimpleCell", False)]


@pytest.mark.parametrize("kind, bidirectional", LAYER_CASES)
def test_flax_nnx_layers_to_lstmjax(kind, bidirectional):
    stack = [_flax_layer(kind, bidirectional, 0), _flax_layer(kind, bidirectional, 10, H * (1 + bidirectional))]
    variables = lstmjax.from_flax_nnx(stack)
    layer = interop.layer_like(stack)
    assert (layer.num_layers, layer.bidirectional) == (2, bidirectional)
    x = _inputs()

    def flax_loss(s):
        ys, final = _flax_run(s, x, LENGTHS)
        return _loss(ys, final, LENGTHS), (ys, final)

    def loss(p):
        ys, final = layer.apply({"params": p}, x, LENGTHS)
        return _loss(ys, final, LENGTHS), (ys, final)

    # one compiled forward and backward pass each (measured: 37 s of CPU for the test op by op, 24 s so)
    (_, (ys_flax, final_flax)), grads_flax = nnx.jit(nnx.value_and_grad(flax_loss, has_aux=True))(nnx.List(stack))
    (_, (ys, final)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
    valid = np.asarray(lstmjax.nn.length_mask(LENGTHS, T))  # Flax leaves padded steps' outputs as they come
    np.testing.assert_allclose(np.asarray(ys)[valid], np.asarray(ys_flax)[valid], **TOL)
    _close(final, final_flax)
    twin = nnx.clone(nnx.List(stack))
    nnx.update(twin, grads_flax)  # the conversion is linear: it maps gradients as it maps weights
    expected = lstmjax.from_flax_nnx(list(twin))["params"]
    for name, g in grads.items():
        for leaf in ("W_x", "W_h", "b", "b_x"):  # Flax's GRU has no b_h
            if leaf in g:
                np.testing.assert_allclose(g[leaf], expected[name][leaf], **TOL, err_msg=f"{name}/{leaf}")


@pytest.mark.parametrize("kind, bidirectional", [(k, not b) for k, b in LAYER_CASES])
def test_lstmjax_to_flax_nnx_round_trip(kind, bidirectional):
    target = _flax_layer(kind, bidirectional, 3)
    source = interop.layer_like(target)
    x = _inputs()
    variables = source.init(jax.random.key(4), x)
    if kind == "GRUCell":  # Flax's GRU has no recurrent bias: lstmjax's b_h n block must be zero
        variables = jax.tree.map(lambda a: a, variables)
        for p in variables["params"].values():
            p["b_h"] = jnp.concatenate([jax.random.normal(jax.random.key(5), (2 * H,)), jnp.zeros(H)])
    interop.to_flax_nnx(variables, target)
    ys, final = source.apply(variables, x, LENGTHS)
    ys_flax, final_flax = _flax_run([target], x, LENGTHS)
    valid = np.asarray(lstmjax.nn.length_mask(LENGTHS, T))
    np.testing.assert_allclose(np.asarray(ys)[valid], np.asarray(ys_flax)[valid], **TOL)
    _close(final, final_flax)


def test_flax_nnx_degenerate_cases_and_refusals():
    layer = _flax_layer("OptimizedLSTMCell", False, 0)
    variables = lstmjax.from_flax_nnx(layer)
    zero = jnp.array([0, 3, 5], jnp.int32)
    _, (h_n, _c_n) = interop.layer_like(layer).apply(variables, _inputs(), zero)
    assert float(jnp.abs(h_n[0, 0]).max()) == 0.0  # length 0: lstmjax keeps the initial state
    gru = _flax_layer("GRUCell", False, 0)
    params = lstmjax.from_flax_nnx(gru)
    params["params"]["layer_0_forward"]["b_h"][-1] = 0.5
    with pytest.raises(ValueError, match="GRUCell has no recurrent bias"):
        interop.to_flax_nnx(params, gru)
    with pytest.raises(ValueError, match="reverse=True reads backwards"):
        lstmjax.from_flax_nnx(nnx.RNN(_flax_cell("GRUCell", 0), reverse=True))
    with pytest.raises(ValueError, match="residual=True"):
        lstmjax.from_flax_nnx(nnx.SimpleCell(F, H, residual=True, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="merge_fn"):
        lstmjax.from_flax_nnx(nnx.Bidirectional(nnx.RNN(_flax_cell("GRUCell", 0)), nnx.RNN(_flax_cell("GRUCell", 1)),
                                                merge_fn=lambda a, b: a + b))
    with pytest.raises(TypeError, match="expected a flax.nnx LSTMCell"):
        lstmjax.from_flax_nnx(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"the Flax layers need \['layer_0_backward', 'layer_0_forward'\]"):
        interop.to_flax_nnx(variables, _flax_layer("OptimizedLSTMCell", True, 0))

"""The fused LSTM loop (lstmjax.nn.fused) against autodiff of scan_cell: values and gradients.

In float64 the two must agree to ~1e-12 (same maths, different order of the gradient sums);
in float32 to float rounding. Covers lengths (including 0 and full), an initial state,
gradient checkpointing (remat_chunk, dividing T or not), the bfloat16 matmul mode (loose), and
the layer hook (bidirectional, stacked, fused on/off, and the fallback under recurrent dropout).
"""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from lstmjax import LSTM, TextClassifier
from lstmjax.nn import cells
from lstmjax.nn.fused import lstm_scan
from lstmjax.nn.scan import scan_cell


def _problem(dtype, B=4, T=7, F=3, H=5, seed=0):
    k = jax.random.split(jax.random.key(seed), 5)
    p = cells.init_lstm_params(k[0], F, H, dtype=dtype)
    p = {name: v + 0.1 * jax.random.normal(k[1], v.shape, dtype) for name, v in p.items()}  # non-trivial bias
    x = jax.random.normal(k[2], (B, T, F), dtype)
    h0 = 0.5 * jax.random.normal(k[3], (B, H), dtype)
    c0 = 0.5 * jax.random.normal(k[4], (B, H), dtype)
    return p, x, (h0, c0)


def _loss(run, lengths):
    """A loss that reads every output: all time steps, and the final h and c."""

    def loss(p, x, carry):
        (h, c), y = run(p, x, carry, lengths)
        w = jnp.arange(1, y.shape[1] + 1, dtype=y.dtype)[None, :, None]  # weight steps differently
        return jnp.sum(jnp.sin(y) * w) + jnp.sum(h * h) + jnp.sum(jnp.cos(c))

    return loss


def _ref(p, x, carry, lengths):
    return scan_cell(cells.lstm_step, p, x, carry, lengths)


LENGTHS = [None, np.array([7, 3, 0, 1], np.int32), np.array([7, 7, 7, 7], np.int32)]


CASES = [(LENGTHS[1], None, False, "after"), (LENGTHS[1], None, True, "after"), (LENGTHS[0], None, False, "after"),
         (LENGTHS[2], 1, False, "auto"), (LENGTHS[1], 3, False, "auto"), (LENGTHS[1], 50, True, "auto"),
         (LENGTHS[1], None, False, "loop"), (LENGTHS[0], None, True, "loop")]  # (lengths, remat_chunk, hoist, weight_grads)


@pytest.mark.parametrize("lengths, remat_chunk, hoist, weight_grads", CASES)
def test_values_and_gradients_float64(lengths, remat_chunk, hoist, weight_grads):
    with jax.enable_x64(True):
        p, x, carry = _problem(jnp.float64)
        lengths = None if lengths is None else jnp.asarray(lengths)

        def fast(p, x, carry, lengths):
            return lstm_scan(p, x, carry, lengths, hoist=hoist, remat_chunk=remat_chunk, weight_grads=weight_grads)

        (h, c), y = jax.jit(fast)(p, x, carry, lengths)
        (h_r, c_r), y_r = jax.jit(_ref)(p, x, carry, lengths)
        np.testing.assert_allclose(y, y_r, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(h, h_r, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(c, c_r, rtol=1e-13, atol=1e-13)
        if lengths is not None and int(lengths[2]) == 0:
            assert np.all(np.asarray(y)[2] == 0.0)  # length 0: all padding

        g = jax.jit(jax.grad(_loss(fast, lengths), argnums=(0, 1, 2)))(p, x, carry)
        g_r = jax.jit(jax.grad(_loss(_ref, lengths), argnums=(0, 1, 2)))(p, x, carry)
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_r)):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


def test_float32_gradients_close():
    p, x, carry = _problem(jnp.float32, B=8, T=30, F=6, H=16)
    lengths = jnp.array([30, 1, 17, 0, 29, 30, 5, 12], jnp.int32)
    g = jax.jit(jax.grad(_loss(lambda *a: lstm_scan(*a), lengths), argnums=(0, 1, 2)))(p, x, carry)
    g_r = jax.jit(jax.grad(_loss(_ref, lengths), argnums=(0, 1, 2)))(p, x, carry)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_r)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


def test_check_grads_numerically():
    """Against finite differences (jax.test_util), not only against autodiff."""
    with jax.enable_x64(True):
        p, x, carry = _problem(jnp.float64, B=2, T=4, F=2, H=3)
        lengths = jnp.array([4, 2], jnp.int32)
        f = lambda p, x, carry: _loss(lambda *a: lstm_scan(*a, remat_chunk=2), lengths)(p, x, carry)  # noqa: E731
        jax.test_util.check_grads(f, (p, x, carry), order=1, modes=["rev"])


def test_bfloat16_matmuls_close_but_not_equal():
    p, x, carry = _problem(jnp.float32, B=8, T=20, F=6, H=16)
    (_, _), y = lstm_scan(p, x, carry, matmul_dtype=jnp.bfloat16)
    (_, _), y_r = _ref(p, x, carry, None)
    err = float(jnp.max(jnp.abs(y - y_r)))
    assert 0.0 < err < 0.05, err
    g = jax.grad(_loss(lambda *a: lstm_scan(*a, matmul_dtype=jnp.bfloat16), None))(p, x, carry)
    g_r = jax.grad(_loss(_ref, None))(p, x, carry)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_r)):
        assert float(jnp.max(jnp.abs(a - b))) < 0.05 * (1.0 + float(jnp.max(jnp.abs(b))))


def test_weight_grads_modes_agree_in_float32_at_batch_64():
    """The two places to sum the weight gradients give the same numbers at a batch where "auto" picks "loop";
    traced under a mesh that may split the batch, "auto" picks "after"; a bad mode is refused."""
    from lstmjax.nn.fused import LOOP_WEIGHT_GRADS_MIN_BATCH, _resolve_weight_grads

    B = LOOP_WEIGHT_GRADS_MIN_BATCH
    p, x, carry = _problem(jnp.float32, B=B, T=9, F=6, H=8, seed=3)
    lengths = jnp.asarray(np.random.default_rng(0).integers(0, 10, B), jnp.int32)
    grads = {mode: jax.jit(jax.grad(_loss(lambda *a, mode=mode: lstm_scan(*a, weight_grads=mode), lengths)))(p, x, carry)
             for mode in ("loop", "after", "auto")}
    for mode in ("loop", "auto"):
        for a, b in zip(jax.tree.leaves(grads[mode]), jax.tree.leaves(grads["after"])):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    assert _resolve_weight_grads("auto", B) == "loop" and _resolve_weight_grads("auto", B - 1) == "after"
    mesh = jax.make_mesh((2,), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:2])
    with jax.set_mesh(mesh):
        assert _resolve_weight_grads("auto", B) == "after" and _resolve_weight_grads("loop", B) == "loop"
    with pytest.raises(ValueError, match="weight_grads must be"):
        lstm_scan(p, x, carry, weight_grads="inside")


def test_bad_remat_chunk():
    p, x, carry = _problem(jnp.float32)
    with pytest.raises(ValueError, match="remat_chunk"):
        lstm_scan(p, x, carry, remat_chunk=0)


@pytest.mark.parametrize("bidirectional, hoist_inputs", [(True, False), (False, True)])
def test_layer_fused_equals_reference(bidirectional, hoist_inputs):
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(0), (4, 9, 3), jnp.float64)
        lengths = jnp.array([9, 4, 0, 1], jnp.int32)
        kw = dict(num_layers=2, bidirectional=bidirectional, hoist_inputs=hoist_inputs, param_dtype=jnp.float64)
        fast, ref = LSTM(5, fused=True, **kw), LSTM(5, fused=False, **kw)
        chk = LSTM(5, fused=True, remat_chunk=4, **kw)
        variables = ref.init(jax.random.key(1), x, lengths)

        def loss(module):
            def f(v, x):
                y, (h, c) = module.apply(v, x, lengths)
                return jnp.sum(jnp.tanh(y) * jnp.arange(y.shape[-1], dtype=y.dtype)) + jnp.sum(h) + jnp.sum(c * c)
            return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))

        v_r, g_r = loss(ref)(variables, x)
        for module in (fast, chk):
            v, g = loss(module)(variables, x)
            np.testing.assert_allclose(v, v_r, rtol=1e-12)
            for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_r)):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_classifier_train_gradients_fused_equal_reference():
    ids = jax.random.randint(jax.random.key(0), (6, 11), 2, 50).astype(jnp.int32)
    lengths = jnp.array([11, 3, 1, 7, 11, 2], jnp.int32)
    labels = jnp.array([0, 1, 1, 0, 1, 0], jnp.int32)
    models = [TextClassifier(50, 2, embed_dim=8, hidden_size=8, fused=f) for f in (True, False)]
    params = models[1].init(jax.random.key(1), ids, lengths)["params"]

    def grads(model):
        def loss(p):
            logits = model.apply({"params": p}, ids, lengths)
            return jnp.mean(-jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))
        return jax.jit(jax.grad(loss))(params)

    for a, b in zip(jax.tree.leaves(grads(models[0])), jax.tree.leaves(grads(models[1]))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["gru", "lstm_masked"])
def test_remat_scan_cell_equals_scan_cell(kind):
    """The generic checkpointed loop (GRU; and the LSTM's fallback path) gives scan_cell's gradients."""
    from lstmjax.nn.scan import remat_scan_cell

    x = jax.random.normal(jax.random.key(0), (3, 10, 4))
    lengths = jnp.array([10, 4, 0], jnp.int32)
    if kind == "gru":
        p, step, carry = cells.init_gru_params(jax.random.key(1), 4, 6), cells.gru_step, jnp.zeros((3, 6))
    else:
        p, step = cells.init_lstm_params(jax.random.key(1), 4, 6), cells.lstm_step
        carry = (jnp.zeros((3, 6)), jnp.zeros((3, 6)))

    def loss(scan):
        def f(p):
            final, ys = scan(p)
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(leaf) for leaf in jax.tree.leaves(final))
        return jax.jit(jax.value_and_grad(f))

    v_r, g_r = loss(lambda p: scan_cell(step, p, x, carry, lengths))(p)
    v, g = loss(lambda p: remat_scan_cell(step, p, x, carry, lengths, 3))(p)
    np.testing.assert_allclose(v, v_r, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_r)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_layer_remat_without_fused_and_recurrent_dropout_fallback():
    x = jax.random.normal(jax.random.key(0), (2, 9, 3))
    lengths = jnp.array([9, 5], jnp.int32)
    ref = LSTM(4, fused=False)
    v = ref.init(jax.random.key(1), x, lengths)
    y_r, _ = ref.apply(v, x, lengths)
    y, _ = LSTM(4, fused=False, remat_chunk=4).apply(v, x, lengths)
    np.testing.assert_allclose(y, y_r, rtol=1e-6, atol=1e-6)
    # recurrent dropout: the fused loop does not apply; the masked reference step runs instead
    drop = LSTM(4, recurrent_dropout=0.5)
    y_d, _ = drop.apply(v, x, lengths, deterministic=False, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(y_d, y_r)
    with pytest.raises(ValueError, match="matmul_dtype"):
        LSTM(4, fused=False, matmul_dtype=jnp.bfloat16).apply(v, x, lengths)


def test_cli_reexecs_train_with_malloc_tunables(monkeypatch):
    """``lstmjax train`` restarts itself under GLIBC_TUNABLES when unset; never when set, opted out, or called from Python."""
    import os
    import platform

    from lstmjax.app import allocator as cli

    calls = []
    monkeypatch.setattr(os, "execve", lambda exe, args, env: calls.append((args, env)))
    monkeypatch.setattr("sys.argv", ["lstmjax", "train", "--epochs", "1"])
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("LSTMJAX_NO_REEXEC", raising=False)
    cli.reexec_with_malloc_tunables(["train"])  # called from Python with arguments: no restart
    assert calls == []
    cli.reexec_with_malloc_tunables(None)
    if platform.libc_ver()[0] == "glibc" and os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled"):
        (args, env), = calls
        assert args[1:] == ["-m", "lstmjax", "train", "--epochs", "1"]
        assert env["GLIBC_TUNABLES"] == cli.MALLOC_TUNABLES and env["LSTMJAX_NO_REEXEC"] == "1"
    calls.clear()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")  # the user's own setting is kept
    cli.reexec_with_malloc_tunables(None)
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("LSTMJAX_NO_REEXEC", "1")
    cli.reexec_with_malloc_tunables(None)
    assert calls == []

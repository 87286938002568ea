"""Tutorial 04 (the LSTM equations): checkers for its exercises."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.course._check import Wrong, exercise, returned
from lstmjax.course._i18n import tr

_TOL = dict(rtol=1e-5, atol=1e-6)


def _n_params(tree) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def _same(got, want, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise Wrong(tr("{what}: shape {got}, expected {want}.", what=what, got=got.shape, want=want.shape))
    if not np.allclose(got, want, **_TOL):
        raise Wrong(tr("{what}: differs by up to {error:.2e}.", what=what, error=np.abs(got - want).max()))


def _step_outputs(step, *args):
    out = step(*args)
    if out is None:
        raise Wrong(tr("your step returned None (is its body still `...`?)."))
    return out


@exercise("04.1", "An LSTM step with peephole connections")
def _peephole(step):
    from lstmjax.nn import cells

    step, lstm_step = jax.jit(step), jax.jit(cells.lstm_step)
    F, H = 3, 4
    p0 = cells.init_lstm_params(jax.random.key(20), F, H, initializer="pytorch")
    x, h, c = (jax.random.normal(k, (1, n)) for k, n in zip(jax.random.split(jax.random.key(21), 3), (F, H, H)))
    peep = {g: jax.random.normal(k, (H,))
            for g, k in zip(("p_i", "p_f", "p_o"), jax.random.split(jax.random.key(22), 3))}
    zero = jnp.zeros(H)
    (h1, c1), _ = _step_outputs(step, dict(p0, p_i=zero, p_f=zero, p_o=zero), (h, c), x)
    _same(h1, lstm_step(p0, (h, c), x)[0][0], tr("with zero peepholes h_t should be a plain LSTM's"))
    # for one sequence, peepholes on i and f shift those gates' biases by p ⊙ c_{t-1} ...
    (h2, c2), _ = step(dict(p0, p_i=peep["p_i"], p_f=peep["p_f"], p_o=zero), (h, c), x)
    shifted = dict(p0, b=p0["b"] + jnp.concatenate([peep["p_i"] * c[0], peep["p_f"] * c[0], zero, zero]))
    _same(c2, lstm_step(shifted, (h, c), x)[0][1], tr("c_t with peepholes on i and f (they look at c_{t-1})"))
    (h3, c3), _ = step(dict(p0, **peep), (h, c), x)
    _same(c3, c2, tr("c_t must not depend on p_o"))
    # ... and the peephole on o shifts o's bias by p_o ⊙ c_t (the *new* cell state)
    shifted_new = dict(shifted, b=shifted["b"] + jnp.concatenate([zero, zero, zero, peep["p_o"] * c3[0]]))
    shifted_old = dict(shifted, b=shifted["b"] + jnp.concatenate([zero, zero, zero, peep["p_o"] * c[0]]))
    if np.allclose(h3, lstm_step(shifted_old, (h, c), x)[0][0], **_TOL):
        raise Wrong(tr("the output gate looks at c_{t-1}; it should look at the new cell state c_t "
                       "(compute c_t before o_t)."))
    _same(h3, lstm_step(shifted_new, (h, c), x)[0][0], tr("h_t with the output-gate peephole"))
    return tr("the peephole LSTM reduces to lstmjax's LSTM with shifted biases, o looking at c_t.")


@exercise("04.2", "A coupled input-forget gate (CIFG)")
def _cifg(step):
    from lstmjax.nn import cells

    step = jax.jit(step)
    F, H = 3, 4
    k = jax.random.split(jax.random.key(26), 5)
    q = {"W_x": jax.random.normal(k[0], (F, 3 * H)), "W_h": jax.random.normal(k[1], (H, 3 * H)),
         "b": jax.random.normal(k[2], (3 * H,))}
    x, h = jax.random.normal(k[3], (2, F)), jax.random.normal(k[4], (2, H))
    c = -h
    # the equivalent LSTM: i-gate weights = -(f-gate weights); fused order i, f, c̃, o
    as_lstm = {name: jnp.concatenate([-a[..., :H], a], axis=-1) for name, a in q.items()}
    (h1, c1), _ = _step_outputs(step, q, (h, c), x)
    (h2, c2), _ = cells.lstm_step(as_lstm, (h, c), x)
    _same(c1, c2, tr("c_t (with i_t = 1 − f_t, gates in the order f, c̃, o)"))
    _same(h1, h2, "h_t")
    assert _n_params(q) * 4 == _n_params(as_lstm) * 3
    return tr("the CIFG equals an LSTM whose input gate is 1 − f_t, with three quarters of its weights.")


@exercise("04.3", "Count the document's model by formula")
def _count(count):
    from lstmjax.nn.classifier import TextClassifier

    ids = jnp.ones((1, 5), jnp.int32)
    for V, E, H, C in ((20000, 128, 128, 2), (5000, 64, 32, 3), (300, 16, 100, 7)):
        model = TextClassifier(vocab_size=V, num_classes=C, embed_dim=E, hidden_size=H)
        want = _n_params(jax.eval_shape(lambda k, m=model: m.init(k, ids), jax.random.key(0)))
        got = returned(count(V, E, H, C), "count_document_model")
        where = f"count_document_model({V}, {E}, {H}, {C})"
        if got == want + 4 * H:
            raise Wrong(tr("{where} = {got:,} counts two LSTM bias vectors, as PyTorch stores them; Keras and "
                           "lstmjax have one ({want:,}).", where=where, got=got, want=want))
        if got == want - C:
            raise Wrong(tr("{where} = {got:,}: the dense layer has a bias too (H·C + C).", where=where, got=got))
        if got != want:
            raise Wrong(tr("{where} = {got:,}, expected {want:,}. Embedding V·E, LSTM 4(H(E+H)+H), dense H·C+C.",
                           where=where, got=got, want=want))
    document = count(20000, 128, 128, 2)
    return tr("the formula matches lstmjax at three sizes; the document's model has {document:,} parameters, "
              "{share:.0%} of them in the embedding.", document=document, share=20000 * 128 / document)


@exercise("04.4", "A GRU with the reset gate before the product")
def _reset_before(step):
    from lstmjax.nn import cells

    step, gru_step = jax.jit(step), jax.jit(cells.gru_step)
    F, H = 3, 4
    q = cells.init_gru_params(jax.random.key(23), F, H, initializer="pytorch")
    x, h = (jax.random.normal(k, (2, n)) for k, n in zip(jax.random.split(jax.random.key(24)), (F, H)))
    diag = jnp.diag(jax.random.normal(jax.random.key(25), (H,)))
    q_diag = dict(q, W_h=q["W_h"].at[:, 2 * H:].set(diag), b_h=q["b_h"].at[2 * H:].set(0.0))
    _same(_step_outputs(step, q_diag, h, x)[0], gru_step(q_diag, h, x)[0],
          tr("with a diagonal W_hn and no recurrent bias on n both forms must agree"))
    # an independent reference of the reset-before form, written out
    W_hr, W_hz, W_hn = jnp.split(q["W_h"], 3, axis=-1)
    b_hr, b_hz, _ = jnp.split(q["b_h"], 3)
    x_r, x_z, x_n = jnp.split(x @ q["W_x"] + q["b_x"], 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h @ W_hr + b_hr)
    z = jax.nn.sigmoid(x_z + h @ W_hz + b_hz)
    n = jnp.tanh(x_n + (r * h) @ W_hn)
    want = (1.0 - z) * n + z * h
    got = step(q, h, x)[0]
    if np.allclose(got, gru_step(q, h, x)[0], **_TOL):
        raise Wrong(tr("your step equals lstmjax's (reset-after) GRU on a general W_h: apply r_t to h_{t-1} "
                       "*before* multiplying by W_hn."))
    _same(got, want, tr("h_t of the reset-before GRU"))
    return tr("reset-before GRU: equal to the reset-after form only for a diagonal W_hn.")


@exercise("04.5", "The cell state under constant gates")
def _cell_after(fn):
    def scan_reference(T, f, i, c_bar):
        f, i, c_bar = (jnp.float32(v) for v in (f, i, c_bar))
        c, _ = jax.lax.scan(lambda c, _: (f * c + i * c_bar, None), jnp.float32(0.0), None, length=T)
        return float(c)

    for T, f, i, c_bar in ((10, 0.5, 1.0, 1.0), (50, 0.9, 0.5, -0.8), (100, 1.0, 1.0, 1.0), (1, 0.3, 0.2, 0.7),
                           (30, 1.0, 0.25, -1.0), (0, 0.9, 1.0, 1.0), (200, 0.99, 1.0, 1.0)):
        got = fn(T, f, i, c_bar)
        if got is None:
            raise Wrong(tr("your function returned None (is its body still `...`?)."))
        want = scan_reference(T, f, i, c_bar)
        call = f"cell_after({T}, {f}, {i}, {c_bar})"
        if not np.isfinite(float(got)):
            raise Wrong(tr("{call} is {got}: with f = 1 the geometric sum (1 − f^T)/(1 − f) is 0/0; its value "
                           "there is T.", call=call, got=got))
        if not np.isclose(float(got), want, rtol=1e-4, atol=1e-6):
            raise Wrong(tr("{call} = {got:.6g}, but running c_t = f·c_(t−1) + i·c̄ from c_0 = 0 for {T} steps "
                           "gives {want:.6g}.", call=call, got=float(got), T=T, want=want))
    return tr("c_T = i·c̄·(1 − f^T)/(1 − f): bounded by i·|c̄|/(1 − f) for f < 1, growing like T at f = 1 "
              "(the cell can no longer forget).")

"""Tutorial 11 (performance): checkers for its exercises.

* 11.1 ``flops_per_token(embed, hidden, classes, train)``: checked against XLA's own count of
  the floating-point operations in one compiled forward step (``cost_analysis``).
* 11.2 ``lstm_step_backward(...)``: one step of the hand-written LSTM backward pass, checked
  against ``jax.vjp`` of :func:`lstmjax.nn.cells.lstm_step_projected`.
* 11.3 ``remat_scan(step, params, inputs, carry, chunk)``: gradient checkpointing over blocks
  of time steps, checked against the gradients of :func:`lstmjax.nn.scan.scan_cell` and for a
  ``checkpoint`` (remat) in its jaxpr.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.course._check import Wrong, exercise
from lstmjax.nn import cells
from lstmjax.nn.scan import scan_cell


def _xla_forward_flops(embed: int, hidden: int, classes: int, batch: int = 64) -> float:
    """XLA's FLOP count for one LSTM step + the dense layer, per example (per token)."""
    p = cells.init_lstm_params(jax.random.key(0), embed, hidden)
    w = jnp.zeros((hidden, classes), jnp.float32)
    x = jnp.zeros((batch, embed), jnp.float32)
    h = jnp.zeros((batch, hidden), jnp.float32)

    def step(p, w, x, h):
        (h2, _), _ = cells.lstm_step(p, (h, h), x)
        return h2 @ w

    cost = jax.jit(step).lower(p, w, x, h).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) / batch


@exercise("11.1", "FLOP per token of the document's classifier")
def _flops(answer):
    for embed, hidden, classes in [(128, 128, 2), (64, 256, 5), (300, 32, 3)]:
        xla = _xla_forward_flops(embed, hidden, classes)
        got_f = float(answer(embed, hidden, classes, train=False))
        got_t = float(answer(embed, hidden, classes, train=True))
        # XLA also counts the gates' elementwise operations (~10 per hidden unit): allow 5 %.
        if not abs(got_f - xla) <= 0.05 * xla:
            raise Wrong(f"forward FLOP per token for E={embed}, H={hidden}, C={classes}: you said {got_f:,.0f}, "
                        f"XLA counts {xla:,.0f} (matrix products: 2·m·n·k each).")
        if not abs(got_t - 3 * got_f) <= 0.01 * got_t:
            raise Wrong(f"training FLOP per token should be about 3 × forward (backward ≈ 2 forwards: one product "
                        f"for the input gradient, one for the weight gradient); got {got_t:,.0f} vs {got_f:,.0f}.")
    return (f"forward {float(answer(128, 128, 2, train=False)) / 1e6:.3f} MFLOP/token at the document's size; "
            f"within 5 % of XLA's count at three sizes.")


@exercise("11.2", "One step of the LSTM backward pass, by hand")
def _backward_step(answer):
    B, H = 3, 4
    k = jax.random.split(jax.random.key(11), 6)
    with jax.enable_x64(True):
        p = {"W_h": jax.random.normal(k[0], (H, 4 * H), jnp.float64) * 0.5}
        h_prev = jax.random.normal(k[1], (B, H), jnp.float64)
        c_prev = jax.random.normal(k[2], (B, H), jnp.float64)
        xw = jax.random.normal(k[3], (B, 4 * H), jnp.float64)
        dh = jax.random.normal(k[4], (B, H), jnp.float64)
        dc = jax.random.normal(k[5], (B, H), jnp.float64)

        def f(W_h, h_prev, c_prev, xw):
            (h, c), _ = cells.lstm_step_projected({"W_h": W_h}, (h_prev, c_prev), xw)
            return h, c

        (h, c), vjp = jax.vjp(f, p["W_h"], h_prev, c_prev, xw)
        dW_ref, dh_ref, dc_ref, dz_ref = vjp((dh, dc))
        z = xw + h_prev @ p["W_h"]
        i, f_, g, o = jnp.split(z, 4, axis=-1)
        gates = jnp.concatenate([jax.nn.sigmoid(i), jax.nn.sigmoid(f_), jnp.tanh(g), jax.nn.sigmoid(o)], -1)
        got = answer(gates, c, c_prev, dh, dc, p["W_h"])
        if not isinstance(got, tuple) or len(got) != 3:
            raise Wrong("return a tuple (dz, dh_prev, dc_prev).")
        names = ("dz", "dh_prev", "dc_prev")
        for name, a, b in zip(names, got, (dz_ref, dh_ref, dc_ref)):
            a = np.asarray(a)
            if a.shape != b.shape:
                raise Wrong(f"{name} has shape {a.shape}, expected {b.shape}.")
            if not np.allclose(a, b, rtol=1e-9, atol=1e-10):
                raise Wrong(f"{name} differs from jax.vjp of lstm_step_projected (max error "
                            f"{float(np.max(np.abs(a - b))):.2e}).")
        # dW_h follows from dz: h_prev^T dz, the product the fused loop takes once for all steps.
        if not np.allclose(h_prev.T @ np.asarray(got[0]), dW_ref, rtol=1e-9, atol=1e-10):
            raise Wrong("h_prev.T @ dz does not give jax's dW_h: check the gate order (i, f, c̃, o).")
    return "dz, dh_prev and dc_prev equal jax.vjp's (float64), and h_prev.T @ dz gives dW_h."


@exercise("11.3", "Gradient checkpointing over blocks of time steps")
def _remat(answer):
    F, H, B, T = 3, 5, 2, 12
    p = cells.init_lstm_params(jax.random.key(0), F, H)
    x = jax.random.normal(jax.random.key(1), (B, T, F))
    zeros = jnp.zeros((B, H))

    def loss(scan):
        def f(p):
            (h, c), ys = scan(p)
            return jnp.sum(jnp.sin(ys)) + jnp.sum(h * c)
        return f

    ref = jax.grad(loss(lambda p: scan_cell(cells.lstm_step, p, x, (zeros, zeros))))(p)
    for chunk in (3, 4, 12):
        fn = loss(lambda p, chunk=chunk: answer(cells.lstm_step, p, x, (zeros, zeros), chunk))
        got = jax.grad(fn)(p)
        for name in ref:
            if not np.allclose(got[name], ref[name], rtol=1e-5, atol=1e-6):
                raise Wrong(f"with chunk={chunk}, the gradient of {name} differs from scan_cell's.")
        jaxpr = str(jax.make_jaxpr(jax.grad(fn))(p))
        if "checkpoint" not in jaxpr and "remat" not in jaxpr:
            raise Wrong("the gradients are right but nothing is checkpointed: wrap each block's scan in jax.checkpoint.")
    return "gradients equal scan_cell's for chunks 3, 4 and 12, and the blocks are checkpointed."

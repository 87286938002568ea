"""Tutorial 11 (performance): checkers for its exercises.

* 11.1 ``flops_per_token(embed, hidden, classes, train)``: checked against XLA's own count of
  the floating-point operations in one compiled step, forward and forward + backward
  (``cost_analysis``).
* 11.2 ``gru_step_backward(...)``: one step of the GRU backward pass, by hand (the tutorial
  shows the LSTM's), checked against ``jax.vjp`` of :func:`lstmjax.nn.cells.gru_step_projected`.
* 11.3 ``remat_scan(step, params, inputs, carry, chunk)``: gradient checkpointing over blocks
  of time steps, checked against the gradients of :func:`lstmjax.nn.scan.scan_cell` and for a
  ``checkpoint`` (remat) in its jaxpr.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.course._check import Wrong, exercise, returned
from lstmjax.course._i18n import tr
from lstmjax.nn import cells
from lstmjax.nn.scan import scan_cell


def _xla_flops(embed: int, hidden: int, classes: int, train: bool, batch: int = 64) -> float:
    """XLA's FLOP count per example (per token) for one LSTM step and the dense layer.

    ``train``: the forward pass and the backward pass to every input of the step (the weights,
    the input ``x_t`` and the state), as a training step computes them.
    """
    p = cells.init_lstm_params(jax.random.key(0), embed, hidden)
    w = jnp.zeros((hidden, classes), jnp.float32)
    x = jnp.ones((batch, embed), jnp.float32)
    h = jnp.ones((batch, hidden), jnp.float32)

    def step(p, w, x, h):
        (h2, _), _ = cells.lstm_step(p, (h, h), x)
        return h2 @ w

    fn = jax.grad(lambda *a: jnp.sum(step(*a) ** 2), argnums=(0, 1, 2, 3)) if train else step
    cost = jax.jit(fn).lower(p, w, x, h).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) / batch


@exercise("11.1", "FLOP per token of the document's classifier")
def _flops(answer):
    for embed, hidden, classes in [(128, 128, 2), (64, 256, 5), (300, 32, 3)]:
        got_f = float(returned(answer(embed, hidden, classes, train=False), "flops_per_token(..., train=False)"))
        got_t = float(returned(answer(embed, hidden, classes, train=True), "flops_per_token(..., train=True)"))
        # XLA also counts the gates' elementwise operations (~10 per hidden unit): allow 5 %.
        xla = _xla_flops(embed, hidden, classes, train=False)
        if abs(got_f / xla - 0.5) <= 0.03:
            raise Wrong(tr("forward FLOP per token for E={E}, H={H}, C={C}: you said {got:,.0f}, half of XLA's "
                           "{xla:,.0f}: a multiply-add is 2 FLOP.", E=embed, H=hidden, C=classes, got=got_f, xla=xla))
        if not abs(got_f - xla) <= 0.05 * xla:
            raise Wrong(tr("forward FLOP per token for E={E}, H={H}, C={C}: you said {got:,.0f}, XLA counts "
                           "{xla:,.0f} (matrix products: 2·m·n·k each).", E=embed, H=hidden, C=classes, got=got_f,
                           xla=xla))
        xla_t = _xla_flops(embed, hidden, classes, train=True)
        if not abs(got_t - xla_t) <= 0.05 * xla_t:
            ratio = got_t / got_f if got_f else float("nan")
            raise Wrong(tr("training FLOP per token for E={E}, H={H}, C={C}: you said {got:,.0f} ({ratio:.2f} × "
                           "your forward count), XLA counts {xla:,.0f} for the forward and backward passes "
                           "({xla_ratio:.2f} × its forward count). Each forward product needs two in the backward "
                           "pass: one for the input's gradient, one for the weight's.", E=embed, H=hidden, C=classes,
                           got=got_t, ratio=ratio, xla=xla_t, xla_ratio=xla_t / xla))
    return tr("forward {mflop:.3f} MFLOP/token at the document's size; forward and training counts within XLA's "
              "at three sizes.", mflop=float(answer(128, 128, 2, train=False)) / 1e6)


def gru_step_backward_reference(gates, hw, h_prev, dh, W_h):
    """One step of the GRU backward pass (the form of :func:`lstmjax.nn.cells.gru_gates`).

    Args:
      gates: ``(r, z, n)`` activations side by side, ``<float>[batch, 3*hidden]``.
      hw: ``h_{t-1} @ W_h + b_h``, ``<float>[batch, 3*hidden]``.
      h_prev: ``<float>[batch, hidden]``; dh: ``∂L/∂h_t <float>[batch, hidden]``.
      W_h: ``<float>[hidden, 3*hidden]``.

    Returns:
      ``(d_xw, d_hw, dh_prev)``: the gradients with respect to ``x_t @ W_x + b_x``, to ``hw`` and
      to ``h_{t-1}`` (through both paths).

    Example:
      >>> import jax.numpy as jnp
      >>> d_xw, d_hw, dh_prev = gru_step_backward_reference(
      ...     jnp.full((1, 3), 0.5), jnp.zeros((1, 3)), jnp.ones((1, 1)), jnp.ones((1, 1)), jnp.zeros((1, 3)))
      >>> dh_prev.tolist()  # only the direct path z · dh: W_h is zero
      [[0.5]]
    """
    r, z, n = jnp.split(gates, 3, axis=-1)
    h_n = jnp.split(hw, 3, axis=-1)[2]
    d_n = dh * (1.0 - z) * (1.0 - n**2)  # through h = (1 − z) n + z h_prev, then n = tanh(.)
    d_z = dh * (h_prev - n) * z * (1.0 - z)
    d_r = d_n * h_n * r * (1.0 - r)
    d_xw = jnp.concatenate([d_r, d_z, d_n], axis=-1)
    d_hw = jnp.concatenate([d_r, d_z, d_n * r], axis=-1)  # the reset gate scales the recurrent part of n
    return d_xw, d_hw, dh * z + d_hw @ W_h.T


@exercise("11.2", "One step of the GRU backward pass, by hand")
def _backward_step(answer):
    B, H = 3, 4
    k = jax.random.split(jax.random.key(11), 6)
    with jax.enable_x64(True):
        p = {"W_h": jax.random.normal(k[0], (H, 3 * H), jnp.float64) * 0.5,
             "b_h": jax.random.normal(k[1], (3 * H,), jnp.float64) * 0.1}
        h_prev = jax.random.normal(k[2], (B, H), jnp.float64)
        xw = jax.random.normal(k[3], (B, 3 * H), jnp.float64)
        dh = jax.random.normal(k[4], (B, H), jnp.float64)

        def f(W_h, b_h, h_prev, xw):
            return cells.gru_step_projected({"W_h": W_h, "b_h": b_h}, h_prev, xw)[0]

        hw = h_prev @ p["W_h"] + p["b_h"]
        _, vjp_step = jax.vjp(f, p["W_h"], p["b_h"], h_prev, xw)
        dW_ref, db_ref, dh_ref, dxw_ref = vjp_step(dh)
        _, vjp_gates = jax.vjp(lambda xw, hw: cells.gru_gates(xw, hw, h_prev)[0], xw, hw)
        _, dhw_ref = vjp_gates(dh)  # the gradient with respect to the recurrent pre-activations, per row
        _, (r, z, n) = cells.gru_gates(xw, hw, h_prev)
        gates = jnp.concatenate([r, z, n], -1)
        got = returned(answer(gates, hw, h_prev, dh, p["W_h"]), "gru_step_backward")
        if not isinstance(got, tuple) or len(got) != 3:
            raise Wrong(tr("return a tuple (d_xw, d_hw, dh_prev)."))
        d_xw, d_hw, dh_prev = (np.asarray(a) for a in got)
        for name, a, b in (("d_xw", d_xw, dxw_ref), ("d_hw", d_hw, dhw_ref), ("dh_prev", dh_prev, dh_ref)):
            if a.shape != b.shape:
                raise Wrong(tr("{name} has shape {got}, expected {want}.", name=name, got=a.shape, want=b.shape))
            if np.allclose(a, b, rtol=1e-9, atol=1e-10):
                continue
            hint = ""
            if name == "d_hw" and np.allclose(d_hw, d_xw, rtol=1e-9, atol=1e-10):
                hint = tr(" It equals d_xw, but the recurrent part of n is multiplied by r_t: its slice is d_n ⊙ r.")
            elif name == "dh_prev" and np.allclose(dh_prev, d_hw @ np.asarray(p["W_h"]).T, rtol=1e-9, atol=1e-10):
                hint = tr(" That is only the path through W_h; h_t = (1 − z) n + z h_{t-1} also passes z ⊙ dh "
                          "directly.")
            elif name in ("d_xw", "d_hw"):
                hint = tr(" Check ∂h/∂z = h_{t-1} − n (not n − h_{t-1}) and the gate order (r, z, n).")
            raise Wrong(tr("{name} differs from jax.vjp of lstmjax.nn.cells.gru_step_projected "
                           "(max error {error:.2e}).{hint}", name=name, error=float(np.max(np.abs(a - b))), hint=hint))
        if not (np.allclose(np.asarray(h_prev).T @ d_hw, dW_ref, rtol=1e-9, atol=1e-10)
                and np.allclose(d_hw.sum(0), db_ref, rtol=1e-9, atol=1e-10)):  # pragma: no cover - follows from d_hw
            raise Wrong(tr("h_prev.T @ d_hw does not give jax's dW_h."))
    return tr("d_xw, d_hw and dh_prev equal jax.vjp's (float64); h_prevᵀ d_hw gives dW_h and Σ d_hw gives db_h.")


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
        fn = loss(lambda p, chunk=chunk: returned(answer(cells.lstm_step, p, x, (zeros, zeros), chunk), "remat_scan"))
        got = jax.grad(fn)(p)
        for name in ref:
            if not np.allclose(got[name], ref[name], rtol=1e-5, atol=1e-6):
                raise Wrong(tr("with chunk={chunk}, the gradient of {name} differs from scan_cell's.", chunk=chunk,
                               name=name))
        jaxpr = str(jax.make_jaxpr(jax.grad(fn))(p))
        if "checkpoint" not in jaxpr and "remat" not in jaxpr:
            raise Wrong(tr("the gradients are right but nothing is checkpointed: wrap each block's scan in "
                           "jax.checkpoint."))
    return tr("gradients equal scan_cell's for chunks 3, 4 and 12, and the blocks are checkpointed.")

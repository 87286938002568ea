"""Numeric parity with PyTorch: outputs, final states and gradients of random-weight models.

The reference is ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` (``torch==2.13.0``, CPU, float32) run on
*packed* sequences (``pack_padded_sequence(..., enforce_sorted=False)``), so PyTorch never reads
the padding. PyTorch refuses sequences of length 0, so those rows are left out of the PyTorch run
and checked on their own: lstmjax must output zeros there and return the initial state as the
final state (and pass the loss's final-state gradient straight through to the initial state).

Weights travel through :func:`lstmjax.nn.interop.from_torch`; gradients are compared in lstmjax's
layout (kernels transposed; LSTM/RNN ``b`` is ``bias_ih + bias_hh``, so its gradient equals the
gradient of each of them; GRU ``b_x``/``b_h`` are ``bias_ih``/``bias_hh``). All comparisons are
max-abs-error ``<= 1e-5`` in float32.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _parity import ATOL, Case  # noqa: E402
from _parity import assert_close as _assert_close
from _parity import assert_trees_close as _assert_trees_close

from lstmjax.nn import interop  # noqa: E402

B, T, F, H = 5, 7, 3, 6
LENGTHS = np.array([T, 0, 3, 1, 5], np.int32)  # full, empty, middle, one, another middle
ROWS = np.flatnonzero(LENGTHS > 0)  # the rows PyTorch can run
EMPTY = np.flatnonzero(LENGTHS == 0)
VALID = np.arange(T)[None, :] < LENGTHS[:, None]  # (B, T)

TORCH_MODULES = {
    "lstm": lambda **kw: torch.nn.LSTM(F, H, **kw),
    "gru": lambda **kw: torch.nn.GRU(F, H, **kw),
    "rnn_tanh": lambda **kw: torch.nn.RNN(F, H, nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: torch.nn.RNN(F, H, nonlinearity="relu", **kw),
}


CASES = (
    [Case(k, n, bi) for k in ("lstm", "gru", "rnn_tanh") for n in (1, 2) for bi in (False, True)]
    + [Case("lstm", 1, False, hoist_inputs=False), Case("lstm", 2, True, hoist_inputs=False)]
    + [Case("rnn_relu", 2, True)]
)
CASE_PARAMS = [pytest.param(c, id=c.id) for c in CASES]


# ---------------------------------------------------------------------------------------------
# Data and models
# ---------------------------------------------------------------------------------------------


def _torch_module(case: Case, *, seed: int, batch_first: bool = True, **kw):
    torch.manual_seed(seed)
    return TORCH_MODULES[case.kind](num_layers=case.num_layers, bidirectional=case.bidirectional,
                                    batch_first=batch_first, **kw)


def _lstmjax_module(case: Case, torch_module):
    module = interop.layer_like(torch_module)
    return module.clone(hoist_inputs=case.hoist_inputs)


def _inputs(seed: int = 0) -> np.ndarray:
    """``<float32>[B, T, F]``, non-zero at padded steps too (they must not matter)."""
    return np.random.default_rng(seed).standard_normal((B, T, F)).astype(np.float32)


def _initial_state(case: Case, seed: int) -> tuple[np.ndarray, ...]:
    """A random ``(h_0,)`` or ``(h_0, c_0)``, each ``<float32>[L*D, B, H]``."""
    rng = np.random.default_rng(seed)
    shape = (case.num_layers * case.directions, B, H)
    n = 2 if case.kind == "lstm" else 1
    return tuple(rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(n))


def _loss_weights(case: Case, seed: int):
    """``(R_out <[B, T, D*H]>, R_state...)``: fixed random weights of the scalar loss."""
    rng = np.random.default_rng(seed)
    r_out = rng.standard_normal((B, T, case.directions * H)).astype(np.float32)
    n = 2 if case.kind == "lstm" else 1
    r_states = tuple(rng.standard_normal((case.num_layers * case.directions, B, H)).astype(np.float32)
                     for _ in range(n))
    return r_out, r_states


def _as_tuple(final):
    return tuple(final) if isinstance(final, tuple) else (final,)


# ---------------------------------------------------------------------------------------------
# lstmjax side: one jitted function per module configuration
# ---------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _lstmjax_forward(module, variables, x, lengths):
    """Forward with lengths and the default (zero) initial state."""
    return module.apply(variables, x, lengths)


@functools.partial(jax.jit, static_argnums=0)
def _lstmjax_forward_unmasked(module, variables, x):
    return module.apply(variables, x)


@functools.partial(jax.jit, static_argnums=0)
def _lstmjax_value_and_grads(module, params, x, lengths, init, r_out, r_states):
    """Loss, outputs, final states and grads w.r.t. (params, inputs, initial state)."""

    def loss_fn(params, x, init):
        state = init if len(init) == 2 else init[0]
        y, final = module.apply({"params": params}, x, lengths, initial_state=state)
        loss = jnp.sum(y * r_out) + sum(jnp.sum(s * r) for s, r in zip(_as_tuple(final), r_states))
        return loss, (y, final)

    (loss, (y, final)), grads = jax.value_and_grad(loss_fn, argnums=(0, 1, 2), has_aux=True)(params, x, init)
    return loss, y, final, grads


# ---------------------------------------------------------------------------------------------
# PyTorch side
# ---------------------------------------------------------------------------------------------


def _directions(module):
    return (("forward", ""), ("backward", "_reverse"))[: 2 if module.bidirectional else 1]


def _torch_run(module, x, init=None, r_out=None, r_states=None):
    """Run ``module`` on the rows with length >= 1, packed; optionally backprop a loss.

    Args:
      module: the PyTorch module (``batch_first`` either way).
      x: ``<float32>[B, T, F]`` batch-major; transposed here when ``batch_first=False``.
      init: ``None`` or a tuple ``(h_0[, c_0])`` for *all* ``B`` rows (the empty rows are dropped).
      r_out, r_states: loss weights as in :func:`_loss_weights`, or ``None`` for no backward pass.

    Returns:
      ``dict`` with ``y <[len(ROWS), T, D*H]>`` (zero-padded), ``final`` (tuple of
      ``<[L*D, len(ROWS), H]>``) and, with a loss, ``grads`` (lstmjax layout), ``x_grad <[B, T, F]>``
      and ``init_grad`` (tuple like ``init``, over all ``B`` rows).
    """
    module.zero_grad()
    x_t = torch.tensor(x, requires_grad=True)
    init_t = None if init is None else tuple(torch.tensor(s, requires_grad=True) for s in init)
    rows = torch.as_tensor(ROWS)
    inp = x_t[rows] if module.batch_first else x_t[rows].transpose(0, 1)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        inp, torch.as_tensor(LENGTHS[ROWS], dtype=torch.int64), batch_first=module.batch_first,
        enforce_sorted=False)
    state = None
    if init_t is not None:
        state = tuple(s[:, rows] for s in init_t)
        state = state if len(state) == 2 else state[0]
    out, final = module(packed, state)
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=module.batch_first, total_length=T)
    y = y if module.batch_first else y.transpose(0, 1)  # (B', T, D*H)
    final = _as_tuple(final)
    result = {"y": y.detach().numpy(), "final": tuple(s.detach().numpy() for s in final)}
    if r_out is not None:
        loss = torch.sum(y * torch.as_tensor(r_out[ROWS]))
        for s, r in zip(final, r_states):
            loss = loss + torch.sum(s * torch.as_tensor(r[:, ROWS]))
        loss.backward()
        result["loss"] = float(loss.detach())
        result["grads"] = _torch_grads_in_lstmjax_layout(module)
        result["x_grad"] = x_t.grad.numpy()
        result["init_grad"] = None if init_t is None else tuple(s.grad.numpy() for s in init_t)
    return result


def _torch_grads_in_lstmjax_layout(module):
    """PyTorch parameter gradients mapped to lstmjax's ``{"layer_l_dir": {...}}`` layout."""
    gru = type(module).__name__ == "GRU"
    grads = {}
    for layer in range(module.num_layers):
        for direction, suffix in _directions(module):
            def g(name, layer=layer, suffix=suffix):
                return getattr(module, f"{name}_l{layer}{suffix}").grad.numpy().copy()

            p = {"W_x": g("weight_ih").T, "W_h": g("weight_hh").T}
            if gru:
                p["b_x"], p["b_h"] = g("bias_ih"), g("bias_hh")
            else:
                # b = bias_ih + bias_hh, so d/db = d/dbias_ih = d/dbias_hh.
                np.testing.assert_allclose(g("bias_ih"), g("bias_hh"), atol=ATOL, rtol=0)
                p["b"] = g("bias_ih")
            grads[f"layer_{layer}_{direction}"] = p
    return grads


def _torch_forward_unpacked(module, x):
    """Plain (unpacked) forward over full-length sequences of all ``B`` rows."""
    with torch.no_grad():
        inp = torch.as_tensor(x) if module.batch_first else torch.as_tensor(x).transpose(0, 1)
        y, final = module(inp)
    y = y if module.batch_first else y.transpose(0, 1)
    return y.numpy(), tuple(s.numpy() for s in _as_tuple(final))


# ---------------------------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------------------------


def _check_forward(y, final, ref, init):
    """lstmjax ``(y, final)`` on all ``B`` rows against PyTorch's ``ref`` on ``ROWS``."""
    y, final = np.asarray(y), tuple(np.asarray(s) for s in _as_tuple(final))
    assert np.abs(ref["y"]).max() > 1e-2
    _assert_close(y[ROWS], ref["y"], "outputs (valid rows; PyTorch pads with zeros)")
    assert np.all(y[~VALID] == 0.0), "outputs at padded steps must be exactly zero"
    assert len(final) == len(ref["final"])
    for k, (s, s_ref) in enumerate(zip(final, ref["final"])):
        _assert_close(s[:, ROWS], s_ref, f"final state {k} (rows with length >= 1)")
        expected_empty = np.zeros_like(s[:, EMPTY]) if init is None else init[k][:, EMPTY]
        np.testing.assert_array_equal(s[:, EMPTY], expected_empty,
                                      err_msg=f"final state {k} of a length-0 row must be the initial state")


# ---------------------------------------------------------------------------------------------
# 1. Forward
# ---------------------------------------------------------------------------------------------


def _compare_run(case: Case, batch_first: bool, init_kind: str, seed: int):
    """Run lstmjax (value and grads, one compile per module) and PyTorch on the same data."""
    m = _torch_module(case, seed=seed, batch_first=batch_first)
    x = _inputs(seed=seed + 1)
    init = _initial_state(case, seed=seed + 2)
    if init_kind == "zero":
        init = tuple(np.zeros_like(s) for s in init)
    r_out, r_states = _loss_weights(case, seed=seed + 3)
    ref = _torch_run(m, x, None if init_kind == "zero" else init, r_out, r_states)
    loss, y, final, grads = _lstmjax_value_and_grads(
        _lstmjax_module(case, m), interop.from_torch(m)["params"], x, LENGTHS, init, r_out, r_states)
    return ref, init, r_states, (loss, y, final, grads)


@pytest.mark.parametrize("init_kind", ["zero", "random"], ids=["h0=0", "h0=random"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_forward_matches_torch_packed(case, batch_first, init_kind):
    """Outputs (zero at padding) and final states at each true length; PyTorch's h0 default is zeros."""
    ref, init, _, (_, y, final, _) = _compare_run(case, batch_first, init_kind, seed=10)
    _check_forward(y, final, ref, init=init)


@pytest.mark.parametrize("case", [pytest.param(Case(k, 2, True), id=f"{k}-L2-bi") for k in TORCH_MODULES])
def test_forward_matches_torch_without_lengths(case):
    """``lengths=None`` runs every step, as an unpacked PyTorch forward does."""
    m = _torch_module(case, seed=12, batch_first=False)
    x = _inputs(seed=2)
    y, final = _lstmjax_forward_unmasked(_lstmjax_module(case, m), interop.from_torch(m), x)
    y_ref, final_ref = _torch_forward_unpacked(m, x)
    _assert_close(y, y_ref, "outputs")
    for k, (s, s_ref) in enumerate(zip(_as_tuple(final), final_ref, strict=True)):
        _assert_close(s, s_ref, f"final state {k}")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_forward_matches_torch_without_bias(kind):
    """``bias=False`` modules import with zero biases."""
    case = Case(kind, 2, True)
    m = _torch_module(case, seed=13, bias=False)
    variables = interop.from_torch(m)
    for p in variables["params"].values():
        for name in ("b", "b_x", "b_h"):
            if name in p:
                np.testing.assert_array_equal(p[name], np.zeros(p["W_x"].shape[1], np.float32))
    x = _inputs(seed=3)
    y, final = _lstmjax_forward(_lstmjax_module(case, m), variables, x, LENGTHS)
    _check_forward(y, final, _torch_run(m, x), init=None)


# ---------------------------------------------------------------------------------------------
# 2. Gradients (and forward with a random initial state)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_gradients_match_torch(case, batch_first):
    """loss = Σ y·R + Σ h_n·R' (+ Σ c_n·R''): grads w.r.t. every parameter, the inputs and h_0/c_0."""
    ref, init, r_states, (loss, y, final, (g_params, g_x, g_init)) = _compare_run(
        case, batch_first, "random", seed=20)
    _check_forward(y, final, ref, init=init)
    # The empty rows add Σ h_0·R' (+ Σ c_0·R'') to the loss, which PyTorch never saw.
    empty_terms = sum(float(np.sum(s[:, EMPTY] * r[:, EMPTY])) for s, r in zip(init, r_states))
    np.testing.assert_allclose(float(loss), ref["loss"] + empty_terms, rtol=1e-5, atol=1e-4)

    _assert_trees_close(g_params, ref["grads"], "d loss / d params")

    g_x = np.asarray(g_x)
    _assert_close(g_x, ref["x_grad"], "d loss / d inputs")
    assert np.all(g_x[~VALID] == 0.0), "inputs at padded steps must get exactly zero gradient"

    for k, (g, g_ref, r) in enumerate(zip(g_init, ref["init_grad"], r_states, strict=True)):
        expected = g_ref.copy()
        expected[:, EMPTY] = r[:, EMPTY]  # final state = initial state: the gradient passes through
        _assert_close(g, expected, f"d loss / d initial state {k}")


# ---------------------------------------------------------------------------------------------
# 3. Round trips
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES if c.hoist_inputs])
def test_to_torch_from_torch_round_trip(case, batch_first):
    """``to_torch(from_torch(m), fresh)`` makes ``fresh`` compute what ``m`` computes."""
    m = _torch_module(case, seed=31, batch_first=batch_first)
    fresh = _torch_module(case, seed=32, batch_first=not batch_first)
    x = _inputs(seed=7)
    ref = _torch_run(m, x)
    assert np.abs(_torch_run(fresh, x)["y"] - ref["y"]).max() > 1e-2  # they start different
    assert interop.to_torch(interop.from_torch(m), fresh) is fresh
    got = _torch_run(fresh, x)
    _assert_close(got["y"], ref["y"], "outputs")
    for k, (s, s_ref) in enumerate(zip(got["final"], ref["final"], strict=True)):
        _assert_close(s, s_ref, f"final state {k}")
    for layer in range(case.num_layers):
        for _, suffix in _directions(m):
            for w in ("weight_ih", "weight_hh"):
                name = f"{w}_l{layer}{suffix}"
                np.testing.assert_array_equal(getattr(fresh, name).detach().numpy(),
                                              getattr(m, name).detach().numpy(), err_msg=name)


INIT_CASES = [("lstm", "keras"), ("gru", "pytorch")]  # LSTM: unit forget bias; GRU: two biases


@pytest.mark.parametrize(("case", "initializer"),
                         [pytest.param(Case(k, 2, True), i, id=f"{k}-L2-bi-{i}") for k, i in INIT_CASES])
def test_lstmjax_init_to_torch(case, initializer):
    """lstmjax ``init`` → ``to_torch`` → the PyTorch forward equals the lstmjax forward (h0 = 0)."""
    m = _torch_module(case, seed=41)
    module = interop.layer_like(m)
    x = _inputs(seed=8)
    variables = jax.jit(module.clone(initializer=initializer).init)(jax.random.key(3), x, LENGTHS)
    interop.to_torch(variables, m)
    y, final = _lstmjax_forward(module, variables, x, LENGTHS)
    _check_forward(y, final, _torch_run(m, x), init=None)


# ---------------------------------------------------------------------------------------------
# 4. Refusals
# ---------------------------------------------------------------------------------------------


def test_from_torch_refuses_projected_lstm():
    with pytest.raises(ValueError, match="proj_size"):
        interop.from_torch(torch.nn.LSTM(F, H, proj_size=2))


@pytest.mark.parametrize(
    ("source", "target", "missing_or_extra"),
    [
        pytest.param(dict(num_layers=2), dict(num_layers=1), "layer_1_forward", id="2-layers-into-1"),
        pytest.param(dict(num_layers=1), dict(num_layers=2), "layer_1_forward", id="1-layer-into-2"),
        pytest.param(dict(bidirectional=True), dict(bidirectional=False), "layer_0_backward", id="bi-into-uni"),
    ],
)
def test_to_torch_refuses_mismatched_layers(source, target, missing_or_extra):
    variables = interop.from_torch(torch.nn.LSTM(F, H, **source))
    target_module = torch.nn.LSTM(F, H, **target)
    before = {k: v.detach().clone() for k, v in target_module.state_dict().items()}
    with pytest.raises(ValueError, match=missing_or_extra):
        interop.to_torch(variables, target_module)
    for k, v in target_module.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} was written before the refusal"


def test_to_torch_refuses_mismatched_sizes():
    variables = interop.from_torch(torch.nn.GRU(F, H))
    with pytest.raises(ValueError, match="weight_ih_l0"):
        interop.to_torch(variables, torch.nn.GRU(F + 1, H))

"""Numeric parity with Keras 3 (JAX backend): outputs, final states and gradients under masking.

The reference is ``keras.layers.LSTM`` / ``GRU`` / ``SimpleRNN`` with
``return_sequences=True, return_state=True``, a ``Bidirectional`` of them, and two of them stacked
(a list of layers), called with a boolean ``mask`` built from the lengths. Gradients come from
Keras's stateless API, ``layer.stateless_call(trainable, non_trainable, x, mask=mask)`` inside
``jax.value_and_grad``, and are mapped to lstmjax's layout (Keras GRU gates z, r, h; lstmjax
r, z, n; Keras GRU ``bias`` rows are input / recurrent).

What Keras does at masked steps (checked in :func:`test_keras_masking_conventions`):

* the state is carried unchanged, so the final state is the state at the last valid step;
* a plain layer *repeats the last valid output* at padded steps (``zero_output_for_mask=False``,
  its default) while ``Bidirectional`` forces zeros. lstmjax always writes zeros, so outputs are
  compared at valid steps only, and lstmjax's padded outputs are checked to be exactly zero;
* a ``go_backwards`` layer reverses the whole padded sequence, so it reads the padding first
  (state unchanged) and then the valid tokens last to first: its final state is the state after
  reading each sequence's first token, which is lstmjax's backward final state;
* an all-False mask row (length 0) outputs zeros and returns the initial (zero) state, which is
  also what lstmjax returns, so length-0 rows are compared like the others.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":  # pragma: no cover - conftest sets KERAS_BACKEND=jax
    pytest.skip("these tests need Keras's JAX backend (KERAS_BACKEND=jax)", allow_module_level=True)

from _parity import ATOL, Case  # noqa: E402
from _parity import assert_close as _assert_close
from _parity import assert_trees_close as _assert_trees_close

import lstmjax  # noqa: E402
from lstmjax.nn import interop  # noqa: E402

B, T, F, H = 5, 7, 3, 6
LENGTHS = np.array([T, 0, 3, 1, 5], np.int32)  # full, empty, middle, one, another middle
VALID = np.arange(T)[None, :] < LENGTHS[:, None]  # (B, T): the Keras mask
GRU_KERAS_TO_LSTMJAX = (1, 0, 2)  # Keras z, r, h -> lstmjax r, z, n (written here independently)


CASES = (
    [Case(k, n, bi) for k in ("lstm", "gru", "rnn_tanh") for n in (1, 2) for bi in (False, True)]
    + [Case("lstm", 2, True, hoist_inputs=False), Case("rnn_relu", 2, True)]
)
CASE_PARAMS = [pytest.param(c, id=c.id) for c in CASES]


# ---------------------------------------------------------------------------------------------
# Models and data
# ---------------------------------------------------------------------------------------------


# Every weight is overwritten with random values after ``build``; zero initialisers keep the
# build cheap (Keras's default Glorot/orthogonal draws compile a JAX kernel per shape).
_CHEAP_INIT = dict(kernel_initializer="zeros", recurrent_initializer="zeros", bias_initializer="zeros")


def _keras_rnn(kind: str, **kw):
    """A Keras recurrent layer (``return_sequences``, ``return_state`` unless overridden)."""
    kw = {"return_sequences": True, "return_state": True, **_CHEAP_INIT, **kw}
    if kind == "lstm":
        return keras.layers.LSTM(H, **kw)
    if kind == "gru":
        return keras.layers.GRU(H, **kw)
    return keras.layers.SimpleRNN(H, activation=kind.removeprefix("rnn_"), **kw)


def _keras_layers(case: Case, seed: int) -> list:
    """Built Keras layers (one per stacked layer) with every weight, biases too, random."""
    keras.utils.set_random_seed(seed)
    layers = []
    for layer_index in range(case.num_layers):
        layer = _keras_rnn(case.kind)
        if case.bidirectional:
            layer = keras.layers.Bidirectional(layer)
        layers.append(_built(layer, F if layer_index == 0 else case.directions * H, seed=seed + layer_index))
    return layers


def _built(layer, features: int = F, seed: int = 0):
    """``layer`` built for ``<float32>[batch, T, features]`` inputs, every weight ``U(-0.5, 0.5)``."""
    layer.build((None, T, features))
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        v.assign(rng.uniform(-0.5, 0.5, v.shape).astype(np.float32))
    return layer


def _lstmjax_module(case: Case):
    """Built directly, not with ``interop.layer_like`` (tested on its own at the end)."""
    cls = {"lstm": lstmjax.LSTM, "gru": lstmjax.GRU}.get(case.kind, lstmjax.SimpleRNN)
    extra = {"activation": case.kind.removeprefix("rnn_")} if cls is lstmjax.SimpleRNN else {}
    return cls(H, num_layers=case.num_layers, bidirectional=case.bidirectional,
               hoist_inputs=case.hoist_inputs, **extra)


def _inputs(seed: int = 0) -> np.ndarray:
    """``<float32>[B, T, F]``, non-zero at padded steps too (they must not matter)."""
    return np.random.default_rng(seed).standard_normal((B, T, F)).astype(np.float32)


def _loss_weights(case: Case, seed: int):
    """``(R_out <[B, T, D*H]> zero at padded steps, R_state...)``: weights of the scalar loss.

    ``R_out`` is masked because Keras's plain layers repeat the last output at padded steps.
    """
    rng = np.random.default_rng(seed)
    r_out = rng.standard_normal((B, T, case.directions * H)).astype(np.float32) * VALID[..., None]
    shape = (case.num_layers * case.directions, B, H)
    r_states = tuple(rng.standard_normal(shape).astype(np.float32) for _ in range(case.states_per_direction))
    return r_out.astype(np.float32), r_states


def _as_tuple(final):
    return tuple(final) if isinstance(final, tuple) else (final,)


def _rnns(layer) -> list:
    """The directions' recurrent layers of a plain or ``Bidirectional`` layer."""
    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


# ---------------------------------------------------------------------------------------------
# Keras side: stateless, jitted, differentiated
# ---------------------------------------------------------------------------------------------


def _keras_stack_apply(case: Case, layers, trainable, x, mask, initial_state=None):
    """Run the stack statelessly; finals regrouped as lstmjax's ``[L*D, B, H]`` (PyTorch order).

    ``initial_state``: ``None`` or lstmjax's ``(h_0[, c_0])``, each ``[L*D, B, H]``, handed to
    each Keras layer in its order (``[h, c]`` per direction, forward first).
    """
    finals = [[] for _ in range(case.states_per_direction)]  # per state kind: (layer, direction)
    h = x
    for layer_index, (layer, tv) in enumerate(zip(layers, trainable, strict=True)):
        ntv = [v.value for v in layer.non_trainable_variables]
        kw = {}
        if initial_state is not None:
            kw["initial_state"] = [s[layer_index * case.directions + d]
                                   for d in range(case.directions) for s in initial_state]
        outs, _ = layer.stateless_call(tv, ntv, h, mask=mask, **kw)
        h, states = outs[0], outs[1:]
        assert len(states) == case.directions * case.states_per_direction
        for d in range(case.directions):
            for k in range(case.states_per_direction):
                finals[k].append(states[d * case.states_per_direction + k])
    return h, tuple(jnp.stack(f) for f in finals)


def _keras_grads_in_lstmjax_layout(case: Case, layers, grads) -> dict:
    """Keras gradients (lists aligned with ``layer.trainable_variables``) in lstmjax's layout."""
    out = {}
    for layer_index, (layer, g) in enumerate(zip(layers, grads, strict=True)):
        position = {id(v): i for i, v in enumerate(layer.trainable_variables)}
        for rnn, direction in zip(_rnns(layer), ("forward", "backward")):
            cell = rnn.cell
            kernel, recurrent, bias = (np.asarray(g[position[id(v)]])
                                       for v in (cell.kernel, cell.recurrent_kernel, cell.bias))
            if case.kind == "gru":
                def swap(a):
                    blocks = np.split(a, 3, axis=-1)
                    return np.concatenate([blocks[i] for i in GRU_KERAS_TO_LSTMJAX], axis=-1)

                p = {"W_x": swap(kernel), "W_h": swap(recurrent), "b_x": swap(bias[0]), "b_h": swap(bias[1])}
            else:
                p = {"W_x": kernel, "W_h": recurrent, "b": bias}
            out[f"layer_{layer_index}_{direction}"] = p
    return out


@functools.cache
def _keras_reference(case: Case):
    """Keras's outputs, finals and grads (params, inputs) for ``case``, computed once."""
    layers = _keras_layers(case, seed=100 + CASES.index(case))
    x = _inputs(seed=1)
    r_out, r_states = _loss_weights(case, seed=2)
    trainable = [[v.value for v in layer.trainable_variables] for layer in layers]

    def loss_fn(trainable, x):
        y, finals = _keras_stack_apply(case, layers, trainable, x, jnp.asarray(VALID))
        loss = jnp.sum(y * r_out) + sum(jnp.sum(s * r) for s, r in zip(finals, r_states))
        return loss, (y, finals)

    (loss, (y, finals)), (g_trainable, g_x) = jax.jit(
        jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True))(trainable, x)
    return {
        "layers": layers, "x": x, "r_out": r_out, "r_states": r_states,
        "loss": float(loss), "y": np.asarray(y), "final": tuple(np.asarray(s) for s in finals),
        "grads": _keras_grads_in_lstmjax_layout(case, layers, g_trainable), "x_grad": np.asarray(g_x),
    }


# ---------------------------------------------------------------------------------------------
# lstmjax side
# ---------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _lstmjax_forward_from(module, variables, x, lengths, initial_state):
    return module.apply(variables, x, lengths, initial_state=initial_state)


@functools.partial(jax.jit, static_argnums=0)
def _lstmjax_value_and_grads(module, params, x, lengths, r_out, r_states):
    def loss_fn(params, x):
        y, final = module.apply({"params": params}, x, lengths)
        loss = jnp.sum(y * r_out) + sum(jnp.sum(s * r) for s, r in zip(_as_tuple(final), r_states))
        return loss, (y, final)

    return jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(params, x)


# ---------------------------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------------------------


def _check_forward(y, final, ref):
    y, final = np.asarray(y), tuple(np.asarray(s) for s in _as_tuple(final))
    assert np.abs(ref["y"][VALID]).max() > 1e-2
    _assert_close(y[VALID], ref["y"][VALID], "outputs at valid steps")
    assert np.all(y[~VALID] == 0.0), "lstmjax outputs at padded steps must be exactly zero"
    assert len(final) == len(ref["final"])
    for k, (s, s_ref) in enumerate(zip(final, ref["final"])):
        assert np.abs(s_ref).max() > 1e-2
        _assert_close(s, s_ref, f"final state {k} [layer*direction, batch, hidden]")


# ---------------------------------------------------------------------------------------------
# 0. What Keras does with masks (the conventions the comparisons rely on)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [pytest.param(Case("lstm", 1, False), id="lstm-uni"),
                                  pytest.param(Case("gru", 1, True), id="gru-bi")])
def test_keras_masking_conventions(case):
    ref = _keras_reference(case)
    y, empty = ref["y"], LENGTHS == 0
    np.testing.assert_array_equal(y[empty], 0.0)  # an all-False mask row outputs zeros ...
    for s in ref["final"]:
        np.testing.assert_array_equal(s[:, empty], 0.0)  # ... and keeps the zero initial state
    padded = ~VALID & (LENGTHS > 0)[:, None]
    if case.bidirectional:
        np.testing.assert_array_equal(y[padded], 0.0)  # Bidirectional: zeros at padded steps
    else:
        # A plain layer repeats its last valid output at padded steps.
        last = y[np.arange(B), np.maximum(LENGTHS - 1, 0)]  # (B, H)
        rows, _ = np.nonzero(padded)
        np.testing.assert_array_equal(y[padded], last[rows])
        assert np.abs(y[padded]).max() > 1e-2


# ---------------------------------------------------------------------------------------------
# 1. Forward and gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_forward_matches_keras_masked(case):
    ref = _keras_reference(case)
    # One layer goes in bare, a stack as a list.
    variables = interop.from_keras(ref["layers"] if case.num_layers > 1 else ref["layers"][0])
    (_, (y, final)), _ = _lstmjax_value_and_grads(
        _lstmjax_module(case), variables["params"], ref["x"], LENGTHS, ref["r_out"], ref["r_states"])
    _check_forward(y, final, ref)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_gradients_match_keras(case):
    """loss = Σ y·R·mask + Σ h_n·R' (+ Σ c_n·R''): grads w.r.t. every weight and the inputs."""
    ref = _keras_reference(case)
    params = interop.from_keras(ref["layers"])["params"]
    (loss, (y, final)), (g_params, g_x) = _lstmjax_value_and_grads(
        _lstmjax_module(case), params, ref["x"], LENGTHS, ref["r_out"], ref["r_states"])
    _check_forward(y, final, ref)
    np.testing.assert_allclose(float(loss), ref["loss"], rtol=1e-5, atol=1e-4)
    _assert_trees_close(g_params, ref["grads"], "d loss / d params")
    assert np.abs(ref["x_grad"]).max() > 1e-2
    _assert_close(g_x, ref["x_grad"], "d loss / d inputs")
    assert np.all(np.asarray(g_x)[~VALID] == 0.0), "inputs at padded steps must get exactly zero gradient"


@pytest.mark.parametrize("case", [pytest.param(Case("lstm", 2, True), id="lstm-L2-bi")])
def test_forward_matches_keras_with_initial_state(case):
    """A random ``initial_state`` reaches each (layer, direction) as in PyTorch's ordering."""
    layers = _keras_layers(case, seed=6)
    x = _inputs(seed=7)
    rng = np.random.default_rng(8)
    shape = (case.num_layers * case.directions, B, H)
    init = tuple(rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(case.states_per_direction))
    trainable = [[v.value for v in layer.trainable_variables] for layer in layers]
    keras_apply = functools.partial(_keras_stack_apply, case, layers, mask=jnp.asarray(VALID))
    y_ref, final_ref = jax.jit(lambda tv, x, init: keras_apply(tv, x, initial_state=init))(trainable, x, init)
    y, final = _lstmjax_forward_from(_lstmjax_module(case), interop.from_keras(layers), x, LENGTHS,
                                     init if case.kind == "lstm" else init[0])
    _check_forward(y, final, {"y": np.asarray(y_ref), "final": tuple(np.asarray(s) for s in final_ref)})
    for k, s in enumerate(_as_tuple(final)):  # length-0 rows keep the (non-zero) initial state
        np.testing.assert_array_equal(np.asarray(s)[:, LENGTHS == 0], init[k][:, LENGTHS == 0])


# ---------------------------------------------------------------------------------------------
# 2. Round trips
# ---------------------------------------------------------------------------------------------


def _keras_forward(case: Case, layers, x):
    y, finals = jax.jit(lambda tv, x: _keras_stack_apply(case, layers, tv, x, jnp.asarray(VALID)))(
        [[v.value for v in layer.trainable_variables] for layer in layers], x)
    return {"y": np.asarray(y), "final": tuple(np.asarray(s) for s in finals)}


ROUND_TRIP_CASES = [pytest.param(Case(k, 2, True), id=f"{k}-L2-bi") for k in ("lstm", "gru", "rnn_tanh")]


@pytest.mark.parametrize("case", ROUND_TRIP_CASES)
def test_to_keras_from_keras_round_trip(case):
    """``to_keras(from_keras(layers), fresh)`` copies every weight exactly (GRU gates included)."""
    layers = _keras_layers(case, seed=7)
    fresh = _keras_layers(case, seed=8)
    assert interop.to_keras(interop.from_keras(layers), fresh) is fresh
    for old, new in zip(layers, fresh, strict=True):
        assert len(old.weights) == len(new.weights)
        for v_old, v_new in zip(old.weights, new.weights, strict=True):
            np.testing.assert_array_equal(np.asarray(v_new.value), np.asarray(v_old.value), err_msg=v_new.path)


@pytest.mark.parametrize("case", [pytest.param(Case("gru", 2, True), id="gru-L2-bi")])  # gates reordered
def test_lstmjax_init_to_keras(case):
    """lstmjax ``init`` → ``to_keras`` → Keras's masked forward equals lstmjax's."""
    module = _lstmjax_module(case)
    x = _inputs(seed=3)
    variables = jax.jit(module.init)(jax.random.key(4), x, LENGTHS)
    layers = _keras_layers(case, seed=9)
    interop.to_keras(variables, layers)
    r_out, r_states = _loss_weights(case, seed=5)
    (_, (y, final)), _ = _lstmjax_value_and_grads(module, variables["params"], x, LENGTHS, r_out, r_states)
    _check_forward(y, final, _keras_forward(case, layers, x))


# ---------------------------------------------------------------------------------------------
# 3. Refusals
# ---------------------------------------------------------------------------------------------


def test_from_keras_refuses_gru_reset_before():
    with pytest.raises(ValueError, match="reset_after"):
        interop.from_keras(_built(keras.layers.GRU(H, reset_after=False, **_CHEAP_INIT)))


def test_from_keras_refuses_bidirectional_sum():
    with pytest.raises(ValueError, match="merge_mode"):
        interop.from_keras(_built(keras.layers.Bidirectional(_keras_rnn("lstm", return_state=False),
                                                             merge_mode="sum")))


def test_from_keras_refuses_unbuilt_layer():
    with pytest.raises(ValueError, match="not built"):
        interop.from_keras(keras.layers.LSTM(H))


@pytest.mark.parametrize(("n_source", "n_target"), [(2, 1), (1, 2)], ids=["2-into-1", "1-into-2"])
def test_to_keras_refuses_mismatched_layer_count(n_source, n_target):
    source = [_built(_keras_rnn("lstm", return_state=False), F if i == 0 else H, seed=i) for i in range(n_source)]
    target = [_built(_keras_rnn("lstm", return_state=False), F if i == 0 else H, seed=9 + i) for i in range(n_target)]
    before = [np.asarray(v.value).copy() for layer in target for v in layer.weights]
    with pytest.raises(ValueError, match="layer_1_forward"):
        interop.to_keras(interop.from_keras(source), target)
    after = [np.asarray(v.value) for layer in target for v in layer.weights]
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# 4. layer_like for Keras layers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [pytest.param(Case(k, n, bi), id=Case(k, n, bi).id)
                                  for k in ("lstm", "gru", "rnn_relu") for n in (1, 2) for bi in (False, True)])
def test_layer_like_keras(case):
    """``layer_like`` on a Keras layer (or a list, stacked) builds the module built by hand here."""
    layers = _keras_layers(case, seed=10)
    # layer_like builds the library's default loop (hoist_inputs=None: chosen by batch size): compare with that
    assert interop.layer_like(layers if case.num_layers > 1 else layers[0]) == _lstmjax_module(case).clone(hoist_inputs=None)


# ---------------------------------------------------------------------------------------------
# 5. Reading Keras weights is warning-free
# ---------------------------------------------------------------------------------------------


def test_from_keras_reads_weights_without_numpy_deprecation():
    """``np.array(KerasVariable)`` warns under NumPy 2 (its ``__array__`` lacks ``copy=``).

    ``from_keras`` should read ``variable.value`` (a ``jax.Array``) instead of handing the
    ``KerasVariable`` to ``keras.ops.convert_to_numpy``; the warning becomes an error in a
    future NumPy.
    """
    layer = _built(keras.layers.Bidirectional(_keras_rnn("gru", return_state=False)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        variables = interop.from_keras(layer)
    np.testing.assert_array_equal(variables["params"]["layer_0_backward"]["W_h"][:, :H],
                                  np.asarray(layer.backward_layer.cell.recurrent_kernel.value)[:, H:2 * H])


# ---------------------------------------------------------------------------------------------
# 6. PyTorch and Keras classes share names (LSTM, GRU): interop must tell them apart
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_interop_tells_torch_and_keras_classes_apart(kind):
    """``from_torch(keras_layer)`` / ``from_keras(torch_module)`` refuse with ``TypeError``.

    ``interop`` dispatches on the bare class name, which ``keras.layers.LSTM`` shares with
    ``torch.nn.LSTM`` (and ``GRU`` with ``GRU``); it then fails deep inside with ``AttributeError``.
    """
    torch = pytest.importorskip("torch")
    keras_layer = _built(_keras_rnn(kind))
    torch_module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](F, H)
    with pytest.raises(TypeError):
        interop.from_torch(keras_layer)
    with pytest.raises(TypeError):
        interop.from_keras(torch_module)

"""Tutorial 01 (background and cost): checkers for its exercises."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.course._check import Wrong, exercise, returned
from lstmjax.course._i18n import tr


def _n_params(tree) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def _close(got, want, what: str, rtol: float = 1e-6) -> None:
    if got is None:
        raise Wrong(tr("{what}: your function returned None (is its body still `...`?).", what=what))
    if not math.isclose(float(got), float(want), rel_tol=rtol, abs_tol=0.0):
        raise Wrong(tr("{what}: got {got:,}, expected {want:,}.", what=what, got=got, want=want))


@exercise("01.1", "Count the parameters of any TextClassifier by formula")
def _count_classifier(count):
    from lstmjax.nn.classifier import TextClassifier

    cases = [(20_000, 128, 128, 2, "lstm", 1, False), (500, 16, 8, 3, "gru", 2, True),
             (1000, 32, 64, 5, "rnn", 3, False), (300, 8, 12, 4, "lstm", 2, True)]
    ids = jnp.ones((1, 3), jnp.int32)
    for V, E, H, C, cell, layers, bi in cases:
        model = TextClassifier(vocab_size=V, num_classes=C, embed_dim=E, hidden_size=H, cell=cell,
                               num_layers=layers, bidirectional=bi)
        want = _n_params(jax.eval_shape(lambda k, m=model: m.init(k, ids), jax.random.key(0)))
        got = count(V, E, H, C, cell, layers, bi)
        call = f"count({V}, {E}, {H}, {C}, {cell!r}, layers={layers}, bidirectional={bi})"
        what = tr("{call} (lstmjax.TextClassifier has {want:,})", call=call, want=want)
        if got is not None and got != want and not bi and layers == 1:
            raise Wrong(tr("{what}: got {got:,}. Check the per-layer formula of the {cell} "
                           "(GRU: two bias vectors; RNN: one gate).", what=what, got=got, cell=cell.upper()))
        if got is not None and got != want and bi:
            raise Wrong(tr("{what}: got {got:,}. Bidirectional: two directions per layer, and every "
                           "later layer and the dense layer read 2·H features.", what=what, got=got))
        _close(got, want, what)
    return tr("the formula matches lstmjax for LSTM, GRU and RNN, stacked and bidirectional.")


def _dot_flops(jaxpr) -> int:
    """2 × multiply-adds of every dot_general in a jaxpr (recursing into sub-jaxprs)."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            k = int(np.prod([lhs[d] for d in contract[0]])) if contract[0] else 1
            total += 2 * k * int(np.prod(eqn.outvars[0].aval.shape))
        for value in eqn.params.values():
            inner = getattr(value, "jaxpr", value)  # a ClosedJaxpr holds a Jaxpr
            if hasattr(inner, "eqns"):
                total += _dot_flops(inner)
    return total


@exercise("01.2", "FLOPs per token of a GRU layer")
def _gru_flops(flops_per_token):
    from lstmjax.nn import cells

    F, H, B, T = 64, 96, 4, 12
    q = cells.init_gru_params(jax.random.key(30), F, H)
    xs = jax.random.normal(jax.random.key(31), (B, T, F))

    def unrolled(q, xs):
        h = jnp.zeros((B, H), xs.dtype)
        for t in range(T):  # unrolled: every step's products appear in the program
            h, _ = cells.gru_step(q, h, xs[:, t])
        return h

    cost = jax.jit(unrolled).lower(q, xs).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    if cost and "flops" in cost:
        counted, source = float(cost["flops"]), tr("XLA's cost_analysis")
    else:  # a backend that does not count: the products in the program, from its jaxpr
        counted, source = float(_dot_flops(jax.make_jaxpr(unrolled)(q, xs).jaxpr)), tr("the jaxpr's products")
    per_token = counted / (B * T)
    got = flops_per_token(F, H)
    if got is None:
        raise Wrong(tr("your function returned None (is its body still `...`?)."))
    if abs(got / per_token - 1) > 0.05:
        hint = ""
        if abs(got / per_token - 0.5) < 0.05:
            hint = tr(" That is half: one multiply-add is 2 FLOPs.")
        elif abs(got / per_token - 4 / 3) < 0.07:
            hint = tr(" That is the LSTM's count: a GRU has three gates, not four.")
        raise Wrong(tr("gru_flops_per_token({F}, {H}) = {got:,}, but {source} counts {counted:,.0f} FLOPs "
                       "per token.{hint}", F=F, H=H, got=got, source=source, counted=per_token, hint=hint))
    return tr("{got:,} FLOPs per token by formula; {source}: {counted:,.0f}.", got=got, source=source,
              counted=per_token)


@exercise("01.3", "RMSProp from scratch, checked against optax.rmsprop")
def _rmsprop(answer):
    import optax

    if not (isinstance(answer, tuple) and len(answer) == 2):
        raise Wrong(tr("pass the pair (rmsprop_init, rmsprop_update)."))
    init, update = answer
    params = {"w": jax.random.normal(jax.random.key(8), (3, 4)), "b": jnp.zeros(4)}
    returned(init(params), "rmsprop_init")
    grads = [jax.tree.map(lambda a, k=k: jax.random.normal(jax.random.key(k), a.shape), params)
             for k in range(5)]
    tx = optax.rmsprop(0.01, decay=0.9, eps=1e-8)
    ours, theirs, p_ours, p_theirs = init(params), tx.init(params), params, params
    for step_number, g in enumerate(grads, start=1):
        out = returned(update(g, ours, 0.01), "rmsprop_update")
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Wrong(tr("rmsprop_update must return (updates, new_state)."))
        step, ours = out
        p_ours = optax.apply_updates(p_ours, step)
        step, theirs = tx.update(g, theirs, p_theirs)
        p_theirs = optax.apply_updates(p_theirs, step)
        for name in params:
            a, b = np.asarray(p_ours[name]), np.asarray(p_theirs[name])
            if not np.allclose(a, b, rtol=1e-5, atol=1e-7):
                ratio = float(np.median(np.abs(a - params[name]) / np.maximum(np.abs(b - params[name]), 1e-30)))
                hint = tr(" Is the sign right (updates are *added* to the parameters)?") if ratio > 0 and np.allclose(
                    a - params[name], -(b - params[name]), rtol=1e-4, atol=1e-7) else ""
                raise Wrong(tr("after step {step}, parameter {name!r} differs from optax.rmsprop by up to "
                               "{error:.2e}.{hint} Check s ← ρs + (1−ρ)g² and θ ← θ − η g / √(s + ε) (ε inside "
                               "the root).", step=step_number, name=name, error=np.abs(a - b).max(), hint=hint))
    return tr("five steps equal optax.rmsprop(0.01, decay=0.9, eps=1e-8).")


@functools.lru_cache(maxsize=1)
def _small_classifier_grads():
    """Gradients of a small TextClassifier's mean loss on a random batch, and their RMS by path."""
    from lstmjax.nn.classifier import TextClassifier
    from lstmjax.training.steps import sparse_cross_entropy

    model = TextClassifier(vocab_size=500, num_classes=2, embed_dim=16, hidden_size=16)
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 13, 32).astype(np.int32)
    ids = (rng.integers(2, 500, (32, 12)) * (np.arange(12)[None, :] < lengths[:, None])).astype(np.int32)
    labels = rng.integers(0, 2, 32).astype(np.int32)
    params = model.init(jax.random.key(0), jnp.asarray(ids), jnp.asarray(lengths))["params"]

    def loss(p):
        logits = model.apply({"params": p}, jnp.asarray(ids), jnp.asarray(lengths))
        return sparse_cross_entropy(logits, jnp.asarray(labels), jnp.ones(32, bool)) / 32

    grads = jax.jit(jax.grad(loss))(params)
    rms = {"/".join(str(getattr(k, "key", k)) for k in path): float(np.sqrt(np.mean(np.asarray(g) ** 2)))
           for path, g in jax.tree_util.tree_leaves_with_path(grads)}
    return grads, rms


@exercise("01.4", "Gradient scale per parameter group")
def _gradient_rms(gradient_rms):
    grads, want = _small_classifier_grads()
    got = returned(gradient_rms(grads), "gradient_rms")
    if not isinstance(got, dict):
        raise Wrong(tr("return a dict {{'embedding/embedding': rms, ...}}, got {kind}.", kind=type(got).__name__))
    if set(got) != set(want):
        raise Wrong(tr("the keys should be the '/'-joined parameter paths {want}, got {got}.", want=sorted(want),
                       got=sorted(got)))
    for name, value in want.items():
        g = float(got[name])
        if not math.isclose(g, value, rel_tol=1e-4):
            raise Wrong(tr("{name}: got {got:.3e}, expected the root mean square √(mean(g²)) = {want:.3e}.",
                           name=name, got=g, want=value))
    ratio = want["dense/kernel"] / want["embedding/embedding"]
    return tr("root mean squares match; the dense kernel's gradients are {ratio:,.0f}× the embedding's on this "
              "small random batch (apply it to the tutorial's model and real sentences for the real gap).",
              ratio=ratio)


@exercise("01.5", "Predict the time of one training epoch")
def _predict_epoch(predict):
    cases = [(8530, 32, 2000.0, 16), (8530, 32, 2000.0, 64), (64, 32, 100.0, 8), (100, 7, 50.0, 3)]
    for n, b, rate, T in cases:
        steps = -(-n // b)  # the last, incomplete batch is padded to b rows and costs a full step
        want = steps * b * T / rate
        got = predict(n, b, rate, T)
        if got is None:
            raise Wrong(tr("your function returned None (is its body still `...`?)."))
        call = f"predict({n}, {b}, {rate}, {T})"
        if math.isclose(float(got), n * T / rate, rel_tol=1e-9) and n % b:
            raise Wrong(tr("{call} = {got:.3f} s counts only the real sentences; fit pads the last batch of {rest} "
                           "to {b} rows, so it costs a full step: expected {want:.3f} s.", call=call, got=got,
                           rest=n % b, b=b, want=want))
        if not math.isclose(float(got), want, rel_tol=1e-6):
            raise Wrong(tr("{call} = {got}, expected {want:.4f} s (⌈{n}/{b}⌉ = {steps} steps × {b} × {T} tokens ÷ "
                           "{rate} tokens/s).", call=call, got=got, want=want, n=n, b=b, steps=steps, T=T,
                           rate=rate))
    return tr("epoch time = ⌈N/B⌉ steps × B·T tokens ÷ tokens/s, the last batch padded.")

"""Tutorial 09 (interpretability): checkers compare the learner's attributions with lstmjax.interpret."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.course._check import Wrong, exercise
from lstmjax.course._i18n import tr


@functools.lru_cache(maxsize=1)
def _setup():
    """A small random classifier whose embeddings are large enough for the model to bend."""
    from lstmjax.nn.classifier import TextClassifier

    model = TextClassifier(vocab_size=30, num_classes=2, embed_dim=8, hidden_size=8)
    ids = jnp.array([[4, 9, 17, 2, 23, 11], [5, 28, 3, 0, 0, 0], [7, 0, 0, 0, 0, 0], [3, 6, 17, 24, 3, 21]],
                    jnp.int32)
    lengths = jnp.array([6, 3, 1, 6], jnp.int32)  # the last: its largest attribution is negative
    variables = model.init(jax.random.key(9), ids)
    params = dict(variables["params"])
    params["embedding"] = {"embedding": 2.0 * jax.random.normal(jax.random.key(10), (30, 8), jnp.float32)}
    params["dense"] = {**params["dense"], "kernel": 6.0 * params["dense"]["kernel"]}
    return model, {"params": params}, ids, lengths


def _f_and_x(k: int, target: int = 1):
    """Example ``k`` as (f: <float32>[T, E] -> scalar logit of ``target``, x <float32>[T, E])."""
    model, variables, ids, lengths = _setup()
    n = int(lengths[k])
    x = model.apply(variables, ids[k:k + 1, :n], method=model.embed)[0]  # (T, E)

    def f(embedded):
        logits = model.apply(variables, embedded[None], jnp.array([embedded.shape[0]], jnp.int32),
                             method=model.logits_from_embeddings)
        return logits[0, target]

    return f, x, ids[k:k + 1, :n]


def _scores(answer, *args, expect_len: int, name: str) -> np.ndarray:
    got = answer(*args)
    if got is None:
        raise Wrong(tr("{name} returned None: write the function body.", name=name))
    got = np.asarray(got)
    if got.shape != (expect_len,):
        raise Wrong(tr("{name} returned shape {shape}; expected one score per token, ({n},). Sum the products over "
                       "the embedding axis.", name=name, shape=got.shape, n=expect_len))
    if not np.all(np.isfinite(got)):
        raise Wrong(tr("{name} returned non-finite scores: {got}", name=name, got=got))
    return got


def occlusion_reference(f, x, baseline) -> np.ndarray:
    """``a_t = f(x) − f(x with row t replaced by baseline[t])``, one forward pass per token.

    Example:
      >>> import jax.numpy as jnp
      >>> occlusion_reference(lambda e: jnp.sum(e ** 2), jnp.ones((3, 2)), jnp.zeros((3, 2))).tolist()
      [2.0, 2.0, 2.0]
    """
    full = float(f(x))
    return np.array([full - float(f(x.at[t].set(baseline[t]))) for t in range(x.shape[0])], np.float32)


@exercise("09.1", "Occlusion: what the output loses without each token")
def _occlusion(answer):
    model, variables, _, _ = _setup()
    for k, which in ((0, "zeros"), (1, "unk"), (0, "unk")):
        f, x, _ = _f_and_x(k)
        if which == "zeros":
            baseline = jnp.zeros_like(x)
        else:  # the UNK token's embedding at every position: not zero
            unk = model.apply(variables, jnp.ones((1, x.shape[0]), jnp.int32), method=model.embed)[0]
            baseline = unk
        got = _scores(answer, f, x, baseline, expect_len=x.shape[0], name="occlusion(f, x, baseline)")
        want = occlusion_reference(f, x, baseline)
        if np.allclose(got, want, atol=1e-5, rtol=1e-4):
            continue
        if np.allclose(got, -want, atol=1e-5, rtol=1e-4):
            raise Wrong(tr("every score has the wrong sign: a_t = f(x) − f(x with token t replaced), so a token "
                           "that pushed the output up gets a positive score."))
        cumulative = [float(f(x)) - float(f(x.at[:t + 1].set(baseline[:t + 1]))) for t in range(x.shape[0])]
        if np.allclose(got, cumulative, atol=1e-5, rtol=1e-4):
            raise Wrong(tr("your scores replace tokens 0..t together; replace only token t, and put the others "
                           "back."))
        zeros = occlusion_reference(f, x, jnp.zeros_like(x))
        if which == "unk" and np.allclose(got, zeros, atol=1e-5, rtol=1e-4):
            raise Wrong(tr("with a non-zero baseline your scores are those of the zero baseline: replace row t by "
                           "baseline[t], not by zeros."))
        raise Wrong(tr("example {k}, {which} baseline: got {got}, expected {want} (f(x) − f(x with row t set to "
                       "baseline[t]), one pass per token).", k=k, which=which, got=np.round(got, 4).tolist(),
                       want=np.round(want, 4).tolist()))
    f, x, _ = _f_and_x(0)
    total = float(np.sum(occlusion_reference(f, x, jnp.zeros_like(x))))
    return tr("matches a pass-per-token reference for zero and UNK baselines. Unlike integrated gradients the "
              "scores need not add up: here Σ a_t = {total:+.3f}, f(x) − f(0) = {gap:+.3f}.", total=total,
              gap=float(f(x) - f(jnp.zeros_like(x))))


@exercise("09.2", "Integrated gradients with the midpoint rule, and completeness")
def _ig_midpoint(answer):
    from lstmjax.explain import integrated_gradients

    model, variables, _, _ = _setup()
    f, x, ids = _f_and_x(0)
    baseline = jnp.zeros_like(x)
    errors = []
    for steps in (8, 64):
        got = _scores(answer, f, x, baseline, steps, expect_len=x.shape[0], name="ig_midpoint(f, x, baseline, steps)")
        ref = np.asarray(integrated_gradients(model, variables, ids, target=1, steps=steps,
                                              method="riemann_middle").scores[0])
        if not np.allclose(got, ref, atol=1e-4, rtol=1e-3):
            left = np.asarray(integrated_gradients(model, variables, ids, target=1, steps=steps,
                                                   method="riemann_left").scores[0])
            hint = (tr(" Those are the left-end points: the midpoints are (k + 0.5) / steps.")
                    if np.allclose(got, left, atol=1e-4, rtol=1e-3) else
                    tr(" Average the gradients at baseline + α (x − baseline) for α = (k + 0.5) / steps, then "
                       "multiply by (x − baseline) and sum over the embedding axis."))
            raise Wrong(tr("with {steps} steps: got {got}, expected {want}.{hint}", steps=steps,
                           got=np.round(got, 4).tolist(), want=np.round(ref, 4).tolist(), hint=hint))
        errors.append(abs(float(got.sum()) - float(f(x) - f(baseline))))
    if not errors[1] < 1e-3 * (1 + abs(float(f(x) - f(baseline)))):
        raise Wrong(tr("completeness fails at 64 steps: |Σ scores − (f(x) − f(x'))| = {error:.2e}", error=errors[1]))
    return tr("matches lstmjax (riemann_middle); completeness error {error_8:.1e} at 8 steps, {error_64:.1e} at 64.",
              error_8=errors[0], error_64=errors[1])


@exercise("09.3", "Which token mattered most")
def _top_token(answer):
    from lstmjax.explain import integrated_gradients

    model, variables, ids, lengths = _setup()
    got = answer(model, variables, ids, lengths)
    if got is None:
        raise Wrong(tr("top_token returned None: write the function body."))
    got = np.asarray(got).reshape(-1)
    a = integrated_gradients(model, variables, ids, lengths, steps=32)
    scores = np.abs(np.asarray(a.scores))
    valid = np.arange(ids.shape[1])[None] < np.asarray(lengths)[:, None]
    ref = np.argmax(np.where(valid, scores, -1.0), axis=1)
    if got.shape != ref.shape:
        raise Wrong(tr("expected one position per example, shape {want}; got {got}", want=ref.shape, got=got.shape))
    if not np.array_equal(got, ref):
        signed = np.argmax(np.where(valid, np.asarray(a.scores), -np.inf), axis=1)
        hint = (tr(" That is the largest signed score: a large negative attribution matters as much, compare "
                   "|scores|.")
                if np.array_equal(got, signed) else
                tr(" Take integrated gradients of the predicted class and the position of the largest |score| "
                   "among each example's real tokens."))
        raise Wrong(tr("got positions {got}, expected {want}.{hint}", got=got.tolist(), want=ref.tolist(), hint=hint))
    return tr("positions {positions} are the tokens with the largest |attribution|.", positions=ref.tolist())


@exercise("09.4", "What completeness distributes: f(x) − f(x') for a token baseline")
def _baseline_gap(answer):
    from lstmjax.explain import integrated_gradients

    model, variables, ids, lengths = _setup()
    for baseline_id, name in ((1, "UNK"), (0, "PAD"), (7, tr("token 7"))):
        got = answer(model, variables, ids, lengths, baseline_id)
        if got is None:
            raise Wrong(tr("baseline_gap returned None: write the function body."))
        got = np.asarray(got, np.float64).reshape(-1)
        a = integrated_gradients(model, variables, ids, lengths, baseline=baseline_id, steps=64)
        ref = np.asarray(a.value - a.baseline_value, np.float64)
        if got.shape != ref.shape:
            raise Wrong(tr("expected one gap per example, shape {want}; got {got}", want=ref.shape, got=got.shape))
        if not np.allclose(got, ref, atol=1e-4, rtol=1e-4):
            raise Wrong(tr("with the {name} baseline (id {baseline_id}) got {got}, expected {want}. Replace each "
                           "example's *real* tokens by the baseline id (keep the padding and the lengths), run the "
                           "model on both, and subtract the predicted class's logits (the class predicted for x, not "
                           "for x').", name=name, baseline_id=baseline_id, got=np.round(got, 4).tolist(),
                           want=np.round(ref, 4).tolist()))
        scores_sum = np.asarray(a.scores, np.float64).sum(-1)
        if not np.allclose(scores_sum, got, atol=1e-3, rtol=1e-3):  # pragma: no cover - library invariant
            raise Wrong(tr("integrated gradients do not sum to your gap with the {name} baseline", name=name))
    return tr("f(x) − f(x') matches lstmjax for the UNK, PAD and token-7 baselines, and the integrated "
              "gradients sum to it: each baseline distributes a different total.")

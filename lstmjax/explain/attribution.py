r"""Which tokens pushed the prediction? Token attributions (document §8.2, interpretability).

Attributions with respect to the embeddings, using :meth:`TextClassifier.embed` and
:meth:`TextClassifier.logits_from_embeddings`:

  - :func:`gradient_x_input`: :math:`a_t = \sum_e x_{t,e}\, \partial f / \partial x_{t,e}`, one
    backward pass;
  - :func:`integrated_gradients` (Sundararajan et al. 2017):
    :math:`a_t = \sum_e (x_{t,e} - x'_{t,e}) \int_0^1 \partial f(x' + \alpha (x - x')) / \partial x_{t,e}\, d\alpha`,
    the integral taken by a quadrature rule (Gauss–Legendre by default, or a Riemann rule).
    It satisfies *completeness*: :math:`\sum_t a_t = f(x) - f(x')` up to the quadrature error.

  ``f`` is the target class's **logit** by default (``output="probability"`` uses its softmax
  probability). The target is the predicted class unless given. Scores are
  ``<float32>[batch, time]``, exactly zero at padded positions.

Attributions say how this model's output responds to its inputs around one example, nothing
more: they are not causes in the world, they depend on the baseline, and gradient × input can
be misleading where the model saturates (which is what integrated gradients fixes).
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.data.vocab import PAD_ID, UNK_ID
from lstmjax.nn.classifier import TextClassifier
from lstmjax.nn.scan import length_mask

Array = jax.Array

__all__ = ["METHODS", "Attribution", "gradient_x_input", "integrated_gradients", "integration_points"]

Method = Literal["gausslegendre", "riemann_trapezoid", "riemann_middle", "riemann_left", "riemann_right"]
Output = Literal["logit", "probability"]
#: The quadrature rules :func:`integration_points` (and so :func:`integrated_gradients`) accepts.
METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_middle", "riemann_left", "riemann_right")


class Attribution(NamedTuple):
    """Per-token attributions of a batch, with what completeness compares them to.

    Attributes:
      scores: ``<float32>[batch, time]``, zero at padded positions.
      target: ``<int32>[batch]``, the class explained.
      value: ``<float32>[batch]``, ``f(x)``: the target's logit (or probability) at the input.
      baseline_value: ``<float32>[batch]``, ``f(x')`` at the baseline (for gradient × input: ``f``
        at zero embeddings, which completeness does not hold for).

    ``delta = scores.sum(-1) - (value - baseline_value)`` is integrated gradients' quadrature
    error (see :attr:`delta`).

    Example:
      >>> import jax.numpy as jnp
      >>> a = Attribution(jnp.array([[0.5, 0.25]]), jnp.array([1]), jnp.array([1.0]), jnp.array([0.25]))
      >>> a.delta.tolist()
      [0.0]
    """

    scores: Array
    target: Array
    value: Array
    baseline_value: Array

    @property
    def delta(self) -> Array:
        """Completeness error ``<float32>[batch]``: ``sum_t scores - (f(x) - f(x'))``."""
        return jnp.sum(self.scores, axis=-1) - (self.value - self.baseline_value)


# ---------------------------------------------------------------------------------------------
# Attributions
# ---------------------------------------------------------------------------------------------


def integration_points(steps: int, method: Method = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    r"""Points :math:`\alpha_k \in [0, 1]` and weights :math:`w_k` with :math:`\int_0^1 g \approx \sum_k w_k g(\alpha_k)`.

    * ``"gausslegendre"``: ``steps``-point Gauss–Legendre on [0, 1] (exact for polynomials of
      degree ``2·steps − 1``); captum's default too.
    * ``"riemann_trapezoid"``: ``steps`` equally spaced points including both ends, spacing
      ``1/(steps−1)``, end weights halved; the weights sum to 1. (captum 0.9's
      ``riemann_trapezoid`` uses the same points but weights ``1/steps``, which sum to
      ``(steps−1)/steps``: its attributions are ours times ``(steps−1)/steps``.)
    * ``"riemann_middle"``, ``"riemann_left"``, ``"riemann_right"``: ``steps`` cells of width
      ``1/steps``, evaluated at the midpoint / left end / right end (as captum).

    Returns:
      ``(alphas <float32>[steps], weights <float32>[steps])``.

    Example:
      >>> a, w = integration_points(3, "riemann_trapezoid")
      >>> a.tolist(), w.tolist()
      ([0.0, 0.5, 1.0], [0.25, 0.5, 0.25])
      >>> a, w = integration_points(4)
      >>> round(float(w.sum()), 6), round(float((w * a**3).sum()), 6)  # ∫ a³ = 1/4, exactly
      (1.0, 0.25)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if not isinstance(steps, (int, np.integer)) or steps < (2 if method == "riemann_trapezoid" else 1):
        raise ValueError(f"steps must be an integer >= {2 if method == 'riemann_trapezoid' else 1} "
                         f"for {method}; got {steps!r}")
    n = int(steps)
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n)
        alphas, weights = 0.5 * (x + 1.0), 0.5 * w
    elif method == "riemann_trapezoid":
        alphas = np.linspace(0.0, 1.0, n)
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2
    else:
        offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
        alphas = (np.arange(n) + offset) / n
        weights = np.full(n, 1.0 / n)
    return alphas.astype(np.float32), weights.astype(np.float32)


def _inputs(token_ids, lengths):
    token_ids = jnp.asarray(token_ids)
    if token_ids.ndim != 2:
        raise ValueError(f"token_ids must be <int32>[batch, time]; got shape {token_ids.shape}")
    if not jnp.issubdtype(token_ids.dtype, jnp.integer):
        raise TypeError(f"token_ids must be integers; got dtype {token_ids.dtype}")
    if lengths is None:
        lengths = jnp.sum(token_ids != PAD_ID, axis=1, dtype=jnp.int32)
    lengths = jnp.asarray(lengths)
    if lengths.shape != token_ids.shape[:1]:
        raise ValueError(f"lengths must be <int32>[batch] with batch={token_ids.shape[0]}; got shape {lengths.shape}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths must be integers; got dtype {lengths.dtype}")
    if not isinstance(lengths, jax.core.Tracer):  # under an outer jit the values are unknown
        values = np.asarray(lengths)
        bad = np.flatnonzero((values < 0) | (values > token_ids.shape[1]))
        if bad.size:
            raise ValueError(f"lengths[{bad[0]}] = {values[bad[0]]} is outside [0, time={token_ids.shape[1]}]")
    return token_ids.astype(jnp.int32), lengths.astype(jnp.int32)


def _target(target, batch: int, num_classes: int):
    if target is None:
        return None
    if isinstance(target, jax.core.Tracer):
        return jnp.broadcast_to(target, (batch,)).astype(jnp.int32)
    t = np.broadcast_to(np.asarray(target), (batch,))
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"target must be an integer class index (or one per example); got {target!r}")
    bad = np.flatnonzero((t < 0) | (t >= num_classes))
    if bad.size:
        raise ValueError(f"target[{bad[0]}] = {t[bad[0]]} is not a class index in [0, {num_classes})")
    return jnp.asarray(t, jnp.int32)


def _check_output(output: str) -> None:
    if output not in ("logit", "probability"):
        raise ValueError(f"output must be 'logit' or 'probability'; got {output!r}")


def _scalar_fn(model: TextClassifier, variables, lengths, target, output: str):
    """``f(embedded <float32>[B, T, E]) -> <float32>[B]``: the target's logit or probability."""

    def f(embedded):
        logits = model.apply(variables, embedded, lengths, method=model.logits_from_embeddings)  # (B, C)
        out = jax.nn.softmax(logits) if output == "probability" else logits
        return jnp.take_along_axis(out, target[:, None], axis=1)[:, 0]  # (B,)

    return f


@functools.partial(jax.jit, static_argnames=("model", "output"))
def _gxi(model, variables, token_ids, lengths, target, output):
    embedded = model.apply(variables, token_ids, method=model.embed)  # (B, T, E)
    if target is None:
        logits = model.apply(variables, embedded, lengths, method=model.logits_from_embeddings)
        target = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    f = _scalar_fn(model, variables, lengths, target, output)
    value, vjp = jax.vjp(f, embedded)
    (grad,) = vjp(jnp.ones_like(value))  # rows are independent: d(sum f)/dx_b = df_b/dx_b
    valid = length_mask(lengths, token_ids.shape[1])
    scores = jnp.where(valid, jnp.sum(grad * embedded, axis=-1), jnp.zeros((), embedded.dtype))  # (B, T)
    return Attribution(scores, target, value, f(jnp.zeros_like(embedded)))


def gradient_x_input(model: TextClassifier, variables, token_ids, lengths=None, *, target=None,
                     output: Output = "logit") -> Attribution:
    r"""Gradient × input per token: :math:`a_t = \sum_e x_{t,e}\, \partial f / \partial x_{t,e}` (jitted).

    Args:
      model: the :class:`~lstmjax.TextClassifier`.
      variables: its variables (``{"params": ...}``).
      token_ids: ``<int32>[batch, time]``, right-padded with PAD = 0.
      lengths: ``<int32>[batch]`` (default: the number of non-PAD ids).
      target: class to explain, an int or ``<int32>[batch]`` (default: the predicted class).
      output: ``"logit"`` (default) or ``"probability"``: which ``f`` of the target.

    Returns:
      An :class:`Attribution`; ``scores <float32>[batch, time]`` are zero at padding.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = TextClassifier(vocab_size=20, num_classes=2, embed_dim=4, hidden_size=4)
      >>> ids = jnp.array([[3, 4, 5], [6, 7, 0]], jnp.int32)
      >>> variables = model.init(jax.random.key(0), ids)
      >>> a = gradient_x_input(model, variables, ids)
      >>> a.scores.shape, float(a.scores[1, 2]), a.target.shape
      ((2, 3), 0.0, (2,))
    """
    _check_output(output)
    token_ids, lengths = _inputs(token_ids, lengths)
    target = _target(target, token_ids.shape[0], model.num_classes)
    return _gxi(model, variables, token_ids, lengths, target, output)


@functools.partial(jax.jit, static_argnames=("model", "output"))
def _ig(model, variables, token_ids, lengths, target, base_ids, alphas, weights, output):
    embedded = model.apply(variables, token_ids, method=model.embed)  # (B, T, E)
    valid = length_mask(lengths, token_ids.shape[1])[..., None]  # (B, T, 1)
    if base_ids is None:  # the zero embedding at every real token
        baseline = jnp.where(valid, jnp.zeros((), embedded.dtype), embedded)
    else:
        baseline = jnp.where(valid, model.apply(variables, base_ids, method=model.embed), embedded)
    if target is None:
        logits = model.apply(variables, embedded, lengths, method=model.logits_from_embeddings)
        target = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    f = _scalar_fn(model, variables, lengths, target, output)
    diff = embedded - baseline  # (B, T, E), zero at padding

    def grad_at(alpha):
        _, vjp = jax.vjp(f, baseline + alpha * diff)
        (g,) = vjp(jnp.ones(embedded.shape[:1], embedded.dtype))
        return g  # (B, T, E)

    grads = jax.lax.map(grad_at, alphas)  # (S, B, T, E): one forward+backward per point
    avg = jnp.tensordot(weights, grads, axes=1)  # (B, T, E): the weighted path integral
    scores = jnp.where(valid[..., 0], jnp.sum(diff * avg, axis=-1), jnp.zeros((), embedded.dtype))
    return Attribution(scores, target, f(embedded), f(baseline))


def integrated_gradients(model: TextClassifier, variables, token_ids, lengths=None, *, target=None,
                         baseline: Literal["zeros", "pad", "unk"] | int = "zeros", steps: int = 50,
                         method: Method = "gausslegendre", output: Output = "logit") -> Attribution:
    r"""Integrated gradients per token along the straight path from a baseline to the input (jitted).

    .. math::

        a_t = \sum_e (x_{t,e} - x'_{t,e}) \sum_{k} w_k\,
              \frac{\partial f}{\partial x_{t,e}}\big(x' + \alpha_k (x - x')\big)

    with :func:`integration_points` ``(alphas, weights)``. Completeness:
    ``scores.sum(-1) ≈ f(x) − f(x')``; the error (:attr:`Attribution.delta`) shrinks as ``steps``
    grows (fast for ``"gausslegendre"``, like ``1/steps²`` for the trapezoid and midpoint rules).

    Args:
      model, variables, token_ids, lengths, target: as :func:`gradient_x_input`.
      baseline: ``x'`` at each real token: ``"zeros"`` (the zero embedding, default), ``"pad"``
        or ``"unk"`` (the PAD / UNK token's embedding), or any token id. Padded positions are
        left as they are (the model ignores them).
      steps: number of integration points (one forward and backward pass each).
      method: quadrature rule, see :func:`integration_points` (default ``"gausslegendre"``).
      output: ``"logit"`` (default) or ``"probability"``: which ``f`` of the target.

    Returns:
      An :class:`Attribution` with ``value = f(x)`` and ``baseline_value = f(x')``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = TextClassifier(vocab_size=20, num_classes=2, embed_dim=4, hidden_size=4)
      >>> ids = jnp.array([[3, 4, 5], [6, 7, 0]], jnp.int32)
      >>> variables = model.init(jax.random.key(0), ids)
      >>> a = integrated_gradients(model, variables, ids, steps=16)
      >>> a.scores.shape, bool(jnp.all(jnp.abs(a.delta) < 1e-5))
      ((2, 3), True)
    """
    _check_output(output)
    token_ids, lengths = _inputs(token_ids, lengths)
    target = _target(target, token_ids.shape[0], model.num_classes)
    if isinstance(baseline, str):
        names = {"zeros": None, "pad": PAD_ID, "unk": UNK_ID}
        if baseline not in names:
            raise ValueError(f"baseline must be 'zeros', 'pad', 'unk' or a token id; got {baseline!r}")
        base_id = names[baseline]
    elif isinstance(baseline, (int, np.integer)) and 0 <= baseline < model.vocab_size:
        base_id = int(baseline)
    else:
        raise ValueError(f"baseline must be 'zeros', 'pad', 'unk' or a token id in [0, {model.vocab_size}); "
                         f"got {baseline!r}")
    base_ids = None if base_id is None else jnp.full_like(token_ids, base_id)
    alphas, weights = integration_points(steps, method)
    return _ig(model, variables, token_ids, lengths, target, base_ids, jnp.asarray(alphas),
               jnp.asarray(weights), output)

r"""Why did the model say that? Token attributions and gate traces (document §8.2, interpretability).

Two questions, two tools:

* **Which tokens pushed the prediction?** Attributions with respect to the embeddings, using
  :meth:`TextClassifier.embed` and :meth:`TextClassifier.logits_from_embeddings`:

  - :func:`gradient_x_input`: :math:`a_t = \sum_e x_{t,e}\, \partial f / \partial x_{t,e}`, one
    backward pass;
  - :func:`integrated_gradients` (Sundararajan et al. 2017):
    :math:`a_t = \sum_e (x_{t,e} - x'_{t,e}) \int_0^1 \partial f(x' + \alpha (x - x')) / \partial x_{t,e}\, d\alpha`,
    the integral taken by a quadrature rule (Gauss–Legendre by default, or a Riemann rule).
    It satisfies *completeness*: :math:`\sum_t a_t = f(x) - f(x')` up to the quadrature error.

  ``f`` is the target class's **logit** by default (``output="probability"`` uses its softmax
  probability). The target is the predicted class unless given. Scores are
  ``<float32>[batch, time]``, exactly zero at padded positions.

* **What does the cell do, token by token?** :func:`gate_traces` re-runs the cell equations
  over a trained model's parameters with :func:`lstmjax.layers.scan_cell`, keeping every gate:
  ``i, f, c_tilde, o, c, h`` for an LSTM (``r, z, n, h`` for a GRU, ``h`` for a simple RNN), for
  every layer and direction. The model is not changed; its ``h`` is reproduced.

Rendering: :func:`render_html` (an object notebooks display, text escaped), :func:`render_ansi`
(terminal colours, or plain ``word[+0.31]`` annotations), :func:`plot_gates` (matplotlib
heatmaps). :func:`explain` puts it together for a trained run; ``lstmjax explain DIR "text"``
is its command-line face.

Attributions say how this model's output responds to its inputs around one example, nothing
more: they are not causes in the world, they depend on the baseline, and gradient × input can
be misleading where the model saturates (which is what integrated gradients fixes).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import os
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax import cells
from lstmjax.classifier import TextClassifier
from lstmjax.layers import reverse_sequences, scan_cell
from lstmjax.vocab import PAD_ID, UNK_ID

Array = jax.Array

__all__ = [
    "Attribution",
    "Explanation",
    "HighlightedText",
    "explain",
    "format_explanation",
    "gate_traces",
    "gradient_x_input",
    "integrated_gradients",
    "integration_points",
    "plot_gates",
    "render_ansi",
    "render_html",
]

Method = Literal["gausslegendre", "riemann_trapezoid", "riemann_middle", "riemann_left", "riemann_right"]
Output = Literal["logit", "probability"]
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


def _valid(token_ids, lengths):
    t = jnp.arange(token_ids.shape[1], dtype=jnp.int32)[None, :]
    return t < lengths[:, None]  # (B, T)


@functools.partial(jax.jit, static_argnames=("model", "output"))
def _gxi(model, variables, token_ids, lengths, target, output):
    embedded = model.apply(variables, token_ids, method=model.embed)  # (B, T, E)
    if target is None:
        logits = model.apply(variables, embedded, lengths, method=model.logits_from_embeddings)
        target = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    f = _scalar_fn(model, variables, lengths, target, output)
    value, vjp = jax.vjp(f, embedded)
    (grad,) = vjp(jnp.ones_like(value))  # rows are independent: d(sum f)/dx_b = df_b/dx_b
    valid = _valid(token_ids, lengths)
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
    valid = _valid(token_ids, lengths)[..., None]  # (B, T, 1)
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
      model: the :class:`~lstmjax.TextClassifier`.
      variables: its variables (``{"params": ...}``).
      token_ids: ``<int32>[batch, time]``, right-padded with PAD = 0.
      lengths: ``<int32>[batch]`` (default: the number of non-PAD ids).
      target: class to explain, an int or ``<int32>[batch]`` (default: the predicted class).
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


# ---------------------------------------------------------------------------------------------
# Gate traces
# ---------------------------------------------------------------------------------------------


def _lstm_gates(params, carry, x_t):
    """:func:`lstmjax.cells.lstm_step`, keeping its gates: ``(carry, {i, f, c_tilde, o, c, h})``."""
    h_prev, c_prev = carry
    z = x_t @ params["W_x"] + params["b"] + h_prev @ params["W_h"]  # (B, 4H), as lstm_step
    (h_t, c_t), (i_t, f_t, c̃_t, o_t) = cells.lstm_gates(z, c_prev)  # the library's own equations
    return (h_t, c_t), {"i": i_t, "f": f_t, "c_tilde": c̃_t, "o": o_t, "c": c_t, "h": h_t}


def _gru_gates(params, carry, x_t):
    """:func:`lstmjax.cells.gru_step`, keeping its gates: ``(carry, {r, z, n, h})``."""
    xw = x_t @ params["W_x"] + params["b_x"]  # (B, 3H), as gru_step
    hw = carry @ params["W_h"] + params["b_h"]  # (B, 3H)
    h_t, (r_t, z_t, n_t) = cells.gru_gates(xw, hw, carry)  # the library's own equations
    return h_t, {"r": r_t, "z": z_t, "n": n_t, "h": h_t}


def _rnn_gates(params, carry, x_t):
    h_t, _ = cells.rnn_step(params, carry, x_t)
    return h_t, {"h": h_t}


@functools.partial(jax.jit, static_argnames=("model",))
def _traces(model, variables, token_ids, lengths):
    params = variables["params"]["recurrent"]
    x = model.apply(variables, token_ids, method=model.embed)  # (B, T, E)
    step = {"lstm": _lstm_gates, "gru": _gru_gates, "rnn": _rnn_gates}[model.cell]
    batch, hidden = x.shape[0], model.hidden_size
    directions = ("forward", "backward") if model.bidirectional else ("forward",)
    traces = {}
    for layer in range(model.num_layers):
        outs = []
        for direction in directions:
            name = f"layer_{layer}_{direction}"
            zeros = jnp.zeros((batch, hidden), x.dtype)
            carry = (zeros, zeros) if model.cell == "lstm" else zeros
            inputs = reverse_sequences(x, lengths) if direction == "backward" else x
            _, gates = scan_cell(step, params[name], inputs, carry, lengths)  # each (B, T, H)
            if direction == "backward":  # back to input order: gates[:, t] belongs to token t
                gates = jax.tree.map(lambda g: reverse_sequences(g, lengths), gates)
            traces[name] = gates
            outs.append(gates["h"])
        x = jnp.concatenate(outs, axis=-1)  # (B, T, D*H): the next layer's input
    return traces


def gate_traces(model: TextClassifier, variables, token_ids, lengths=None) -> dict[str, dict[str, Array]]:
    r"""Per-token gate activations and states of every recurrent layer and direction.

    A pure re-run of the cell equations over the model's parameters (the model is not changed;
    no dropout). For an LSTM each entry holds ``i, f, c_tilde`` (:math:`\tilde c_t`), ``o``,
    ``c``, ``h``; for a GRU ``r, z, n, h``; for a simple RNN ``h``. ``h`` equals the model's own
    recurrent outputs. Backward directions are returned in input order (``[:, t]`` is the step
    that read token ``t``). Padded positions are zero.

    Args:
      model: the :class:`~lstmjax.TextClassifier`.
      variables: its variables (``{"params": ...}``).
      token_ids: ``<int32>[batch, time]``, right-padded with PAD = 0.
      lengths: ``<int32>[batch]`` (default: the number of non-PAD ids).

    Returns:
      ``{"layer_{l}_{forward|backward}": {gate: <float32>[batch, time, hidden]}}``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = TextClassifier(vocab_size=20, num_classes=2, embed_dim=4, hidden_size=3)
      >>> ids = jnp.array([[3, 4, 5, 0]], jnp.int32)
      >>> variables = model.init(jax.random.key(0), ids)
      >>> t = gate_traces(model, variables, ids)["layer_0_forward"]
      >>> sorted(t), t["f"].shape
      (['c', 'c_tilde', 'f', 'h', 'i', 'o'], (1, 4, 3))
      >>> c_prev = jnp.concatenate([jnp.zeros((1, 1, 3)), t["c"][:, :-1]], axis=1)
      >>> bool(jnp.allclose(t["c"][:, :3], (t["f"] * c_prev + t["i"] * t["c_tilde"])[:, :3], atol=1e-6))
      True
    """
    token_ids, lengths = _inputs(token_ids, lengths)
    return _traces(model, variables, token_ids, lengths)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _as_rows(tokens, scores):
    """One example ``(tokens, <float>[n])`` or a batch of them → lists of (tokens, scores)."""
    if tokens and isinstance(tokens[0], str):
        tokens, scores = [tokens], [scores]
    rows = []
    for i, (toks, sc) in enumerate(zip(tokens, scores, strict=True)):
        sc = np.asarray(sc, dtype=np.float64).reshape(-1)
        if sc.size < len(toks):
            raise ValueError(f"example {i}: {len(toks)} tokens but {sc.size} scores")
        rows.append((list(toks), sc[: len(toks)]))
    return rows


def _scale(scores: np.ndarray, scale: float | None) -> float:
    m = float(np.max(np.abs(scores))) if scale is None and scores.size else (scale or 0.0)
    return m if m > 0 else 1.0


@dataclasses.dataclass(frozen=True)
class HighlightedText:
    """Tokens highlighted by their scores: green for positive, red for negative, strength by size.

    Notebooks display it through ``_repr_html_``; ``str()`` gives the plain ``token[+0.31]`` form.
    Build it with :func:`render_html`.

    Example:
      >>> h = HighlightedText((("a", "<b>"),), ((0.5, -1.0),))
      >>> "&lt;b&gt;" in h._repr_html_(), str(h)
      (True, 'a[+0.50] <b>[-1.00]')
    """

    tokens: tuple[tuple[str, ...], ...]  # one tuple of tokens per example
    scores: tuple[tuple[float, ...], ...]  # one score per token
    labels: tuple[str, ...] = ()  # an optional caption per example
    scale: float | None = None  # |score| shown at full strength (default: each example's largest)

    def _repr_html_(self) -> str:
        lines = []
        for k, (toks, sc) in enumerate(zip(self.tokens, self.scores)):
            m = _scale(np.asarray(sc), self.scale)
            spans = []
            for tok, s in zip(toks, sc):
                a = min(abs(s) / m, 1.0)
                rgb = "0, 160, 0" if s >= 0 else "220, 0, 0"
                spans.append(f'<span title="{s:+.4f}" style="background-color: rgba({rgb}, {a:.3f}); '
                             f'padding: 1px 2px; border-radius: 3px">{html.escape(tok)}</span>')
            caption = (f'<span style="color: #666">{html.escape(self.labels[k])}</span> '
                       if k < len(self.labels) else "")
            lines.append(f'<div style="line-height: 1.8">{caption}{" ".join(spans)}</div>')
        return "\n".join(lines)

    def __str__(self) -> str:
        return "\n".join(render_ansi(list(t), list(s), color=False, scale=self.scale)
                         for t, s in zip(self.tokens, self.scores))


def render_html(tokens, scores, *, labels: Sequence[str] = (), scale: float | None = None) -> HighlightedText:
    """Highlight tokens by score, for a notebook (text is HTML-escaped).

    Args:
      tokens: one example's tokens (``list[str]``) or a list of them.
      scores: ``<float>[n_tokens]`` (or longer: padding is cut), or a list of them.
      labels: an optional caption per example (e.g. ``"pos 0.93"``).
      scale: the ``|score|`` shown at full colour (default: each example's largest).

    Returns:
      A :class:`HighlightedText`.

    Example:
      >>> h = render_html(["good", "&", "bad"], [0.8, 0.0, -0.4, 0.0])
      >>> "&amp;" in h._repr_html_(), h.tokens
      (True, (('good', '&', 'bad'),))
    """
    rows = _as_rows(tokens, scores)
    return HighlightedText(tuple(tuple(t) for t, _ in rows), tuple(tuple(float(v) for v in s) for _, s in rows),
                           tuple(labels), scale)


def _use_color(stream=None) -> bool:
    """Whether to colour output: ``stream`` is a terminal and ``NO_COLOR`` is not set."""
    import sys

    stream = sys.stdout if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def render_ansi(tokens: Sequence[str], scores, *, color: bool | None = None, scale: float | None = None) -> str:
    """One example's tokens coloured for a terminal (24-bit background), or annotated in plain text.

    Args:
      tokens: the tokens.
      scores: ``<float>[n_tokens]`` (or longer: padding is cut).
      color: ANSI colours (default: when stdout is a terminal and ``NO_COLOR`` is unset);
        ``False`` writes ``token[+0.31]``.
      scale: the ``|score|`` shown at full colour (default: the largest).

    Returns:
      A string.

    Example:
      >>> render_ansi(["a", "fine", "film"], [0.01, 0.3125, -0.05], color=False)
      'a[+0.01] fine[+0.31] film[-0.05]'
      >>> render_ansi(["fine"], [1.0], color=True)
      '\\x1b[48;2;0;160;0m\\x1b[97mfine\\x1b[0m'
    """
    if len(tokens) == 0:
        return ""
    [(toks, sc)] = _as_rows(list(tokens), scores)
    if color is None:
        color = _use_color()
    if not color:
        return " ".join(f"{t}[{s:+.2f}]" for t, s in zip(toks, sc))
    m = _scale(sc, scale)
    out = []
    for t, s in zip(toks, sc):
        a = min(abs(s) / m, 1.0)
        base = (0, 160, 0) if s >= 0 else (220, 0, 0)
        r, g, b = (round(255 + a * (c - 255)) for c in base)  # blend white → green/red
        fg = "\x1b[97m" if a > 0.5 else "\x1b[30m"
        out.append(f"\x1b[48;2;{r};{g};{b}m{fg}{t}\x1b[0m")
    return " ".join(out)


def plot_gates(trace: dict[str, dict[str, Array]], tokens: Sequence[str], *, layer: str = "layer_0_forward",
               gates: Sequence[str] | None = None, example: int = 0, units: int | Sequence[int] | None = 16,
               figsize: tuple[float, float] | None = None):
    """Heatmaps of gates over time (tokens on the x axis, hidden units on the y axis).

    Args:
      trace: what :func:`gate_traces` returned.
      tokens: the example's tokens (its length sets how many steps are shown).
      layer: which ``layer_{l}_{direction}``.
      gates: which gates (default: all of the layer's, e.g. ``i, f, c_tilde, o, c, h``).
      example: which row of the batch.
      units: the number of hidden units shown (the first ``units``), a list of units, or ``None`` for all.
      figsize: matplotlib figure size.

    Returns:
      A matplotlib ``Figure`` with one heatmap per gate.

    Example:
      >>> import matplotlib; matplotlib.use("Agg")
      >>> import jax, jax.numpy as jnp
      >>> model = TextClassifier(vocab_size=20, num_classes=2, embed_dim=4, hidden_size=3)
      >>> ids = jnp.array([[3, 4, 5]], jnp.int32)
      >>> variables = model.init(jax.random.key(0), ids)
      >>> fig = plot_gates(gate_traces(model, variables, ids), ["a", "b", "c"], gates=["f", "c"])
      >>> [ax.get_title() for ax in fig.axes if ax.get_title()]
      ['f', 'c']
    """
    import matplotlib.pyplot as plt

    if layer not in trace:
        raise ValueError(f"no layer {layer!r} in the trace; it has {', '.join(trace)}")
    order = ("i", "f", "c_tilde", "o", "c", "r", "z", "n", "h")  # as in the equations (jit sorts dict keys)
    names = sorted(trace[layer], key=order.index) if gates is None else list(gates)
    missing = [g for g in names if g not in trace[layer]]
    if missing:
        raise ValueError(f"{layer} has no gate {missing[0]!r}; it has {', '.join(trace[layer])}")
    n = len(tokens)
    hidden = trace[layer][names[0]].shape[-1]
    rows = np.arange(min(units, hidden)) if isinstance(units, int) else (
        np.arange(hidden) if units is None else np.asarray(units))
    fig, axes = plt.subplots(len(names), 1, squeeze=False,
                             figsize=figsize or (max(6.0, 0.45 * n + 1.5), 1.2 + 0.12 * len(rows) * len(names) + len(names)))
    for ax, g in zip(axes[:, 0], names):
        values = np.asarray(trace[layer][g][example, :n, :])[:, rows].T  # (units, time)
        if g in ("c_tilde", "h", "n"):  # tanh-valued, in (-1, 1)
            cmap, lo, hi = "RdBu_r", -1.0, 1.0
        elif g == "c":  # unbounded: a symmetric range around 0
            hi = max(float(np.max(np.abs(values))), 1e-6)
            cmap, lo = "RdBu_r", -hi
        else:  # sigmoid gates, in (0, 1)
            cmap, lo, hi = "viridis", 0.0, 1.0
        im = ax.imshow(values, aspect="auto", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(g, fontsize=10)
        ax.set_ylabel("unit")
        ax.set_xticks(range(n))
        ax.set_xticklabels(tokens, rotation=60, ha="right", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    fig.suptitle(f"{layer}: gates over time", fontsize=11)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Explaining a trained run
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Explanation:
    """One text's prediction and its token attributions (what :func:`explain` returns).

    Example:
      >>> e = Explanation("a fine film", ("a", "fine", "film"), "pos", {"neg": 0.2, "pos": 0.8},
      ...                 "pos", (0.0, 0.5, 0.1), -0.01)
      >>> format_explanation(e, color=False)
      'pos  (neg 0.200  pos 0.800)  attributions for pos:\\n  a[+0.00] fine[+0.50] film[+0.10]'
    """

    text: str  # the input text
    tokens: tuple[str, ...]  # the tokens the model read (after tokenising and truncation)
    label: str  # the predicted label
    probabilities: dict[str, float]  # every label's probability
    target: str  # the label explained
    scores: tuple[float, ...]  # one attribution per token
    delta: float  # completeness error (integrated gradients; NaN for gradient × input)


def explain(predictor, texts: Sequence[str], *, method: Literal["ig", "grad_x_input"] = "ig", steps: int = 50,
            target: str | None = None, baseline: str = "zeros", output: Output = "logit") -> list[Explanation]:
    """Predict and attribute texts with a trained run (a :class:`lstmjax.run.Predictor`).

    Args:
      predictor: the loaded run.
      texts: the texts.
      method: ``"ig"`` (integrated gradients, Gauss–Legendre, default) or ``"grad_x_input"``.
      steps: integration points for ``"ig"``.
      target: the label to explain (default: each text's predicted label).
      baseline: see :func:`integrated_gradients`.
      output: ``"logit"`` (default) or ``"probability"``.

    Returns:
      One :class:`Explanation` per text.

    Example:
      >>> import tempfile, jax
      >>> from lstmjax import Checkpointer, Config, Predictor, Vocab, checkpoint, get_tokenizer, run
      >>> from lstmjax.train import create_train_state, make_optimizer
      >>> d, tok, config = tempfile.mkdtemp(), get_tokenizer("english"), Config(hidden=4, embed_dim=4, max_len=8)
      >>> vocab = Vocab.build([tok("a fine film"), tok("a dull film")], tokenizer=tok)
      >>> checkpoint.save_run_files(d, config, vocab, tok, ("neg", "pos"))  # an untrained run
      >>> state = create_train_state(run.build_model(config, len(vocab), 2), jax.random.key(0), make_optimizer())
      >>> Checkpointer(d).save(1, state, {"epoch": 1})
      >>> [e] = explain(Predictor(d), ["a fine, unseen film"], steps=8)
      >>> e.tokens, len(e.scores), e.label in ("neg", "pos"), abs(e.delta) < 1e-4
      (('a', 'fine', ',', 'unseen', 'film'), 5, True, True)
    """
    from lstmjax.run import build_model

    if isinstance(texts, str):
        raise TypeError("explain takes a list of texts, not one string")
    texts = list(texts)
    names = list(predictor.label_names)
    if target is not None and target not in names:
        raise ValueError(f"unknown label {target!r}; the model's labels are {', '.join(names)}")
    if method not in ("ig", "grad_x_input"):
        raise ValueError(f"method must be 'ig' or 'grad_x_input'; got {method!r}")
    if not texts:
        return []
    files = predictor.files
    model = build_model(files.config, len(files.vocab), len(names))
    variables = {"params": predictor.state.params}
    ids, lengths = predictor.encode(texts)
    probs = predictor.predict_proba(texts)
    tgt = None if target is None else names.index(target)
    if method == "ig":
        a = integrated_gradients(model, variables, ids, lengths, target=tgt, steps=steps, baseline=baseline,
                                 output=output)
        deltas = np.asarray(a.delta)
    else:
        a = gradient_x_input(model, variables, ids, lengths, target=tgt, output=output)
        deltas = np.full(len(texts), np.nan)
    scores, targets = np.asarray(a.scores), np.asarray(a.target)
    out = []
    for k, text in enumerate(texts):
        n = int(lengths[k])
        tokens = tuple(files.tokenizer(text)[:n])
        out.append(Explanation(text, tokens, names[int(probs[k].argmax())],
                               {nm: float(p) for nm, p in zip(names, probs[k])}, names[int(targets[k])],
                               tuple(float(s) for s in scores[k, :n]), float(deltas[k])))
    return out


def format_explanation(explanation: Explanation, *, color: bool | None = None) -> str:
    """Two lines: the prediction with every label's probability, then the attributed tokens.

    ``color`` as in :func:`render_ansi` (default: a terminal without ``NO_COLOR``).

    Example:
      >>> e = Explanation("", (), "neg", {"neg": 0.6, "pos": 0.4}, "neg", (), float("nan"))
      >>> print(format_explanation(e, color=False))
      neg  (neg 0.600  pos 0.400)  attributions for neg:
        (no tokens)
    """
    e = explanation
    probs = "  ".join(f"{k} {v:.3f}" for k, v in e.probabilities.items())
    body = render_ansi(list(e.tokens), list(e.scores), color=color) if e.tokens else "(no tokens)"
    return f"{e.label}  ({probs})  attributions for {e.target}:\n  {body}"

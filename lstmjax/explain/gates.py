r"""What does the cell do, token by token? Gate activations and states of a trained model.

:func:`gate_traces` runs a :class:`~lstmjax.TextClassifier`'s own recurrent stack with
``trace_gates=True``, which keeps every gate: ``i, f, c_tilde, o, c, h`` for an LSTM (``r, z, n,
h`` for a GRU, ``h`` for a simple RNN), for every layer and direction; :func:`plot_gates` draws
them as heatmaps over the tokens.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import numpy as np

from lstmjax.explain.attribution import _inputs
from lstmjax.nn.classifier import TextClassifier

Array = jax.Array

__all__ = ["gate_traces", "plot_gates"]


@functools.partial(jax.jit, static_argnames=("model",))
def _traces(model, variables, token_ids, lengths):
    """The model's own layers, re-run with every gate sown (``trace_gates=True``): no second copy of the stack."""
    _, sown = model.clone(trace_gates=True).apply(variables, token_ids, lengths, mutable=["intermediates"])
    return {name: leaves["gates"][0] for name, leaves in sown["intermediates"]["recurrent"].items()}


def gate_traces(model: TextClassifier, variables, token_ids, lengths=None) -> dict[str, dict[str, Array]]:
    r"""Per-token gate activations and states of every recurrent layer and direction.

    The model's own recurrent stack run with ``trace_gates=True`` (the plain cell equations,
    each gate sown as an intermediate; the model is not changed; no dropout). For an LSTM each entry holds ``i, f, c_tilde`` (:math:`\tilde c_t`), ``o``,
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

"""Why did the model say that? Attributions, gate traces and their rendering (document §8.2).

* :mod:`~lstmjax.explain.attribution`: :func:`integrated_gradients`, :func:`gradient_x_input`.
* :mod:`~lstmjax.explain.gates`: :func:`gate_traces` (every gate of every layer, token by token),
  :func:`plot_gates`.
* :mod:`~lstmjax.explain.render`: :func:`render_html` (notebooks), :func:`render_ansi` (terminals).
* :mod:`~lstmjax.explain.texts`: :func:`explain_texts` for a trained run (``lstmjax explain``).
"""

from lstmjax.explain.attribution import (
    Attribution,
    gradient_x_input,
    integrated_gradients,
    integration_points,
)
from lstmjax.explain.gates import gate_traces, plot_gates
from lstmjax.explain.render import HighlightedText, render_ansi, render_html
from lstmjax.explain.texts import Explanation, explain_texts, format_explanation

__all__ = [
    "Attribution", "gradient_x_input", "integrated_gradients", "integration_points",
    "gate_traces", "plot_gates", "HighlightedText", "render_ansi", "render_html",
    "Explanation", "explain_texts", "format_explanation",
]  # fmt: skip

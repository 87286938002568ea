"""The course's concept pictures: what a teacher would draw on the board, shown in any notebook.

Each picture is an SVG file in this package, so it shows wherever the notebook runs (a clone, a
downloaded copy, a Chinese notebook) and in the executed notebooks the site renders::

    from lstmjax import course
    course.figure("lstm_cell")   # the last expression of a cell: displayed as the picture

* ``pipeline``: text → tokens → ids → batches on the host, then the model, the step, metrics and
  checkpoints on the device (tutorial 02).
* ``lstm_cell``: one LSTM step, the cell-state line along the top with the forget gate's product
  and the input gate's sum on it, the four gates reading ``[h_{t-1}, x_t]``, and
  ``h_t = o_t ⊙ tanh(c_t)`` (tutorial 04).
* ``bptt``: backpropagation through time, the gradient multiplied by ``f_t`` at each step along the
  cell state, against a simple RNN's ``W_hᵀ · tanh′`` (tutorial 04).
* ``data_parallel``: one data-parallel step: the batch split over devices, the same step on each,
  the gradients all-reduced, the same update everywhere (tutorial 06).
* ``dp_sgd``: one DP-SGD step: per-example gradients clipped to norm ``C``, summed, Gaussian noise
  added (tutorial 10).
"""

from __future__ import annotations

import dataclasses
import importlib.resources

__all__ = ["FIGURES", "Figure", "figure"]

#: The pictures, by name: what each shows (its caption).
FIGURES = {
    "pipeline": "The pipeline: text → tokens → ids → padded batches with lengths on the host; embedding → "
                "LSTM → dense, the training step, metrics and checkpoints on the device.",
    "lstm_cell": "One LSTM step: the cell state runs along the top, changed only by the forget gate's "
                 "product and the input gate's sum; the four gates read [h_{t-1}, x_t]; h_t = o_t ⊙ tanh(c_t).",
    "bptt": "Backpropagation through time: along the cell state the gradient is multiplied by f_t at each "
            "step; in a simple RNN by W_hᵀ · tanh′, so it shrinks or explodes geometrically.",
    "data_parallel": "One data-parallel step: the batch split over devices, the same step on each copy of the "
                     "parameters, the gradient sums all-reduced, the same update everywhere.",
    "dp_sgd": "One DP-SGD step: one gradient per example, each clipped to norm C, summed, Gaussian noise "
              "N(0, σ²C²) added, divided by the expected batch size.",
}


@dataclasses.dataclass(frozen=True, repr=False)
class Figure:
    """A concept picture: IPython shows its SVG (``_repr_svg_``); ``str`` gives its caption."""

    name: str
    caption: str
    svg: str

    def _repr_svg_(self) -> str:
        return self.svg

    def __str__(self) -> str:
        return f"{self.name}: {self.caption}"

    def __repr__(self) -> str:
        return f"<figure {self}>"


def figure(name: str) -> Figure:
    """The concept picture ``name`` (one of :data:`FIGURES`), for a notebook to display.

    Example:
      >>> f = figure("lstm_cell")
      >>> f.svg.startswith("<svg") and "<title>One LSTM step" in f.svg
      True
      >>> figure("lstm")
      Traceback (most recent call last):
      ...
      ValueError: no figure 'lstm'; the figures are: bptt, data_parallel, dp_sgd, lstm_cell, pipeline
    """
    if name not in FIGURES:
        raise ValueError(f"no figure {name!r}; the figures are: {', '.join(sorted(FIGURES))}")
    svg = importlib.resources.files(__name__).joinpath(f"{name}.svg").read_text(encoding="utf-8")
    return Figure(name, FIGURES[name], svg)

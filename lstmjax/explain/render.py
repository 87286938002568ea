"""Attributions shown to a person: HTML in a notebook, colours (or plain annotations) on a terminal."""

from __future__ import annotations

import dataclasses
import html
import os
import sys
from collections.abc import Sequence

import numpy as np

__all__ = ["HighlightedText", "render_ansi", "render_html"]




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

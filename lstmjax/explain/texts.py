"""Explaining a trained run's predictions on texts: the prediction, every label's probability, each token's share.

:func:`explain_texts` is what ``lstmjax explain DIR "text"`` runs: the texts through the run's
tokenizer and vocabulary, integrated gradients (or gradient × input) for the explained label,
and :func:`format_explanation` for a terminal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np

from lstmjax.explain.attribution import Output, gradient_x_input, integrated_gradients
from lstmjax.explain.render import render_ansi

__all__ = ["Explanation", "explain_texts", "format_explanation"]


@dataclasses.dataclass(frozen=True)
class Explanation:
    """One text's prediction and its token attributions (what :func:`explain_texts` returns).

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


def explain_texts(predictor, texts: Sequence[str], *, method: Literal["ig", "grad_x_input"] = "ig", steps: int = 50,
            target: str | None = None, baseline: str = "zeros", output: Output = "logit") -> list[Explanation]:
    """Predict and attribute texts with a trained run (a :class:`lstmjax.Predictor`).

    Args:
      predictor: the loaded run: ``model``, ``state``, ``label_names``, ``files.tokenizer``,
        ``encode(texts)`` and ``predict_proba(texts)``, as :class:`lstmjax.Predictor` has them.
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
      >>> from lstmjax import Checkpointer, Config, Predictor, Vocab, build_model, create_train_state, get_tokenizer, make_optimizer
      >>> from lstmjax.app.rundir import save_run_files
      >>> d, tok, config = tempfile.mkdtemp(), get_tokenizer("english"), Config(hidden=4, embed_dim=4, max_len=8)
      >>> vocab = Vocab.build([tok("a fine film"), tok("a dull film")], tokenizer=tok)
      >>> save_run_files(d, config, vocab, tok, ("neg", "pos"))  # an untrained run
      >>> state = create_train_state(build_model(config, len(vocab), 2), jax.random.key(0), make_optimizer())
      >>> Checkpointer(d).save(1, state, {"epoch": 1})
      >>> [e] = explain_texts(Predictor(d), ["a fine, unseen film"], steps=8)
      >>> e.tokens, len(e.scores), e.label in ("neg", "pos"), abs(e.delta) < 1e-4
      (('a', 'fine', ',', 'unseen', 'film'), 5, True, True)
    """
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
    files, model = predictor.files, predictor.model
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

"""Untrusted input and adversarial words (document §8.3: model security, robustness to bad input).

Two sides of the same worry: what users send a deployed model cannot be trusted.

**Checking raw input.** :func:`check_texts` validates and normalises a batch of texts before
they reach the tokenizer, and says what it did to each one (an :class:`InputReport`):

* a non-``str`` item (``None``, a number, ``bytes``) is a ``TypeError`` naming its index;
* control characters (Unicode category ``Cc`` other than tab/newline, e.g. ``\\x00``, ``\\x1b``)
  become spaces; invisible format characters (``Cf``: zero-width spaces, byte-order marks,
  right-to-left overrides that make text display differently from what the model reads) and
  lone surrogates are removed; private-use and unassigned code points are replaced by
  ``U+FFFD`` (the tokenizer drops or maps it to ``UNK``);
* over-long texts are cut to ``max_chars`` characters (protecting the tokenizer's time and
  memory), and with a tokenizer and ``max_tokens`` the report says when the model will read
  only the first ``max_tokens`` tokens;
* an empty or all-whitespace text is reported (the model sees no token and predicts from its
  bias alone), or refused with ``on_empty="raise"``;
* with a vocabulary, tokens unknown to it (read as ``UNK``) are counted and listed.

:class:`lstmjax.Predictor` runs every batch through :func:`check_texts`, and
``Predictor.check`` returns the reports.

**A greedy word-substitution attack.** :func:`greedy_substitution_attack` asks how few words an
adversary must change to flip a prediction. For every example the model classifies correctly,
each step tries *every* allowed substitution (each position × each candidate word for the token
there) in one batched, jitted model call, keeps the one that lowers the true class's
probability most, and stops when the prediction flips, the budget of ``k`` substitutions is
spent, or no substitution lowers the probability. Each position is changed at most once.
Candidates are a table ``<int32>[vocab, K]`` (``-1`` = none) built from a synonym list
(:func:`synonym_candidates`) or from nearest neighbours in the model's own embedding space
(:func:`embedding_neighbours`). The :class:`AttackResult` holds the adversarial ids, per-example
flips and substitution counts; :func:`attack_examples` renders them as text.

Example:
  >>> checked = check_texts(["fine", "bad\\x00input", "   "])
  >>> checked.texts
  ['fine', 'bad input', '']
  >>> [r.issues for r in checked.reports][1:]
  [('1 control character(s) replaced by spaces',), ('empty text: the model sees no tokens and predicts from its bias alone',)]
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.data.vocab import PAD_ID, UNK_ID
from lstmjax.nn.scan import length_mask

__all__ = [
    "AttackResult",
    "CheckedTexts",
    "InputReport",
    "attack_examples",
    "check_texts",
    "embedding_neighbours",
    "greedy_substitution_attack",
    "synonym_candidates",
]

DEFAULT_MAX_CHARS = 10_000

# --------------------------------------------------------------------------- checking input


class InputReport(NamedTuple):
    """What :func:`check_texts` found and did for one text.

    Attributes:
      index: the text's position in the batch.
      original_chars: its length in characters before any change.
      issues: human-readable notes, empty when the text was fine.
      num_tokens: tokens after cleaning (``None`` without a tokenizer).
      unknown_tokens: the distinct tokens the vocabulary maps to ``UNK`` (``()`` without a vocabulary).
    """

    index: int
    original_chars: int
    issues: tuple[str, ...]
    num_tokens: int | None = None
    unknown_tokens: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.issues


class CheckedTexts(NamedTuple):
    """Cleaned texts (``list[str]``, same order and count) and one :class:`InputReport` each."""

    texts: list[str]
    reports: list[InputReport]

    @property
    def problems(self) -> list[InputReport]:
        """The reports that have issues."""
        return [r for r in self.reports if r.issues]


def _clean_characters(text: str) -> tuple[str, list[str]]:
    out, control, invisible, unknown = [], 0, 0, 0
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cc" and ch not in "\t\n\r":
            out.append(" ")
            control += 1
        elif category in ("Cf", "Cs"):
            invisible += 1
        elif category in ("Co", "Cn"):
            out.append("\ufffd")
            unknown += 1
        else:
            out.append(ch)
    issues = []
    if control:
        issues.append(f"{control} control character(s) replaced by spaces")
    if invisible:
        issues.append(f"{invisible} invisible format character(s) or lone surrogate(s) removed")
    if unknown:
        issues.append(f"{unknown} private-use or unassigned character(s) replaced by U+FFFD")
    return "".join(out), issues


def check_texts(
    texts: Sequence[str],
    *,
    max_chars: int | None = DEFAULT_MAX_CHARS,
    tokenizer: Callable[[str], list[str]] | None = None,
    vocab: Any | None = None,
    max_tokens: int | None = None,
    on_empty: Literal["report", "raise"] = "report",
) -> CheckedTexts:
    """Validates and normalises untrusted texts; reports every change and doubt.

    Args:
      texts: a sequence of ``str`` (a single ``str`` is refused: pass ``[text]``).
      max_chars: texts longer than this many characters are truncated (``None``: no limit).
      tokenizer: optional; with it the report counts tokens and notes truncation to ``max_tokens``.
      vocab: optional :class:`lstmjax.Vocab` (needs ``tokenizer``); tokens it maps to ``UNK``
        are reported.
      max_tokens: the model's ``max_len``: longer texts are noted as read only in part.
      on_empty: ``"report"`` (default) or ``"raise"`` a ``ValueError`` for empty texts.

    Returns:
      :class:`CheckedTexts`: ``texts`` (cleaned, same count) and ``reports``.

    Raises:
      TypeError: ``texts`` is one string or not a sequence, or an item is not a ``str``
        (the message names the index and the type).
      ValueError: an empty text with ``on_empty="raise"``; a bad ``max_chars``.

    Example:
      >>> r = check_texts(["x" * 20], max_chars=8).reports[0]
      >>> r.issues
      ('truncated from 20 to 8 characters',)
      >>> check_texts(["ok", None])
      Traceback (most recent call last):
      ...
      TypeError: text 1: expected str, got NoneType (None)
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("check_texts takes a sequence of texts, not one string: pass [text]")
    if not isinstance(texts, Sequence):
        try:
            texts = list(texts)
        except TypeError:
            raise TypeError(f"texts must be a sequence of str; got {type(texts).__name__}") from None
    if max_chars is not None and (not isinstance(max_chars, int) or max_chars < 1):
        raise ValueError(f"max_chars must be a positive int or None; got {max_chars!r}")
    if on_empty not in ("report", "raise"):
        raise ValueError(f"on_empty must be 'report' or 'raise'; got {on_empty!r}")
    if vocab is not None and tokenizer is None:
        raise ValueError("checking unknown tokens needs the tokenizer as well as the vocabulary")
    cleaned, reports = [], []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            hint = " (decode bytes first, e.g. text.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else ""
            raise TypeError(f"text {i}: expected str, got {type(text).__name__} ({repr(text)[:40]}){hint}")
        original = len(text)
        issues = []
        if max_chars is not None and len(text) > max_chars:
            text = text[:max_chars]
            issues.append(f"truncated from {original} to {max_chars} characters")
        text, char_issues = _clean_characters(text)
        issues += char_issues
        if not text.strip():
            if on_empty == "raise":
                raise ValueError(f"text {i} is empty{' after cleaning' if original else ''}")
            text = ""
            issues.append("empty text: the model sees no tokens and predicts from its bias alone")
        num_tokens, unknown = None, ()
        if tokenizer is not None and text:
            tokens = tokenizer(text)
            num_tokens = len(tokens)
            if max_tokens is not None and num_tokens > max_tokens:
                issues.append(f"{num_tokens} tokens: the model reads only the first {max_tokens}")
            if vocab is not None:
                unknown = tuple(dict.fromkeys(t for t in tokens if vocab[t] == UNK_ID))
                if unknown:
                    count = sum(vocab[t] == UNK_ID for t in tokens)
                    shown = ", ".join(repr(t) for t in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
                    issues.append(f"{count} of {num_tokens} tokens unknown to the vocabulary (read as UNK): {shown}")
        elif tokenizer is not None:
            num_tokens = 0
        cleaned.append(text)
        reports.append(InputReport(i, original, tuple(issues), num_tokens, unknown))
    return CheckedTexts(cleaned, reports)


# --------------------------------------------------------------------------- candidates


def synonym_candidates(vocab: Any, table: Mapping[str, Sequence[str]], *, max_candidates: int | None = None) -> np.ndarray:
    """A candidate table ``<int32>[len(vocab), K]`` from a synonym list (``-1`` pads; no candidates for PAD/UNK).

    Words or synonyms missing from the vocabulary are skipped (the model could only read them as UNK).

    Args:
      vocab: a :class:`lstmjax.Vocab`.
      table: ``{"good": ["fine", "decent"], ...}``.
      max_candidates: keep at most this many per word (default: the longest list).

    Example:
      >>> from lstmjax import Vocab
      >>> v = Vocab.build([["good", "fine", "bad"]])
      >>> cand = synonym_candidates(v, {"good": ["fine", "nice"], "bad": []})   # "nice" is not in v
      >>> cand.shape, [v.tokens[j] for j in cand[v["good"]]], cand[v["bad"]].tolist()
      ((5, 1), ['fine'], [-1])
    """
    rows = {}
    for word, synonyms in table.items():
        if isinstance(synonyms, str):
            raise TypeError(f"synonyms of {word!r} must be a list of words, not the string {synonyms!r}")
        if word in vocab and vocab[word] not in (PAD_ID, UNK_ID):
            ids = [vocab[s] for s in synonyms if s in vocab and vocab[s] not in (PAD_ID, UNK_ID, vocab[word])]
            rows[vocab[word]] = list(dict.fromkeys(ids))[:max_candidates]
    width = max([len(r) for r in rows.values()] + [1]) if max_candidates is None else max(max_candidates, 1)
    out = np.full((len(vocab), width), -1, np.int32)
    for i, ids in rows.items():
        out[i, : len(ids)] = ids
    return out


def embedding_neighbours(embedding: Any, k: int = 5, *, exclude: Sequence[int] = (PAD_ID, UNK_ID)) -> np.ndarray:
    """The ``k`` nearest tokens of every token by cosine similarity of embeddings: ``<int32>[V, k]``.

    A token is never its own neighbour; ids in ``exclude`` (PAD, UNK) are never candidates and
    get no candidates (``-1``).

    Args:
      embedding: ``<float>[V, E]`` (``params["embedding"]["embedding"]``).
      k: neighbours per token (at most ``V - 1 - len(exclude)``).

    Example:
      >>> e = np.array([[0, 0], [0, 0], [1, 0], [0.9, 0.1], [0, 1]], np.float32)
      >>> embedding_neighbours(e, 1).tolist()
      [[-1], [-1], [3], [2], [3]]
    """
    e = np.asarray(embedding, np.float32)
    if e.ndim != 2:
        raise ValueError(f"embedding must be <float>[vocab, dim]; got shape {e.shape}")
    vocab_size = e.shape[0]
    excluded = sorted({int(i) for i in exclude if 0 <= int(i) < vocab_size})
    if not 1 <= k <= vocab_size - 1 - len(excluded):
        raise ValueError(f"k must be in [1, {vocab_size - 1 - len(excluded)}] for {vocab_size} tokens; got {k}")
    unit = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), np.float32(1e-12))
    sim = unit @ unit.T  # (V, V)
    np.fill_diagonal(sim, -np.inf)
    sim[:, excluded] = -np.inf
    out = np.argsort(-sim, axis=1, kind="stable")[:, :k].astype(np.int32)
    out[excluded] = -1
    return out


# --------------------------------------------------------------------------- the attack


class AttackResult(NamedTuple):
    """The outcome of :func:`greedy_substitution_attack` for ``B`` examples.

    Attributes:
      token_ids: ``<int32>[B, T]`` the adversarial ids (unchanged where nothing was substituted).
      substitutions: ``<int32>[B]`` words changed.
      flipped: ``<bool>[B]`` prediction changed from the (correct) original.
      attacked: ``<bool>[B]`` originally classified correctly (only these are attacked).
      original_pred, adversarial_pred: ``<int32>[B]`` predicted classes before and after.
      original_prob, adversarial_prob: ``<float32>[B]`` probability of the true class before and after.
    """

    token_ids: np.ndarray
    substitutions: np.ndarray
    flipped: np.ndarray
    attacked: np.ndarray
    original_pred: np.ndarray
    adversarial_pred: np.ndarray
    original_prob: np.ndarray
    adversarial_prob: np.ndarray

    @property
    def flip_rate(self) -> float:
        """Flipped / attacked (0.0 when nothing was attacked)."""
        n = int(self.attacked.sum())
        return float(self.flipped.sum() / n) if n else 0.0

    @property
    def mean_substitutions(self) -> float:
        """Mean words changed per flipped example (``nan`` when none flipped)."""
        return float(self.substitutions[self.flipped].mean()) if self.flipped.any() else float("nan")


@functools.partial(jax.jit, static_argnums=0)
def _true_probs(apply_fn, params, ids, lengths, labels):
    probs = jax.nn.softmax(apply_fn({"params": params}, ids, lengths))  # (B, C)
    return jnp.take_along_axis(probs, labels[:, None], axis=1)[:, 0], jnp.argmax(probs, -1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnums=0)
def _attack_step(apply_fn, params, candidates, ids, lengths, labels, changed, done, subs, p_true, pred):
    """One greedy step for a batch: try all (position, candidate) pairs, apply the best one."""
    b, t = ids.shape
    k = candidates.shape[1]
    cand = candidates[ids]  # (B, T, K)
    positions = jnp.arange(t, dtype=jnp.int32)
    allowed = ((cand >= 0) & (cand != ids[..., None]) & length_mask(lengths, t)[..., None]
               & ~changed[..., None] & ~done[:, None, None])  # (B, T, K)
    at = positions[:, None] == positions[None, :]  # (T_sub, T)
    variants = jnp.where(at[None, :, None, :], cand[:, :, :, None], ids[:, None, None, :])  # (B, T, K, T)
    flat = variants.reshape(b * t * k, t)  # (B·T·K, T)
    reps = jnp.repeat(lengths, t * k)
    probs = jax.nn.softmax(apply_fn({"params": params}, flat, reps)).reshape(b, t * k, -1)  # (B, T·K, C)
    p = jnp.take_along_axis(probs, labels[:, None, None], axis=2)[..., 0]  # (B, T·K)
    p = jnp.where(allowed.reshape(b, t * k), p, jnp.inf)
    best = jnp.argmin(p, axis=1)  # (B,)
    p_best = jnp.take_along_axis(p, best[:, None], axis=1)[:, 0]
    improve = p_best < p_true  # also False when nothing is allowed (inf)
    pos, which = best // k, best % k
    new_token = cand[jnp.arange(b), pos, which]
    hit = improve[:, None] & (positions[None, :] == pos[:, None])  # (B, T)
    ids = jnp.where(hit, new_token[:, None], ids)
    changed = changed | hit
    subs = subs + improve.astype(jnp.int32)
    new_pred = jnp.argmax(probs[jnp.arange(b), best], axis=-1).astype(jnp.int32)
    pred = jnp.where(improve, new_pred, pred)
    p_true = jnp.where(improve, p_best, p_true)
    done = done | ~improve | (pred != labels)
    return ids, changed, done, subs, p_true, pred


def greedy_substitution_attack(
    apply_fn: Callable,
    params: Any,
    token_ids: Any,
    lengths: Any,
    labels: Any,
    candidates: Any,
    *,
    budget: int = 3,
    batch_size: int = 32,
) -> AttackResult:
    """Greedy word substitution: per example, at most ``budget`` words changed to flip the prediction.

    Args:
      apply_fn: ``apply_fn({"params": params}, token_ids, lengths) -> logits <float>[B, C]``
        (``TextClassifier.apply``, ``TrainState.apply_fn``); it must be hashable (it is a static
        argument of the jitted step).
      params: the model's parameters.
      token_ids: ``<int32>[N, T]`` right-padded ids; lengths: ``<int32>[N]``; labels: ``<int32>[N]``.
      candidates: ``<int32>[V, K]`` substitutes of each token id, ``-1`` for none
        (:func:`synonym_candidates`, :func:`embedding_neighbours`).
      budget: ``k ≥ 0``, the most words changed per example (0 flips nothing).
      batch_size: examples per jitted call; each step evaluates ``batch_size · T · K``
        sequences at once (the last batch is padded, so one shape compiles once).

    Returns:
      An :class:`AttackResult`; ``flip_rate`` and ``mean_substitutions`` summarise it.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax import TextClassifier
      >>> model = TextClassifier(vocab_size=8, num_classes=2, embed_dim=4, hidden_size=4)
      >>> ids = jnp.array([[2, 3, 4], [5, 6, 0]], jnp.int32)
      >>> params = model.init(jax.random.key(0), ids)["params"]
      >>> cand = embedding_neighbours(params["embedding"]["embedding"], 2)
      >>> labels = model.apply({"params": params}, ids).argmax(-1).astype(jnp.int32)  # all correct
      >>> r = greedy_substitution_attack(model.apply, params, ids, jnp.array([3, 2], jnp.int32), labels, cand, budget=2)
      >>> r.attacked.tolist(), bool((r.substitutions <= 2).all())
      ([True, True], True)
    """
    ids, lengths, labels, candidates = _checked_attack_inputs(apply_fn, params, token_ids, lengths, labels,
                                                              candidates, budget, batch_size)
    n, t = ids.shape
    cand = jnp.asarray(candidates, jnp.int32)
    bs = min(batch_size, max(n, 1))
    parts = [_attack_batch(apply_fn, params, cand, ids, lengths, labels, start, min(start + bs, n), bs, budget)
             for start in range(0, n, bs)]
    if not parts:  # no examples: empty arrays of the right dtypes
        return AttackResult(np.zeros((0, t), np.int32), np.zeros(0, np.int32), np.zeros(0, bool), np.zeros(0, bool),
                            np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32),
                            np.zeros(0, np.float32))
    return AttackResult(*(np.concatenate(field) for field in zip(*parts)))


def _checked_attack_inputs(apply_fn, params, token_ids, lengths, labels, candidates, budget, batch_size):
    """The attack's arrays as ``<int32>`` NumPy, every shape, range and label checked (a clear error otherwise)."""
    ids, lengths, labels, candidates = map(np.asarray, (token_ids, lengths, labels, candidates))
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"token_ids must be <int32>[batch, time]; got {ids.dtype}{list(ids.shape)}")
    n, t = ids.shape
    if lengths.shape != (n,) or labels.shape != (n,):
        raise ValueError(f"lengths and labels must be <int32>[{n}]; got shapes {lengths.shape} and {labels.shape}")
    if candidates.ndim != 2 or not np.issubdtype(candidates.dtype, np.integer):
        raise ValueError(f"candidates must be <int32>[vocab, K]; got {candidates.dtype}{list(candidates.shape)}")
    if ids.size and ids.max() >= candidates.shape[0]:
        raise ValueError(f"token id {int(ids.max())} has no row in the candidate table of {candidates.shape[0]} tokens")
    if not isinstance(budget, (int, np.integer)) or budget < 0:
        raise ValueError(f"budget must be an int ≥ 0; got {budget!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1; got {batch_size}")
    ids, lengths, labels = ids.astype(np.int32), lengths.astype(np.int32), labels.astype(np.int32)
    if ids.size and ids.min() < 0:
        raise ValueError(f"token ids must be ≥ 0; found {int(ids.min())}")
    if n and (lengths.min() < 0 or lengths.max() > t):
        raise ValueError(f"lengths must be in [0, {t}]; found {int(lengths.min())}..{int(lengths.max())}")
    if n:
        num_classes = jax.eval_shape(lambda p: apply_fn({"params": p}, ids[:1], lengths[:1]), params).shape[-1]
        if labels.min() < 0 or labels.max() >= num_classes:
            bad = int(np.flatnonzero((labels < 0) | (labels >= num_classes))[0])
            raise ValueError(f"labels[{bad}] = {int(labels[bad])} is not a class of this {num_classes}-class model")
    return ids, lengths, labels, candidates


def _attack_batch(apply_fn, params, cand, ids, lengths, labels, start: int, stop: int, size: int, budget: int):
    """Rows ``start:stop``, padded to ``size`` rows (one shape, compiled once), attacked ``budget`` steps;
    returns the :class:`AttackResult` fields for those rows."""
    pad = size - (stop - start)

    def padded(x):
        return np.concatenate([x[start:stop], np.zeros((pad, *x.shape[1:]), x.dtype)])

    b_ids, b_len, b_lab = padded(ids), padded(lengths), padded(labels)
    p0, pred0 = _true_probs(apply_fn, params, b_ids, b_len, b_lab)
    attacked = (pred0 == b_lab) & (jnp.arange(size) < stop - start)
    state = (jnp.asarray(b_ids), jnp.zeros(b_ids.shape, bool), ~attacked, jnp.zeros(size, jnp.int32), p0, pred0)
    for _ in range(budget):
        if bool(state[2].all()):
            break
        state = _attack_step(apply_fn, params, cand, state[0], b_len, b_lab, *state[1:])
    adv_ids, _, _, subs, p_adv, pred_adv = state
    fields = (adv_ids, subs, attacked & (pred_adv != b_lab), attacked, pred0, pred_adv, p0, p_adv)
    return tuple(np.asarray(f)[: stop - start] for f in fields)


def attack_examples(result: AttackResult, original_ids: Any, lengths: Any, vocab: Any, *,
                    label_names: Sequence[str] | None = None, limit: int = 5) -> list[dict[str, Any]]:
    """The flipped examples as text: original, adversarial, the words changed, probabilities.

    Args:
      result: from :func:`greedy_substitution_attack`.
      original_ids: ``<int32>[N, T]`` the ids it was given; lengths: ``<int32>[N]``.
      vocab: a :class:`lstmjax.Vocab`, to turn ids back into words.
      label_names: class names (default the class numbers as strings).
      limit: at most this many examples, in input order.

    Returns:
      A list of dicts with keys ``index``, ``original``, ``adversarial``, ``changes``
      (``[(old, new), ...]``), ``label``, ``new_prediction``, ``true_prob_before``, ``true_prob_after``.

    Example:
      >>> from lstmjax import Vocab
      >>> v = Vocab.build([["good", "fine", "film"]])
      >>> r = AttackResult(np.array([[3, 4]]), np.array([1]), np.array([True]), np.array([True]),
      ...                  np.array([1]), np.array([0]), np.array([0.9]), np.array([0.4]))
      >>> attack_examples(r, np.array([[2, 4]]), np.array([2]), v, label_names=["neg", "pos"])[0]["changes"]
      [('film', 'fine')]
    """
    original_ids = np.asarray(original_ids)
    lengths = np.asarray(lengths)
    names = list(label_names) if label_names is not None else None
    examples = []
    for i in np.flatnonzero(result.flipped)[:limit]:
        n = int(lengths[i])
        before = [vocab.tokens[j] for j in original_ids[i, :n]]
        after = [vocab.tokens[j] for j in result.token_ids[i, :n]]
        label = int(result.original_pred[i])
        new = int(result.adversarial_pred[i])
        examples.append({
            "index": int(i),
            "original": " ".join(before),
            "adversarial": " ".join(after),
            "changes": [(a, b) for a, b in zip(before, after) if a != b],
            "label": names[label] if names else str(label),
            "new_prediction": names[new] if names else str(new),
            "true_prob_before": float(result.original_prob[i]),
            "true_prob_after": float(result.adversarial_prob[i]),
        })
    return examples

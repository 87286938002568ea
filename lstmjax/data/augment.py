"""EDA-style text augmentation on the host: deletion, swap, insertion and synonym replacement.

The four operations of Wei & Zou (2019), "EDA: Easy Data Augmentation Techniques for Boosting
Performance on Text Classification Tasks", on token lists, with a given synonym table (no
WordNet download) and an explicit ``numpy.random.Generator``:

* :func:`random_deletion` drops each token with probability ``p``;
* :func:`random_swap` swaps two random positions, ``n`` times;
* :func:`random_insertion` inserts a synonym of a random token at a random position, ``n`` times;
* :func:`synonym_replacement` replaces up to ``n`` distinct tokens that have synonyms.

None of them returns an empty list for a non-empty input, and none mutates its input.
:func:`augment_dataset` applies them to **one split**, the training split: pass only that one
(validation and test data must stay as they are). Row ``i``'s augmentations draw from
``numpy.random.default_rng([seed, i])``, so the output depends only on ``seed`` and the row.

Example:
  >>> import numpy as np
  >>> out = augment_dataset({"text": ["a good film"], "label": [1]}, n_aug=2, seed=0,
  ...                       synonyms={"good": ["fine", "great"]})
  >>> len(out["text"]), out["label"], out["text"][0]
  (3, [1, 1, 1], 'a good film')
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["OPERATIONS", "augment_dataset", "augment_tokens", "load_synonyms", "random_deletion", "random_insertion",
           "random_swap", "synonym_replacement"]

Synonyms = Mapping[str, Sequence[str]]


_BUILTIN_SYNONYMS = pathlib.Path(__file__).parent / "builtin" / "synonyms" / "english.json"


def load_synonyms(path: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """A synonym table from a JSON file: ``{"word": ["synonym", ...], ...}``.

    The file holds either that object or an object with that table under ``"synonyms"`` (and
    any other keys, e.g. ``"source"`` and ``"licence"``, which are ignored). With no ``path``
    (or ``"builtin"``), the table shipped with lstmjax: about 130 common English words of
    sentiment and film reviews (evaluative adjectives, verbs of liking, review nouns), written
    by hand for lstmjax (no thesaurus or WordNet data; Apache-2.0, as lstmjax), lower-case as
    the English tokenizer's output. Reading never executes anything (JSON only).

    Args:
      path: a JSON file, ``None`` or ``"builtin"``.

    Returns:
      word → list of synonyms (the word itself removed, duplicates dropped, order kept).

    Raises:
      FileNotFoundError: no such file. ValueError: not JSON, or an entry that is not a
      non-empty string mapped to a list of non-empty strings (the message names the file and
      the entry).

    Example:
      >>> table = load_synonyms()
      >>> "great" in table["good"] or "fine" in table["good"], len(table) > 100
      (True, True)
    """
    file = _BUILTIN_SYNONYMS if path is None or str(path) == "builtin" else pathlib.Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"synonym table {file}: no such file")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"synonym table {file}: not valid JSON ({e})") from None
    if isinstance(raw, dict) and isinstance(raw.get("synonyms"), dict):
        raw = raw["synonyms"]
    if not isinstance(raw, dict):
        raise ValueError(f"synonym table {file}: expected a JSON object word → [synonyms]; got {type(raw).__name__}")
    table: dict[str, list[str]] = {}
    for word, options in raw.items():
        if not word.strip():
            raise ValueError(f"synonym table {file}: an empty word")
        if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
            raise ValueError(f"synonym table {file}: entry {word!r} must be a list of non-empty strings; "
                             f"got {options!r}")
        kept = list(dict.fromkeys(o for o in options if o != word))
        if kept:
            table[word] = kept
    return table


def random_deletion(tokens: Sequence[str], p: float, rng: np.random.Generator) -> list[str]:
    """Drop each token independently with probability ``p``; keep one at random if all would go.

    Args:
      tokens: the tokens of one text.
      p: deletion probability in ``[0, 1]``.
      rng: a ``numpy.random.Generator``.

    Returns:
      A new list; empty only when ``tokens`` is.

    Example:
      >>> import numpy as np
      >>> random_deletion(["a", "b", "c"], 0.0, np.random.default_rng(0))
      ['a', 'b', 'c']
      >>> len(random_deletion(["a", "b", "c"], 1.0, np.random.default_rng(0)))
      1
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1]; got {p}")
    tokens = list(tokens)
    if len(tokens) <= 1:
        return tokens
    keep = rng.random(len(tokens)) >= p
    if not keep.any():
        return [tokens[int(rng.integers(len(tokens)))]]
    return [t for t, k in zip(tokens, keep) if k]


def random_swap(tokens: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """Swap the tokens at two distinct random positions, ``n`` times.

    Args:
      tokens: the tokens of one text.
      n: number of swaps (``>= 0``).
      rng: a ``numpy.random.Generator``.

    Returns:
      A new list, a permutation of ``tokens`` (unchanged with fewer than two tokens).

    Example:
      >>> import numpy as np
      >>> sorted(random_swap(["a", "b", "c"], 2, np.random.default_rng(0)))
      ['a', 'b', 'c']
      >>> random_swap(["a", "b"], 1, np.random.default_rng(0))
      ['b', 'a']
    """
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    out = list(tokens)
    if len(out) < 2:
        return out
    for _ in range(n):
        i, j = rng.choice(len(out), size=2, replace=False)
        out[i], out[j] = out[j], out[i]
    return out


def random_insertion(tokens: Sequence[str], n: int, synonyms: Synonyms, rng: np.random.Generator) -> list[str]:
    """Insert a random synonym of a random token (one that has synonyms) at a random position, ``n`` times.

    Args:
      tokens: the tokens of one text.
      n: number of insertions (``>= 0``).
      synonyms: token → its synonyms.
      rng: a ``numpy.random.Generator``.

    Returns:
      A new list, ``n`` tokens longer (unchanged if no token has a synonym).

    Example:
      >>> import numpy as np
      >>> out = random_insertion(["a", "good", "film"], 1, {"good": ["great"]}, np.random.default_rng(0))
      >>> len(out), out.count("great")
      (4, 1)
    """
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    out = list(tokens)
    for _ in range(n):
        candidates = [t for t in out if synonyms.get(t)]
        if not candidates:
            break
        word = candidates[int(rng.integers(len(candidates)))]
        options = list(synonyms[word])
        out.insert(int(rng.integers(len(out) + 1)), options[int(rng.integers(len(options)))])
    return out


def synonym_replacement(tokens: Sequence[str], n: int, synonyms: Synonyms, rng: np.random.Generator) -> list[str]:
    """Replace up to ``n`` distinct words that have synonyms (every occurrence) by a random synonym.

    Args:
      tokens: the tokens of one text.
      n: most words to replace (``>= 0``).
      synonyms: token → its synonyms.
      rng: a ``numpy.random.Generator``.

    Returns:
      A new list of the same length.

    Example:
      >>> import numpy as np
      >>> synonym_replacement(["a", "good", "film"], 1, {"good": ["great"]}, np.random.default_rng(0))
      ['a', 'great', 'film']
    """
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    out = list(tokens)
    words = sorted({t for t in out if synonyms.get(t)})  # sorted: independent of set order
    for word in rng.permutation(np.array(words, dtype=object))[:n] if words else []:
        options = list(synonyms[word])
        new = options[int(rng.integers(len(options)))]
        out = [new if t == word else t for t in out]
    return out


#: The four EDA operations: the default ``ops`` of :func:`augment_tokens`, which picks one uniformly.
OPERATIONS = ("synonym_replacement", "random_insertion", "random_swap", "random_deletion")


def augment_tokens(tokens: Sequence[str], rng: np.random.Generator, *, synonyms: Synonyms | None = None,
                   alpha: float = 0.1, ops: Sequence[str] = OPERATIONS) -> list[str]:
    """One augmented copy: an operation chosen uniformly from ``ops``, at strength ``alpha``.

    As in EDA, the replacement, insertion and swap count is ``n = max(1, int(alpha * len))`` and
    the deletion probability is ``alpha``. Operations needing synonyms are skipped without a table.

    Args:
      tokens: the tokens of one text.
      rng: a ``numpy.random.Generator``.
      synonyms: token → synonyms (default none).
      alpha: strength in ``[0, 1]``.
      ops: names from :data:`OPERATIONS`.

    Returns:
      A new list; non-empty when ``tokens`` is.

    Example:
      >>> import numpy as np
      >>> augment_tokens(["a", "b"], np.random.default_rng(0), ops=["random_swap"])
      ['b', 'a']
    """
    unknown = set(ops) - set(OPERATIONS)
    if unknown:
        raise ValueError(f"unknown operations {sorted(unknown)}; expected some of {OPERATIONS}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    synonyms = synonyms or {}
    usable = [op for op in ops if synonyms or op not in ("synonym_replacement", "random_insertion")]
    if not usable:
        raise ValueError("no usable operation: synonym replacement and insertion need a synonyms table")
    op = usable[int(rng.integers(len(usable)))]
    n = max(1, int(alpha * len(tokens)))
    if op == "synonym_replacement":
        return synonym_replacement(tokens, n, synonyms, rng)
    if op == "random_insertion":
        return random_insertion(tokens, n, synonyms, rng)
    if op == "random_swap":
        return random_swap(tokens, n, rng)
    return random_deletion(tokens, alpha, rng)


def augment_dataset(split: Any, *, n_aug: int = 1, seed: int = 0, synonyms: Synonyms | None = None,
                    alpha: float = 0.1, ops: Sequence[str] = OPERATIONS, text_field: str = "text",
                    label_field: str = "label", tokenize: Callable[[str], list[str]] = str.split,
                    detokenize: Callable[[list[str]], str] = " ".join) -> Any:
    """The training split plus ``n_aug`` augmented copies of each row (texts in, texts out).

    Only one split goes in: augment the training data, never validation or test data. The
    original rows come first, in order, then the copies (row 0's ``n_aug``, row 1's, ...);
    every other column (the label included) is copied from the original row. An empty text
    stays empty; a non-empty one never becomes empty.

    Args:
      split: a dict of equal-length lists (``text_field``, ``label_field``, ...) or a
        ``datasets.Dataset``.
      n_aug: augmented copies per row (``>= 0``; 0 returns the rows unchanged).
      seed: row ``i`` draws from ``numpy.random.default_rng([seed, i])``.
      synonyms: token → synonyms, for replacement and insertion.
      alpha: strength (see :func:`augment_tokens`).
      ops: operations to choose from (default all four).
      text_field: the text column. label_field: the label column (checked to exist).
      tokenize, detokenize: text → tokens and back (default whitespace; pass
        ``lstmjax.get_tokenizer(...)`` and ``"".join`` for Chinese characters).

    Returns:
      The same kind as ``split`` (a dict of lists, or a ``datasets.Dataset``), with
      ``len(split) * (1 + n_aug)`` rows.

    Example:
      >>> out = augment_dataset({"text": ["one two three four"], "label": [0]}, n_aug=1, seed=1,
      ...                       ops=["random_swap"])
      >>> sorted(out["text"][1].split()) == sorted("one two three four".split()), out["label"]
      (True, [0, 0])
    """
    if n_aug < 0:
        raise ValueError(f"n_aug must be >= 0; got {n_aug}")
    if isinstance(split, Mapping) and any(isinstance(v, Mapping) or hasattr(v, "column_names")
                                          for v in split.values()):  # a dict of splits, or a DatasetDict
        raise TypeError("augment_dataset takes one split (the training split), not a dict of splits")
    is_hf = not isinstance(split, Mapping)
    columns = {name: list(split[name]) for name in (split.column_names if is_hf else split)}
    for name in (text_field, label_field):
        if name not in columns:
            raise KeyError(f"no column {name!r}; columns are {sorted(columns)}")
    rows = len(columns[text_field])
    extra = {name: [] for name in columns}
    for i, text in enumerate(columns[text_field]):
        rng = np.random.default_rng([seed, i])
        tokens = tokenize(text)
        for _ in range(n_aug):
            new = detokenize(augment_tokens(tokens, rng, synonyms=synonyms, alpha=alpha, ops=ops)) if tokens else text
            for name, values in columns.items():
                extra[name].append(new if name == text_field else values[i])
    out = {name: columns[name] + extra[name] for name in columns}
    assert all(len(v) == rows * (1 + n_aug) for v in out.values())
    if is_hf:
        import datasets as hf

        return hf.Dataset.from_dict(out, features=split.features)
    return out

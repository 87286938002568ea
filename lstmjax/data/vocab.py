"""The vocabulary: tokens ↔ integer ids, built from the training split only.

Id 0 is padding (``PAD``) and id 1 the unknown token (``UNK``); corpus tokens follow, most
frequent first (ties broken alphabetically, so the same counts always give the same ids).
A :class:`Vocab` is frozen once built; it saves to and loads from JSON, and records which
tokenizer made its tokens, so that a vocabulary from another tokenizer is refused on load.

>>> vocab = Vocab.build([["a", "good", "film"], ["a", "bad", "film"], ["a", "film"]])
>>> vocab.tokens
('<pad>', '<unk>', 'a', 'film', 'bad', 'good')
>>> vocab.encode(["a", "great", "film"])
array([2, 1, 3], dtype=int32)
>>> vocab.decode([2, 1, 3, 0, 0])
['a', '<unk>', 'film']
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from lstmjax.data.errors import DataError
from lstmjax.data.tokenizer import Tokenizer, fingerprint

__all__ = ["PAD", "PAD_ID", "UNK", "UNK_ID", "Vocab"]

#: The padding token and its id (0): right padding fills ``token_ids`` with ``PAD_ID``.
PAD, PAD_ID = "<pad>", 0
#: The unknown-word token and its id (1): tokens outside the vocabulary map to ``UNK_ID``.
UNK, UNK_ID = "<unk>", 1
_FORMAT = "lstmjax.vocab"
_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Vocab:
    """A frozen token ↔ id table with ``PAD`` = 0 and ``UNK`` = 1.

    Build one with :meth:`build` (from token lists) or :meth:`from_counts`; do not pass
    ``tokens`` by hand unless they come from a saved vocabulary.

    Attributes:
      tokens: the token of each id; ``tokens[0] == PAD``, ``tokens[1] == UNK``.
      tokenizer: ``{"name", "fingerprint"}`` of the tokenizer that made the tokens, or None.
      min_freq: the ``min_freq`` it was built with (provenance only).
      max_size: the ``max_size`` it was built with, or None (provenance only).

    >>> v = Vocab.build([["b", "a", "b"]], max_size=3)
    >>> len(v), v["b"], v["a"], v["zzz"]
    (3, 2, 1, 1)
    >>> v.tokens = ()
    Traceback (most recent call last):
    ...
    dataclasses.FrozenInstanceError: cannot assign to field 'tokens'
    """

    tokens: tuple[str, ...]
    tokenizer: Mapping[str, str] | None = None
    min_freq: int = 1
    max_size: int | None = None

    def __post_init__(self):
        tokens = tuple(self.tokens)
        if tokens[:2] != (PAD, UNK):
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {tokens[:2]}")
        index = {t: i for i, t in enumerate(tokens)}
        if len(index) != len(tokens):
            dup = next(t for t, c in collections.Counter(tokens).items() if c > 1)
            raise ValueError(f"duplicate token {dup!r} in vocabulary")
        # A literal "<pad>" in the text must not become padding: it maps to UNK.
        del index[PAD]
        object.__setattr__(self, "tokens", tokens)
        if self.tokenizer is not None:
            object.__setattr__(self, "tokenizer", types.MappingProxyType(dict(self.tokenizer)))
        object.__setattr__(self, "_index", types.MappingProxyType(index))

    # ------------------------------------------------------------------ building

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, int],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> Vocab:
        """A vocabulary of the tokens with ``count >= min_freq``, most frequent first.

        ``max_size`` caps the total size *including* PAD and UNK; tokens past the cap, and
        the reserved strings themselves, map to UNK.

        >>> Vocab.from_counts({"x": 5, "y": 1, "z": 5}, min_freq=2).tokens
        ('<pad>', '<unk>', 'x', 'z')
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must be >= 2 (PAD and UNK), got {max_size}")
        kept = sorted(
            ((t, c) for t, c in counts.items() if c >= min_freq and t not in (PAD, UNK)),
            key=lambda tc: (-tc[1], tc[0]),
        )
        if max_size is not None:
            kept = kept[: max_size - 2]
        info = None if tokenizer is None else {"name": tokenizer.name, "fingerprint": fingerprint(tokenizer)}
        return cls((PAD, UNK, *(t for t, _ in kept)), tokenizer=info, min_freq=min_freq, max_size=max_size)

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> Vocab:
        """Counts tokens over ``token_lists`` (the training split) and calls :meth:`from_counts`.

        >>> Vocab.build([["x", "y"], ["y"]], tokenizer=None).tokens
        ('<pad>', '<unk>', 'y', 'x')
        """
        counts: collections.Counter[str] = collections.Counter()
        for tokens in token_lists:
            counts.update(tokens)
        return cls.from_counts(counts, min_freq=min_freq, max_size=max_size, tokenizer=tokenizer)

    # ------------------------------------------------------------------ lookup

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def __getitem__(self, token: str) -> int:
        """The id of ``token``, or ``UNK_ID``."""
        return self._index.get(token, UNK_ID)

    @property
    def index(self) -> Mapping[str, int]:
        """The read-only token → id mapping (PAD's string excluded: it encodes as UNK)."""
        return self._index

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """``<int32>[len(tokens)]`` ids; unknown tokens get ``UNK_ID``."""
        get = self._index.get
        return np.fromiter((get(t, UNK_ID) for t in tokens), dtype=np.int32, count=len(tokens))

    def decode(self, ids: Iterable[int], *, skip_pad: bool = True) -> list[str]:
        """The tokens of ``ids`` (``<int>[time]``); PAD ids are dropped when ``skip_pad``.

        >>> Vocab.build([["hi"]]).decode([2, 0], skip_pad=False)
        ['hi', '<pad>']
        """
        out = []
        for i in np.asarray(ids).tolist():
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"id {i} out of range for a vocabulary of {len(self.tokens)}")
            if i != PAD_ID or not skip_pad:
                out.append(self.tokens[i])
        return out

    def coverage(self, token_lists: Iterable[Sequence[str]]) -> float:
        """The fraction of tokens in ``token_lists`` that are in the vocabulary (not UNK).

        >>> Vocab.build([["a", "b"]]).coverage([["a", "b", "c", "a"]])
        0.75
        """
        known = total = 0
        for tokens in token_lists:
            total += len(tokens)
            known += sum(t in self._index for t in tokens)
        return known / total if total else 1.0

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        """The vocabulary as JSON data (what :meth:`save` writes)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "pad": PAD,
            "unk": UNK,
            "tokenizer": None if self.tokenizer is None else dict(self.tokenizer),
            "min_freq": self.min_freq,
            "max_size": self.max_size,
            "tokens": list(self.tokens),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Writes the vocabulary to ``path`` as UTF-8 JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, ensure_ascii=False, indent=0)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike, *, tokenizer: Tokenizer | None = None) -> Vocab:
        """Reads a vocabulary saved by :meth:`save`.

        With ``tokenizer``, checks that the vocabulary was built from that tokenizer's tokens
        (same settings, same rules) and raises :class:`~lstmjax.data.errors.DataError` naming the
        file and both tokenizers if not.

        >>> import tempfile, os
        >>> from lstmjax.data.tokenizer import get_tokenizer
        >>> tok = get_tokenizer("english")
        >>> path = os.path.join(tempfile.mkdtemp(), "vocab.json")
        >>> Vocab.build([tok("A fine film.")], tokenizer=tok).save(path)
        >>> Vocab.load(path, tokenizer=tok).tokens
        ('<pad>', '<unk>', '.', 'a', 'film', 'fine')
        >>> Vocab.load(path, tokenizer=get_tokenizer("char"))
        Traceback (most recent call last):
        ...
        lstmjax.data.errors.DataError: .../vocab.json: vocabulary built with tokenizer 'english' ...
        """
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{os.fspath(path)}: not a UTF-8 JSON vocabulary file: {e}") from e
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise DataError(f"{os.fspath(path)}: not an lstmjax vocabulary (format field is missing or wrong)")
        if data.get("version") != _VERSION or data.get("pad") != PAD or data.get("unk") != UNK:
            raise DataError(
                f"{os.fspath(path)}: unsupported vocabulary version {data.get('version')!r} "
                f"or reserved tokens {data.get('pad')!r}, {data.get('unk')!r}"
            )
        try:
            vocab = cls(
                tuple(data["tokens"]),
                tokenizer=data.get("tokenizer"),
                min_freq=data.get("min_freq", 1),
                max_size=data.get("max_size"),
            )
        except (KeyError, ValueError, TypeError) as e:
            raise DataError(f"{os.fspath(path)}: malformed vocabulary: {e}") from e
        if tokenizer is not None:
            vocab.check_tokenizer(tokenizer, source=os.fspath(path))
        return vocab

    def check_tokenizer(self, tokenizer: Tokenizer, *, source: str = "vocabulary") -> None:
        """Raises :class:`DataError` unless this vocabulary was built from ``tokenizer``'s tokens."""
        want = {"name": tokenizer.name, "fingerprint": fingerprint(tokenizer)}
        have = None if self.tokenizer is None else dict(self.tokenizer)
        if have is None:
            raise DataError(f"{source}: vocabulary records no tokenizer; cannot check it against {want['name']!r}")
        if have != want:
            raise DataError(
                f"{source}: vocabulary built with tokenizer {have.get('name')!r} "
                f"(fingerprint {have.get('fingerprint')}), but the tokenizer given is {want['name']!r} "
                f"(fingerprint {want['fingerprint']}); rebuild the vocabulary with this tokenizer"
            )

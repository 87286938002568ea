"""Tokenizers: raw text → a list of string tokens, one interface for every language.

Every tokenizer is a small immutable object with

- ``name``: its registry name (``"english"``, ``"jieba"``, ``"char"``, ``"bpe"``, ``"wordpiece"``),
- ``__call__(text) -> list[str]``: the tokens of one text,
- ``config() -> dict``: its settings as plain JSON data, so a checkpoint can store it and
  :func:`tokenizer_from_config` can rebuild the same tokenizer (a trained subword tokenizer
  includes its learned vocabulary and merges).

:func:`fingerprint` hashes ``config()`` (plus a rules version); :class:`lstmjax.data.vocab.Vocab` records
it, so a vocabulary saved with one tokenizer is refused by another, and the cached
``datasets.map`` results in :mod:`lstmjax.data.batching` are keyed by it.

Cleaning (§3.2 step 1) is :func:`normalize_text`: HTML entities and tags, Unicode NFKC
(full-width ``ＡＢＣ１２３，`` → ``ABC123,``), lower-casing, collapsed whitespace. The English,
jieba and character tokenizers all start with it; the subword tokenizers do the same inside
Hugging Face ``tokenizers`` (NFKC + BERT normaliser).

>>> tok = get_tokenizer("english")
>>> tok("The Rock is destined to be the 21st Century's new \\"Conan\\"!")
['the', 'rock', 'is', 'destined', 'to', 'be', 'the', '21st', "century's", 'new', '"', 'conan', '"', '!']
>>> tokenizer_from_config(tok.config()) == tok
True
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import importlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

__all__ = [
    "CharTokenizer",
    "EnglishTokenizer",
    "JiebaTokenizer",
    "SubwordTokenizer",
    "Tokenizer",
    "fingerprint",
    "get_tokenizer",
    "normalize_text",
    "tokenizer_from_config",
]

# Bumped whenever a rule below changes, so cached tokenisations and saved vocabularies made
# with the old rules are not reused silently.
_RULES_VERSION = 1

# The English token pattern, tried left to right at each position:
#   1. a word or number, letters/digits with inner apostrophes kept:  don't  21st  century's
#   2. a clitic split off as in treebank text (SST-2 writes "it 's", "does n't"):  's  're  n't
#   3. any other single non-space character, so nothing but whitespace is ever dropped: . , " ! -
ENGLISH_TOKEN_PATTERN = r"[^\W_]+(?:['’][^\W_]+)*|['’](?:s|re|ve|ll|d|m|t)\b|\S"
_ENGLISH_TOKEN_RE = re.compile(ENGLISH_TOKEN_PATTERN)
_HTML_TAG_RE = re.compile(r"<[^>]{0,200}>")
_SPACE_RE = re.compile(r"\s+")

Normalization = Literal["NFKC", "NFC", "NFKD", "NFD"] | None


def normalize_text(
    text: str,
    *,
    lowercase: bool = True,
    normalization: Normalization = "NFKC",
    strip_html: bool = True,
) -> str:
    """Cleans one text: HTML, Unicode normal form, case, whitespace (§3.2 step 1).

    In order: HTML entities are unescaped (``&amp;`` → ``&``) and tags become spaces (IMDB's
    ``<br />``) when ``strip_html``; Unicode is normalised (NFKC folds full-width forms and
    ligatures: ``ＡＢ１，`` → ``AB1,``); text is lower-cased; runs of whitespace become one space
    and the ends are stripped.

    >>> normalize_text("  Ｆｕｌｌ-width &amp; <br />HTML  ")
    'full-width & html'
    """
    if strip_html:
        text = _HTML_TAG_RE.sub(" ", html.unescape(text))
    if normalization is not None:
        text = unicodedata.normalize(normalization, text)
    if lowercase:
        text = text.lower()
    return _SPACE_RE.sub(" ", text).strip()


@runtime_checkable
class Tokenizer(Protocol):
    """What every tokenizer provides: ``name``, ``__call__(text) -> list[str]``, ``config()``.

    ``config()`` is JSON data from which :func:`tokenizer_from_config` rebuilds the tokenizer.

    >>> tok = get_tokenizer("english")
    >>> isinstance(tok, Tokenizer), tok.name, tok("It's great!")
    (True, 'english', ["it's", 'great', '!'])
    >>> tokenizer_from_config(tok.config()) == tok
    True
    """

    name: str

    def __call__(self, text: str) -> list[str]: ...

    def config(self) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class _Normalizing:
    """Shared cleaning settings of the rule-based tokenizers (see :func:`normalize_text`)."""

    lowercase: bool = True  # lower-case before splitting
    normalization: Normalization = "NFKC"  # Unicode normal form, or None to keep the text as is
    strip_html: bool = True  # unescape HTML entities and replace tags by spaces

    name: ClassVar[str]

    def _clean(self, text: str) -> str:
        return normalize_text(
            text, lowercase=self.lowercase, normalization=self.normalization, strip_html=self.strip_html
        )

    def config(self) -> dict[str, Any]:
        """Settings as JSON data: ``{"name": ..., <field>: <value>, ...}``."""
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class EnglishTokenizer(_Normalizing):
    """English words and punctuation: :func:`normalize_text`, then the regex ``ENGLISH_TOKEN_PATTERN``.

    Words keep inner apostrophes (``don't``, ``century's``); clitics already split off as in
    treebank text stay tokens of their own (``'s``, ``n't``); every other non-space character is
    one token. Nothing but whitespace is dropped.

    >>> EnglishTokenizer()("It's 10,000 times BETTER... isn't it?")
    ["it's", '10', ',', '000', 'times', 'better', '.', '.', '.', "isn't", 'it', '?']
    >>> EnglishTokenizer()("it 's a does n't")
    ['it', "'s", 'a', 'does', "n't"]
    """

    name: ClassVar[str] = "english"

    def __call__(self, text: str) -> list[str]:
        return _ENGLISH_TOKEN_RE.findall(self._clean(text))


@dataclasses.dataclass(frozen=True)
class CharTokenizer(_Normalizing):
    """Character level: every non-space character of the cleaned text is one token.

    Needs no segmenter, so it suits Chinese as a baseline for jieba's words.

    >>> CharTokenizer()("外卖 很快！")
    ['外', '卖', '很', '快', '!']
    """

    name: ClassVar[str] = "char"

    def __call__(self, text: str) -> list[str]:
        return [c for c in self._clean(text) if not c.isspace()]


@dataclasses.dataclass(frozen=True)
class JiebaTokenizer(_Normalizing):
    """Chinese word segmentation (分词) with jieba, after :func:`normalize_text`.

    jieba finds words with a prefix dictionary and, for unknown words, an HMM (``hmm=True``);
    whitespace tokens are dropped. Needs ``pip install lstmjax[zh]`` (``jieba``). The first call
    loads jieba's dictionary (about a second).

    >>> JiebaTokenizer()("送餐很快，味道不错")
    ['送餐', '很快', ',', '味道', '不错']
    """

    hmm: bool = True  # let jieba's HMM guess words missing from its dictionary

    name: ClassVar[str] = "jieba"

    def __call__(self, text: str) -> list[str]:
        jieba = _import_jieba()
        return [t for t in jieba.lcut(self._clean(text), HMM=self.hmm) if not t.isspace()]


def _import_jieba():
    try:
        jieba = importlib.import_module("jieba")
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the jieba tokenizer needs jieba: pip install 'lstmjax[zh]'") from e
    if not getattr(jieba, "_lstmjax_quiet", False):
        jieba.setLogLevel(30)  # logging.WARNING: no "Building prefix dict..." chatter
        jieba._lstmjax_quiet = True
    return jieba


@dataclasses.dataclass(frozen=True, eq=False)
class SubwordTokenizer:
    """A subword tokenizer (BPE or WordPiece) trained with Hugging Face ``tokenizers``.

    Construct it untrained (``SubwordTokenizer("bpe", vocab_size=8000)``) and call
    :meth:`train` on the training split's texts, or let :func:`lstmjax.data.batching.prepare` do it.
    Normalisation is NFKC then the BERT normaliser (control characters removed, spaces around
    each CJK character, optional lower-casing); pre-tokenisation splits on whitespace and
    punctuation, so it works for English and Chinese alike. Tokens are the model's pieces
    (WordPiece marks continuations with ``##``); an unknown character becomes ``[UNK]``.

    >>> texts = ["the movie was good", "the film was bad", "a good good film", "the films"] * 10
    >>> tok = SubwordTokenizer("bpe", vocab_size=60).train(texts)
    >>> tok("Moviegoods")
    ['movie', 'good', 's']
    >>> tokenizer_from_config(tok.config())("Moviegoods")
    ['movie', 'good', 's']
    """

    model: Literal["bpe", "wordpiece"] = "bpe"  # the subword algorithm
    vocab_size: int = 8000  # target vocabulary size (pieces, including [UNK])
    min_frequency: int = 2  # a merge / piece must occur this often in the training texts
    lowercase: bool = True  # lower-case in the normaliser
    trained: str | None = None  # the trained tokenizer as Hugging Face JSON; None before training

    @property
    def name(self) -> str:
        return self.model

    def __post_init__(self):
        if self.model not in ("bpe", "wordpiece"):
            raise ValueError(f"subword model must be 'bpe' or 'wordpiece', got {self.model!r}")
        if self.trained is not None:
            from tokenizers import Tokenizer as HFTokenizer

            object.__setattr__(self, "_hf", HFTokenizer.from_str(self.trained))

    def train(self, texts: Iterable[str]) -> SubwordTokenizer:
        """Returns a trained copy, learned from ``texts`` (the training split only)."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

        special = ["[UNK]"]
        if self.model == "bpe":
            hf = HFTokenizer(models.BPE(unk_token="[UNK]"))
            trainer = trainers.BpeTrainer(
                vocab_size=self.vocab_size, min_frequency=self.min_frequency, special_tokens=special,
                show_progress=False,
            )
            hf.decoder = decoders.BPEDecoder()
        else:
            hf = HFTokenizer(models.WordPiece(unk_token="[UNK]"))
            trainer = trainers.WordPieceTrainer(
                vocab_size=self.vocab_size, min_frequency=self.min_frequency, special_tokens=special,
                show_progress=False,
            )
            hf.decoder = decoders.WordPiece()
        hf.normalizer = normalizers.Sequence(
            [
                normalizers.NFKC(),
                normalizers.BertNormalizer(
                    clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=self.lowercase
                ),
            ]
        )
        hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        hf.train_from_iterator(texts, trainer=trainer)
        return dataclasses.replace(self, trained=hf.to_str())

    def _require_trained(self):
        if self.trained is None:
            raise ValueError(
                f"the {self.model} tokenizer is not trained: call .train(train_texts) first "
                "(or pass it to lstmjax.data.prepare, which trains it on the training split)"
            )
        return self._hf

    def __call__(self, text: str) -> list[str]:
        return self._require_trained().encode(text).tokens

    def batch(self, texts: list[str]) -> list[list[str]]:
        """Tokenizes many texts at once (in parallel, in Rust)."""
        return [e.tokens for e in self._require_trained().encode_batch(texts)]

    def config(self) -> dict[str, Any]:
        """Settings and, once trained, the learned model as JSON data."""
        return {"name": self.name, **dataclasses.asdict(self)}

    def __eq__(self, other):
        return isinstance(other, SubwordTokenizer) and self.config() == other.config()

    def __hash__(self):
        return hash(fingerprint(self))

    def __getstate__(self):  # pickled (e.g. for datasets.map(num_proc=...)) as its settings
        return dataclasses.asdict(self)

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)
        self.__post_init__()

    def __repr__(self):
        status = "trained" if self.trained is not None else "untrained"
        return (
            f"SubwordTokenizer(model={self.model!r}, vocab_size={self.vocab_size}, "
            f"min_frequency={self.min_frequency}, lowercase={self.lowercase}, <{status}>)"
        )


_REGISTRY: Mapping[str, Callable[..., Tokenizer]] = {
    "english": EnglishTokenizer,
    "jieba": JiebaTokenizer,
    "char": CharTokenizer,
    "bpe": lambda **kw: SubwordTokenizer("bpe", **kw),
    "wordpiece": lambda **kw: SubwordTokenizer("wordpiece", **kw),
}


def get_tokenizer(name: str, **settings: Any) -> Tokenizer:
    """The tokenizer registered as ``name``, with keyword ``settings`` for its fields.

    Names: ``english`` (:class:`EnglishTokenizer`), ``jieba`` (:class:`JiebaTokenizer`),
    ``char`` (:class:`CharTokenizer`), ``bpe`` and ``wordpiece`` (:class:`SubwordTokenizer`,
    untrained: pass ``texts=...`` to train it here).

    >>> get_tokenizer("char", lowercase=False)("Hi!")
    ['H', 'i', '!']
    >>> get_tokenizer("bpe", vocab_size=50, texts=["low lower lowest"] * 5)("lowest")
    ['lowest']
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown tokenizer {name!r}; choose one of {sorted(_REGISTRY)}")
    texts = settings.pop("texts", None)
    tok = _REGISTRY[name](**settings)
    if texts is not None:
        if not isinstance(tok, SubwordTokenizer):
            raise ValueError(f"the {name!r} tokenizer is rule-based and takes no training texts")
        tok = tok.train(texts)
    return tok


def tokenizer_from_config(config: Mapping[str, Any]) -> Tokenizer:
    """Rebuilds a tokenizer from its :meth:`config` (e.g. as stored in a checkpoint).

    >>> tokenizer_from_config({"name": "jieba", "hmm": False})
    JiebaTokenizer(lowercase=True, normalization='NFKC', strip_html=True, hmm=False)
    """
    settings = dict(config)
    name = settings.pop("name", None)
    if name in ("bpe", "wordpiece"):
        settings["model"] = name
        return SubwordTokenizer(**settings)
    return get_tokenizer(name, **settings)


def fingerprint(tokenizer: Tokenizer) -> str:
    """A short hex digest of a tokenizer's settings and rules: equal digests, equal tokens.

    >>> fingerprint(get_tokenizer("english")) == fingerprint(EnglishTokenizer())
    True
    >>> fingerprint(get_tokenizer("english")) == fingerprint(EnglishTokenizer(lowercase=False))
    False
    """
    payload = {"rules": _RULES_VERSION, "config": tokenizer.config()}
    if tokenizer.name == "jieba":  # jieba's dictionary and model change with its version
        payload["jieba"] = getattr(_import_jieba(), "__version__", "?")
    data = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()[:16]

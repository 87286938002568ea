"""Anonymise text before training: typed placeholders for personal data (document §8.3).

A model can memorise and repeat what it was trained on (the membership attack in
:mod:`lstmjax.privacy` measures part of that), so personal data is best removed *before*
training. :func:`anonymize` finds, in Chinese and English text:

=============  ==============================================================================
placeholder    what
=============  ==============================================================================
``<URL>``      ``http://``, ``https://``, ``ftp://`` and ``www.`` addresses
``<EMAIL>``    e-mail addresses
``<CN_ID>``    Chinese resident ID numbers (居民身份证号, 18 characters: region, birth date
               ``YYYYMMDD``, sequence, ISO 7064 MOD 11-2 check character ``0-9``/``X``);
               the birth date and the check character must be valid
``<PHONE>``    Chinese mobile numbers ``1[3-9]x xxxx xxxx`` (optional ``+86``/``0086``, spaces,
               dashes), international ``+CC …`` numbers (8–15 digits), North American
               ``(555) 123-4567`` / ``555-123-4567``, and national numbers with a trunk ``0``
               (``010-12345678``, ``020 7946 0958``, ``07700 900123``)
``<CARD>``     13–19 digit runs (optionally grouped by spaces or dashes) that pass the Luhn check
``<DIGITS>``   other 13–19 digit runs of that shape (account numbers, an 18-digit run that is not
               a valid ID): long identifiers are removed even when they are not cards
=============  ==============================================================================

Matches are taken in that order of priority and never overlap. Dates (``2024-03-15``,
``2024年3月15日``), prices (``¥1,299.00``), years and version numbers (``3.10.12``) are left
alone: digit boundaries exclude ``.`` and ``,``, and the shapes above do not fit them.
These are patterns, not a guarantee: names and addresses need a named-entity model, and a
checklist of the data's own identifiers should be reviewed by a person.

The report (:class:`AnonymizationReport`) gives counts per type and the spans (in the original
text) that were replaced; it never repeats the removed text.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

__all__ = ["KINDS", "AnonymizationReport", "Span", "anonymize", "anonymize_dataset", "is_valid_cn_id", "luhn_valid"]

KINDS = ("URL", "EMAIL", "CN_ID", "PHONE", "CARD", "DIGITS")
"""Placeholder types, in order of priority (``<URL>`` … ``<DIGITS>``)."""

_B = r"(?<![0-9A-Za-z])"  # start: not inside a word or number (Chinese characters may touch)
_E = r"(?![0-9A-Za-z])"  # end
_NUM_B = r"(?<![0-9A-Za-z+.,/:-])"  # start of a number: not a decimal, a price, a date or a version

_URL = re.compile(r"(?<![0-9A-Za-z@.])(?:(?:https?|ftp)://|www\.)[^\s<>\"'\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}" + _E)
_CN_ID = re.compile(_B + r"[1-8][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
                    r"[0-9]{3}[0-9Xx]" + _E)
_PHONES = (
    # Chinese mobile: 1[3-9]x xxxx xxxx, optional +86 / 0086 / 86 prefix
    re.compile(r"(?<![0-9A-Za-z+.,/:-])(?:(?:\+|00)86[\s-]?)?1[3-9][0-9](?:[\s-]?[0-9]{4}){2}(?![0-9A-Za-z.,])"),
    # international: +CC then groups (one may be in parentheses)
    re.compile(r"(?<![0-9A-Za-z+])\+[1-9][0-9]{0,2}(?:[\s.-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,5}(?![0-9A-Za-z])"),
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567
    re.compile(r"(?<![0-9A-Za-z+.,/:-])(?:\([0-9]{3}\)\s?|[0-9]{3}[.-])[0-9]{3}[.-][0-9]{4}(?![0-9A-Za-z.,])"),
    # national with a trunk 0: 010-12345678, 0755-8888 8888, 020 7946 0958, 07700 900123
    re.compile(_NUM_B + r"0[1-9][0-9]{1,4}[\s-][0-9]{3,4}(?:[\s-]?[0-9]{3,4})?(?![0-9A-Za-z.,])"),
)
_LONG_DIGITS = (
    re.compile(_NUM_B + r"[0-9]{13,19}(?![0-9A-Za-z.,])"),
    re.compile(_NUM_B + r"[0-9]{4,6}(?:[ -][0-9]{3,6}){2,4}(?![0-9A-Za-z.,])"),
)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


class Span(NamedTuple):
    """One replaced piece of the original text: ``text[start:end]`` was of type ``kind``."""

    start: int
    end: int
    kind: str


@dataclasses.dataclass(frozen=True)
class AnonymizationReport:
    """What :func:`anonymize` replaced.

    Attributes:
      counts: replacements per type, every type of :data:`KINDS` present (0 if none).
      spans: the replaced spans of the *original* text, in text order.
    """

    counts: Mapping[str, int]
    spans: tuple[Span, ...]

    @property
    def total(self) -> int:
        """All replacements."""
        return sum(self.counts.values())


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check that payment card numbers satisfy.

    Args:
      digits: the number; spaces and dashes are ignored.

    Returns:
      ``True`` if the check digit is right.

    Example:
      >>> luhn_valid("4111 1111 1111 1111"), luhn_valid("4111 1111 1111 1112")
      (True, False)
    """
    digits = re.sub(r"[\s-]", "", digits)
    if not digits.isdigit():
        raise ValueError(f"not a digit string: {digits!r}")
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_valid_cn_id(number: str, *, today: datetime.date | None = None) -> bool:
    """Whether an 18-character Chinese resident ID has a real birth date and the right check character.

    The check character is ISO 7064 MOD 11-2: ``"10X98765432"[Σ d_i·w_i mod 11]`` with weights
    ``w = 2^(17-i) mod 11`` over the first 17 digits. The birth date (characters 7–14) must be a
    real date between 1900-01-01 and ``today``.

    Args:
      number: the 18 characters (``X`` or ``x`` allowed last).
      today: the latest allowed birth date (default: today).

    Returns:
      ``True`` if both checks pass.

    Example:
      >>> is_valid_cn_id("11010519491231002X"), is_valid_cn_id("110105194912310021")
      (True, False)
    """
    if not re.fullmatch(r"[0-9]{17}[0-9Xx]", number):
        return False
    try:
        born = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if not datetime.date(1900, 1, 1) <= born <= (today or datetime.date.today()):
        return False
    check = _ID_CHECK[sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS)) % 11]
    return number[17].upper() == check


def _digit_count(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def _candidates(text: str) -> Iterable[Span]:
    """Every match of every pattern, validated and typed, in order of priority."""
    for m in _URL.finditer(text):
        end = m.end()
        while end > m.start() and text[end - 1] in ".,;:!?)]}'\"":  # sentence punctuation after a URL
            end -= 1
        yield Span(m.start(), end, "URL")
    for m in _EMAIL.finditer(text):
        yield Span(m.start(), m.end(), "EMAIL")
    for m in _CN_ID.finditer(text):
        if is_valid_cn_id(m.group()):
            yield Span(m.start(), m.end(), "CN_ID")
    for pattern in _PHONES:
        for m in pattern.finditer(text):
            if 7 <= _digit_count(m.group()) <= 15:
                yield Span(m.start(), m.end(), "PHONE")
    for pattern in _LONG_DIGITS:
        for m in pattern.finditer(text):
            if 13 <= _digit_count(m.group()) <= 19:
                yield Span(m.start(), m.end(), "CARD" if luhn_valid(m.group()) else "DIGITS")


def anonymize(text: str, *, kinds: Iterable[str] = KINDS) -> tuple[str, AnonymizationReport]:
    """Replace personal data in ``text`` with typed placeholders (``<EMAIL>``, ``<PHONE>``, …).

    Args:
      text: any text (Chinese, English or mixed).
      kinds: the types to replace (default: all of :data:`KINDS`).

    Returns:
      ``(anonymised_text, report)``; ``report.spans`` index the original ``text``.

    Example:
      >>> out, report = anonymize("联系张先生：13812345678，邮箱 zhang@example.com，2024年3月15日前付款¥1,299.00")
      >>> out
      '联系张先生：<PHONE>，邮箱 <EMAIL>，2024年3月15日前付款¥1,299.00'
      >>> report.counts["PHONE"], report.counts["EMAIL"], report.total, report.spans[0]
      (1, 1, 2, Span(start=6, end=17, kind='PHONE'))
    """
    if not isinstance(text, str):
        raise TypeError(f"anonymize takes a string; got {type(text).__name__}")
    kinds = tuple(kinds)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown kind(s) {', '.join(unknown)}; expected some of {', '.join(KINDS)}")
    taken: list[Span] = []
    for span in _candidates(text):
        if span.kind in kinds and span.end > span.start and all(
                span.end <= s.start or span.start >= s.end for s in taken):
            taken.append(span)
    taken.sort()
    pieces, last = [], 0
    for s in taken:
        pieces += [text[last:s.start], f"<{s.kind}>"]
        last = s.end
    pieces.append(text[last:])
    counts = {k: 0 for k in KINDS}
    for s in taken:
        counts[s.kind] += 1
    return "".join(pieces), AnonymizationReport(counts, tuple(taken))


class _AnonymizeBatch:
    """``datasets.map`` function (a class, so that ``datasets`` can fingerprint and cache it)."""

    def __init__(self, column: str, kinds: tuple[str, ...]):
        self.column, self.kinds = column, kinds

    def __call__(self, batch: Mapping[str, list]) -> dict[str, list]:
        texts, counts = [], {k: [] for k in KINDS}
        for i, text in enumerate(batch[self.column]):
            if not isinstance(text, str):
                raise TypeError(f"column {self.column!r}: row value {text!r} is not a string")
            out, report = anonymize(text, kinds=self.kinds)
            texts.append(out)
            for k in KINDS:
                counts[k].append(report.counts[k])
        return {self.column: texts, **{f"__anon_{k}": v for k, v in counts.items()}}


def anonymize_dataset(dataset, column: str = "text", *, kinds: Iterable[str] = KINDS,
                      num_proc: int | None = None) -> tuple[Any, dict[str, Any]]:
    """:func:`anonymize` over a text column of a ``datasets.Dataset`` (``Dataset.map``, batched).

    Args:
      dataset: a ``datasets.Dataset``.
      column: the text column.
      kinds: the types to replace.
      num_proc: processes for ``map``.

    Returns:
      ``(dataset, report)``: the dataset with the column anonymised (other columns unchanged),
      and ``{"counts": {kind: total}, "rows": n, "rows_changed": m}``.

    Example:
      >>> import datasets
      >>> ds = datasets.Dataset.from_dict({"text": ["call +44 20 7946 0958", "great film", "mail a@b.org"],
      ...                                  "label": [0, 1, 1]})
      >>> ds, report = anonymize_dataset(ds)
      >>> ds["text"][:], report["counts"]["PHONE"], report["rows_changed"]
      (['call <PHONE>', 'great film', 'mail <EMAIL>'], 1, 2)
    """
    import numpy as np

    if column not in dataset.column_names:
        raise ValueError(f"no column {column!r}; the dataset has {', '.join(dataset.column_names)}")
    kinds = tuple(kinds)
    anonymize("", kinds=kinds)  # validates kinds
    mapped = dataset.map(_AnonymizeBatch(column, kinds), batched=True, num_proc=num_proc,
                         desc=f"anonymising {column!r}")
    count_columns = [f"__anon_{k}" for k in KINDS]
    table = mapped.select_columns(count_columns).with_format("numpy")[:]
    per_row = np.stack([np.asarray(table[c], np.int64) for c in count_columns], 1) if len(mapped) else \
        np.zeros((0, len(KINDS)), np.int64)  # (rows, kinds)
    report = {
        "counts": {k: int(per_row[:, i].sum()) for i, k in enumerate(KINDS)},
        "rows": len(mapped),
        "rows_changed": int((per_row.sum(1) > 0).sum()),
    }
    return mapped.remove_columns(count_columns), report

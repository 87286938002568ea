"""The language the exercise checks answer in: English, or a translation from ``locales/``.

A translated notebook's first code cell sets ``LSTMJAX_LANGUAGE`` (``"zh_CN"``); every message a
checker writes goes through :func:`tr`, which looks it up in the gettext catalogs
``lstmjax/course/locales/<language>/LC_MESSAGES/*.po`` (one per module of :mod:`lstmjax.course`,
made and checked by ``python docs/i18n.py``, as the site's catalogs are) and fills in its
``{fields}``. A message with no translation (new, or changed since it was translated) is written
in English.
"""

from __future__ import annotations

import functools
import os
import pathlib

LANGUAGE_VARIABLE = "LSTMJAX_LANGUAGE"
"""The environment variable that holds the language of the checks' messages (unset: English)."""
LOCALES = pathlib.Path(__file__).resolve().parent / "locales"


def languages() -> list[str]:
    """The languages the checks can answer in: English and every language with catalogs.

    Example:
      >>> languages()[:2]
      ['en', 'zh_CN']
    """
    found = sorted(p.name for p in LOCALES.iterdir() if (p / "LC_MESSAGES").is_dir()) if LOCALES.is_dir() else []
    return ["en", *found]


def language() -> str:
    """The language the checks answer in now: ``$LSTMJAX_LANGUAGE``, or ``"en"``.

    Raises:
      ValueError: the variable names a language the course has no messages in.

    Example:
      >>> import os
      >>> os.environ.pop("LSTMJAX_LANGUAGE", None) and None
      >>> language()
      'en'
    """
    value = os.environ.get(LANGUAGE_VARIABLE, "").strip() or "en"
    if value not in languages():
        raise ValueError(f"{LANGUAGE_VARIABLE}={value!r}: the exercise checks answer in {', '.join(languages())}")
    return value


@functools.lru_cache(maxsize=8)
def _table(language: str, stamp: tuple) -> dict[str, str]:
    """``{English: translation}`` from every catalog of ``language`` (translated, not fuzzy)."""
    try:
        from babel.messages.pofile import read_po
    except ImportError:  # pragma: no cover - babel comes with the tutorials extra
        raise ImportError(f'the exercise checks in {language} read their catalogs with babel: '
                          'pip install -e ".[tutorials]"') from None
    table = {}
    for path in sorted((LOCALES / language / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as f:
            table.update({m.id: m.string for m in read_po(f) if isinstance(m.id, str) and m.id and m.string
                          and not m.fuzzy})
    return table


def tr(message: str, /, **fields) -> str:
    """``message`` in the checks' language, with ``fields`` filled in (``str.format``).

    ``message`` is the English text, a ``str.format`` string; it is also the key of its
    translation, so write it as a literal (``python docs/i18n.py update`` collects them).

    Example:
      >>> tr("got {got:,}, expected {want:,}.", got=1000, want=2000)
      'got 1,000, expected 2,000.'
    """
    lang = language()
    if lang != "en":
        folder = LOCALES / lang / "LC_MESSAGES"
        stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.po")))
        message = _table(lang, stamp).get(message, message)
    return message.format(**fields) if fields else message

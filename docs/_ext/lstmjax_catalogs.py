"""The translation catalogs: where each one lives, which are declared translated, how complete each is.

The English text is the source; every other language lives in gettext catalogs (``.po`` files),
one message per paragraph, heading, list item or table cell, so nothing but the prose is ever
duplicated. A catalog has a name:

* a page of the site, by its docname (``index``, ``glossary``, ``tutorials/01_background``,
  ``tutorials/solutions/01_background``, ``api/nn``): ``docs/locales/<lang>/LC_MESSAGES/<docname>.po``,
  written by Sphinx's gettext builder and ``sphinx-intl`` (``python docs/i18n.py update``);
* ``site``: the text the site's extension writes itself (a tutorial's banner, the "not translated
  yet" note, the language switch): ``docs/locales/<lang>/LC_MESSAGES/site.po``, extracted from the
  ``tr("...")`` calls in ``docs/_ext``;
* ``course/<module>``: the messages of the exercise checkers in ``lstmjax/course/<module>.py``:
  ``lstmjax/course/locales/<lang>/LC_MESSAGES/<module>.po`` (shipped with the package, read by
  :mod:`lstmjax.course` when a notebook sets ``LSTMJAX_LANGUAGE``).

``docs/locales/<lang>/TRANSLATED`` lists the catalogs declared translated. CI fails when one of
those has an untranslated or fuzzy (outdated) message or a message whose translation lost a code
span, a formula, a link target or a ``{placeholder}``; the site marks every page whose catalog is
incomplete with a "not translated yet" note.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re
import string
from collections.abc import Callable

DOCS = pathlib.Path(__file__).resolve().parents[1]
REPO = DOCS.parent
LOCALES = DOCS / "locales"
COURSE_LOCALES = REPO / "lstmjax" / "course" / "locales"
LANGUAGES = {"en": "English", "zh_CN": "中文"}
"""The site's languages (English is the source), with the name each is shown by in the switch."""
SITE = "site"
NO_TRANSLATE = "lstmjax-no-translate"
"""A class that keeps an element's text out of the catalogs (the API summaries, the banner)."""


def catalog_path(name: str, language: str, locales: pathlib.Path | None = None) -> pathlib.Path:
    """The ``.po`` file of catalog ``name`` in ``language`` (it may not exist yet); ``locales`` is
    the site's folder of catalogs (default :data:`LOCALES`)."""
    if name.startswith("course/"):
        return COURSE_LOCALES / language / "LC_MESSAGES" / f"{name.removeprefix('course/')}.po"
    return (locales or LOCALES) / language / "LC_MESSAGES" / f"{name}.po"


def catalog_names(language: str, locales: pathlib.Path | None = None) -> list[str]:
    """Every catalog of ``language`` there is: the pages', ``site`` and the course's, sorted."""
    pages = (locales or LOCALES) / language / "LC_MESSAGES"
    course = COURSE_LOCALES / language / "LC_MESSAGES"
    names = [p.relative_to(pages).with_suffix("").as_posix() for p in pages.rglob("*.po")] if pages.is_dir() else []
    names += [f"course/{p.stem}" for p in course.glob("*.po")] if course.is_dir() else []
    return sorted(names)


def declared(language: str, locales: pathlib.Path | None = None) -> list[str]:
    """The catalogs ``docs/locales/<language>/TRANSLATED`` declares translated (``#`` starts a comment)."""
    path = (locales or LOCALES) / language / "TRANSLATED"
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def read_catalog(path: pathlib.Path):
    """A ``.po`` file as a :class:`babel.messages.catalog.Catalog`, with a clear error when it is broken."""
    from babel.messages.pofile import PoFileError, read_po

    try:
        with path.open("rb") as f:
            return read_po(f, abort_invalid=True)
    except (PoFileError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable .po file: {error}") from None


@functools.lru_cache(maxsize=256)
def _messages(path: pathlib.Path, mtime_ns: int) -> dict[str, str]:
    catalog = read_catalog(path)
    return {m.id: m.string for m in catalog if m.id and m.string and not m.fuzzy and isinstance(m.id, str)}


def messages(name: str, language: str, locales: pathlib.Path | None = None) -> dict[str, str]:
    """``{English: translation}`` of catalog ``name``: translated messages only, never fuzzy ones."""
    path = catalog_path(name, language, locales)
    return _messages(path, path.stat().st_mtime_ns) if path.is_file() else {}


def site_translator(language: str, locales: pathlib.Path | None = None) -> Callable[[str], str]:
    """``tr(english) -> text in language``, from the ``site`` catalog (English where it has none)."""
    table = {} if language == "en" else messages(SITE, language, locales)
    return lambda text: table.get(text, text)


# --------------------------------------------------------------------------- what needs a translation

_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)  # inline code, and a role's target: {doc}`x`
_ROLE = re.compile(r"\{[\w:.-]+\}(?=`)")
_MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.DOTALL)
_LINK_TARGET = re.compile(r"\]\(([^)\s]*)\)")
_DOTTED_NAME = re.compile(r"^[A-Za-z_]\w*(\.\w+)+$")


def needs_translation(message: str) -> bool:
    """Whether an English message has words to translate.

    Not when, outside code, roles, formulas and link targets, it has no Latin letter (numbers,
    symbols, code, the document's Chinese quoted verbatim), nor when it is a dotted Python name
    (``lstmjax.nn.cells``). Such messages are not put in the catalogs.

    Example:
      >>> needs_translation("The forget gate $f_t$"), needs_translation("`lstm_step`, $4H$: 95 %")
      (True, False)
      >>> needs_translation("大模型（large model）"), needs_translation("遗忘门"), needs_translation("lstmjax.nn")
      (True, False, False)
    """
    text = _LINK_TARGET.sub("]", _MATH.sub(" ", _CODE.sub(" ", _ROLE.sub("", message))))
    return bool(re.search(r"[A-Za-z]", text)) and not _DOTTED_NAME.match(message.strip())


# --------------------------------------------------------------------------- completeness


def _fields(text: str) -> set[str]:
    """The ``{name}`` fields of a ``str.format`` message (an unparsable one has the field ``?``)."""
    try:
        return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError:
        return {"?"}


def kept_parts(message: str) -> set[str]:
    """What a translation must keep as it is: inline code, roles' targets, formulas, link targets.

    A role's text may be translated (``{doc}`课程 <tutorials/index>```), its target not.

    Example:
      >>> sorted(kept_parts("Use `fit` on $x_t$ ([docs](a.md#b)), see {doc}`the course <tutorials/index>`"))
      ['$x_t$', '[a.md#b]', '`fit`', '{doc}tutorials/index']
    """
    parts = set()
    for match in _CODE.finditer(message):
        role = re.search(r"\{[\w:.-]+\}$", message[: match.start()])
        if role:
            target = re.search(r"<([^<>]+)>\s*$", match.group(2))
            parts.add(role.group(0) + (target.group(1) if target else match.group(2)).strip())
        else:
            parts.add(match.group(0))
    parts |= {m.group(0) for m in _MATH.finditer(_CODE.sub(" ", message))}
    parts |= {f"[{m.group(1)}]" for m in _LINK_TARGET.finditer(message)}
    return parts


_BLOCK_START = re.compile(r"^(\d{1,9}[.)]|[-+*>])(\s|$)")
"""A line that Markdown reads as a list item or a quote when it starts a message on its own."""


def problems_of(msgid: str, msgstr: str, *, format_fields: bool, markdown: bool = False) -> list[str]:
    """What a translation lost or changed that must stay as it is (empty when it is fine).

    ``markdown``: the message is a page's Markdown, which Sphinx parses on its own when it puts the
    translation in place; one that starts like a list item (``1. ...``, the tutorials' numbered
    headings) would become a list and be dropped, so it must escape the marker (``1\\. ...``).
    """
    found = []
    if markdown and _BLOCK_START.match(msgstr):
        found.append(f"starts with {msgstr.split()[0]!r}, which Markdown reads as a list: escape it "
                     f"({msgstr.split()[0][:-1]}\\{msgstr.split()[0][-1]})")
    missing = sorted(kept_parts(msgid) - set(kept_parts(msgstr)))
    if missing:
        found.append(f"keeps not {', '.join(missing)}")
    if format_fields and _fields(msgid) != _fields(msgstr):
        found.append(f"has the fields {sorted(_fields(msgstr))}, the English {sorted(_fields(msgid))}")
    return found


@dataclasses.dataclass(frozen=True)
class Stats:
    """How complete one catalog is (``msgfmt --statistics`` counts, and what is wrong)."""

    name: str
    translated: int
    fuzzy: int
    untranslated: int
    obsolete: int
    problems: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.translated + self.fuzzy + self.untranslated

    @property
    def complete(self) -> bool:
        return not (self.fuzzy or self.untranslated or self.problems)

    def line(self) -> str:
        """``msgfmt --statistics`` style: ``12 translated messages, 1 fuzzy translation, 3 untranslated messages.``"""
        parts = [f"{self.translated} translated message{'s' * (self.translated != 1)}"]
        if self.fuzzy:
            parts.append(f"{self.fuzzy} fuzzy translation{'s' * (self.fuzzy != 1)}")
        if self.untranslated:
            parts.append(f"{self.untranslated} untranslated message{'s' * (self.untranslated != 1)}")
        if self.problems:
            parts.append(f"{len(self.problems)} with a problem")
        return ", ".join(parts) + "."


def stats(name: str, language: str) -> Stats:
    """Count the messages of catalog ``name`` in ``language`` and check each translation.

    A translation must keep the English message's inline code, formulas and link targets, and
    (in the ``site`` and ``course/...`` catalogs, whose messages are ``str.format`` strings) its
    ``{fields}``. A missing catalog has no messages (and cannot be complete if declared).
    """
    path = catalog_path(name, language)
    if not path.is_file():
        return Stats(name, 0, 0, 0, 0, (f"{path.relative_to(REPO)} does not exist",))
    catalog = read_catalog(path)
    translated = fuzzy = untranslated = 0
    problems = []
    format_fields = name == SITE or name.startswith("course/")
    for message in catalog:
        if not message.id:
            continue  # the header
        if message.fuzzy:
            fuzzy += 1
        elif not message.string:
            untranslated += 1
        else:
            translated += 1
            for problem in problems_of(message.id, message.string, format_fields=format_fields,
                                       markdown=not format_fields):
                problems.append(f"{short(message.id)!r} {problem}")
    return Stats(name, translated, fuzzy, untranslated, len(catalog.obsolete), tuple(problems))


def short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def incomplete_messages(name: str, language: str) -> list[str]:
    """The English text of the untranslated and fuzzy messages of a catalog (shortened), to list."""
    path = catalog_path(name, language)
    if not path.is_file():
        return []
    return [("fuzzy: " if m.fuzzy else "untranslated: ") + short(m.id)
            for m in read_catalog(path) if m.id and (m.fuzzy or not m.string)]

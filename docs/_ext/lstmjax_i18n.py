"""Sphinx extension for the site's languages: what goes into the catalogs, what a translated page
shows, and the language switch.

The English pages are the source. ``python docs/build.py`` builds the site once per language
(``-D language=zh_CN``, into ``docs/_build/html/<language>/``); Sphinx's gettext machinery
translates each page from ``docs/locales/<language>/LC_MESSAGES/<docname>.po``
(:mod:`lstmjax_catalogs`). This extension

* keeps out of the catalogs what is not the page's prose (:class:`KeepEnglish`, before Sphinx
  translates): the API entries (docstrings stay English), the notebooks' outputs, the
  tutorials' banner (written in the build's language by the ``lstmjax-banner`` directive), a
  glossary table's "English" column, and messages with no words to translate (code, numbers, the
  document's Chinese quoted verbatim);
* records, for each page of a translated build, the messages it has no translation for, warns
  (an error under ``-W``) when a page declared translated in ``docs/locales/<language>/TRANSLATED``
  has any, and puts a "not translated yet" note on every page that has some;
* adds a language switch to every page's header that lands on the same page in the other language.
"""

from __future__ import annotations

import pathlib

import lstmjax_catalogs as catalogs
from docutils import nodes
from sphinx import addnodes
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx.util.nodes import extract_messages, is_translatable

logger = logging.getLogger(__name__)

UNTRANSLATED_CLASS = "lstmjax-untranslated"
"""The class of the "not translated yet" note (the browser test looks for it)."""
ENGLISH_CLASS = "lstmjax-english"
"""A paragraph that stays English in every language (a docstring, a formula, a line of code)."""


def _has_class(node: nodes.Node, name: str) -> bool:
    while node is not None:
        if isinstance(node, nodes.Element) and name in node.get("classes", ()):
            return True
        node = node.parent
    return False


def _inside(node: nodes.Node, kind) -> bool:
    while node is not None:
        if isinstance(node, kind):
            return True
        node = node.parent
    return False


def _english_columns(table: nodes.table) -> set[nodes.Element]:
    """The cells of a table's columns headed "English" (a bilingual table's English terms)."""
    head = next(iter(table.findall(nodes.thead)), None)
    if head is None:
        return set()
    first_row = next(iter(head.findall(nodes.row)), None)
    columns = [i for i, entry in enumerate(first_row.children) if entry.astext().strip() == "English"]
    cells = set()
    for row in table.findall(nodes.row):
        cells.update(row.children[i] for i in columns if i < len(row.children))
    return cells


def keeps_english(node: nodes.Element) -> bool:
    """Whether a translatable node's text stays English in every language (and out of the catalogs)."""
    source = node.source or ""
    if ":docstring of " in source or _inside(node, addnodes.desc):  # the API entries: docstrings
        return True
    if isinstance(node, (nodes.math_block, nodes.literal_block, nodes.raw)):  # formulas, code
        return True
    if _has_class(node, catalogs.NO_TRANSLATE) or _has_class(node, "cell_output"):
        return True
    for found, message in extract_messages(node):
        if found is node:
            return not catalogs.needs_translation(message)
    return False


class KeepEnglish(SphinxTransform):
    """Mark what stays English as not translatable, before Sphinx translates (``Locale``, priority 20)
    and before the gettext builder collects the messages."""

    default_priority = 15

    def apply(self, **kwargs) -> None:
        english_cells = set()
        for table in self.document.findall(nodes.table):
            english_cells |= _english_columns(table)
        for node in list(self.document.findall(is_translatable)):
            if not isinstance(node, nodes.TextElement):
                continue
            if keeps_english(node) or any(cell in english_cells for cell in _ancestors(node)):
                node["translatable"] = False
                if isinstance(node, nodes.paragraph):  # the browser test tells English prose kept on purpose
                    node["classes"].append(ENGLISH_CLASS)


def _ancestors(node: nodes.Node):
    while node is not None:
        yield node
        node = node.parent


def _is_translated_build(app) -> bool:
    return app.config.language != "en" and app.builder.name != "gettext"


def record_untranslated(app, doctree: nodes.document) -> None:
    """``doctree-read``: the messages of the page that have no translation (after Sphinx translated it)."""
    if not _is_translated_build(app):
        return
    # Sphinx translates an image's alt text in place without marking the node translated: it is
    # done when its text is now one of the catalog's translations.
    translations = set(catalogs.messages(app.env.docname, app.config.language, locales_dir(app)).values())
    found = [(message, bool(node.get("translated")) or (isinstance(node, nodes.image) and message in translations))
             for node, message in extract_messages(doctree)]
    app.env.lstmjax_untranslated[app.env.docname] = ([m for m, done in found if not done], len(found))


def _purge(app, env, docname: str) -> None:
    env.lstmjax_untranslated.pop(docname, None)


def _merge(app, env, docnames, other) -> None:
    env.lstmjax_untranslated.update({d: other.lstmjax_untranslated[d] for d in docnames
                                     if d in other.lstmjax_untranslated})


def _init_env(app) -> None:
    if not hasattr(app.env, "lstmjax_untranslated"):
        app.env.lstmjax_untranslated = {}


def locales_dir(app) -> pathlib.Path:
    return pathlib.Path(app.srcdir) / app.config.locale_dirs[0]


def check_declared(app, env) -> None:
    """``env-check-consistency``: every page declared translated has a translation for each message."""
    if not _is_translated_build(app):
        return
    language = app.config.language
    declared_file = locales_dir(app) / language / "TRANSLATED"
    for name in catalogs.declared(language, locales_dir(app)):
        if name == catalogs.SITE or name.startswith("course/"):
            continue  # not a page: docs/i18n.py check counts their messages
        if name not in env.all_docs:
            logger.warning(f"{declared_file} declares {name!r} translated, and the site has no such page",
                           type="lstmjax", subtype="i18n")
            continue
        missing, _ = env.lstmjax_untranslated.get(name, ([], 0))
        if missing:
            shown = "\n  ".join(catalogs.short(m) for m in missing[:5])
            logger.warning(
                f"{name} is declared translated ({declared_file}), but {len(missing)} of its messages have "
                f"no {language} translation (a new or changed English text: update the catalogs with "
                f"`python docs/i18n.py update`, then translate what is new or fuzzy):\n  {shown}",
                location=name, type="lstmjax", subtype="i18n")


def note_untranslated(app, doctree: nodes.document, docname: str) -> None:
    """``doctree-resolved``: a "not translated yet" note at the top of a page with English left in it."""
    if not _is_translated_build(app):
        return
    missing, total = app.env.lstmjax_untranslated.get(docname, ([], 0))
    if not missing:
        return
    tr = catalogs.site_translator(app.config.language, locales_dir(app))
    text = tr("This page is not fully translated yet: {missing} of its {total} passages are still "
              "in English, as written in the source.").format(missing=len(missing), total=total)
    note = nodes.admonition("", nodes.title("", tr("Not translated yet")), nodes.paragraph("", text),
                            classes=["attention", UNTRANSLATED_CLASS])
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is not None and section.children and isinstance(section[0], nodes.title):
        section.insert(1, note)
    else:
        doctree.insert(0, note)


def language_switch(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context``: links to this page in every language (``lstmjax-language.html``)."""
    up = "../" * (pagename.count("/") + 1)
    suffix = app.builder.out_suffix
    tr = catalogs.site_translator(app.config.language, locales_dir(app))
    links = [{"code": code, "label": label, "href": f"{up}{code}/{pagename}{suffix}",
              "hreflang": code.replace("_", "-"), "current": code == app.config.language}
             for code, label in catalogs.LANGUAGES.items()]
    context["lstmjax_languages"] = links
    context["lstmjax_languages_label"] = tr("Language")
    context["metatags"] = context.get("metatags", "") + "".join(
        f'\n<link rel="alternate" hreflang="{link["hreflang"]}" href="{link["href"]}" />' for link in links)


def _chinese_search():
    """Sphinx's Chinese search, with a stemmer its page script can find.

    Sphinx 9.0's ``SearchChinese`` stems the Latin words of a Chinese page with the English
    stemmer but writes ``window.Stemmer = ChineseStemmer`` into ``language_data.js``, a class no
    script defines: every page of the Chinese site logged "ChineseStemmer is not defined" (the
    browser test fails on it) and the search box did nothing. This one ships the English stemmer
    under its own name.
    """
    import sphinx.search
    from sphinx.search.zh import SearchChinese

    class ChineseSearch(SearchChinese):
        js_stemmer_rawcode = ""  # so Sphinx takes js_stemmer_code as it is

        @property
        def js_stemmer_code(self) -> str:
            folder = sphinx.search._MINIFIED_JS_PATH
            return "\n".join([(folder / "base-stemmer.js").read_text(encoding="utf-8"),
                              (folder / "english-stemmer.js").read_text(encoding="utf-8"),
                              "window.Stemmer = EnglishStemmer;"])

    return ChineseSearch


def use_chinese_search(app) -> None:
    """``builder-inited``: the Chinese site's search uses :func:`_chinese_search`'s language."""
    import sphinx.search

    if app.config.language.startswith("zh"):
        sphinx.search.languages["zh"] = _chinese_search()


EVENTS = {
    "builder-inited": _init_env, "doctree-read": record_untranslated, "env-purge-doc": _purge,
    "env-merge-info": _merge, "env-check-consistency": check_declared, "doctree-resolved": note_untranslated,
    "html-page-context": language_switch,
}
"""Sphinx's events and what this extension does on each."""


def setup(app):
    app.add_transform(KeepEnglish)
    app.connect("builder-inited", use_chinese_search)
    for event, handler in EVENTS.items():
        app.connect(event, handler)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}

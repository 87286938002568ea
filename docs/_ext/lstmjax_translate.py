"""Translate a tutorial's markdown, cell by cell, from the site's catalogs: the translated notebooks.

Sphinx makes one message of each paragraph, heading, list item, term and table cell of a page:
the block's Markdown source as MyST's parser (markdown-it) reads it. :func:`translate_markdown`
parses a markdown cell with the same parser, looks each block up in the page's catalog and writes
the translation in its place, leaving everything else (code cells, code blocks, formulas, HTML,
the list markers, the table rules) as it is. So a translated notebook has the English notebook's
code cells, and the translations come from the same ``.po`` files as the site's.

:func:`translate_notebook` is the one step that makes a notebook in another language: the Chinese
tutorials (``python docs/i18n.py notebooks``), the site's Chinese downloads, and any notebook made
from a tutorial's cells (a student copy without the solutions) that keeps its markdown cells.
"""

from __future__ import annotations

import copy
import functools
import pathlib
import re

import lstmjax_catalogs as catalogs
from lstmjax_links import DOCS, REPO, STAGE, TUTORIALS, relocate_links, rewrite_links

MYST_EXTENSIONS = ("dollarmath", "amsmath", "colon_fence", "deflist", "substitution")
"""MyST's syntax extensions, for the site (``docs/conf.py``) and for reading a cell here alike."""
ADMONITIONS = {"note", "tip", "hint", "important", "warning", "caution", "attention", "danger", "error", "seealso"}
"""Directives whose body is Markdown the site translates (a code block's body is never translated)."""
LANGUAGE_VARIABLE = "LSTMJAX_LANGUAGE"
"""The environment variable :mod:`lstmjax.course` reads its language from (set by a translated notebook)."""


@functools.cache
def _parser():
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    return create_md_parser(MdParserConfig(enable_extensions=set(MYST_EXTENSIONS)), RendererHTML)


def message_of(content: str) -> str:
    """The message Sphinx extracts for a block whose inline source is ``content``: one line, without
    the backslashes of hard line breaks (as ``sphinx.util.nodes.extract_messages`` makes it)."""
    lines = [re.sub(r"[ \t]*\\[ \t]*$", "", line) for line in content.split("\n")]
    return " ".join(lines).strip()


def _escape_cell(text: str) -> str:
    return re.sub(r"(?<!\\)\|", r"\\|", text.replace("\n", " "))


def _block_lines(lines: list[str], start: int, end: int, content: str, new: str) -> list[str]:
    """The lines ``lines[start:end]`` of a block whose text is ``content``, with ``new`` instead,
    each line keeping its prefix (indentation, list marker, ``>``)."""
    first = content.split("\n", 1)[0]
    at = lines[start].find(first)
    if at < 0:
        raise ValueError(f"cannot find {first!r} on its line {lines[start]!r}")
    prefix = lines[start][:at]
    following = re.sub(r"[^\s>]", " ", prefix)  # "- " -> "  ", "> " -> "> ", "1. " -> "   "
    suffix = lines[start][at + len(first):] if end - start == 1 else ""  # "## Title ##"
    new_lines = new.split("\n")
    return [prefix + new_lines[0] + suffix] + [following + line for line in new_lines[1:]]


def _replace_cells(line: str, contents: list[str], new: list[str]) -> str:
    """Replace the text of a table row's cells (``| a | b |``) by ``new``, cell by cell."""
    cells = re.split(r"(?<!\\)\|", line)
    inner = cells[1:-1] if line.strip().startswith("|") else cells
    columns = []
    for i, cell in enumerate(inner):
        if i < len(contents) and contents[i] != new[i]:
            lead = cell[: len(cell) - len(cell.lstrip())] or " "
            trail = cell[len(cell.rstrip()):] or " "
            cell = lead + _escape_cell(new[i]) + trail
        columns.append(cell)
    return "|".join([cells[0], *columns, cells[-1]] if line.strip().startswith("|") else columns)


class _Translation:
    """What :func:`translate_markdown` met: the messages it used and those the catalog lacked."""

    def __init__(self, table: dict[str, str]):
        self.table, self.used, self.missing = table, [], []

    def __call__(self, content: str) -> str:
        message = message_of(content)
        if not catalogs.needs_translation(message):
            return content
        self.used.append(message)
        if message not in self.table:
            self.missing.append(message)
            return content
        return self.table[message]


def _directive_body(token) -> tuple[int, str] | None:
    """For a fenced admonition (```` ```{note} ```` or ``:::{note}``): the number of option lines
    (``:class: x``) before its Markdown body, and the body; None for any other fence."""
    name = (token.info or "").strip().split(maxsplit=1)
    if not name or not (name[0].startswith("{") and name[0].endswith("}")) or name[0][1:-1] not in ADMONITIONS:
        return None
    body = token.content.split("\n")
    options = 0
    while options < len(body) and re.match(r"^:[\w-]+:", body[options]):
        options += 1
    return options, "\n".join(body[options:])


def _translate(text: str, translate: _Translation) -> str:
    lines = text.split("\n")
    edits = []  # (start, end, replacement lines), applied from the bottom up
    tokens = _parser().parse(text)
    row, in_head, english = None, False, set()
    for i, token in enumerate(tokens):
        if token.type in ("thead_open", "thead_close"):
            in_head = token.type == "thead_open"
        elif token.type == "table_open":
            english = set()
        elif token.type == "tr_open":
            row = (token.map[0], [])
        elif token.type == "tr_close" and row is not None:
            start, contents = row
            if in_head:  # a bilingual table's "English" column stays English (as lstmjax_i18n keeps it)
                english = {j for j, content in enumerate(contents) if content.strip() == "English"}
            new = [content if j in english else translate(content) for j, content in enumerate(contents)]
            if contents != new:
                edits.append((start, start + 1, [_replace_cells(lines[start], contents, new)]))
            row = None
        elif token.type == "inline" and row is not None:
            row[1].append(token.content)
        elif token.type == "inline" and tokens[i - 1].type in ("paragraph_open", "heading_open", "dt_open"):
            new = translate(token.content)
            if new != token.content:
                start, end = tokens[i - 1].map
                end = max(end, start + 1)  # a term's map is empty
                edits.append((start, end, _block_lines(lines, start, end, token.content, new)))
        elif token.type in ("fence", "colon_fence") and token.level == 0 and _directive_body(token):
            options, body = _directive_body(token)
            new = _translate(body, translate)
            if new != body:
                start = token.map[0] + 1 + options
                edits.append((start, start + len(body.rstrip("\n").split("\n")), new.rstrip("\n").split("\n")))
    for start, end, replacement in sorted(edits, reverse=True):
        lines[start:end] = replacement
    return "\n".join(lines)


def translate_markdown(text: str, table: dict[str, str]) -> tuple[str, list[str], list[str]]:
    """Translate Markdown block by block with ``table`` (``{English message: translation}``).

    Returns the translated text, the messages met (in order) and those ``table`` has no
    translation for (left in English). A message with nothing to translate (code, numbers, the
    document's Chinese; :func:`lstmjax_catalogs.needs_translation`) is neither.

    Example:
      >>> text = "# The gates\\n\\n* the **forget** gate\\n  $f_t$\\n\\n| term | 中文 |\\n|---|---|\\n| cell state | 细胞状态 |"
      >>> table = {"The gates": "门", "the **forget** gate $f_t$": "**遗忘**门 $f_t$", "term": "术语"}
      >>> new, used, missing = translate_markdown(text, table)
      >>> print(new)
      # 门
      <BLANKLINE>
      * **遗忘**门 $f_t$
      <BLANKLINE>
      | 术语 | 中文 |
      |---|---|
      | cell state | 细胞状态 |
      >>> missing
      ['cell state']
    """
    translation = _Translation(table)
    return _translate(text, translation), translation.used, translation.missing


# --------------------------------------------------------------------------- notebooks


def docname_of(source: pathlib.Path) -> str:
    """The site's page (and catalog) of a tutorial: ``tutorials/solutions/01_background``."""
    return f"tutorials/{pathlib.Path(source).resolve().relative_to(TUTORIALS).with_suffix('').as_posix()}"


def notebooks_dir(language: str) -> pathlib.Path:
    """Where ``python docs/i18n.py notebooks`` writes a language's notebooks: ``tutorials/<language>``."""
    return TUTORIALS / language


def notebook_path(source: pathlib.Path, language: str, out_dir: pathlib.Path | None = None) -> pathlib.Path:
    """The translated notebook of a tutorial: ``tutorials/zh_CN/01_background.ipynb``, ``.../solutions/...``."""
    rel = pathlib.Path(source).resolve().relative_to(TUTORIALS).with_suffix(".ipynb")
    return (out_dir or notebooks_dir(language)) / rel


def language_cell_source(language: str) -> str:
    """The code cell a translated notebook starts with: it makes the exercise checks answer in ``language``."""
    tr = catalogs.site_translator(language)
    comment = tr("the exercise checks (lstmjax.course) answer in this language")
    return f'import os\n\nos.environ["{LANGUAGE_VARIABLE}"] = "{language}"  # {comment}'


def page_source(name: str) -> pathlib.Path | None:
    """The English source of a page written by hand (``docs/<name>.md``, a tutorial's ``.md``);
    None for the pages the build generates (the course and solutions indexes, the API pages)."""
    if name.startswith("tutorials/"):
        path = TUTORIALS / f"{name.removeprefix('tutorials/')}.md"
        return path if path.is_file() and path.stem != "index" else None
    path = DOCS / f"{name}.md"
    return path if path.is_file() and not name.startswith("api/") else None


def source_messages(source: pathlib.Path, table: dict[str, str], text: str | None = None) -> tuple[list[str], list[str]]:
    """The messages of a page's English source as the site reads it (its links pointed at the
    site's pages), and those ``table`` has no translation for. ``text`` stands for the content of
    the file ``source`` when given."""
    import jupytext

    source = pathlib.Path(source).resolve()
    text = source.read_text(encoding="utf-8") if text is None else text
    if source.is_relative_to(TUTORIALS):
        staged = STAGE / source.relative_to(TUTORIALS).with_suffix(".ipynb")
        texts = [rewrite_links(cell.source, source, staged) for cell in jupytext.reads(text, "md:myst").cells
                 if cell.cell_type == "markdown"]
    else:
        texts = [rewrite_links(text, source, source)]
    used, missing = [], []
    for text in texts:
        _, found, lacking = translate_markdown(text, table)
        used += found
        missing += lacking
    return used, missing


def translate_notebook(notebook, source: pathlib.Path, language: str, *, out_dir: pathlib.Path | None = None,
                       strict: bool = False):
    """The notebook ``notebook`` (cells of the tutorial ``source``) with its markdown in ``language``.

    Markdown cells are translated with the catalog of ``source``'s page; code cells are kept as they
    are; a first code cell (after the title cell) sets ``LSTMJAX_LANGUAGE``, so that
    ``course.check`` answers in ``language``. Links to other tutorials point at their translated
    notebooks in ``out_dir`` (default ``tutorials/<language>``), other links at the repository's
    files. ``metadata["lstmjax"]`` says the language and how many messages were left in English.

    Args:
      notebook: an ``nbformat`` notebook made from the tutorial (``jupytext.read(source)``, or a
        copy of it with some code cells changed, such as a student copy); it is not modified.
      source: the tutorial's ``.md`` under ``tutorials/``.
      language: a language with catalogs, such as ``"zh_CN"``.
      out_dir: where the translated notebooks are written (for the links between them).
      strict: raise ``ValueError`` if a message has no translation (for a page declared translated).

    Returns:
      the translated notebook.
    """
    import nbformat

    source = pathlib.Path(source).resolve()
    docname = docname_of(source)
    path = catalogs.catalog_path(docname, language)
    table = catalogs.messages(docname, language)
    staged = STAGE / source.relative_to(TUTORIALS).with_suffix(".ipynb")
    target = notebook_path(source, language, out_dir)

    def target_of(page: pathlib.Path) -> pathlib.Path | None:
        if page.is_relative_to(STAGE) and page.suffix == ".ipynb":  # another tutorial: its translation
            return (out_dir or notebooks_dir(language)) / page.relative_to(STAGE)
        return page

    result = copy.deepcopy(notebook)
    missing = []
    for cell in result.cells:
        if cell.cell_type == "markdown":
            text, _, lacking = translate_markdown(rewrite_links(cell.source, source, staged), table)
            missing += lacking
            cell.source = relocate_links(text, staged, target, target_of)
    if strict and missing:
        raise ValueError(
            f"{path.relative_to(REPO)} has no translation for {len(missing)} message(s) of {docname}, "
            f"the first: {missing[0][:200]!r} (update the catalogs: python docs/i18n.py update)"
        )
    first_markdown = next((i for i, cell in enumerate(result.cells) if cell.cell_type == "markdown"), -1)
    result.cells.insert(first_markdown + 1, nbformat.v4.new_code_cell(language_cell_source(language)))
    result.metadata["lstmjax"] = {"language": language, "source": source.relative_to(REPO).as_posix(),
                                  "untranslated": len(missing)}
    result.metadata.pop("jupytext", None)
    return result

"""The translations: catalogs complete where declared, kept in step with the English, the same in
the site and the notebooks, and the exercise checks answering in the notebook's language.

The site's own check (a page declared translated whose English changed fails the Chinese build)
runs on a one-page Sphinx project here; ``tests/test_docs_site.py`` opens the built Chinese site
in a browser.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
EXT = REPO / "docs" / "_ext"
LANGUAGE = "zh_CN"
CJK = re.compile(r"[\u4e00-\u9fff]")
TUTORIALS = sorted((REPO / "tutorials").glob("[0-9][0-9]_*.md")) + sorted(
    (REPO / "tutorials" / "solutions").glob("[0-9][0-9]_*.md"))


def _tools():
    """The docs' i18n modules (docs/_ext on the path) and the ``docs/i18n.py`` command as a module."""
    for module in ("babel", "myst_parser", "jupytext", "sphinx"):
        pytest.importorskip(module, reason='the translations need the docs extra (pip install -e ".[docs]")')
    if str(EXT) not in sys.path:
        sys.path.insert(0, str(EXT))
    import lstmjax_catalogs
    import lstmjax_translate

    spec = importlib.util.spec_from_file_location("lstmjax_i18n_command", REPO / "docs" / "i18n.py")
    command = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(command)
    return lstmjax_catalogs, lstmjax_translate, command


# --------------------------------------------------------------------------- the catalogs


def test_declared_catalogs_are_complete():
    """What CI checks: every catalog in docs/locales/zh_CN/TRANSLATED translates every message of
    its current English, none fuzzy, each keeping its code, formulas, links and fields."""
    catalogs, _, command = _tools()
    declared = catalogs.declared(LANGUAGE)
    assert {"index", "glossary", "tutorials/01_background", "tutorials/solutions/02_pipeline", "site",
            "course/t01"} <= set(declared)
    assert command.problems(LANGUAGE) == []
    for name in declared:
        stats = catalogs.stats(name, LANGUAGE)
        assert stats.complete and stats.translated > 0, f"{name}: {stats.line()}"


def test_every_page_and_checker_module_has_a_catalog():
    catalogs, translate, _ = _tools()
    names = set(catalogs.catalog_names(LANGUAGE))
    for source in TUTORIALS:
        assert translate.docname_of(source) in names, f"{source.name} has no catalog: python docs/i18n.py update"
    for page in (REPO / "docs").glob("*.md"):
        assert page.stem in names, f"docs/{page.name} has no catalog: python docs/i18n.py update"
    for module in ("check", "t00", "t01", "t02"):
        assert f"course/{module}" in names


def test_changed_english_paragraph_fails_the_check_until_translated(tmp_path, monkeypatch):
    """A changed English paragraph: the check fails (no translation for it); after ``update`` the
    catalog holds it as fuzzy and the check still fails; once translated, it passes."""
    catalogs, translate, command = _tools()
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po
    from sphinx_intl.catalog import update_with_fuzzy

    name = "tutorials/01_background"
    source = (REPO / "tutorials" / "01_background.md").read_text(encoding="utf-8")
    old = "**Goal.** Turn the document's opening claims,"
    assert old in source
    changed = source.replace(old, "**Goal.** Turn the teaching document's opening claims,")
    assert command.source_problems(name, LANGUAGE, source) == []
    found = command.source_problems(name, LANGUAGE, changed)
    assert len(found) == 1 and "Turn the teaching document" in found[0], found

    # `python docs/i18n.py update` merges the new English into a copy of the catalogs (sphinx-intl's merge)
    locales = tmp_path / "locales"
    po = catalogs.catalog_path(name, LANGUAGE, locales)
    po.parent.mkdir(parents=True)
    with catalogs.catalog_path(name, LANGUAGE).open("rb") as f:
        catalog = read_po(f)
    template = Catalog()
    _, new_messages = translate.source_messages(REPO / "tutorials" / "01_background.md", {}, changed)
    for message in new_messages:
        template.add(message)
    update_with_fuzzy(catalog, template)
    with po.open("wb") as f:
        write_po(f, catalog)
    (locales / LANGUAGE / "TRANSLATED").write_text(f"{name}\n")
    monkeypatch.setattr(catalogs, "LOCALES", locales)
    stats = catalogs.stats(name, LANGUAGE)
    assert (stats.fuzzy, stats.untranslated) == (1, 0), stats.line()
    assert any("fuzzy" in line for line in command.problems(LANGUAGE))

    # the translator updates the fuzzy translation and drops the flag
    for message in catalog:
        if message.id and message.fuzzy:
            assert message.string.startswith("**目标。**")  # the old translation, to start from
            message.string = message.string.replace("文档开篇", "这份教学文档开篇")
            message.flags.discard("fuzzy")
    with po.open("wb") as f:
        write_po(f, catalog)
    assert catalogs.stats(name, LANGUAGE).complete
    assert command.source_problems(name, LANGUAGE, changed) == []


def test_a_translation_must_keep_code_formulas_links_and_fields():
    catalogs, _, _ = _tools()
    english = "Use `fit` on $x_t$ (see the [glossary](../glossary.md) and {doc}`the course <tutorials/index>`)"
    good = "在 $x_t$ 上使用 `fit`（见[术语表](../glossary.md)和{doc}`课程 <tutorials/index>`）"
    assert catalogs.problems_of(english, good, format_fields=False) == []
    for bad in (good.replace("`fit`", "fit"), good.replace("$x_t$", "x_t"), good.replace("../glossary.md", "g.md"),
                good.replace("<tutorials/index>", "<index>")):
        assert catalogs.problems_of(english, bad, format_fields=False), bad
    assert catalogs.problems_of("got {got:,}", "得到 {got:,}", format_fields=True) == []
    # a page's translation is parsed on its own: "1. ..." would be a list, and Sphinx would drop it
    assert catalogs.problems_of("1. Counting parameters", "1. 统计参数量", format_fields=False, markdown=True)
    assert catalogs.problems_of("1. Counting parameters", "1\\. 统计参数量", format_fields=False, markdown=True) == []
    assert catalogs.problems_of("got {got:,}", "得到 {value}", format_fields=True)


# --------------------------------------------------------------------------- the notebooks


def test_translated_markdown_keeps_structure():
    _, translate, _ = _tools()
    text = (
        "# Title\n\nA paragraph\nover two lines.\n\n* item *one*\n  continued\n* item two\n\n"
        "> quoted\n\n| English | term | note |\n|---|---|---|\n| forget gate | 遗忘门 | a \\| b |\n\n"
        "```python\nx = 1  # code stays\n```\n\n$$\nx_t\n$$\n\n:::{note}\n:class: tip\nInside a note.\n:::\n"
    )
    table = {"Title": "标题", "A paragraph over two lines.": "一个段落。", "item *one* continued": "第*一*项",
             "item two": "第二项", "quoted": "引文", "term": "术语", "note": "说明", "a | b": "甲 | 乙",
             "Inside a note.": "注释里。"}
    new, used, missing = translate.translate_markdown(text, table)
    assert missing == [] and set(used) == set(table)
    assert new == (
        "# 标题\n\n一个段落。\n\n* 第*一*项\n* 第二项\n\n> 引文\n\n| English | 术语 | 说明 |\n|---|---|---|\n"
        "| forget gate | 遗忘门 | 甲 \\| 乙 |\n\n```python\nx = 1  # code stays\n```\n\n$$\nx_t\n$$\n\n"
        ":::{note}\n:class: tip\n注释里。\n:::\n"
    )


@pytest.mark.parametrize("source", TUTORIALS, ids=[f"{p.parent.name}/{p.stem}" for p in TUTORIALS])
def test_chinese_notebook(source):
    """Each tutorial's Chinese notebook: valid, the English code cells plus the language cell, the
    catalog's translations in its markdown (all of them for a page declared translated)."""
    catalogs, translate, _ = _tools()
    import jupytext
    import nbformat

    name = translate.docname_of(source)
    declared = name in catalogs.declared(LANGUAGE)
    english = jupytext.read(source)
    chinese = translate.translate_notebook(english, source, LANGUAGE, strict=declared)
    nbformat.validate(chinese)
    code = [cell.source for cell in chinese.cells if cell.cell_type == "code"]
    assert code[0] == translate.language_cell_source(LANGUAGE)
    assert 'os.environ["LSTMJAX_LANGUAGE"] = "zh_CN"' in code[0]
    assert code[1:] == [cell.source for cell in english.cells if cell.cell_type == "code"]
    assert chinese.cells[0].cell_type == "markdown" and chinese.cells[1].cell_type == "code"
    markdown = [cell.source for cell in chinese.cells if cell.cell_type == "markdown"]
    assert len(markdown) == sum(cell.cell_type == "markdown" for cell in english.cells)
    assert chinese.metadata["lstmjax"]["language"] == LANGUAGE
    if declared:
        assert chinese.metadata["lstmjax"]["untranslated"] == 0
        title = re.search(r"^#\s+(.+)$", markdown[0], re.M).group(1)
        assert CJK.search(title), title
        assert "遗传门" not in "".join(markdown) or "遗忘门" in "".join(markdown)
        # the translator met exactly the messages Sphinx collected for the page (the same catalog)
        table = catalogs.messages(name, LANGUAGE)
        used, missing = translate.source_messages(source, table)
        assert missing == [] and set(used) == set(table), set(table) ^ set(used)
    for cell in markdown:  # links to other tutorials lead to their Chinese notebooks, next to this one
        for target in re.findall(r"\]\(([^)#\s]+)", cell):
            if "://" not in target and target.endswith((".ipynb", ".md")):
                out = translate.notebook_path(source, LANGUAGE)
                assert (out.parent / target).resolve().suffix in (".ipynb", ".md"), target
                if target.endswith(".md"):
                    assert (out.parent / target).resolve().is_file(), f"{target} does not exist"


def test_chinese_notebook_runs_and_checks_answer_in_chinese(tmp_path, monkeypatch):
    """A Chinese notebook runs top to bottom in a fresh kernel (fast mode), and its exercise checks
    answer in Chinese: the worked solutions of tutorial 01, every check passing."""
    _, translate, _ = _tools()
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    source = REPO / "tutorials" / "solutions" / "01_background.md"
    notebook = translate.translate_notebook(jupytext.read(source), source, LANGUAGE, out_dir=tmp_path, strict=True)
    monkeypatch.setenv("LSTMJAX_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.delenv("LSTMJAX_LANGUAGE", raising=False)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(source.parent)}}).execute()
    printed = "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for out in cell.get("outputs", []) if out.get("output_type") == "stream")
    checks = re.findall(r"^([✓✗]) (\d\d\.\d): (.+)$", printed, re.M)
    assert [mark for mark, _, _ in checks] == ["✓"] * 5, printed
    for _, exercise, message in checks:
        assert CJK.search(message), f"{exercise} answered in English: {message}"


# --------------------------------------------------------------------------- the exercise checks


def test_checks_answer_in_the_language_of_the_environment(monkeypatch):
    from lstmjax import course

    monkeypatch.delenv("LSTMJAX_LANGUAGE", raising=False)
    assert course.language() == "en"
    assert course.check("01.5", lambda n, b, rate, T: n * T / rate, quiet=True).message.startswith(
        "predict(8530, 32, 2000.0, 16) = 68.240 s counts only the real sentences")
    monkeypatch.setenv("LSTMJAX_LANGUAGE", "zh_CN")
    assert course.language() == "zh_CN"
    wrong = course.check("01.5", lambda n, b, rate, T: n * T / rate, quiet=True)
    assert not wrong.ok and wrong.message == (
        "predict(8530, 32, 2000.0, 16) = 68.240 秒只算了真实的句子；fit 会把最后一批的 18 行填充到 32 行，"
        "所以它也要花一整步：应为 68.352 秒。")
    right = course.check("02.4", lambda p, n: (p * (1 - p) / n) ** 0.5, quiet=True)
    assert right.ok and "标准误" in right.message, right.message
    assert course.check("00.1", lambda x: 1 / 0, quiet=True).message == (
        "你的代码抛出了异常：ZeroDivisionError: division by zero")
    assert course.exercises()["02.3"] == "手写早停"
    monkeypatch.setenv("LSTMJAX_LANGUAGE", "fr")
    with pytest.raises(ValueError, match="LSTMJAX_LANGUAGE='fr'.*en, zh_CN"):
        course.check("00.1", lambda x: 2 * x, quiet=True)


def test_a_message_without_translation_is_written_in_english(monkeypatch):
    from lstmjax.course._i18n import tr

    monkeypatch.setenv("LSTMJAX_LANGUAGE", "zh_CN")
    assert tr("a message nobody translated, {n} times", n=3) == "a message nobody translated, 3 times"
    assert tr("your code raised {error}", error="KeyError") == "你的代码抛出了异常：KeyError"


# --------------------------------------------------------------------------- the site's check, on a one-page site

PAGE = """\
# The forget gate

The forget gate $f_t$ decides what the cell state keeps.

| English | 中文 | note |
|---|---|---|
| forget gate | 遗忘门 | not 遗传门 |

```python
f_t = sigmoid(z)  # code is never translated
```
"""

CONF = f"""\
import sys
sys.path.insert(0, {str(EXT)!r})
extensions = ["myst_parser", "lstmjax_i18n"]
myst_enable_extensions = ["dollarmath"]
locale_dirs = ["locales/"]
gettext_compact = False
gettext_location = False
"""

PO = """\
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"

msgid "The forget gate"
msgstr "遗忘门"

msgid "The forget gate $f_t$ decides what the cell state keeps."
msgstr "遗忘门 $f_t$ 决定细胞状态保留什么。"

msgid "note"
msgstr "说明"

msgid "not 遗传门"
msgstr "不是遗传门"
"""


def _sphinx(src: pathlib.Path, builder: str, out: pathlib.Path, language: str = "en") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sphinx", "-W", "-q", "-E", "-b", builder, "-D", f"language={language}",
               str(src), str(out)]
    return subprocess.run(command, capture_output=True, text=True, cwd=src, timeout=300)


def test_site_check_on_a_one_page_site(tmp_path):
    """Sphinx collects the page's prose (not the code, the English column, the Chinese); with the
    translation the Chinese build passes; a changed English paragraph fails a page declared
    translated, and puts a "not translated yet" note on one that is not declared."""
    _, translate, _ = _tools()
    src = tmp_path / "site"
    (src / "locales" / "zh_CN" / "LC_MESSAGES").mkdir(parents=True)
    (src / "conf.py").write_text(CONF)
    (src / "index.md").write_text(PAGE, encoding="utf-8")

    result = _sphinx(src, "gettext", tmp_path / "pot")
    assert result.returncode == 0, result.stderr
    pot = (tmp_path / "pot" / "index.pot").read_text(encoding="utf-8")
    collected = re.findall(r'^msgid "(.+)"$', pot, re.M)
    _, used, _ = translate.translate_markdown(PAGE, {})
    assert collected == used == ["The forget gate", "The forget gate $f_t$ decides what the cell state keeps.",
                                 "note", "not 遗传门"]

    (src / "locales" / "zh_CN" / "LC_MESSAGES" / "index.po").write_text(PO, encoding="utf-8")
    (src / "locales" / "zh_CN" / "TRANSLATED").write_text("index\n")
    result = _sphinx(src, "html", tmp_path / "zh", "zh_CN")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "zh" / "index.html").read_text(encoding="utf-8")
    assert "决定细胞状态保留什么" in html and "lstmjax-untranslated" not in html
    assert "forget gate" in html  # the English column stays English
    assert 'href="../en/index.html"' in html  # the language switch's context (no theme template here)
    search = (tmp_path / "zh" / "_static" / "language_data.js").read_text(encoding="utf-8")
    assert "window.Stemmer = EnglishStemmer;" in search and "ChineseStemmer" not in search  # Sphinx 9.0's own is broken

    (src / "index.md").write_text(PAGE.replace("decides what", "decides which part of what"), encoding="utf-8")
    result = _sphinx(src, "html", tmp_path / "zh", "zh_CN")
    assert result.returncode != 0
    assert "index is declared translated" in result.stderr and "decides which part of what" in result.stderr

    (src / "locales" / "zh_CN" / "TRANSLATED").write_text("# nothing declared yet\n")
    result = _sphinx(src, "html", tmp_path / "zh", "zh_CN")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "zh" / "index.html").read_text(encoding="utf-8")
    assert "lstmjax-untranslated" in html and "decides which part of what" in html


@pytest.fixture(autouse=True)
def _no_language(monkeypatch):
    monkeypatch.delenv("LSTMJAX_LANGUAGE", raising=False)
    yield
    os.environ.pop("LSTMJAX_LANGUAGE", None)


def _untranslated_literals(path: pathlib.Path) -> list[str]:
    """Learner-facing text in a checker module that does not go through ``tr``: a string literal or
    f-string given to ``Wrong(...)`` or returned by an ``@exercise`` checker (outside any ``tr(...)``)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def literals(node):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "tr":
            return []  # translated
        if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)
                                                and node.value.strip()):
            return [node]
        if isinstance(node, (ast.BinOp, ast.IfExp, ast.BoolOp)):  # "a" + b, "a" if c else "b"
            return [n for child in ast.iter_child_nodes(node) for n in literals(child)]
        return []  # a name, a call, a container: computed, not a message written here

    checkers = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                and any(isinstance(d, ast.Call) and getattr(d.func, "id", None) == "exercise" for d in f.decorator_list)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Wrong" and node.args:
            found += [f"{path.name}:{n.lineno} Wrong(...)" for n in literals(node.args[0])]
    for checker in checkers:
        for node in _own_nodes(checker):
            if isinstance(node, ast.Return) and node.value is not None:
                found += [f"{path.name}:{n.lineno} return" for n in literals(node.value)]
    return found


def _own_nodes(function):
    """The nodes of a function's body, without those of the functions defined inside it."""
    import ast

    stack = list(function.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.Lambda, ast.AsyncFunctionDef)):
            stack.extend(ast.iter_child_nodes(node))


def test_every_checker_message_goes_through_tr():
    """A message written as a plain string would reach a Chinese notebook in English: the catalogs
    only collect ``tr("...")`` literals."""
    modules = sorted((REPO / "lstmjax" / "course").glob("t[0-9][0-9].py"))
    assert len(modules) >= 11
    found = [problem for module in modules for problem in _untranslated_literals(module)]
    assert not found, "learner-facing text not wrapped in tr(...):\n" + "\n".join(found)

"""Sphinx extension for the lstmjax site: stages the executed tutorials, writes the API pages,
serves MathJax locally, and fails the build when a public name has no API entry.

Nothing here executes a notebook. The tutorials are rendered from notebooks that were already
executed, once, by ``tests/test_tutorials.py`` (fast mode, in CI) or by ``python docs/build.py
--execute`` (full size); they are read from ``LSTMJAX_EXECUTED_DIR`` (default
``docs/_build/executed``), mirroring ``tutorials/`` (``NN_name.ipynb``, ``solutions/NN_name.ipynb``).

Generated, git-ignored sources (rewritten only when their content changes, so incremental
builds stay incremental):

* ``docs/tutorials/NN_name.ipynb`` and ``docs/tutorials/solutions/NN_name.ipynb``: the executed
  notebooks plus one banner cell (how the outputs were made; download links);
* ``docs/tutorials/index.md`` and ``docs/tutorials/solutions/index.md``: the course and solutions
  pages, one toctree entry per ``tutorials/NN_*.md`` / ``tutorials/solutions/*.md`` found;
* ``docs/api/*.md``: one page per public module of :mod:`lstmjax` (``automodule`` over the
  module's ``__all__``), and ``docs/api/index.md`` with the flat API ``lstmjax.__all__``;
* ``docs/_build/vendor/mathjax``: MathJax 3 from the ``django-static-mathjax`` wheel (no CDN);
* ``docs/_build/downloads``: each tutorial as a clean ``.ipynb`` (jupytext, no outputs) and
  as its MyST ``.md`` source, linked from the banner.

Links between tutorials, solutions and ``docs/*.md`` pages are written as repository paths
(``solutions/01_background.md``, ``../docs/glossary.md``), which work in Jupyter; the staged
notebooks and the hand-written pages get them pointed at the site's pages (:func:`rewrite_links`).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pathlib
import pkgutil
import re
import shutil

import lstmjax_catalogs
import lstmjax_fullrun
import lstmjax_translate
from lstmjax_links import DOCS, REPO, STAGE, TUTORIALS, rewrite_links
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.errors import ConfigError, ExtensionError
from sphinx.util.docutils import SphinxDirective

API = DOCS / "api"  # generated
VENDOR = DOCS / "_build" / "vendor"
DOWNLOADS = DOCS / "_build" / "downloads"


def executed_dir() -> pathlib.Path:
    """Where the executed notebooks are read from (``LSTMJAX_EXECUTED_DIR`` or the default)."""
    env = os.environ.get("LSTMJAX_EXECUTED_DIR")
    return pathlib.Path(env).resolve() if env else DOCS / "_build" / "executed"


def tutorial_sources() -> tuple[list[pathlib.Path], list[pathlib.Path]]:
    """The tutorials and the worked solutions (jupytext MyST ``.md``), sorted by name."""
    return (
        sorted(TUTORIALS.glob("[0-9][0-9]_*.md")),
        sorted((TUTORIALS / "solutions").glob("[0-9][0-9]_*.md")),
    )


def _write_if_changed(path: pathlib.Path, text: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _cell_sources(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def notebook_problem(source: pathlib.Path, executed_path: pathlib.Path, fast: bool | None = None) -> str | None:
    """Why ``executed_path`` cannot be rendered for ``source`` (missing, stale, an error), or None.

    Stale means its cells are not the tutorial's cells now; ``fast`` (when given) must match how
    it was executed.
    """
    import jupytext
    import nbformat

    if not executed_path.is_file():
        return f"{executed_path} is missing"
    executed = nbformat.read(executed_path, as_version=4)
    if _cell_sources(executed) != _cell_sources(jupytext.read(source)):
        return f"{executed_path} is stale: its cells differ from {source.relative_to(REPO)}"
    if fast is not None and executed.metadata.get("lstmjax", {}).get("fast") != fast:
        return f"{executed_path} was not executed with fast={fast}"
    for cell in executed.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                return f"{executed_path} has an error output ({out.get('ename')}: {out.get('evalue')})"
    return None


def not_ready_message(problems: list[str]) -> str:
    return (
        "the site renders executed tutorials, and some are not ready:\n  "
        + "\n  ".join(problems)
        + "\nExecute them with the tests (`python -m pytest -n 2 tests/`, fast mode: what CI renders)"
        " or with `python docs/build.py --execute` (full size), then build again."
    )


def staging_problems(source_dir: pathlib.Path | None = None) -> list[str]:
    """What keeps the site from being built from ``source_dir`` (default: :func:`executed_dir`)."""
    source_dir = source_dir or executed_dir()
    tutorials, solutions = tutorial_sources()
    problems = [
        notebook_problem(src, source_dir / src.relative_to(TUTORIALS).with_suffix(".ipynb"))
        for src in tutorials + solutions
    ]
    return [p for p in problems if p]


def _title(notebook, source: pathlib.Path) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, flags=re.MULTILINE)
            if match:
                return match.group(1).strip()
    raise ExtensionError(f"{source}: no '# title' heading in the first markdown cells")


BANNER_DIRECTIVE = "lstmjax-banner"


def banner_cell(source: pathlib.Path, executed, solution_doc: str | None) -> str:
    """The markdown cell added after a tutorial's header: a :class:`Banner` directive.

    The directive, not its text, is staged, so the staged notebook is the same for every language
    (switching the build's language re-reads nothing) and the banner's text, written by the
    directive in the build's language, is not a message of the page's catalog.
    """
    fast = executed.metadata.get("lstmjax", {}).get("fast")  # None: staged without outputs
    rel = source.relative_to(TUTORIALS).with_suffix("").as_posix()
    lines = [f"```{{{BANNER_DIRECTIVE}}}", f":notebook: {rel}", f":fast: {str(fast).lower()}"]
    if solution_doc:
        lines.append(f":solutions: {solution_doc}")
    return "\n".join(lines + ["```"])


def _banner_markdown(notebook: str, fast: bool | None, solutions: str | None, language: str) -> str:
    """The banner's MyST text, in ``language``: how the outputs were made, and the downloads."""
    tr = lstmjax_catalogs.site_translator(language)
    if fast is None:
        how = tr(
            "**No outputs.** This page shows the tutorial without running it (`python docs/build.py "
            "--partial`, for a quick look at the text); execute the tutorials with the tests to see "
            "their outputs."
        )
    elif fast:
        how = tr(
            "**Outputs from a fast run.** The outputs on this page were computed with "
            "`LSTMJAX_FAST=1`, the switch CI uses: smaller data subsets, fewer units and epochs, "
            "so numbers and curves differ from a full run (every check still runs). "
            "Download the notebook and run it for the full-size results; the header above gives "
            "the full run time."
        )
    else:
        how = tr(
            "**Outputs from a full run.** The outputs on this page were computed at the full "
            "sizes given in the header above (`python docs/build.py --execute`)."
        )
    measured = _run_time(notebook, tr)
    if measured:
        how = f"{measured}\n\n{how}"
    down = f"/{downloads_dir(language).relative_to(DOCS).as_posix()}/{notebook}"
    notebook_label, source_label, solutions_label = (
        tr("Download this notebook (.ipynb)"), tr("MyST source (.md)"), tr("worked solutions:"))
    links = f"{{download}}`{notebook_label} <{down}.ipynb>` · {{download}}`{source_label} <{down}.md>`"
    if solutions:
        links += f" · {solutions_label} {{doc}}`/{solutions}`"
    return f"{how}\n\n{links}"


def _run_time(notebook: str, tr) -> str | None:
    """The tutorial's measured full-size run time (``tutorials/full_run.json``), in the banner's words."""
    item = (lstmjax_fullrun.read() or {}).get("tutorials", {}).get(notebook)
    if item is None:
        return None
    text = tr("**Full-size run:** {total} on {cpus} CPU cores ({date}, `{command}`).").format(
        total=lstmjax_fullrun.duration(item["seconds"]), cpus=item["cpus"], date=item["date"],
        command=lstmjax_fullrun.RECORD_COMMAND)
    if lstmjax_fullrun.busy(item):
        text += " " + tr("Measured on a busy machine (load average up to {load} on {cpus} cores): a quiet one is "
                         "faster.").format(load=max(item["load"]), cpus=item["cpus"])
    if item.get("has_extensions"):
        text += " " + tr("The core, without the sections marked *(extension)*: {core}.").format(
            core=lstmjax_fullrun.duration(item["core_seconds"]))
    return text


FAST = {"true": True, "false": False, "none": None}


class Banner(SphinxDirective):
    """``lstmjax-banner``: the note after a tutorial's header, written in the build's language.

    Options: ``notebook`` (``01_background``, ``solutions/01_background``), ``fast`` (``true`` when
    the outputs come from a fast run, ``none`` when there are none), ``solutions`` (the docname of
    the worked solutions). Its
    text is the site's own (``site.po``), never a message of the page's catalog.
    """

    option_spec = {"notebook": directives.unchanged_required, "fast": lambda x: directives.choice(x, FAST),
                   "solutions": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        text = _banner_markdown(self.options["notebook"], FAST[self.options["fast"]], self.options.get("solutions"),
                                self.config.language)
        note = nodes.note(classes=[lstmjax_catalogs.NO_TRANSLATE])
        self.state.nested_parse(StringList(text.splitlines(), source=self.env.docname), self.content_offset, note)
        return [note]


class RunTimes(SphinxDirective):
    """``lstmjax-run-times``: a table of every tutorial's measured full-size run time, its core's (the
    sections not marked *(extension)*) and its extension sections, from ``tutorials/full_run.json``."""

    def run(self) -> list[nodes.Node]:
        tr = lstmjax_catalogs.site_translator(self.config.language)
        record = lstmjax_fullrun.read()
        if record is None:
            raise ExtensionError(f"{lstmjax_fullrun.RECORD} is missing: run `{lstmjax_fullrun.RECORD_COMMAND}`")
        headers = [tr("tutorial"), tr("full-size run"), tr("core"), tr("extension sections"), tr("load average")]
        rows = ["| " + " | ".join(headers) + " |", "|---|---|---|---|---|"]
        for stem, item in record["tutorials"].items():
            extensions = ", ".join("§" + h.split(".")[0] for h, _ in item["sections"]
                                   if lstmjax_fullrun.is_extension(h))
            rows.append(f"| {stem[:2]} | {lstmjax_fullrun.duration(item['seconds'])} | "
                        f"{lstmjax_fullrun.duration(item['core_seconds'])} | {extensions or '–'} | "
                        f"{max(item.get('load') or [0.0]):.1f} |")
        first = next(iter(record["tutorials"].values()))
        caption = tr("Measured on {cpus} CPU cores ({cpu}), {date}, with `{command}`; the load average is "
                     "the highest seen during the run: above the number of cores, the machine was busy with "
                     "other work and a quiet one is faster.").format(
            cpus=first["cpus"], cpu=first["cpu"], date=first["date"], command=lstmjax_fullrun.RECORD_COMMAND)
        container = nodes.container(classes=["lstmjax-run-times", lstmjax_catalogs.NO_TRANSLATE])
        self.state.nested_parse(StringList([*rows, "", caption], source=self.env.docname), self.content_offset,
                                container)
        self.env.note_dependency(str(lstmjax_fullrun.RECORD))
        return [container]


def downloads_dir(language: str) -> pathlib.Path:
    """Where the site's notebooks to download are written: English in ``_build/downloads``, other
    languages in ``_build/downloads/<language>`` (their notebooks translated from the catalogs)."""
    return DOWNLOADS if language == "en" else DOWNLOADS / language


NOTEBOOK_MODES = ("executed", "partial", "source")
"""``lstmjax_notebooks``: render the executed tutorials (all must be ready), those that are ready and
the others without outputs, or none (only the tutorials' text: the message catalogs)."""


def _staged_notebook(source: pathlib.Path, source_dir: pathlib.Path, mode: str):
    """The notebook to stage for ``source`` in ``mode`` (:data:`NOTEBOOK_MODES`): the executed one,
    or the tutorial's cells without outputs. Returns ``(notebook, problem)``."""
    import jupytext
    import nbformat

    if mode not in NOTEBOOK_MODES:
        raise ConfigError(f"lstmjax_notebooks = {mode!r}: choose one of {', '.join(NOTEBOOK_MODES)}")
    executed_path = source_dir / source.relative_to(TUTORIALS).with_suffix(".ipynb")
    problem = None if mode == "source" else notebook_problem(source, executed_path)
    if mode == "executed" or (mode == "partial" and not problem):
        return (None, problem) if problem else (nbformat.read(executed_path, as_version=4), None)
    notebook = jupytext.read(source)
    notebook.metadata["lstmjax"] = {"fast": None}
    return notebook, None


def _write_downloads(source: pathlib.Path, rel: pathlib.Path, language: str) -> None:
    """The tutorial as a clean notebook (no outputs) and as MyST, in ``language``."""
    import jupytext
    import nbformat

    clean = jupytext.read(source)
    clean.metadata.pop("jupytext", None)
    if language != "en":
        clean = lstmjax_translate.translate_notebook(clean, source, language)
    for cell in clean.cells:
        cell.pop("id", None)
    clean.nbformat_minor = 4
    target = downloads_dir(language) / rel
    _write_if_changed(target, nbformat.writes(clean) + "\n")
    text = source.read_text(encoding="utf-8") if language == "en" else jupytext.writes(clean, "md:myst")
    _write_if_changed(target.with_suffix(".md"), text)


def stage_notebooks(app, config) -> None:
    """Copy the executed notebooks into ``docs/tutorials`` (with a banner) and write the indexes.

    With ``lstmjax_notebooks = "source"`` (``docs/i18n.py update``, which only collects the pages'
    messages) the tutorials' cells are staged without outputs, so no notebook has to be executed;
    with ``"partial"`` (``docs/build.py --partial``) only those not executed yet.
    """
    import nbformat

    tutorials, solutions = tutorial_sources()
    source_dir = executed_dir()
    problems, titles = [], {}
    solution_of = {s.name[:2]: f"tutorials/solutions/{s.stem}" for s in solutions}
    wanted = set()
    for source in tutorials + solutions:
        rel = source.relative_to(TUTORIALS).with_suffix(".ipynb")
        executed, problem = _staged_notebook(source, source_dir, config.lstmjax_notebooks)
        if problem:
            problems.append(problem)
            continue
        docname = f"tutorials/{rel.with_suffix('').as_posix()}"
        is_solution = source.parent.name == "solutions"
        titles[docname] = _title(executed, source)
        banner = banner_cell(source, executed, None if is_solution else solution_of.get(source.name[:2]))
        for cell in executed.cells:
            if cell.cell_type == "markdown":
                cell.source = rewrite_links(cell.source, source, STAGE / rel)
        executed.cells.insert(1, nbformat.v4.new_markdown_cell(banner))
        for cell in executed.cells:  # stable ids, so unchanged notebooks stay byte-identical
            cell.pop("id", None)
        executed.nbformat_minor = 4
        _write_if_changed(STAGE / rel, nbformat.writes(executed) + "\n")
        _write_downloads(source, rel, config.language)
        wanted.add(STAGE / rel)
    if problems:
        raise ConfigError(not_ready_message(problems))
    for stale in STAGE.rglob("*.ipynb"):  # tutorials renamed or removed since the last build
        if stale not in wanted:
            stale.unlink()

    entries = "\n".join(d for d in titles if not d.startswith("tutorials/solutions/"))
    _write_if_changed(STAGE / "index.md", COURSE_PAGE.format(entries=_relative(entries, "tutorials/")))
    solution_entries = "\n".join(d for d in titles if d.startswith("tutorials/solutions/"))
    _write_if_changed(
        STAGE / "solutions" / "index.md",
        SOLUTIONS_PAGE.format(
            entries=_relative(solution_entries, "tutorials/solutions/")
            or "",
            none="" if solution_entries else "No worked solutions have been written yet.\n",
        ),
    )


def _relative(entries: str, prefix: str) -> str:
    return "\n".join(line.removeprefix(prefix) for line in entries.splitlines())


COURSE_PAGE = """\
# The course

The course follows the teaching document section by section. Each tutorial is a notebook:
it builds one idea from scratch, checks it number for number against `lstmjax`, then uses the
library, and ends with exercises you can check with `lstmjax.course.check`. Start at 01 and go
in order; every tutorial's header says what it needs, which section of the document it covers,
and how long it takes to run.

The pages show each notebook *with its outputs*. Those outputs come from a **fast-mode run**
(`LSTMJAX_FAST=1`: reduced data and model sizes, fewer epochs), made when the site is built, so
accuracies and curves are smaller than in a full run. Each page has a link to download the
notebook (`.ipynb`) to run it yourself at full size (see {{doc}}`/installation`).

```{{toctree}}
:maxdepth: 1

{entries}
```
"""

SOLUTIONS_PAGE = """\
# Solutions

Worked solutions to the tutorials' exercises, one notebook per tutorial. Each solution cell ends
with `assert course.check("NN.k", answer)`, so these pages also show the checkers accepting the
answers. Try the exercises first.

{none}
```{{toctree}}
:maxdepth: 1

{entries}
```
"""


# --------------------------------------------------------------------------- API pages


PARTS = ("nn", "data", "training", "parallel", "privacy", "explain", "compress", "robustness", "app", "course")
"""The parts of the package, in the order of the API reference (the model first, the application last)."""


def part_modules(part: str) -> list[str]:
    """A part's public modules: the part itself, then (for a package) its public submodules."""
    module = importlib.import_module(f"lstmjax.{part}")
    if not _reexports(module):
        return [module.__name__]
    return [module.__name__] + sorted(f"{module.__name__}.{info.name}" for info in pkgutil.iter_modules(module.__path__)
                                      if not info.name.startswith("_"))


def _reexports(module) -> bool:
    """A part's package that only re-exports what its public submodules define (``lstmjax.nn``, ...),
    as opposed to a module or package documented as one page (``lstmjax.robustness``, ``lstmjax.course``)."""
    defined = [getattr(module, name).__module__ for name in getattr(module, "__all__", ())
               if inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name))]
    return hasattr(module, "__path__") and bool(defined) and all(
        home.startswith(module.__name__ + ".") and not home.rsplit(".", 1)[-1].startswith("_") for home in defined)


def public_modules() -> list[str]:
    """Every public module of lstmjax: each part and its public submodules (names not starting with ``_``)."""
    import lstmjax

    found = sorted(info.name for info in pkgutil.iter_modules(lstmjax.__path__) if not info.name.startswith("_"))
    unknown = sorted(set(found) - set(PARTS))
    if unknown:
        raise ExtensionError(f"lstmjax has modules the API reference does not place in a part: {unknown}")
    return [name for part in PARTS for name in part_modules(part)]


def _summary(obj, doc: str | None = None) -> str:
    """The first paragraph of a docstring, as MyST (``:role:`x``` → ``{role}`x```) for a table."""
    doc = (doc if doc is not None else getattr(obj, "__doc__", None) or "").strip()
    first = doc.split("\n\n")[0].replace("\n", " ").strip()
    first = re.sub(r":(py:)?(\w+):`", r"{\2}`", first)
    first = first.replace("``", "`")
    return first.replace("|", "\\|")


def _constant_doc(module, name: str) -> str:
    """A module constant's ``#:`` doc-comment (what autodoc shows for it), or ``""``."""
    from sphinx.pycode import ModuleAnalyzer

    try:
        docs = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
    except Exception:  # noqa: BLE001 - no source to analyse: no comment
        return ""
    return "\n".join(docs.get(("", name), []))


def _where_documented(name: str, obj, modules: dict) -> str | None:
    """The module page entry that documents ``name``: the defining module first; never a part's
    package that only re-exports (its names are documented in the submodules that define them)."""
    home = getattr(obj, "__module__", None)
    candidates = [home] + list(modules) if home in modules else list(modules)
    for module_name in candidates:
        module = modules[module_name]
        if name in getattr(module, "__all__", ()) and not _reexports(module):
            return module_name
    return None


PART_NOTE = (
    "The entries below are the docstrings of this part's modules, in English on the site in every "
    "language, as the names themselves are; the {doc}`API reference <index>` lists the parts and "
    "the flat API."
)


def _part_page(part: str, modules: dict) -> str:
    """One page per part: the part's own docstring, then each submodule's members."""
    names = part_modules(part)
    head = f"lstmjax.{part}"
    members = "   :no-members:\n" if len(names) > 1 else "   :members:\n   :show-inheritance:\n"
    sections = [f"# {head}\n\n{PART_NOTE}\n\n```{{eval-rst}}\n.. automodule:: {head}\n{members}```\n"]
    for name in names[1:]:
        sections.append(f"## {name}\n\n```{{eval-rst}}\n.. automodule:: {name}\n   :members:\n"
                        "   :show-inheritance:\n```\n")
    return "\n".join(sections)


def write_api_pages(app, config) -> None:
    import lstmjax

    modules = {name: importlib.import_module(name) for name in public_modules()}
    for module_name, module in modules.items():
        if not hasattr(module, "__all__"):
            raise ExtensionError(f"{module_name} has no __all__: say which of its names are public")
    for part in PARTS:
        _write_if_changed(API / f"{part}.md", _part_page(part, modules))
    for stale in API.glob("*.md"):
        if stale.name != "index.md" and stale.stem not in PARTS:
            stale.unlink()

    groups: dict[str, list[str]] = {part: [] for part in PARTS}
    for name in lstmjax.__all__:
        obj = getattr(lstmjax, name)
        if isinstance(obj, type(lstmjax)):
            continue  # the parts themselves: the list of pages below
        home = _where_documented(name, obj, modules)
        part = (home or "lstmjax.app").split(".")[1]
        kind = "class" if isinstance(obj, type) else "function" if callable(obj) else "constant"
        summary = _summary(obj) if kind != "constant" else _summary(None, _constant_doc(modules[home], name) if home else "")
        target = f"{{py:obj}}`{name} <{home}.{name}>`" if home else f"`{name}`"
        groups[part].append(f"| {target} | {kind} | {summary} |")
    tables = "\n\n".join(  # the summaries are the docstrings' first lines: English on every site
        f"## {{py:mod}}`lstmjax.{part}`\n\n:::{{container}} {lstmjax_catalogs.NO_TRANSLATE}\n"
        f"{_summary(importlib.import_module(f'lstmjax.{part}'))}\n\n"
        "| name | kind | summary |\n|---|---|---|\n" + "\n".join(rows) + "\n:::"
        for part, rows in groups.items() if rows)
    toctree = "\n".join(PARTS)
    _write_if_changed(API / "index.md", API_PAGE.format(tables=tables, toctree=toctree))


API_PAGE = """\
# API reference

`import lstmjax` gives the flat API below (`lstmjax.__all__`), grouped by the part of the package
that defines each name; each name links to its entry on its part's page. Shapes and dtypes are
written `<dtype>[axes]`, e.g. `<int32>[batch, time]`; every entry has an example that runs as a
doctest.

The entries are the docstrings, and they stay in English on the site in every language, as the
names themselves do: code is written with the English names, and a docstring sits next to the
code it describes (d2l's Chinese edition keeps its library's API in English the same way). The
pages' own text, the tutorials and the glossary are translated.

```{{image}} ../_static/parts.svg
:alt: The parts of lstmjax: app, then parallel, then privacy, explain, compress and robustness, then training, then nn and data; arrows run one way
:width: 100%
```

{tables}

## Pages

```{{toctree}}
:maxdepth: 2

{toctree}
```
"""


def check_api_coverage(app, env) -> None:
    """Fail the build if a public name (``lstmjax.__all__``, a module's ``__all__``) has no entry."""
    import lstmjax

    domain = env.get_domain("py")
    objects, documented_modules = set(domain.objects), set(domain.modules)
    modules = {name: importlib.import_module(name) for name in public_modules()}
    missing = []
    for module_name, module in modules.items():
        if module_name not in documented_modules:
            missing.append(f"module {module_name}")
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type(lstmjax)):
                continue
            home = _where_documented(name, obj, modules)
            if home is None or f"{home}.{name}" not in objects:
                missing.append(f"{module_name}.{name}")
    for name in lstmjax.__all__:
        obj = getattr(lstmjax, name)
        if isinstance(obj, type(lstmjax)):
            if obj.__name__ not in documented_modules:
                missing.append(f"lstmjax.{name} (module)")
        elif not _where_documented(name, obj, modules):
            missing.append(f"lstmjax.{name} (in lstmjax.__all__, but in no public module's __all__)")
    if missing:
        raise ExtensionError(
            "the API reference has no entry for these public names:\n  "
            + "\n  ".join(sorted(set(missing)))
            + "\nEach needs a docstring (a module-level constant: a `#:` comment above it) and must be"
            " listed in the `__all__` of the public module that defines it."
        )


# --------------------------------------------------------------------------- MathJax


def vendor_mathjax(app, config) -> None:
    """Copy MathJax 3 (``es5``) from the django-static-mathjax wheel into ``_build/vendor``."""
    spec = importlib.util.find_spec("mathjax")
    es5 = None
    if spec and spec.submodule_search_locations:
        es5 = pathlib.Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    if es5 is None or not (es5 / "tex-chtml.js").is_file():
        raise ConfigError(
            "MathJax is served from the site itself, from the django-static-mathjax package: "
            'install the docs extra (pip install -e ".[docs]")'
        )
    target = VENDOR / "mathjax"
    stamp = VENDOR / "mathjax.source"
    if not (stamp.is_file() and stamp.read_text() == str(es5)):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(es5, target)
        stamp.write_text(str(es5))


def rewrite_page_links(app, docname: str, source: list[str]) -> None:
    """``source-read``: the hand-written pages (glossary, guide) link tutorials as ``../tutorials/X.md``."""
    path = DOCS / f"{docname}.md"
    if not docname.startswith(("tutorials/", "api/")) and path.is_file():
        source[0] = rewrite_links(source[0], path, path)


def setup(app):
    app.add_config_value("lstmjax_notebooks", "executed", "env", types=[str])  # or "source": see stage_notebooks
    app.add_directive(BANNER_DIRECTIVE, Banner)
    app.add_directive("lstmjax-run-times", RunTimes)
    app.connect("source-read", rewrite_page_links)
    app.connect("config-inited", vendor_mathjax)
    app.connect("config-inited", write_api_pages)
    app.connect("config-inited", stage_notebooks)
    app.connect("env-check-consistency", check_api_coverage)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}


__all__ = [
    "check_api_coverage", "executed_dir", "notebook_problem", "stage_notebooks", "staging_problems",
    "tutorial_sources", "write_api_pages",
]

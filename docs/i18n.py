"""The translations of the site, the tutorials and the exercise checks: update, check, write notebooks.

    python docs/i18n.py update                 # English → catalogs: new messages added, changed ones fuzzy
    python docs/i18n.py update --no-pages      # ... only the site's and the checkers' messages (no Sphinx)
    python docs/i18n.py check                  # every catalog's numbers; fails if a declared one is incomplete
    python docs/i18n.py notebooks              # every tutorial and solution as a notebook in tutorials/zh_CN/

The English ``.md`` files are the source. Each language's text lives in gettext catalogs
(``docs/_ext/lstmjax_catalogs.py`` says which and where): one per page of the site
(``docs/locales/zh_CN/LC_MESSAGES/<page>.po``, from Sphinx's gettext builder and ``sphinx-intl``),
``site.po`` for what the site's extension writes, and one per module of ``lstmjax.course`` for the
checkers' messages (``lstmjax/course/locales/zh_CN/LC_MESSAGES/<module>.po``, from babel).

A translator: ``update``, fill the empty and fuzzy ``msgstr``s of a catalog (remove the ``#, fuzzy``
line once a translation is right again), add the catalog's name to
``docs/locales/zh_CN/TRANSLATED`` when it is complete, ``check``, and build the site
(``python docs/build.py --language zh_CN``) to read the result.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys

DOCS = pathlib.Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

import lstmjax_catalogs as catalogs  # noqa: E402
import lstmjax_translate  # noqa: E402

POT = DOCS / "_build" / "gettext"
SITE_POT = DOCS / "_build" / "gettext-site"
COURSE_POT = DOCS / "_build" / "gettext-course"
COURSE = REPO / "lstmjax" / "course"
SITE_SOURCES = DOCS / "_ext"
TRANSLATIONS = [code for code in catalogs.LANGUAGES if code != "en"]


COURSE_KEYWORDS = {"tr": None, "exercise": (2,)}  # tr("message", ...) and @exercise("NN.k", "title")
SITE_KEYWORDS = {"tr": None}


def python_messages(files: list[pathlib.Path], keywords: dict) -> list[str]:
    """The messages of ``files``: the string literals of ``tr("...")`` calls and the like (babel)."""
    from babel.messages.extract import extract_from_file

    found = []
    for path in files:
        for _, message, _, _ in extract_from_file("python", path, keywords=keywords):
            if isinstance(message, str) and message and message not in found:
                found.append(message)
    return found


def _write_pot(messages: list[str], target: pathlib.Path) -> None:
    import lstmjax
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    catalog = Catalog(project="lstmjax", version=lstmjax.__version__, copyright_holder="the lstmjax authors",
                      fuzzy=False)
    for message in messages:
        catalog.add(message, None)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as f:
        write_po(f, catalog, width=76, no_location=True)


def course_module(name: str) -> pathlib.Path:
    """The module of ``lstmjax.course`` whose messages catalog ``course/<name>`` holds."""
    return next(p for p in sorted(COURSE.glob("*.py")) if (p.stem.lstrip("_") or "init") == name.removeprefix("course/"))


def _sphinx_intl(pot_dir: pathlib.Path, locale_dir: pathlib.Path, languages: list[str]) -> None:
    command = [sys.executable, "-m", "sphinx_intl", "update", "-p", str(pot_dir), "-d", str(locale_dir),
               "--no-obsolete", "-j", "1"]
    for language in languages:
        command += ["-l", language]
    subprocess.run(command, check=True, cwd=REPO)


def _remove_orphans(pot_dir: pathlib.Path, locale_dir: pathlib.Path, languages: list[str], keep=()) -> None:
    """Delete the catalogs whose page or module is gone (no ``.pot`` any more)."""
    for language in languages:
        folder = locale_dir / language / "LC_MESSAGES"
        for po in folder.rglob("*.po") if folder.is_dir() else ():
            name = po.relative_to(folder).with_suffix("")
            if not (pot_dir / name).with_suffix(".pot").is_file() and name.as_posix() not in keep:
                print(f"removed {po.relative_to(REPO)} (its English source is gone)")
                po.unlink()


def update(languages: list[str], pages: bool = True) -> int:
    """Collect the English messages and merge them into every catalog (``sphinx-intl update``).

    ``pages=False`` leaves the pages' catalogs alone (no Sphinx build: the site's and the course's only).
    """
    if pages:
        shutil.rmtree(POT, ignore_errors=True)
        command = [sys.executable, "-m", "sphinx", "-q", "-b", "gettext", "-D", "lstmjax_notebooks=source",
                   str(DOCS), str(POT), "-d", str(DOCS / "_build" / "doctrees" / "gettext")]
        print("collecting the pages' messages (Sphinx's gettext builder, tutorials without outputs)", flush=True)
        if subprocess.run(command, cwd=REPO).returncode:
            return 1
    site = python_messages(sorted(SITE_SOURCES.glob("*.py")), SITE_KEYWORDS)
    _write_pot(site, SITE_POT / f"{catalogs.SITE}.pot")
    print(f"site: {len(site)} messages from docs/_ext", flush=True)
    shutil.rmtree(COURSE_POT, ignore_errors=True)
    for module in sorted(COURSE.glob("*.py")):
        found = python_messages([module], COURSE_KEYWORDS)
        if found:
            _write_pot(found, COURSE_POT / f"{module.stem.lstrip('_') or 'init'}.pot")
    if pages:
        _sphinx_intl(POT, catalogs.LOCALES, languages)
    _sphinx_intl(SITE_POT, catalogs.LOCALES, languages)
    _sphinx_intl(COURSE_POT, catalogs.COURSE_LOCALES, languages)
    if pages:
        _remove_orphans(POT, catalogs.LOCALES, languages, keep={catalogs.SITE})
    _remove_orphans(COURSE_POT, catalogs.COURSE_LOCALES, languages)
    return check(languages, quiet=True)


def source_problems(name: str, language: str, text: str | None = None) -> list[str]:
    """The English messages of a catalog's source that the catalog has no translation for: a new or
    changed English text, before (or after) ``update``.

    The source of ``course/<module>`` and ``site`` is Python (their ``tr("...")`` literals); of a
    page, its ``.md`` (``text``, when given, stands for the file's content). The site's build checks
    every page this way (``lstmjax_i18n``); this is the same check without Sphinx, for the pages
    written by hand (not the generated course, solutions and API pages, which the build checks).
    """
    table = catalogs.messages(name, language)
    if name == catalogs.SITE:
        messages = python_messages(sorted(SITE_SOURCES.glob("*.py")), SITE_KEYWORDS)
    elif name.startswith("course/"):
        messages = python_messages([course_module(name)], COURSE_KEYWORDS)
    else:
        source = lstmjax_translate.page_source(name)
        if source is None:
            return []
        _, messages = lstmjax_translate.source_messages(source, table, text)
    missing = [message for message in messages if message not in table]
    return [f"{name}: no translation for {catalogs.short(message)!r}" for message in missing]


def problems(language: str) -> list[str]:
    """Why the catalogs declared translated in ``language`` are not complete (empty when they are)."""
    found = []
    known = set(catalogs.catalog_names(language)) | {catalogs.SITE}
    for name in catalogs.declared(language):
        if name not in known and lstmjax_translate.page_source(name) is None:
            found.append(f"{name}: declared translated, and there is no such catalog")
            continue
        stats = catalogs.stats(name, language)
        if not stats.complete:
            found.append(f"{name}: {stats.line()}")
            found += [f"  {line}" for line in catalogs.incomplete_messages(name, language)[:10]]
            found += [f"  {problem}" for problem in stats.problems[:10]]
        found += source_problems(name, language)
    return found


def check(languages: list[str], quiet: bool = False) -> int:
    """Print every catalog's numbers; exit status 1 if a catalog declared translated is incomplete."""
    status = 0
    for language in languages:
        declared = set(catalogs.declared(language))
        names = sorted(set(catalogs.catalog_names(language)) | declared)
        incomplete = []
        for name in names:
            stats = catalogs.stats(name, language)
            if not quiet or name in declared:
                mark = "declared" if name in declared else ("complete" if stats.complete else "")
                print(f"{language} {name:40} {mark:9} {stats.line()}")
            if not stats.complete and name not in declared:
                incomplete.append(name)
        found = problems(language)
        if incomplete:
            print(f"{language}: not translated yet ({len(incomplete)}): {', '.join(incomplete)}")
        if found:
            print(f"{language}: catalogs declared translated in {catalogs.LOCALES / language / 'TRANSLATED'} "
                  "are not complete:\n  " + "\n  ".join(found), file=sys.stderr)
            status = 1
        else:
            print(f"{language}: the {len(declared)} catalogs declared translated are complete")
    return status


def notebooks(languages: list[str], out: pathlib.Path | None) -> int:
    """Write every tutorial and solution as a notebook in each language (strict for declared pages)."""
    import jupytext
    import nbformat

    tutorials = sorted(lstmjax_translate.TUTORIALS.glob("[0-9][0-9]_*.md"))
    tutorials += sorted((lstmjax_translate.TUTORIALS / "solutions").glob("[0-9][0-9]_*.md"))
    for language in languages:
        declared = set(catalogs.declared(language))
        out_dir = out or lstmjax_translate.notebooks_dir(language)
        for source in tutorials:
            docname = lstmjax_translate.docname_of(source)
            notebook = lstmjax_translate.translate_notebook(jupytext.read(source), source, language, out_dir=out_dir,
                                                           strict=docname in declared)
            target = lstmjax_translate.notebook_path(source, language, out_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, target)
            left = notebook.metadata["lstmjax"]["untranslated"]
            print(f"{target.relative_to(REPO) if target.is_relative_to(REPO) else target}"
                  + (f" ({left} passages still in English)" if left else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["update", "check", "notebooks"])
    parser.add_argument("-l", "--language", action="append", choices=TRANSLATIONS,
                        help=f"a language (repeatable; default: {', '.join(TRANSLATIONS)})")
    parser.add_argument("--no-pages", action="store_true",
                        help="update: only the site's and the course's catalogs (no Sphinx build)")
    parser.add_argument("--out", type=pathlib.Path, help="notebooks: the folder (default tutorials/<language>)")
    args = parser.parse_args(argv)
    languages = args.language or TRANSLATIONS
    os.chdir(REPO)
    if args.command == "update":
        return update(languages, pages=not args.no_pages)
    if args.command == "check":
        return check(languages)
    return notebooks(languages, args.out)


if __name__ == "__main__":
    sys.exit(main())

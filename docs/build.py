"""Build the lstmjax site (offline, warnings are errors) into docs/_build/html, in every language.

    python docs/build.py                 # render the tutorials executed by the tests (fast mode)
    python docs/build.py --test          # ... then open every tutorial page in headless Chromium
    python docs/build.py --language zh_CN  # one language only (repeatable)
    python docs/build.py --partial       # tutorials not executed yet shown without outputs (a quick look)
    python docs/build.py --execute       # execute every tutorial at full size first, render those
    python docs/build.py --execute --fast  # execute in fast mode without running the tests
    python docs/build.py --execute --record  # full size, and record run times and outputs
                                             # (tutorials/full_run.json: the site's times, the checks)
    python docs/build.py --execute --record --only 07  # one tutorial, then stop

Each language is a site of its own, ``docs/_build/html/en/`` (the source) and
``docs/_build/html/zh_CN/`` (translated from ``docs/locales``; ``python docs/i18n.py --help``),
with a language switch on every page; ``docs/_build/html/index.html`` leads to them. A page
declared translated (``docs/locales/zh_CN/TRANSLATED``) with a message the catalogs do not
translate (a new or changed English paragraph) fails the build.

Without ``--execute`` no notebook runs here: the tutorials are rendered from the notebooks that
``python -m pytest tests/test_tutorials.py`` saved, executed, in ``docs/_build/executed`` (or
``$LSTMJAX_EXECUTED_DIR``), so CI executes each tutorial once. ``--execute`` writes its notebooks to
``docs/_build/executed-full`` (``executed-fast`` with ``--fast``) and renders those.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import time

DOCS = pathlib.Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

import lstmjax_catalogs  # noqa: E402
import lstmjax_docs  # noqa: E402
import lstmjax_fullrun  # noqa: E402


def execute(out_dir: pathlib.Path, fast: bool, timeout: int, force: bool = False,
            only: list[str] | None = None) -> dict[pathlib.Path, dict]:
    """Execute the tutorials and solutions into ``out_dir`` (as tests/test_tutorials.py saves them).

    A notebook already there, executed from the same cells in the same mode without errors, is
    kept unless ``force``. ``only``: the notebooks whose name starts with one of these (``07``,
    ``solutions/07``). Returns what was executed: source → the load average before and after.
    """
    import jupytext
    import nbclient
    import nbformat

    # Jupyter's inline backend (headless): figures become image/png outputs.
    env = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "LSTMJAX_FAST": "1" if fast else "0"}
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        tutorials, solutions = lstmjax_docs.tutorial_sources()
        executed = {}
        for source in tutorials + solutions:
            rel = source.relative_to(lstmjax_docs.TUTORIALS)
            if only and not any(rel.as_posix().startswith(prefix) for prefix in only):
                continue
            target = out_dir / rel.with_suffix(".ipynb")
            if not force and lstmjax_docs.notebook_problem(source, target, fast=fast) is None:
                print(f"up to date: {target.relative_to(REPO)}", flush=True)
                continue
            start = time.perf_counter()
            notebook = jupytext.read(source)
            client = nbclient.NotebookClient(
                notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(source.parent)}}
            )
            notebook.metadata["lstmjax"] = {"fast": fast, "source": source.relative_to(REPO).as_posix()}
            target.parent.mkdir(parents=True, exist_ok=True)
            load = os.getloadavg()[0]
            try:
                client.execute()
            except nbclient.exceptions.CellExecutionError as error:
                nbformat.write(notebook, target)  # to look at; the build refuses its error output
                raise SystemExit(f"{source.relative_to(REPO)} failed (saved to {target}):\n{error}") from None
            nbformat.write(notebook, target)
            print(f"executed {source.relative_to(REPO)} in {time.perf_counter() - start:.0f} s", flush=True)
            executed[source] = {"load": [round(load, 1), round(os.getloadavg()[0], 1)]}
        return executed
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def record(out_dir: pathlib.Path, executed: dict[pathlib.Path, dict]) -> None:
    """Write the full-size run of the tutorials just executed (and of those the record lacks) to
    ``tutorials/full_run.json`` (:mod:`lstmjax_fullrun`)."""
    import nbformat

    known = (lstmjax_fullrun.read() or {}).get("tutorials", {})
    meta = lstmjax_fullrun.machine()
    entries = {}
    for source in lstmjax_docs.tutorial_sources()[0]:
        if source not in executed and source.stem in known:
            continue
        path = out_dir / source.relative_to(lstmjax_docs.TUTORIALS).with_suffix(".ipynb")
        if lstmjax_docs.notebook_problem(source, path, fast=False) is None:
            entries[source.stem] = {**lstmjax_fullrun.entry(source, nbformat.read(path, as_version=4)),
                                    **executed.get(source, {})}
    lstmjax_fullrun.write(entries, meta)
    for stem, item in entries.items():
        print(f"recorded {stem}: {lstmjax_fullrun.duration(item['seconds'])} "
              f"(core {lstmjax_fullrun.duration(item['core_seconds'])})", flush=True)


ROOT_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lstmjax</title>
<meta http-equiv="refresh" content="0; url=en/index.html">
<script>
  // A reader whose browser asks for Chinese lands on the Chinese site; everyone else on the English one.
  if ((navigator.languages || [navigator.language]).some(l => /^zh/i.test(l || ""))) location.replace("zh_CN/index.html");
</script>
</head>
<body>
<p><a href="en/index.html" hreflang="en">lstmjax (English)</a> · <a href="zh_CN/index.html" hreflang="zh-CN" lang="zh-CN">lstmjax（中文）</a></p>
</body>
</html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execute", action="store_true", help="execute every tutorial first (full size)")
    parser.add_argument("--fast", action="store_true", help="with --execute: execute in fast mode (LSTMJAX_FAST=1)")
    parser.add_argument("--force", action="store_true", help="with --execute: also re-execute up-to-date notebooks")
    parser.add_argument("--timeout", type=int, default=1800, help="with --execute: seconds per cell")
    parser.add_argument("--record", action="store_true",
                        help="with --execute (full size): write the tutorials' run times and outputs to "
                             "tutorials/full_run.json, which the site and tests/test_full_run.py read")
    parser.add_argument("--only", action="append", metavar="PREFIX",
                        help="with --execute: only the notebooks whose name starts with PREFIX "
                             "(07, solutions/07; repeatable); then stop after executing")
    parser.add_argument("--test", action="store_true", help="then check the site in headless Chromium")
    parser.add_argument("--clean", action="store_true", help="rebuild every page, not only the changed ones")
    parser.add_argument("--partial", action="store_true",
                        help="render the tutorials not executed yet without outputs (a quick look; not with --test)")
    parser.add_argument("--language", action="append", choices=list(lstmjax_catalogs.LANGUAGES),
                        help="build this language only (repeatable; default: all)")
    args = parser.parse_args(argv)
    if args.partial and args.test:
        parser.error("--partial renders some tutorials without outputs, which the browser test refuses")

    if args.record and (args.fast or not args.execute):
        parser.error("--record needs --execute at full size (without --fast)")
    if args.only and not args.execute:
        parser.error("--only needs --execute")
    if args.execute:
        out = DOCS / "_build" / ("executed-fast" if args.fast else "executed-full")
        executed = execute(out, fast=args.fast, timeout=args.timeout, force=args.force, only=args.only)
        if args.record:
            record(out, executed)
        if args.only:
            return 0
        os.environ["LSTMJAX_EXECUTED_DIR"] = str(out)
    problems = [] if args.partial else lstmjax_docs.staging_problems()
    if problems:
        print("docs build: " + lstmjax_docs.not_ready_message(problems), file=sys.stderr)
        return 1
    print(f"rendering the executed notebooks in {lstmjax_docs.executed_dir()}", flush=True)

    html = DOCS / "_build" / "html"
    for language in args.language or list(lstmjax_catalogs.LANGUAGES):
        start = time.perf_counter()
        command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-D",
                   f"language={language}", "-D", f"lstmjax_notebooks={'partial' if args.partial else 'executed'}"]
        if args.clean:
            command.append("-E")
        command += [str(DOCS), str(html / language), "-d", str(DOCS / "_build" / "doctrees" / language)]
        result = subprocess.run(command, cwd=REPO)
        if result.returncode:
            print(f"docs build failed ({language}, exit {result.returncode})", file=sys.stderr)
            return result.returncode
        print(f"built {html / language / 'index.html'} in {time.perf_counter() - start:.0f} s", flush=True)
    (html / "index.html").write_text(ROOT_PAGE, encoding="utf-8")
    (html / ".lstmjax-built").write_text(str(lstmjax_docs.executed_dir()) + "\n")  # tests/test_docs_site.py reads it

    if args.test:
        env = dict(os.environ, LSTMJAX_DOCS_REQUIRED="1")
        test = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", str(REPO / "tests" / "test_docs_site.py")]
        return subprocess.run(test, cwd=REPO, env=env).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())

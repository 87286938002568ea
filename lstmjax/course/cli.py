"""The ``lstmjax-course`` command (also ``python -m lstmjax.course``): student copies and grading.

* ``lstmjax-course lab``: JupyterLab on ``tutorials/`` with jupytext's notebook viewer as the
  default for ``.md`` files, so a click on a tutorial opens a notebook (:mod:`lstmjax.course.lab`);
  arguments after ``--`` go to JupyterLab.
* ``lstmjax-course exercises``: every exercise id and its title.
* ``lstmjax-course handout tutorials/*.md --out handouts/``: a student copy of each tutorial
  (exercise cells hold their placeholders; nbgrader cell metadata), see
  :mod:`lstmjax.course.handout`; ``--worksheet`` keeps only the setup cell and the exercises.
* ``lstmjax-course grade tutorials/NN_name.md SUBMISSION.ipynb ... --out grades/``: grade the
  submissions with nbgrader, outside the students' kernels, and write a score per exercise as
  JSON and as a table (:mod:`lstmjax.course.grading`).

Errors (a missing file, a tutorial without exercises, nbgrader failing) print
``lstmjax-course: error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstmjax-course",
                                     description="The course's exercises: list them, make student copies, grade.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lab = sub.add_parser("lab", help="open the tutorials as notebooks in JupyterLab")
    lab.add_argument("--dir", default="tutorials", help="the folder to open (default: tutorials)")
    lab.add_argument("--settings-dir", default=None, help="JupyterLab settings folder to use "
                     "(default: ~/.lstmjax/jupyterlab-settings)")
    lab.add_argument("jupyter_args", nargs="*", metavar="-- JUPYTERLAB_ARGS")
    sub.add_parser("exercises", help="list every exercise id and title")
    handout = sub.add_parser("handout", help="write student copies (.ipynb) of tutorials")
    handout.add_argument("sources", nargs="+", metavar="TUTORIAL.md", help="tutorials/NN_name.md files")
    handout.add_argument("--out", required=True, metavar="DIR", help="folder for the copies")
    handout.add_argument("--worksheet", action="store_true", help="only the setup cell and the exercises")
    grade = sub.add_parser("grade", help="grade submitted copies of one tutorial (nbgrader)")
    grade.add_argument("source", metavar="TUTORIAL.md", help="the tutorial the copies were made from")
    grade.add_argument("submissions", nargs="+", metavar="SUBMISSION.ipynb")
    grade.add_argument("--out", required=True, metavar="DIR", help="folder for NN_name.json and NN_name.md")
    grade.add_argument("--worksheet", action="store_true", help="the copies are worksheets")
    grade.add_argument("--fast", action="store_true", help="run them with LSTMJAX_FAST=1")
    grade.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "lab":
            from lstmjax.course.lab import run_lab

            return run_lab(args.dir, args.settings_dir, args.jupyter_args)
        if args.command == "exercises":
            from lstmjax import course

            for exercise_id, title in course.exercises().items():
                print(f"{exercise_id}  {title}")
        elif args.command == "handout":
            from lstmjax.course.handout import write_handouts

            for path in write_handouts(args.sources, args.out, worksheet=args.worksheet):
                print(path)
        else:
            from lstmjax.course.grading import format_table, grade

            reports = grade(args.source, args.submissions, args.out, worksheet=args.worksheet, fast=args.fast,
                            timeout=args.timeout)
            print(format_table(reports), end="")
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"lstmjax-course: error: {error}", file=sys.stderr)
        return 2
    return 0

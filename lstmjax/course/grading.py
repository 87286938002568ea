"""Grading submitted student copies with nbgrader: a score per exercise, as JSON and as a table.

The student copies come from :mod:`lstmjax.course.handout`. :func:`grade` hands them to
`nbgrader <https://nbgrader.readthedocs.io>`_, which does the grading proper: it restores the
locked check cells from the source (a student cannot edit a check away), executes each
submission top to bottom in a fresh kernel (never the student's), and scores each check cell by
whether it raised. The environment of that kernel has ``LSTMJAX_GRADING=1``, so a wrong answer's
``course.check`` raises with its ✗ message (:data:`~lstmjax.course._check.GRADING_ENV`). This
module is only the glue: a throw-away nbgrader course directory, the two nbgrader commands
(``generate_assignment``, ``autograde``), and the report read back from nbgrader's gradebook and
the graded notebooks.

    lstmjax-course grade tutorials/02_pipeline.md submissions/*.ipynb --out grades/
    lstmjax-course grade tutorials/02_pipeline.md sheets/*.ipynb --worksheet --fast --out grades/

writes ``grades/02_pipeline.json`` and ``grades/02_pipeline.md`` (a table: one row per
submission, one column per exercise, and the ✗ messages below it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from lstmjax.course._check import GRADING_ENV
from lstmjax.course.handout import grade_id, student_notebook

__all__ = ["ExerciseScore", "GradingError", "SubmissionReport", "format_table", "grade"]

_CONFIG = """\
from nbgrader.preprocessors import (CheckCellMetadata, ClearHiddenTests, ClearMarkScheme, ClearOutput,
                                    ComputeChecksums, IncludeHeaderFooter, InstantiateTests, LockCells, SaveCells)
c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "lstmjax"
c.CourseDirectory.db_url = {db_url!r}
# The source is already the student copy (placeholders, no solutions): nothing to clear.
c.GenerateAssignment.preprocessors = [IncludeHeaderFooter, InstantiateTests, LockCells, ClearOutput, CheckCellMetadata,
                                      ComputeChecksums, SaveCells, ClearHiddenTests, ClearMarkScheme,
                                      ComputeChecksums, CheckCellMetadata]
c.Execute.timeout = {timeout}
c.Execute.kernel_name = "python3"
c.Autograde.create_student = True
"""


class GradingError(RuntimeError):
    """nbgrader could not set up or run the grading (the message has its output)."""


@dataclasses.dataclass(frozen=True)
class ExerciseScore:
    """One exercise of one submission: ``score`` of ``max_score`` and the check's message."""

    exercise: str
    score: float
    max_score: float
    message: str


@dataclasses.dataclass(frozen=True)
class SubmissionReport:
    """One graded submission: its file, the student id used, and a score per exercise."""

    student: str
    file: str
    exercises: tuple[ExerciseScore, ...]

    @property
    def score(self) -> float:
        """The total score."""
        return sum(e.score for e in self.exercises)

    @property
    def max_score(self) -> float:
        """The most this submission could score."""
        return sum(e.max_score for e in self.exercises)


def _student_ids(submissions: Sequence[pathlib.Path]) -> list[str]:
    """One id per submission, from its file name (nbgrader wants ``[A-Za-z0-9_-]``), unique."""
    ids = []
    for path in submissions:
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-") or "student"
        candidate, k = base, 2
        while candidate in ids:
            candidate, k = f"{base}-{k}", k + 1
        ids.append(candidate)
    return ids


def _nbgrader(root: pathlib.Path, *args: str, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "nbgrader", *args, "--force"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode:
        raise GradingError(f"`nbgrader {' '.join(args)}` failed (exit {done.returncode}):\n"
                           + (done.stdout + done.stderr)[-4000:])


def _messages(graded) -> dict[str, str]:
    """The ✓/✗ line each check cell of a graded notebook printed or raised, by exercise id."""
    out = {}
    for cell in graded.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade"):
            continue
        lines = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                lines.append(output.get("text", ""))
            elif output.get("output_type") == "error":
                lines.append(f"{output.get('ename')}: {output.get('evalue')}")
        text = " ".join(" ".join(lines).split())
        out[meta["grade_id"]] = text or "no output (the cell did not run)"
    return out


def _read_reports(root: pathlib.Path, assignment: str, notebook_id: str, exercises: Sequence[str],
                  students: Sequence[str], files: Sequence[pathlib.Path]) -> list[SubmissionReport]:
    import nbformat
    from nbgrader.api import Gradebook, MissingEntry

    reports = []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "lstmjax") as gradebook:
        for student, path in zip(students, files, strict=True):
            graded_path = root / "autograded" / student / assignment / f"{notebook_id}.ipynb"
            messages = _messages(nbformat.read(graded_path, as_version=4)) if graded_path.is_file() else {}
            try:
                grades = {g.name: g for g in gradebook.find_submission_notebook(notebook_id, assignment,
                                                                                  student).grades}
            except MissingEntry:
                grades = {}
            scores = []
            for exercise in exercises:
                g = grades.get(grade_id(exercise))
                score = float(g.score) if g is not None and g.score is not None else 0.0
                max_score = float(g.max_score) if g is not None else 1.0
                message = messages.get(grade_id(exercise), "not graded: the notebook did not run to this cell")
                scores.append(ExerciseScore(exercise, score, max_score, message))
            reports.append(SubmissionReport(student, str(path), tuple(scores)))
    return reports


def grade(source: str | pathlib.Path, submissions: Sequence[str | pathlib.Path], out_dir: str | pathlib.Path,
          *, worksheet: bool = False, fast: bool = False, timeout: int = 1200) -> list[SubmissionReport]:
    """Grade submitted student copies of one tutorial; write ``out_dir/NN_name.json`` and ``.md``.

    Args:
      source: the tutorial ``tutorials/NN_name.md`` the copies were made from.
      submissions: the students' notebooks (``.ipynb`` made by
        :func:`lstmjax.course.handout.write_handouts`, with their nbgrader cell metadata).
      out_dir: where the report goes.
      worksheet: the copies are worksheets (``handout --worksheet``).
      fast: run the submissions with ``LSTMJAX_FAST=1`` (small data, as CI runs the tutorials).
      timeout: seconds per cell.

    Returns:
      one :class:`SubmissionReport` per submission, in the order given.

    Raises:
      GradingError: nbgrader failed (its output is in the message).
      FileNotFoundError: a submission does not exist.

    Example (grading is minutes of kernel time, so not run here)::

        reports = grade("tutorials/02_pipeline.md", ["alice.ipynb", "bob.ipynb"], "grades/")
        print(format_table(reports))
    """
    import nbformat

    source = pathlib.Path(source)
    files = [pathlib.Path(p) for p in submissions]
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"no submission {path}")
    assignment = notebook_id = source.stem
    root = pathlib.Path(tempfile.mkdtemp(prefix="lstmjax-grading-"))
    try:
        (root / "nbgrader_config.py").write_text(_CONFIG.format(root=str(root), timeout=int(timeout),
                                                                db_url=f"sqlite:///{root / 'gradebook.db'}"))
        master = student_notebook(source, worksheet=worksheet)
        exercises = master.metadata["lstmjax"]["exercises"]
        (root / "source" / assignment).mkdir(parents=True)
        nbformat.write(master, root / "source" / assignment / f"{notebook_id}.ipynb")
        _nbgrader(root, "generate_assignment", assignment)
        students = _student_ids(files)
        for student, path in zip(students, files, strict=True):
            target = root / "submitted" / student / assignment / f"{notebook_id}.ipynb"
            target.parent.mkdir(parents=True)
            shutil.copyfile(path, target)
        env = {GRADING_ENV: "1", "LSTMJAX_FAST": "1" if fast else "0", "MPLBACKEND": "Agg"}
        _nbgrader(root, "autograde", assignment, env=env)
        reports = _read_reports(root, assignment, notebook_id, exercises, students, files)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"tutorial": source.name, "worksheet": worksheet, "fast": fast, "exercises": exercises,
               "submissions": [dict(dataclasses.asdict(r), score=r.score, max_score=r.max_score) for r in reports]}
    (out_dir / f"{notebook_id}.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n",
                                                 encoding="utf-8")
    (out_dir / f"{notebook_id}.md").write_text(format_table(reports, title=source.name), encoding="utf-8")
    return reports


def format_table(reports: Sequence[SubmissionReport], *, title: str = "") -> str:
    """The reports as a Markdown table (a row per submission), then each ✗ message.

    Example:
      >>> r = SubmissionReport("ann", "ann.ipynb", (ExerciseScore("02.1", 1.0, 1.0, "✓ 02.1: right"),
      ...                                           ExerciseScore("02.2", 0.0, 1.0, "AssertionError: ✗ 02.2: no")))
      >>> print(format_table([r]))
      | student | 02.1 | 02.2 | total |
      |---|---|---|---|
      | ann | 1 | 0 | 1 / 2 |
      <BLANKLINE>
      ann, 02.2: AssertionError: ✗ 02.2: no
    """
    if not reports:
        return "no submissions\n"
    exercises = [e.exercise for e in reports[0].exercises]
    lines = [f"# Grades: {title}", ""] if title else []
    lines += ["| student | " + " | ".join(exercises) + " | total |", "|" + "---|" * (len(exercises) + 2)]
    for r in reports:
        cells = " | ".join(f"{e.score:g}" for e in r.exercises)
        lines.append(f"| {r.student} | {cells} | {r.score:g} / {r.max_score:g} |")
    lines.append("")
    lines += [f"{r.student}, {e.exercise}: {e.message}" for r in reports for e in r.exercises if e.score < e.max_score]
    return "\n".join(lines) + "\n"

"""Student copies of the tutorials: notebooks whose exercise cells hold only their placeholders.

A tutorial's ``.md`` (jupytext MyST) is the one source. Its exercise cells end with
``course.check("NN.k", answer)`` after a placeholder (``...`` bodies, ``None``). A student copy is
that notebook with each exercise cell split in two, in the format of `nbgrader
<https://nbgrader.readthedocs.io>`_:

* the **answer cell** (the placeholder; nbgrader ``solution``: the student edits it), and
* the **check cell** (``course.check("NN.k", answer)``; nbgrader ``grade`` and ``locked``, one
  point): the grader (:mod:`lstmjax.course.grading`) restores it from the source if a student
  changed it, and scores it by whether it raises, which ``course.check`` does under the grader
  only (:data:`~lstmjax.course._check.GRADING_ENV`); in the student's own kernel it prints ✓ or ✗.

Outputs are cleared; the worked solutions (``tutorials/solutions/``) are never part of a copy. A
*worksheet* keeps only the tutorial's title, its first code cell (the imports and settings) and
its exercises: a homework sheet that runs (and is graded) in seconds, for the exercises that do
not use what the tutorial's body computed.

    lstmjax-course handout tutorials/*.md --out handouts/
    lstmjax-course handout tutorials/02_pipeline.md --worksheet --out sheets/
"""

from __future__ import annotations

import ast
import copy
import pathlib
import re
from collections.abc import Sequence

__all__ = ["check_call", "grade_id", "student_notebook", "write_handouts"]

_CHECK = re.compile(r"""course\.check\(\s*["'](\d\d\.\d+)["']""")
POINTS = 1
"""Points per exercise in a student copy (each exercise's check cell is worth this much)."""


def check_call(source: str) -> tuple[str, int] | None:
    """``(exercise id, line)`` of a code cell's final ``course.check("NN.k", ...)`` statement, or None.

    ``line`` is the 0-based line where that statement starts: the cell's answer is everything
    above it.

    Example:
      >>> check_call('def f(x):\\n    ...\\n\\n\\ncourse.check("04.3", f)')
      ('04.3', 4)
      >>> check_call("x = 1") is None
      True
    """
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    if not body:
        return None
    last = body[-1]
    text = ast.get_source_segment(source, last) or ""
    match = _CHECK.match(text.removeprefix("assert").strip())
    if not isinstance(last, ast.Expr | ast.Assert) or match is None:
        return None
    start = min([last.lineno] + [d.lineno for d in getattr(last, "decorator_list", [])]) - 1
    return match.group(1), start


def grade_id(exercise_id: str, *, answer: bool = False) -> str:
    """nbgrader's id of an exercise's check cell (``"02.1"`` → ``"ex-02-1"``; nbgrader allows no dots).

    Example:
      >>> grade_id("02.1"), grade_id("02.1", answer=True)
      ('ex-02-1', 'answer-02-1')
    """
    return f"{'answer' if answer else 'ex'}-{exercise_id.replace('.', '-')}"


def _nbgrader(grade_id: str, *, solution: bool) -> dict:
    meta = {"grade": not solution, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}
    if not solution:
        meta["points"] = POINTS
    return meta


def _split_exercise(cell, nbformat) -> list:
    """An exercise cell as [answer cell, check cell] with nbgrader metadata; other cells unchanged."""
    found = check_call(cell.source) if cell.cell_type == "code" else None
    if found is None:
        return [cell]
    exercise_id, line = found
    lines = cell.source.splitlines()
    answer = "\n".join(lines[:line]).rstrip() or f"# your answer to {exercise_id}"
    check = "\n".join(lines[line:]).strip()
    answer_cell = nbformat.v4.new_code_cell(
        answer, metadata={"nbgrader": _nbgrader(grade_id(exercise_id, answer=True), solution=True)})
    check_cell = nbformat.v4.new_code_cell(check, metadata={"nbgrader": _nbgrader(grade_id(exercise_id), solution=False),
                                                            "lstmjax": {"exercise": exercise_id}})
    return [answer_cell, check_cell]


def _worksheet_cells(cells) -> list:
    """The title cell, the first code cell, and every cell from the ``## Exercises`` heading on."""
    first_code = next(k for k, c in enumerate(cells) if c.cell_type == "code")
    start = next((k for k, c in enumerate(cells) if c.cell_type == "markdown"
                  and re.search(r"^##\s+Exercises", c.source, flags=re.MULTILINE)), None)
    if start is None:
        raise ValueError("the tutorial has no '## Exercises' section")
    heading = copy.deepcopy(cells[start])  # it may begin with the summary: keep from the heading on
    heading.source = heading.source[re.search(r"^##\s+Exercises", heading.source, flags=re.MULTILINE).start():]
    return [cells[0], cells[first_code], heading, *cells[start + 1:]]


def student_notebook(source: str | pathlib.Path, *, worksheet: bool = False):
    """The student copy of one tutorial, as an ``nbformat`` notebook (v4, no outputs).

    Args:
      source: a tutorial ``tutorials/NN_name.md``.
      worksheet: keep only the title, the first code cell and the exercises.

    Returns:
      the notebook, with ``metadata.lstmjax = {"source": ..., "exercises": [...], "worksheet": ...}``.

    Raises:
      ValueError: the file calls no ``course.check`` (not a tutorial with exercises).

    Example:
      >>> import pathlib, tempfile
      >>> md = pathlib.Path(tempfile.mkdtemp()) / "00_demo.md"
      >>> _ = md.write_text("# Demo\\n\\n```{code-cell} ipython3\\nfrom lstmjax import course\\n```\\n\\n"
      ...                   "## Exercises\\n\\n```{code-cell} ipython3\\ndef double(x):\\n    ...\\n\\n\\n"
      ...                   "course.check(\\"00.1\\", double)\\n```\\n")
      >>> nb = student_notebook(md)
      >>> [c.cell_type for c in nb.cells], nb.metadata["lstmjax"]["exercises"]
      (['markdown', 'code', 'markdown', 'code', 'code'], ['00.1'])
      >>> nb.cells[-1].source, nb.cells[-1].metadata["nbgrader"]["grade_id"]
      ('course.check("00.1", double)', 'ex-00-1')
    """
    import jupytext
    import nbformat

    source = pathlib.Path(source)
    notebook = jupytext.read(source)
    cells = _worksheet_cells(notebook.cells) if worksheet else notebook.cells
    out = []
    for cell in cells:
        cell = copy.deepcopy(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        out += _split_exercise(cell, nbformat)
    exercises = [c.metadata["lstmjax"]["exercise"] for c in out if c.metadata.get("nbgrader", {}).get("grade")]
    if not exercises:
        raise ValueError(f"{source}: no course.check(...) exercise cells")
    student = nbformat.v4.new_notebook(cells=out)
    student.metadata.kernelspec = {"display_name": "Python 3", "language": "python", "name": "python3"}
    student.metadata.language_info = {"name": "python"}
    student.metadata["lstmjax"] = {"source": source.name, "exercises": exercises, "worksheet": worksheet}
    seen = set()
    for cell in student.cells:  # every cell its own id (cells copied from the source keep theirs)
        if cell.get("id") in seen or "id" not in cell:
            cell.id = nbformat.v4.new_code_cell().id
        seen.add(cell.id)
    nbformat.validate(student)
    return student


def write_handouts(sources: Sequence[str | pathlib.Path], out_dir: str | pathlib.Path, *,
                   worksheet: bool = False) -> list[pathlib.Path]:
    """Write the student copy of each tutorial to ``out_dir/NN_name.ipynb``; returns the paths.

    Example:
      >>> import pathlib, tempfile
      >>> md = pathlib.Path(tempfile.mkdtemp()) / "00_demo.md"
      >>> _ = md.write_text("# Demo\\n\\n```{code-cell} ipython3\\nfrom lstmjax import course\\n"
      ...                   "course.check('00.1', None)\\n```\\n")
      >>> [p.name for p in write_handouts([md], md.parent / "out")]
      ['00_demo.ipynb']
    """
    import nbformat

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        target = out_dir / pathlib.Path(source).with_suffix(".ipynb").name
        nbformat.write(student_notebook(source, worksheet=worksheet), target)
        written.append(target)
    return written

"""The checkable exercises (``lstmjax.course``) and their worked solutions.

* every ``tutorials/solutions/*.md`` runs top to bottom in fast mode (each solution ends with
  ``assert course.check(...)``), as ``tests/test_tutorials.py`` runs the tutorials;
* every exercise a tutorial calls is registered, every registered exercise is called by its
  tutorial and has a worked solution (found by glob, so new tutorials are covered as they appear).

Each checker's right and wrong answers are in ``tests/test_course_checkers.py``.
"""

from __future__ import annotations

import pathlib
import re

import pytest
from _notebooks import execute

from lstmjax import course

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.md"))
SOLUTIONS = sorted((ROOT / "tutorials" / "solutions").glob("[0-9][0-9]_*.md"))
CALL = re.compile(r"""course\.check\(\s*["'](\d\d\.\d+)["']""")


def _calls(path: pathlib.Path) -> set[str]:
    return set(CALL.findall(path.read_text(encoding="utf-8")))


# ------------------------------------------------------------------ the solutions run


@pytest.mark.tutorial
@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solutions_run(path, monkeypatch, tmp_path):
    execute(path, monkeypatch, tmp_path, timeout=600)


# ------------------------------------------------------------------ registry ↔ tutorials ↔ solutions


def test_every_exercise_called_is_registered():
    registered = course.exercises()
    for path in TUTORIALS + SOLUTIONS:
        missing = sorted(_calls(path) - set(registered))
        assert not missing, f"{path.relative_to(ROOT)} calls unregistered exercises {missing}"


def test_every_registered_exercise_has_its_tutorial_and_solution():
    by_number = {p.name[:2]: p for p in TUTORIALS}
    solutions = {p.name[:2]: p for p in SOLUTIONS}
    for exercise_id in course.exercises():
        number = exercise_id.split(".")[0]
        if number == "00":  # the example exercise of lstmjax.course's docstring
            continue
        assert number in by_number, f"exercise {exercise_id} has no tutorials/{number}_*.md"
        assert exercise_id in _calls(by_number[number]), f"{by_number[number].name} never calls {exercise_id}"
        assert number in solutions, f"exercise {exercise_id} has no tutorials/solutions/{number}_*.md"
        text = solutions[number].read_text(encoding="utf-8")
        assert re.search(rf"""assert course\.check\(\s*["']{re.escape(exercise_id)}["']""", text), (
            f"{solutions[number].name} has no `assert course.check({exercise_id!r}, ...)`")


def test_solutions_are_named_after_their_tutorials():
    names = {p.name for p in TUTORIALS}
    for path in SOLUTIONS:
        assert path.name in names, f"tutorials/solutions/{path.name} matches no tutorials/*.md"


# ------------------------------------------------------------------ the concept pictures


def test_every_figure_is_an_svg_with_a_title_and_a_tutorial_shows_it():
    import xml.etree.ElementTree as ET

    from lstmjax.course.figures import FIGURES, figure

    shown = "".join(path.read_text(encoding="utf-8") for path in TUTORIALS)
    for name in FIGURES:
        f = figure(name)
        root = ET.fromstring(f.svg)  # well-formed XML
        assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("viewBox"), name
        title = root.find("{http://www.w3.org/2000/svg}title")
        assert title is not None and title.text, f"{name}.svg has no <title> (what a screen reader says)"
        assert f._repr_svg_() == f.svg and name in repr(f)
        assert f'course.figure("{name}")' in shown, f"no tutorial shows the figure {name!r}"
    with pytest.raises(ValueError, match="no figure 'nope'"):
        figure("nope")

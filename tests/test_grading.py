"""Student copies and the grader: a correct, a partly wrong and an empty submission, graded by nbgrader.

The copies are worksheets of tutorial 02 (its setup cell and its four exercises), so each
submission runs in seconds; the grading is the real thing: ``lstmjax-course grade`` makes an
nbgrader course, restores the locked check cells, executes every submission in a fresh kernel
and reads the scores back. The partly wrong submission also edits one check cell away, which
the grader must undo.
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from lstmjax.course import handout

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "tutorials" / "02_pipeline.md"

RIGHT = {
    "02.1": "def balanced_accuracy(cm):\n    cm = np.asarray(cm)\n    return float(np.mean(np.diag(cm) / cm.sum(axis=1)))",
    "02.2": ("def confusion_at(p_pos, y_true, threshold):\n    pred = (np.asarray(p_pos) > threshold).astype(int)\n"
             "    cm = np.zeros((2, 2), int)\n    np.add.at(cm, (np.asarray(y_true), pred), 1)\n    return cm"),
    "02.3": ("def early_stopping(scores, patience):\n    best, best_epoch = -float('inf'), None\n"
             "    for epoch, s in enumerate(scores, start=1):\n        if s > best:\n"
             "            best, best_epoch = s, epoch\n        if epoch - best_epoch >= patience:\n"
             "            return best_epoch, epoch\n    return best_epoch, len(scores)"),
    "02.4": "def standard_error(accuracy, n):\n    return (accuracy * (1 - accuracy) / n) ** 0.5",
}
WRONG = {
    "02.1": "def balanced_accuracy(cm):\n    cm = np.asarray(cm)\n    return float(np.trace(cm) / cm.sum())",  # accuracy
    "02.4": "def standard_error(accuracy, n):\n    return (accuracy * (1 - accuracy)) ** 0.5",  # forgot n
}


def _submission(answers: dict[str, str], tmp: pathlib.Path, name: str, *, tamper: str | None = None) -> pathlib.Path:
    import nbformat

    notebook = handout.student_notebook(TUTORIAL, worksheet=True)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        for exercise, answer in answers.items():
            if grade_id == handout.grade_id(exercise, answer=True):
                cell.source = answer
        if tamper and grade_id == handout.grade_id(tamper):  # a student "fixes" a check cell
            cell.source = "print('✓ passed')"
    path = tmp / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path


def test_student_copy_keeps_placeholders_and_marks_the_checks():
    notebook = handout.student_notebook(TUTORIAL)
    graded = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")]
    answers = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert [c.metadata.nbgrader.grade_id for c in graded] == ["ex-02-1", "ex-02-2", "ex-02-3", "ex-02-4"]
    assert notebook.metadata.lstmjax.exercises == ["02.1", "02.2", "02.3", "02.4"]
    assert all(c.metadata.nbgrader.locked and c.metadata.nbgrader.points == 1 for c in graded)
    assert all(re.fullmatch(r"course\.check\(\"02\.\d\", \w+\)", c.source) for c in graded)
    assert all("..." in c.source for c in answers), [c.source for c in answers]
    assert not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code")
    text = TUTORIAL.read_text(encoding="utf-8")
    assert all(c.source in text for c in notebook.cells if c.cell_type == "code")  # nothing added but the split
    sheet = handout.student_notebook(TUTORIAL, worksheet=True)
    assert len(sheet.cells) < len(notebook.cells) / 2 and sheet.cells[2].source.startswith("## Exercises")


def test_handout_command_writes_copies(tmp_path, capsys):
    from lstmjax.course.cli import main

    assert main(["handout", str(TUTORIAL), str(ROOT / "tutorials" / "04_lstm_equations.md"), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["02_pipeline.ipynb", "04_lstm_equations.ipynb"]
    assert main(["handout", str(tmp_path / "missing.md"), "--out", str(tmp_path)]) == 2
    assert "lstmjax-course: error:" in capsys.readouterr().err


@pytest.mark.slow
def test_grader_scores_correct_partly_wrong_and_empty(tmp_path):
    pytest.importorskip("nbgrader", reason='grading needs nbgrader (pip install -e ".[instructor]")')
    from lstmjax.course.cli import main

    files = [_submission(RIGHT, tmp_path, "correct"),
             _submission({**RIGHT, **WRONG}, tmp_path, "partly",
                         tamper="02.4"),
             _submission({}, tmp_path, "empty")]
    out = tmp_path / "grades"
    assert main(["grade", str(TUTORIAL), *map(str, files), "--out", str(out), "--worksheet", "--fast"]) == 0
    report = json.loads((out / "02_pipeline.json").read_text(encoding="utf-8"))
    scores = {s["student"]: {e["exercise"]: e["score"] for e in s["exercises"]} for s in report["submissions"]}
    assert scores == {"correct": {"02.1": 1, "02.2": 1, "02.3": 1, "02.4": 1},
                      "partly": {"02.1": 0, "02.2": 1, "02.3": 1, "02.4": 0},
                      "empty": {"02.1": 0, "02.2": 0, "02.3": 0, "02.4": 0}}
    messages = {(s["student"], e["exercise"]): e["message"] for s in report["submissions"] for e in s["exercises"]}
    assert "per-class recalls" in messages["partly", "02.1"]
    assert "divide the variance by n" in messages["partly", "02.4"]  # the tampered check cell was restored
    assert "None" in messages["empty", "02.3"]
    assert messages["correct", "02.2"].startswith("✓ 02.2")
    table = (out / "02_pipeline.md").read_text(encoding="utf-8")
    assert "| correct | 1 | 1 | 1 | 1 | 4 / 4 |" in table and "| empty | 0 | 0 | 0 | 0 | 0 / 4 |" in table
    assert "| partly | 0 | 1 | 1 | 0 | 2 / 4 |" in table

"""Checkable exercises for the tutorials: call :func:`check` with an exercise id and your answer.

Each tutorial ends with exercises. An exercise has an id ``"NN.k"`` (tutorial ``NN``, exercise
``k``) and a checker registered here; the learner calls ``course.check("07.2", answer)`` and reads
either ``✓ 07.2: ...`` or ``✗ 07.2: ...`` with what is wrong. Worked solutions live apart from the
exercises, in ``tutorials/solutions/``, and CI runs every solution through its checker.

For teaching: :func:`write_handouts` makes student copies of the tutorials (exercise cells with
their placeholders, in nbgrader's format) and :func:`grade` grades the submitted copies with
nbgrader, in fresh kernels, into a score per exercise (JSON and a table); the command
``lstmjax-course`` runs both (:mod:`lstmjax.course.cli`).

Example:
  >>> from lstmjax import course
  >>> result = course.check("00.1", lambda x: 2 * x)
  ✓ 00.1: doubles 0, 1, -3.5 and 1e6 correctly.
  >>> bool(result)
  True
  >>> bool(course.check("00.1", lambda x: x + 2))
  ✗ 00.1: double(0) returned 2, expected 0.
  False

The checks answer in the notebook's language: a translated notebook (``python docs/i18n.py
notebooks``) sets ``LSTMJAX_LANGUAGE`` in its first cell, and :func:`language` reads it.

  >>> import os
  >>> os.environ["LSTMJAX_LANGUAGE"] = "zh_CN"
  >>> bool(course.check("00.1", lambda x: x + 2))
  ✗ 00.1: double(0) 返回了 2，应为 0。
  False
  >>> del os.environ["LSTMJAX_LANGUAGE"]
"""

# Importing each tutorial's module registers its checkers (t00: the example exercise).
from lstmjax.course import t00, t01, t02, t03, t04, t05, t06, t07, t08, t09, t10, t11  # noqa: F401
from lstmjax.course._check import Result, check, exercise, exercises
from lstmjax.course._i18n import language
from lstmjax.course.figures import figure
from lstmjax.course.grading import ExerciseScore, GradingError, SubmissionReport, format_table, grade
from lstmjax.course.handout import check_call, student_notebook, write_handouts

__all__ = ["ExerciseScore", "GradingError", "Result", "SubmissionReport", "check", "check_call",
           "exercise", "exercises", "figure", "format_table", "grade", "language", "student_notebook",
           "write_handouts"]

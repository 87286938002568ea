"""Every tutorial runs top to bottom (in fast mode: ``LSTMJAX_FAST=1``).

The tutorials are jupytext MyST ``.md`` files; each is converted in memory and executed in a
fresh Jupyter kernel from the ``tutorials/`` folder, as a reader would run it.

Each executed notebook (with its outputs) is saved to ``docs/_build/executed/NN_name.ipynb``
(``$LSTMJAX_EXECUTED_DIR`` to change it), where the docs build (``python docs/build.py``) renders
it: CI executes every tutorial once, here.
"""

import pathlib

import pytest
from _notebooks import execute

TUTORIALS = sorted((pathlib.Path(__file__).resolve().parents[1] / "tutorials").glob("[0-9][0-9]_*.md"))


@pytest.mark.tutorial
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, monkeypatch, tmp_path):
    execute(path, monkeypatch, tmp_path)


def test_tutorials_exist():
    assert TUTORIALS, "no tutorials found in tutorials/"

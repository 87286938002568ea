"""Saving executed notebooks for the docs site (shared by the tests that execute notebooks).

``tests/test_tutorials.py`` (and the solutions' test) execute each tutorial once; the docs build
(``python docs/build.py``) renders the saved notebooks instead of executing them again.
"""

from __future__ import annotations

import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def executed_dir() -> pathlib.Path:
    """``$LSTMJAX_EXECUTED_DIR``, or ``docs/_build/executed`` (git-ignored)."""
    env = os.environ.get("LSTMJAX_EXECUTED_DIR")
    return pathlib.Path(env) if env else REPO / "docs" / "_build" / "executed"


def save_executed(notebook, source: pathlib.Path, *, fast: bool = True) -> pathlib.Path:
    """Save an executed notebook where the docs build looks for it, mirroring ``tutorials/``.

    ``source`` is the tutorial's ``.md`` (``tutorials/NN_name.md`` or
    ``tutorials/solutions/NN_name.md``); the notebook goes to
    ``executed_dir()/<same path>.ipynb`` with ``metadata.lstmjax.fast`` (how its outputs were
    made, for the site's banner). The write is atomic: a build never reads half a notebook.
    """
    import nbformat

    source = pathlib.Path(source).resolve()
    target = executed_dir() / source.relative_to(REPO / "tutorials").with_suffix(".ipynb")
    target.parent.mkdir(parents=True, exist_ok=True)
    notebook.metadata["lstmjax"] = {"fast": fast, "source": source.relative_to(REPO).as_posix()}
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    nbformat.write(notebook, tmp)
    tmp.replace(target)
    return target


def execute(path: pathlib.Path, monkeypatch, tmp_path, *, timeout: int = 900):
    """Run a jupytext ``.md`` notebook top to bottom in fast mode, save it, and fail on an error output.

    The notebook runs in a fresh kernel from its own folder, as a reader would run it, with
    ``LSTMJAX_FAST=1`` and Jupyter's inline matplotlib backend (headless like Agg, but figures
    become ``image/png`` outputs for the site). It is saved with :func:`save_executed` even when a
    cell fails, to look at; the docs build refuses error outputs.
    """
    import pytest

    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("LSTMJAX_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    try:
        client.execute()
    finally:
        save_executed(notebook, path)
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"

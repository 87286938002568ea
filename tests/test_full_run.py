"""The tutorials' full-size run (``tutorials/full_run.json``): every tutorial has one, made from
its code as it is now, and every number a tutorial quotes from it is printed by it.

CI runs the tutorials in fast mode only; these checks make the full-size numbers in the prose
accountable to a recorded run (``python docs/build.py --execute --record``) instead of typed in.
"""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docs" / "_ext"))

import lstmjax_fullrun as fullrun  # noqa: E402

TUTORIALS = sorted((REPO / "tutorials").glob("[0-9][0-9]_*.md"))


@pytest.mark.parametrize("source", TUTORIALS, ids=lambda p: p.stem)
def test_the_prose_quotes_only_what_the_full_run_printed(source):
    problems = fullrun.problems(source, fullrun.read())
    assert not problems, "\n".join(problems)


def test_the_record_has_times_for_every_tutorial_and_a_core_for_the_split_ones():
    record = fullrun.read()
    assert record is not None, f"no {fullrun.RECORD}: run `{fullrun.RECORD_COMMAND}`"
    assert sorted(record["tutorials"]) == [p.stem for p in TUTORIALS]
    for stem, item in record["tutorials"].items():
        assert item["seconds"] > 0 and 0 < item["core_seconds"] <= item["seconds"], stem
        assert item["cpus"] >= 1 and item["date"], stem
        assert abs(sum(s for _, s in item["sections"]) - item["seconds"]) < 1.0, stem


# --------------------------------------------------------------------------- the checks themselves

MD = """---
jupytext: {}
---

# 99 · A title

**Run time** on 2 CPU cores: about 2 minutes in full, 20 s with `LSTMJAX_FAST=1`.

## 1. Training

```{code-cell} ipython3
print("test accuracy 0.787, sparsity 90 %, speed-up 1.3×")
```

In the full run the test accuracy was 0.787 at 90 % sparsity, 1.3× faster (`lr=0.001`, $\\sigma=0.6$).

In the fast run it is 0.512.

## 2. More (extension)

```{code-cell} ipython3
x = 1
```
"""


def _notebook(outputs: str, seconds=(100.0, 20.0)) -> dict:
    def timing(s):
        return {"execution": {"iopub.execute_input": "2026-12-05T10:00:00.000Z",
                              "shell.execute_reply": f"2026-12-05T10:{int(s) // 60:02d}:{s % 60:06.3f}Z"}}

    return {"cells": [
        {"cell_type": "markdown", "source": "# 99 · A title", "metadata": {}},
        {"cell_type": "markdown", "source": "## 1. Training", "metadata": {}},
        {"cell_type": "code", "source": "print(...)", "metadata": timing(seconds[0]),
         "outputs": [{"output_type": "stream", "name": "stdout", "text": outputs}]},
        {"cell_type": "markdown", "source": "## 2. More (extension)", "metadata": {}},
        {"cell_type": "code", "source": "x = 1", "metadata": timing(seconds[1]),
         "outputs": [{"output_type": "execute_result", "data": {"text/plain": "1"}}]},
    ]}


def _setup(tmp_path, monkeypatch, outputs="test accuracy 0.787, sparsity 90 %, speed-up 1.3×\n", markdown=MD,
           seconds=(100.0, 20.0)):
    monkeypatch.setattr(fullrun, "REPO", tmp_path)
    source = tmp_path / "tutorials" / "99_title.md"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(MD, encoding="utf-8")
    entry = {**fullrun.entry(source, _notebook(outputs, seconds)), "cpus": 2, "date": "2026-12-05"}
    source.write_text(markdown, encoding="utf-8")
    return source, {"tutorials": {"99_title": entry}}


def test_entry_times_the_core_and_the_sections(tmp_path, monkeypatch):
    source, record = _setup(tmp_path, monkeypatch)
    item = record["tutorials"]["99_title"]
    assert (item["seconds"], item["core_seconds"], item["has_extensions"]) == (120.0, 100.0, True)
    assert item["sections"] == [["(setup)", 0.0], ["1. Training", 100.0], ["2. More (extension)", 20.0]]
    assert item["outputs"] == ["test accuracy 0.787, sparsity 90 %, speed-up 1.3×\n", "1"]
    assert fullrun.problems(source, record) == []


def test_quoted_numbers_come_from_full_run_paragraphs_only():
    quoted = [number for _, number in fullrun.quoted_numbers(MD)]
    assert quoted == ["0.787", "90 %", "1.3×"]  # not 0.512 (fast run), code spans, formulas, the header


def test_a_quoted_number_the_run_did_not_print_fails(tmp_path, monkeypatch):
    source, record = _setup(tmp_path, monkeypatch, outputs="test accuracy 0.7871, sparsity 90%, speed-up 1.3x\n")
    problems = fullrun.problems(source, record)
    assert len(problems) == 1 and "quotes '0.787'" in problems[0] and "99_title.md:" in problems[0]


def test_changed_code_makes_the_record_stale(tmp_path, monkeypatch):
    source, record = _setup(tmp_path, monkeypatch, markdown=MD.replace("x = 1", "x = 2"))
    (problem,) = fullrun.problems(source, record)
    assert "code cells changed" in problem and fullrun.RECORD_COMMAND in problem
    prose_only, record = _setup(tmp_path, monkeypatch, markdown=MD.replace("A title", "Another title"))
    assert fullrun.problems(prose_only, record) == []  # prose edits keep the record


def test_a_stated_run_time_far_from_the_measured_one_fails(tmp_path, monkeypatch):
    assert fullrun.stated_seconds(MD) == 120.0
    assert fullrun.stated_seconds(MD.replace("about 2 minutes", "5 min 46 s")) == 346.0
    assert fullrun.stated_seconds(MD.replace("about 2 minutes", "about 4½ minutes")) == 270.0
    source, record = _setup(tmp_path, monkeypatch, seconds=(300.0, 60.0))  # measured 6 min, stated 2
    (problem,) = fullrun.problems(source, record)
    assert "about 2 min 0 s" in problem and "6 min 0 s" in problem


def test_a_busy_machine_s_run_time_is_not_checked(tmp_path, monkeypatch):
    source, record = _setup(tmp_path, monkeypatch, seconds=(300.0, 60.0))
    record["tutorials"]["99_title"]["load"] = [1.2, 5.0]  # above its 2 CPUs
    assert fullrun.busy(record["tutorials"]["99_title"]) and fullrun.problems(source, record) == []


def test_a_tutorial_missing_from_the_record_fails(tmp_path, monkeypatch):
    source, _ = _setup(tmp_path, monkeypatch)
    (problem,) = fullrun.problems(source, {"tutorials": {}})
    assert "no full-size run recorded" in problem


def test_write_merges_and_duration_reads(tmp_path):
    path = tmp_path / "run.json"
    fullrun.write({"02_b": {"seconds": 1.0}}, {"cpus": 2}, path)
    fullrun.write({"01_a": {"seconds": 2.0}}, {"cpus": 4}, path)
    record = json.loads(path.read_text())
    assert list(record["tutorials"]) == ["01_a", "02_b"] and record["tutorials"]["02_b"]["cpus"] == 2
    assert (fullrun.duration(48.4), fullrun.duration(346.0)) == ("48 s", "5 min 46 s")

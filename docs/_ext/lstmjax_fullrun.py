"""The full-size run of the tutorials: its record, and the checks that tie the prose to it.

CI executes the tutorials in fast mode (``LSTMJAX_FAST=1``), so the numbers a tutorial quotes from
its full-size run could be typed in and never checked. ``python docs/build.py --execute --record``
executes every tutorial at full size and writes ``tutorials/full_run.json``: for each tutorial its
run time, the run time of its *core* (the sections not marked ``(extension)``: what a 90-minute class
runs), a digest of its code cells, and the text of every output. The record is committed; the
site's banner shows the measured times under each tutorial's title, and
``tests/test_full_run.py`` fails (:func:`problems`) when

* a tutorial's code cells changed since its record was made (re-run it: the numbers may change);
* a paragraph that quotes the full run ("full run", "in full", "full size") has a number with a
  decimal point, a percent sign or a ``×`` that no output of the full run contains: a number
  quoted from the run must be printed by it (integers are not checked: they are mostly counts the
  code sets, such as seeds and epochs);
* the header's "**Run time**" paragraph states a full run time more than a third (and 30 s) away from
  the measured one (unless the machine was busy during the run: :func:`busy`).

Only the standard library is used, so the tests and the build read the record without Jupyter.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import platform
import re
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[2]
TUTORIALS = REPO / "tutorials"
RECORD = TUTORIALS / "full_run.json"
RECORD_COMMAND = "python docs/build.py --execute --record"

_CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
def is_extension(heading: str) -> bool:
    """Whether a ``##`` section heading marks an extension (``8. Ensembles (extension)``): a section a
    90-minute class leaves for reading or homework, not part of the core."""
    return heading.rstrip().lower().endswith("(extension)")


def code_digest(markdown: str) -> str:
    """A digest of a MyST notebook's code cells (what its outputs depend on), ignoring the prose."""
    cells = [c.strip() for c in _CODE_CELL.findall(markdown)]
    return hashlib.sha256("\n\x00\n".join(cells).encode()).hexdigest()[:16]


def _seconds(cell) -> float:
    """How long a code cell ran, from the timestamps Jupyter records (0 when there are none)."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = datetime.datetime.fromisoformat
    return max(0.0, (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds())


def _section_seconds(notebook, seconds: list[float]) -> list[list]:
    """``[heading, seconds]`` for each ``##`` section (the cells before the first one: the setup)."""
    sections = [["(setup)", 0.0]]
    for cell, spent in zip(notebook["cells"], seconds):
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if re.match(r"^##\s", line):
                    sections.append([line[3:].strip(), 0.0])
        sections[-1][1] += spent
    return [[heading, round(spent, 1)] for heading, spent in sections]


def _output_text(cell) -> str:
    texts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            texts.append("".join(out.get("text", "")))
        elif "data" in out and "text/plain" in out["data"]:
            texts.append("".join(out["data"]["text/plain"]))
    return "".join(texts)


def entry(source: pathlib.Path, notebook: dict) -> dict:
    """One tutorial's record from its executed notebook (a JSON-like dict, as nbformat reads it)."""
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    sections = _section_seconds(notebook, [_seconds(c) if c["cell_type"] == "code" else 0.0 for c in notebook["cells"]])
    return {
        "seconds": round(sum(spent for _, spent in sections), 1),
        "sections": sections,
        "core_seconds": round(sum(spent for heading, spent in sections if not is_extension(heading)), 1),
        "has_extensions": any(is_extension(heading) for heading, _ in sections),
        "code": code_digest(source.read_text(encoding="utf-8")),
        "outputs": [_output_text(c) for c in code],
    }


def machine() -> dict:
    """Where the record was made: CPU count and model, load average, versions, the commit."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import jax

    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "jax": jax.__version__,
            "commit": commit, "date": datetime.date.today().isoformat()}


def write(entries: dict[str, dict], meta: dict, path: pathlib.Path = RECORD) -> None:
    """Merge ``entries`` (tutorial stem → :func:`entry`) into the record at ``path``."""
    record = read(path) or {"tutorials": {}}
    for stem, item in entries.items():
        record["tutorials"][stem] = {**item, **meta}
    record["tutorials"] = dict(sorted(record["tutorials"].items()))
    record["command"] = RECORD_COMMAND
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def read(path: pathlib.Path = RECORD) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def duration(seconds: float) -> str:
    """``5 min 46 s``, ``48 s``."""
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


QUOTES_RUN = re.compile(r"full[ -](run|size)|\bin full\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?\s?%|\d+(?:\.\d+)?\s?×|\d+(?:,\d{3})*\.\d+(?![.\d]))")


def _paragraphs(markdown: str) -> list[tuple[int, str]]:
    """The prose paragraphs of a MyST notebook (code cells, fenced blocks and math left out), with
    the line each starts on."""
    paragraphs, current, start, fence = [], [], 0, None
    for number, line in enumerate(markdown.splitlines(), 1):
        stripped = line.strip()
        if fence:
            if (fence in stripped) if fence == "$$" else stripped.startswith(fence):
                fence = None
            continue
        if stripped.startswith(("```", "~~~", "$$")):
            fence = "$$" if stripped.startswith("$$") and stripped.count("$$") == 1 else (
                None if stripped.startswith("$$") else stripped[:3])
            if current:
                paragraphs.append((start, " ".join(current)))
                current = []
            continue
        if not stripped or stripped.startswith(("#", "+++", "---")):
            if current:
                paragraphs.append((start, " ".join(current)))
                current = []
            continue
        if not current:
            start = number
        current.append(stripped)
    if current:
        paragraphs.append((start, " ".join(current)))
    return paragraphs


def _plain(text: str) -> str:
    text = re.sub(r"`[^`]*`", " ", text)  # code spans: names and commands, not results
    text = re.sub(r"\$[^$]*\$", " ", text)  # formulas
    text = re.sub(r"§\s?\d+(?:\.\d+)*(?:\s?[–-]\s?\d+(?:\.\d+)*)?", " ", text)  # the document's sections
    return re.sub(r"\]\([^)]*\)", "]", text)  # link targets


def quoted_numbers(markdown: str) -> list[tuple[int, str]]:
    """The numbers a tutorial quotes from its full run: ``(line, number)``, as written."""
    found = []
    for line, paragraph in _paragraphs(markdown):
        if QUOTES_RUN.search(paragraph) and not paragraph.startswith("**Run time"):
            found += [(line, m.group(1)) for m in _NUMBER.finditer(_plain(paragraph))]
    return found


def _in_outputs(number: str, outputs: str) -> bool:
    bare = re.sub(r"\s", "", number)
    if bare.endswith(("%", "×")):
        value, unit = bare[:-1], bare[-1]
        return re.search(rf"(?<![\d.]){re.escape(value)}\s?{unit}", outputs) is not None or (
            unit == "×" and re.search(rf"(?<![\d.]){re.escape(value)}x\b", outputs) is not None)
    for form in {bare, bare.replace(",", "")}:
        if re.search(rf"(?<![\d.]){re.escape(form)}(?!\d)", outputs):
            return True
    return False


_STATED = re.compile(r"(?:about\s+)?(\d+(?:½)?)\s*(min(?:ute)?s?|s)\b(?:\s*(\d+)\s*s\b)?")


def stated_seconds(markdown: str) -> float | None:
    """The full run time the header's "**Run time**" paragraph states (``about 5 minutes in full``),
    in seconds, or None when it states none."""
    for _, paragraph in _paragraphs(markdown):
        if paragraph.startswith("**Run time"):
            before = re.split(r"\bin full\b", paragraph)[0] if "in full" in paragraph else None
            matches = list(_STATED.finditer(before or ""))
            if not matches:
                return None
            value, unit, extra = matches[-1].groups()
            number = float(value.replace("½", ".5"))
            return number * 60 + float(extra or 0) if unit.startswith("min") else number
    return None


def busy(item: dict) -> bool:
    """Whether the machine was busy during the run (a load average above its CPU count), which
    makes the times longer than a reader's: they are then shown as such and not checked."""
    return max(item.get("load") or [0.0]) > item.get("cpus", 1)


def problems(source: pathlib.Path, record: dict | None) -> list[str]:
    """What ties ``source``'s prose to the record no longer: a stale or missing record, a quoted number
    the run does not print, a stated run time far from the measured one. Empty when all is well."""
    markdown = source.read_text(encoding="utf-8")
    name = source.relative_to(REPO).as_posix()
    item = (record or {}).get("tutorials", {}).get(source.stem)
    if item is None:
        return [f"{name}: no full-size run recorded in tutorials/{RECORD.name}; run `{RECORD_COMMAND}`"]
    if item["code"] != code_digest(markdown):
        return [(f"{name}: its code cells changed since the full-size run of {item['date']}; "
                 f"run `{RECORD_COMMAND}` again and check the numbers its prose quotes")]
    found = []
    outputs = "\n".join(item["outputs"])
    for line, number in quoted_numbers(markdown):
        if not _in_outputs(number, outputs):
            found.append(f"{name}:{line}: quotes {number!r} from the full run, which prints no such number")
    stated = stated_seconds(markdown)
    if stated is not None and not busy(item) and abs(stated - item["seconds"]) > max(30.0, item["seconds"] / 3):
        found.append(f"{name}: its header says about {duration(stated)} in full; the full-size run of "
                     f"{item['date']} took {duration(item['seconds'])}")
    return found

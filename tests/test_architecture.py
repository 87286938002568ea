"""The walls between the parts of the package hold, and catch what would break them.

* The import contracts of ``pyproject.toml`` (import-linter) hold, and a planted upward import and
  a planted ``jax.sharding`` import outside ``lstmjax.parallel`` are caught.
* No code outside ``lstmjax.parallel`` names a device, mesh, collective or process (read from the
  syntax tree, so calls without an import are found too).
* ``import lstmjax`` and ``lstmjax --help`` load no JAX, Flax or ``datasets`` (the names load on use).
* The functions of the model, training and application parts stay short.
"""

import ast
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lstmjax"
LINT_IMPORTS = shutil.which("lint-imports") or str(pathlib.Path(sys.executable).parent / "lint-imports")


def _lint_imports(root: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def lint_imports_available():
    if not pathlib.Path(LINT_IMPORTS).exists():
        pytest.skip('import-linter is not installed (pip install -e ".[test]")')


def test_import_contracts_hold(lint_imports_available):
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_import_contracts_catch_violations(lint_imports_available, tmp_path):
    """The same contracts on a copy of the package with two planted violations: both are named."""
    shutil.copytree(PACKAGE, tmp_path / "lstmjax", ignore=shutil.ignore_patterns("*.csv", "__pycache__"))
    (tmp_path / "tests").mkdir()
    shutil.copy(REPO / "tests" / "import_contracts.py", tmp_path / "tests")
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    loop = tmp_path / "lstmjax" / "training" / "loop.py"
    loop.write_text(loop.read_text() + "\nfrom lstmjax.parallel import DataParallel  # planted: upward\n")
    cells = tmp_path / "lstmjax" / "nn" / "cells.py"
    cells.write_text(cells.read_text() + "\nfrom jax.sharding import Mesh  # planted: a mesh in the model part\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "lstmjax.training.loop -> lstmjax.parallel" in result.stdout.replace("\n", " ") or \
        "lstmjax.training.loop" in result.stdout, result.stdout[-4000:]
    assert "lstmjax.nn.cells" in result.stdout and "jax.sharding" in result.stdout, result.stdout[-4000:]


# Names that place work on devices, or name meshes, axes, collectives or processes.
DEVICE_NAMES = {
    ("jax", "pmap"), ("jax", "devices"), ("jax", "local_devices"), ("jax", "device_count"), ("jax", "device_put"),
    ("jax", "local_device_count"), ("jax", "process_count"), ("jax", "process_index"), ("jax", "make_mesh"),
    ("jax", "shard_map"), ("jax", "set_mesh"), ("jax", "distributed"), ("jax", "sharding"),
    ("lax", "psum"), ("lax", "pmean"), ("lax", "pmax"), ("lax", "axis_index"), ("lax", "all_gather"),
    ("lax", "all_to_all"), ("lax", "ppermute"), ("lax", "psum_scatter"),
}
# The model part reads how JAX traces it (shard_map typing, the abstract mesh): nn/scan.py only.
ALLOWED = {"nn/scan.py": {("lax", "pcast"), ("jax", "sharding")}}


def _dotted_uses(tree: ast.AST):
    """``(owner, attribute, line)`` for every ``owner.attribute`` in the code (``jax.lax.psum`` gives
    ``("lax", "psum")`` and ``("jax", "lax")``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if name:
                yield name, node.attr, node.lineno


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py")
                                        if not p.relative_to(PACKAGE).parts[0] in ("parallel", "course")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_devices_outside_parallel(path):
    rel = path.relative_to(PACKAGE).as_posix()
    allowed = ALLOWED.get(rel, set())
    found = [f"{rel}:{line}: {owner}.{attr}" for owner, attr, line in _dotted_uses(ast.parse(path.read_text()))
             if (owner, attr) in DEVICE_NAMES and (owner, attr) not in allowed]
    assert not found, "devices, meshes or collectives named outside lstmjax.parallel:\n" + "\n".join(found)


def test_import_lstmjax_loads_nothing_heavy():
    code = ("import sys, lstmjax; from lstmjax.app.cli import _parser; _parser(); "
            "print(sorted(m for m in ('jax', 'flax', 'optax', 'datasets', 'orbax', 'pyarrow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    help_ = subprocess.run([sys.executable, "-X", "importtime", "-m", "lstmjax", "--help"], capture_output=True,
                           text=True, timeout=120)
    assert help_.returncode == 0 and "train" in help_.stdout
    imported = {line.split("|")[-1].strip() for line in help_.stderr.splitlines() if "|" in line}
    assert not imported & {"jax", "flax", "datasets", "optax"}, "lstmjax --help imported a heavy library"


MAX_LINES = 60  # code lines of one function, its docstring not counted


@pytest.mark.parametrize("part", ["nn", "training", "app"])
def test_functions_are_short(part):
    long = []
    for path in sorted((PACKAGE / part).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                doc = body[0].end_lineno - body[0].lineno + 1 if ast.get_docstring(node) else 0
                lines = node.end_lineno - node.lineno + 1 - doc
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {lines} lines")
    assert not long, "functions over the limit:\n" + "\n".join(long)

"""A custom import-linter contract: some *submodules* of an external package are forbidden.

import-linter's ``forbidden`` contract names external packages only at their top level (``jax``),
so it cannot say "only ``lstmjax.parallel`` imports ``jax.sharding``". This contract reads the
import statements grimp recorded between the package's modules and an external package, and
fails where one of them names a forbidden submodule. Configured in ``pyproject.toml``.
"""

from __future__ import annotations

import ast

from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def _imported_names(line: str) -> set[str]:
    """Every dotted module name an import statement may refer to (``from a import b`` → ``a``, ``a.b``)."""
    try:
        tree = ast.parse(line.strip())
    except SyntaxError:  # a multi-line statement: grimp gives its first line
        tree = ast.parse(line.strip().rstrip("(\\") + " _")
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


class ForbiddenExternalSubmodules(Contract):
    """Modules under ``source_modules``, except those under ``allowed_modules``, import none of
    ``forbidden_modules`` (dotted names inside external packages) or their submodules."""

    type_name = "forbidden_submodules"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_modules = fields.ListField(subfield=fields.ModuleField(), required=False)
    forbidden_modules = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        forbidden = [str(f) for f in self.forbidden_modules]
        allowed = [m.name for m in (self.allowed_modules or [])]
        externals = {f.split(".")[0] for f in forbidden}
        violations = []
        sources = set()
        for source in self.source_modules:
            sources |= {source.name} | graph.find_descendants(source.name)
        for module in sorted(sources):
            if any(module == a or module.startswith(a + ".") for a in allowed):
                continue
            for external in externals & graph.find_modules_directly_imported_by(module):
                for detail in graph.get_import_details(importer=module, imported=external):
                    hits = [f for f in forbidden for name in _imported_names(detail["line_contents"])
                            if name == f or name.startswith(f + ".")]
                    if hits:
                        violations.append((module, detail["line_number"], detail["line_contents"], hits[0]))
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        from importlinter.application import output

        for module, line, contents, name in check.metadata["violations"]:
            output.print_error(f"{module}:{line}: {contents.strip()}  ({name} is only for lstmjax.parallel)")

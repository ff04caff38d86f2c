"""The direction of imports is the architecture: nothing imports anything above it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "memstrata"

#: Level of each top-level module or subpackage. A module may import its own
#: subpackage and anything at a lower level; siblings at one level stay apart
#: (except at level 0, the shared vocabulary).
LEVELS: dict[str, int] = {
    # 0: vocabulary shared by everything
    "model": 0, "errors": 0, "ids": 0, "timeutil": 0, "limits": 0, "config": 0, "validate": 0,
    # 1: infrastructure
    "store": 1, "embed": 1, "llm": 1, "formats": 1, "text": 1,
    # 2: the three paths
    "write": 2, "organise": 2, "read": 2,
    # 3: the facade
    "memory": 3,
    # 4: what users run
    "transfer": 4, "demo": 4, "client": 4, "bench": 4, "server": 4, "cli": 5, "__init__": 5, "__main__": 5,
}


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imported_units(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    units: set[str] = set()
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for top-level modules
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("memstrata"):
                parts = node.module.split(".")[1:]
            elif node.level > 0:
                up = node.level - 1
                if up > depth:
                    continue
                base = list(path.relative_to(PACKAGE).parts[:-1])[: depth - up]
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:  # "from .. import x" at the top: x names the unit
                    parts = [node.names[0].name]
            else:
                continue
            if parts:
                units.add(parts[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("memstrata."):
                    units.add(alias.name.split(".")[1])
    return units


def test_every_unit_has_a_level():
    units = {_unit(p) for p in PACKAGE.rglob("*.py")}
    assert units <= set(LEVELS), f"add a level for: {sorted(units - set(LEVELS))}"


def test_imports_point_down():
    violations = []
    for path in PACKAGE.rglob("*.py"):
        me = _unit(path)
        for other in _imported_units(path):
            if other == me or other not in LEVELS:
                continue
            mine, theirs = LEVELS[me], LEVELS[other]
            if theirs > mine or (theirs == mine and mine > 0 and mine < 4):
                violations.append(f"{path.relative_to(PACKAGE)} imports {other} (level {theirs} from {mine})")
    assert not violations, "\n".join(violations)

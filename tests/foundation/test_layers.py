"""The layer order of docs/ARCHITECTURE.md, enforced: no import points up, function-level ones included.

Why a test: an import inside a function hides a cycle from every linter; this reads the source (AST), so
``import`` statements anywhere in a module count, and so do module names given to ``importlib`` as string
literals (a dynamic import is still an import).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: package folder -> layer; a module may import its own package and any LOWER layer (plus the peers the
#: table below allows). slc.testing is imported only by tests, benchmarks and the CLI (its demo).
LAYERS: dict[str, float] = {
    "agent": 0,
    "memory": 1,
    "graphs": 2,
    "tools": 3,
    "cat": 4,
    "evals": 4.5,
    "training": 4.75,  # trains on CaT data and on the benchmark's question forms: may import cat and evals
    "cli": 5,
    "testing": 6,
}
ALLOWED_TESTING_IMPORTERS = {"cli"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("slc."):
            name = node.value.split(":")[0]
            if all(part.isidentifier() for part in name.split(".")):
                out.append((node.lineno, name))  # a module named in a string (importlib, lazy exports)
    return out


def violations() -> list[str]:
    bad = []
    for folder, layer in LAYERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, module in _imports(path):
                parts = module.split(".")
                if parts[0] != "slc" or len(parts) < 2 or parts[1] not in LAYERS or parts[1] == folder:
                    continue
                target = parts[1]
                up = LAYERS[target] > layer or (LAYERS[target] == layer and target != folder)
                if target == "testing":
                    up = folder not in ALLOWED_TESTING_IMPORTERS
                if up:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


def test_no_import_points_up_the_layer_order():
    found = violations()
    assert not found, "imports against the layer order (docs/ARCHITECTURE.md):\n" + "\n".join(found)

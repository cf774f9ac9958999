"""The dependency direction of STYLE.md, checked on every import in the package.

    api -> (admission, context, safety, routing, metering, control) -> engine, storage
Nothing imports api; the engine knows nothing of tenants, HTTP or storage.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "headrace"

LAYERS = {
    "api", "admission", "context", "safety", "routing", "metering", "engine", "storage",
    "control", "cli", "protocol", "batch", "observability",
}  # fmt: skip

# layer -> layers it must never import. The bottom layers may use observability only.
FORBIDDEN: dict[str, set[str]] = {
    "engine": LAYERS - {"engine", "observability"},
    "storage": LAYERS - {"storage", "observability"},
    "protocol": LAYERS - {"protocol", "observability"},
    "admission": {"api", "cli", "protocol"},
    "context": {"api", "cli", "protocol", "storage"},
    "routing": {"api", "cli", "protocol"},
    "control": {"api", "cli", "protocol"},
    # Batch jobs reach the pipeline through a callable the api hands them, never api itself.
    "batch": {"api", "cli", "protocol"},
    "observability": {"api", "cli", "admission", "context", "routing", "control"},
    # A client of any OpenAI-compatible server: it knows nothing of the server's insides.
    "bench": LAYERS,
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {n.split(".")[1] for n in names if n.startswith("headrace.") and n.count(".") >= 1}


def test_no_layer_imports_what_it_must_not() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        layer = rel.parts[0] if len(rel.parts) > 1 else None
        imported = _imports(path)
        if "api" in imported and layer not in {"api", "cli"}:
            violations.append(f"{rel} imports api")
        if layer in FORBIDDEN:
            bad = imported & FORBIDDEN[layer]
            violations.extend(f"{rel} imports {b}" for b in sorted(bad))
    assert violations == []


def test_no_globals_or_catch_all_utils() -> None:
    assert not list(PACKAGE.rglob("utils.py"))
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        assert not any(isinstance(n, ast.Global) for n in ast.walk(tree)), path

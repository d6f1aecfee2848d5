"""The package's dependency rules, read from every import statement (TYPE_CHECKING ones too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EDGE = Path(__file__).resolve().parents[1] / "edge"

# package -> packages it must never import: vision is pure compute, link knows nothing of
# vision or the device, and the device never imports benchmark or off-device code.
FORBIDDEN = {
    "edge.vision": ("edge.gallery", "edge.device", "edge.link", "edge.central", "edge.bench"),
    "edge.link": ("edge.vision", "edge.device", "edge.central", "edge.bench"),
    "edge.device": ("edge.central", "edge.bench"),
}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_it_must_not(package):
    folder = EDGE.joinpath(*package.split(".")[1:])
    broken = {
        f"{path.relative_to(EDGE.parent)}: {name}"
        for path in folder.rglob("*.py")
        for name in imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package])
    }
    assert broken == set()

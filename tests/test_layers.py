"""The package layout of docs/design.md: no module imports a layer above its own."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tem_rf"
# Rank of each subpackage: a module may import its own subpackage and lower ranks only.
LAYERS = {"core": 0, "data": 1, "metrics": 1, "models": 1, "particles": 1, "train": 2, "serve": 3, "study": 4}


def imported_modules(path: Path) -> set[str]:
    """Every ``tem_rf...`` module a file imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "tem_rf":  # from tem_rf import data -> tem_rf.data
                names.update(f"tem_rf.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("tem_rf.")}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


def test_every_subpackage_has_a_layer():
    assert {p.parent.name for p in MODULES} == set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_above_it(path):
    own = path.relative_to(PACKAGE).parts[0]
    upward = sorted(
        module
        for module in imported_modules(path)
        if (layer := layer_of(module)) and layer != own and LAYERS[layer] >= LAYERS[own]
    )
    assert not upward, f"{path.relative_to(PACKAGE)} (layer {own}) imports {upward}"


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from tem_rf.serve import export\n    from tem_rf import study\n")
    assert imported_modules(bad) == {"tem_rf.serve", "tem_rf.study"}

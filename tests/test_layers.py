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


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of each ``from tem_rf... import names`` in a file, at the top or inside
    functions, leaving out imports for type checkers only (``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for branch in ast.walk(tree) if isinstance(branch, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(branch.test) for node in ast.walk(branch)}
    return [(node.module, [alias.name for alias in node.names]) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tem_rf")
            and id(node) not in typing_only]


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every module that can reach itself through ``graph``, with one such path."""
    cycles = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            module, path = stack.pop()
            for target in sorted(graph.get(module, ())):
                if target == start:
                    cycles.append(path + [start])
                    stack = []
                    break
                if target not in seen:
                    seen.add(target)
                    stack.append((target, path + [target]))
    return cycles


def test_no_import_cycle_between_modules():
    """Modules of the package never import each other in a circle (package ``__init__`` files,
    which name their modules' attributes lazily, are left out)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    graph = {name: {module for module, names in runtime_imports(path)
                    for module in [module, *(f"{module}.{n}" for n in names)] if module in modules and module != name}
             for name, path in modules.items()}
    assert import_cycles(graph) == []
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [  # the checker sees one
        ["a", "b", "c", "a"], ["b", "c", "a", "b"], ["c", "a", "b", "c"]]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_is_imported_from_another_module(path):
    private = [f"{module}.{name}" for module, names in runtime_imports(path) for name in names
               if name.startswith("_") and not name.startswith("__")]
    assert private == []


def top_level_names(path: Path) -> set[str]:
    """Names a module defines itself (functions, classes, assignments), not those it imports."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def test_the_package_imports_each_name_from_the_module_that_defines_it():
    """No module of the package takes a name through another module's re-export (a shim kept for
    users until tem_rf 0.3.0): the shims can go without touching the package."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    defined = {name: top_level_names(path) for name, path in modules.items()}
    through = [
        f"{path.relative_to(PACKAGE)}: {name} from {module}"
        for path in modules.values() for module, names in runtime_imports(path) if module in defined
        for name in names if name not in defined[module]
    ]
    assert through == []


MOVED = [  # (where earlier versions had it, name, where it is defined now)
    ("tem_rf.data.reading", "InputError", "tem_rf.core.errors"),
    ("tem_rf.data.dataset", "find_image_files", "tem_rf.data.source_files"),
    ("tem_rf.data.dataset", "carve_validation", "tem_rf.data.splits"),
    ("tem_rf.data.dataset", "read_dataset_info", "tem_rf.data.dataset_info"),
    ("tem_rf.particles.measure", "Particle", "tem_rf.particles.particle"),
    ("tem_rf.particles.measure", "summarise", "tem_rf.particles.summary"),
    ("tem_rf.serve.export", "particle_probability_fn", "tem_rf.serve.serving_functions"),
    ("tem_rf.serve.export", "build_metadata", "tem_rf.serve.export_metadata"),
    ("tem_rf.serve.export", "METADATA_FILENAME", "tem_rf.serve.signatures"),
    ("tem_rf.serve.graph_preprocess", "preprocess_micrograph_tf", "tem_rf.data.graph_preprocess"),
    ("tem_rf.serve.predictor", "load_run", "tem_rf.train.rundir"),
    ("tem_rf.serve.segment", "segment_files", "tem_rf.serve.segment_batch"),
    ("tem_rf.serve.segment", "SegmentationResult", "tem_rf.serve.segmented_micrograph"),
    ("tem_rf.serve.segment", "MASK_VALUE", "tem_rf.serve.segmented_micrograph"),
    ("tem_rf.serve.segment", "check_particle_options", "tem_rf.serve.options"),
]


@pytest.mark.parametrize("old, name, new", MOVED, ids=lambda value: str(value))
def test_moved_names_still_import_from_where_they_were_until_0_3_0(old, name, new):
    import importlib

    import tem_rf
    from tem_rf.core.cli import SHIMS_REMOVED_IN

    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)
    assert name in top_level_names(modules_path(new))
    # the shims go in SHIMS_REMOVED_IN: then this test and its table go too
    assert tuple(map(int, tem_rf.__version__.split(".")[:2])) < tuple(map(int, SHIMS_REMOVED_IN.split(".")[:2]))


def modules_path(module: str) -> Path:
    return PACKAGE.parent / (module.replace(".", "/") + ".py")


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_has_its_row_in_the_design_doc(path):
    """docs/design.md's layout tables name every module of the package with what it holds."""
    design = (PACKAGE.parent / "docs" / "design.md").read_text()
    assert f"| `{path.relative_to(PACKAGE).as_posix()}` |" in design

"""The package's import layers point one way (see shared STYLE.md)."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "mldiff"

# module (path relative to mldiff/, without .py; packages by folder) -> layer
LAYERS = {
    "_typing": 0,
    "_version": 0,
    "units": 0,
    "errors": 0,
    "_cells": 0,
    "_cell_list": 0,
    "_compiled": 0,
    "_config": 0,
    "structure": 1,
    "space": 1,
    "neighbors": 1,
    "io": 1,
    "potentials": 2,
    "quantities": 2,
    "md": 3,
    "phonons": 3,
    "data": 3,
    "training": 3,
    "descriptors": 3,
    "ensemble": 3,
    "calibration": 3,
    "gp": 3,
    "parallel": 3,
    "stability": 4,
    "active": 4,
    "transfer": 4,
    "recommender": 4,
    "ttsp": 4,
    "electrons": 4,
    "screening": 4,
    "ase": 5,
    "plotting": 5,
    "cli": 5,
}
SIBLINGS_FORBIDDEN = {("potentials", "quantities"), ("quantities", "potentials")}


def _top(module_path: pathlib.Path) -> str:
    rel = module_path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "mldiff":
            for a in node.names:  # `from mldiff import space` imports a submodule
                yield f"mldiff.{a.name}"
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name


FILES = sorted(
    p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE
)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    here = _top(path)
    assert here in LAYERS, f"{here} has no layer: add it to LAYERS and STYLE.md"
    for module in _imports(path):
        if module == "mldiff":
            raise AssertionError(f"{path.name}: import a submodule, not `mldiff`")
        if not module.startswith("mldiff."):
            continue
        target = module.split(".")[1]
        if target == here:
            continue
        assert target in LAYERS, f"unknown module {module}"
        assert (here, target) not in SIBLINGS_FORBIDDEN, f"{here} imports {target}"
        assert LAYERS[target] <= LAYERS[here], (
            f"{path.relative_to(PACKAGE)} (layer {LAYERS[here]}) imports {module} "
            f"(layer {LAYERS[target]})"
        )


@pytest.mark.parametrize(
    "path",
    [p for p in FILES if LAYERS.get(_top(p)) == 4],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_applications_do_not_import_each_other(path):
    here = _top(path)
    for module in _imports(path):
        target = module.split(".")[1] if module.startswith("mldiff.") else None
        if target and target != here:
            assert LAYERS.get(target) != 4, f"{here} imports the application {target}"


def test_readme_layout_names_every_module():
    readme = (PACKAGE.parent / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    layout = layout[: layout.index("\n## ", 1)]
    missing = [m for m in LAYERS if m not in ("_version",) and m not in layout]
    assert not missing, f"README's Layout section does not place {missing}"

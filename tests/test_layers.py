"""The package's layers point one way: a module imports only its own layer and the layers below it.

    core < data < methods < views < training < demo < service < ui, cli

(`core` knows nothing of the demo or the synthetic data; `views` turns results into figures; `ui` reaches the engine
only through `service`.) The test parses every module, function-local imports included, and fails on an upward
edge, naming it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "livr_viz"
# what each layer may import (besides itself)
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "methods": {"core"},
    "views": {"core", "methods"},
    "training": {"core", "data", "methods", "views"},
    "demo": {"core", "data", "training"},
    "service": {"core", "data", "methods", "views", "training", "demo"},
    "ui": {"service"},
    "cli": {"core", "data", "methods", "views", "training", "demo", "service", "ui"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "livr_viz":  # from livr_viz import service
                found += [(node.lineno, f"livr_viz.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; the layer test reads absolute ones")
    return [(line, m) for line, m in found if m.startswith("livr_viz.")]


def test_every_import_points_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        here = layer_of(module)
        if here == "":  # the package's own __init__: the public façade
            continue
        assert here in ALLOWED, f"{module}: not in a known layer"
        for line, target in imports(path):
            there = layer_of(target)
            if there != here and there not in ALLOWED[here]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} {here} -> {target}")
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def test_the_layers_cover_the_package():
    top = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    top |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert top == set(ALLOWED)


# distribution name -> the module it is imported as (where the two differ)
IMPORT_NAMES = {"pillow": "PIL", "scikit-learn": "sklearn", "umap-learn": "umap", "huggingface-hub": "huggingface_hub"}
RUNTIME_ONLY = {"pyarrow"}  # imported by pandas (read_parquet), not by us


def test_declared_dependencies_match_imports():
    import re
    import sys
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    declared_modules = {IMPORT_NAMES.get(d, d) for d in declared - RUNTIME_ONLY}
    imported = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    imported -= set(sys.stdlib_module_names) | {"livr_viz"}
    assert imported - declared_modules == set(), "imported but not declared"
    assert declared_modules - imported == set(), "declared but never imported"

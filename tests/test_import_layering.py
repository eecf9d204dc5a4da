"""The layering rules of the package layout: which packages load without torch or scikit-learn."""

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

HEAVY = ("torch", "sklearn", "matplotlib")


def imported_heavy_modules(statement: str) -> list[str]:
    """The heavy libraries a fresh interpreter holds after running `statement`."""
    probe = f"import sys; {statement}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return out.split()


@pytest.mark.parametrize("module", ["regentree", "regentree.data", "regentree.tree", "regentree.rejection",
                                    "regentree.scoring.statistics", "regentree.cli"])
def test_light_packages_import_no_torch_nor_sklearn(module):
    assert imported_heavy_modules(f"import {module}") == []


def test_public_names_are_loaded_on_first_use():
    assert imported_heavy_modules("from regentree import FlatRegenClassifier") == ["torch", "sklearn"]


def test_unknown_public_name_is_an_attribute_error():
    import regentree

    with pytest.raises(AttributeError, match="no attribute 'plots'"):
        regentree.plots  # noqa: B018


def module_level_imports() -> dict[str, set[str]]:
    """regentree module -> the regentree modules it imports at module level (imports inside functions are
    deferred on purpose and cannot form an import-time cycle)."""
    root = Path(__file__).resolve().parents[1] / "regentree"
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.parse(path.read_text()).body:  # top level only
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                            for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_cycles():
    graph = nx.DiGraph([(a, b) for a, targets in module_level_imports().items() for b in targets])
    assert list(nx.simple_cycles(graph)) == []

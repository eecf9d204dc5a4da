"""The layering rules of the package layout: which packages load without torch or scikit-learn."""

import subprocess
import sys

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

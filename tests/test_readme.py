"""The README's Python examples run as written (with fewer epochs and re-generations, to stay quick)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
QUICKER = {"epochs=150": "epochs=3", "n_regenerations=100": "n_regenerations=10"}


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_the_readme_has_python_examples():
    assert python_blocks()


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    code = python_blocks()[index]
    for slow, quick in QUICKER.items():
        code = code.replace(slow, quick)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, f"README.md python block {index + 1}", "exec"), namespace)
    if "model" in namespace and "same" in namespace:  # the saved folder loads back as the same model
        assert list(namespace["same"].classes_) == list(namespace["model"].classes_)
        assert (tmp_path / "models" / "digits" / "manifest.json").is_file()

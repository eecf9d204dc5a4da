"""The Python examples of the README and docs/usage.md run as written (with fewer epochs and re-generations)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLE_PAGES = [README, ROOT / "docs" / "usage.md"]  # the pages whose ```python blocks are complete programs
QUICKER = {"epochs=150": "epochs=3", "n_regenerations=100": "n_regenerations=10"}


def python_blocks(page: Path) -> list[str]:
    """The ```python blocks of a Markdown page, in order."""
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)


EXAMPLES = [(page, index) for page in EXAMPLE_PAGES for index in range(len(python_blocks(page)))]


def test_the_readme_and_usage_have_python_examples():
    assert all(python_blocks(page) for page in EXAMPLE_PAGES)


@pytest.mark.parametrize("page, index", EXAMPLES, ids=[f"{p.name}-{i + 1}" for p, i in EXAMPLES])
def test_python_block_runs(page, index, tmp_path, monkeypatch):
    code = python_blocks(page)[index]
    for slow, quick in QUICKER.items():
        code = code.replace(slow, quick)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, f"{page.name} python block {index + 1}", "exec"), namespace)
    if "model" in namespace and "same" in namespace:  # the saved folder loads back as the same model
        assert list(namespace["same"].classes_) == list(namespace["model"].classes_)
        assert (tmp_path / "models" / "digits" / "manifest.json").is_file()

"""Project files that travel with a release stay consistent with the package metadata."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_citation_and_license_agree_with_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # tomllib needs Python 3.11; 3.10 is supported
    project = {"version": re.search(r'^version = "(.+)"$', pyproject, re.M).group(1),
               "license": {"text": re.search(r'^license = \{ text = "(.+)" \}$', pyproject, re.M).group(1)}}
    citation = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert re.search(r"^version: (\S+)$", citation, re.M).group(1) == project["version"]
    assert re.search(r"^license: (\S+)$", citation, re.M).group(1) == project["license"]["text"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith(f"{project['license']['text']} License")
    assert "Rezaeifar" in citation and "preferred-citation:" in citation

"""The documentation stays true: the CLI reference matches the app, the README stays a short page, links resolve."""

import re
from pathlib import Path

import pytest

from regentree.cli.reference import REGENERATE, render_reference

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKDOWN_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def without_code_blocks(text: str) -> str:
    """Markdown text with its fenced code blocks removed (they hold neither links nor headings)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def relative_links(path: Path) -> list[str]:
    """The targets of a Markdown file's links and images that point inside the repository (no URL, no bare anchor)."""
    targets = LINK.findall(without_code_blocks(path.read_text(encoding="utf-8")))
    return [t for t in targets if not t.startswith("#") and not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def heading_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", without_code_blocks(path.read_text(encoding="utf-8")), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_cli_reference_is_the_rendered_app():
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == render_reference(), f"docs/cli.md is out of date; regenerate it with `{REGENERATE}`"


def test_cli_reference_covers_every_command_with_its_options():
    reference = render_reference()
    for command in ("train", "classify", "evaluate", "calibrate", "build-tree", "compare", "info"):
        assert f"## `regentree {command}`" in reference
    assert "| `--out`, `-o` | Model folder to write. | required |" in reference
    assert "| `--seed` | Seed of training and of the re-generation noise. | `0` |" in reference


def test_readme_is_a_short_page():
    assert len(README.read_text(encoding="utf-8")) <= 10_000


def test_relative_links_finds_links_and_skips_urls(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](docs/a.md#part) ![b](fig.png) [c](https://x.org/d.md) [e](#top)\n```\n[f](g.md)\n```\n")
    assert relative_links(page) == ["docs/a.md#part", "fig.png"]


def test_heading_anchors_follow_github(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Flat vs tree, MNIST / Fashion\n## Table V — limited labels (test error %)\n```\n# not a heading\n```\n")
    assert heading_anchors(page) == {"flat-vs-tree-mnist--fashion", "table-v--limited-labels-test-error-"}


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_a_file_and_heading(path):
    broken = []
    for link in relative_links(path):
        target, _, anchor = link.partition("#")
        linked = path.parent / target
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked)):
            broken.append(link)
    assert not broken, f"{path.relative_to(ROOT)} has links to missing files or headings: {broken}"


def test_architecture_map_lists_every_module():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    modules = [p.relative_to(ROOT).as_posix() for p in (ROOT / "regentree").rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")]
    assert [m for m in modules if f"`{m}`" not in text] == []

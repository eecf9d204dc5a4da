"""Saving replaces only a missing or empty folder or a regentree model folder; anything else is refused untouched."""

import hashlib
import json

import pytest
from typer.testing import CliRunner

from regentree import load_model, save_model
from regentree.cli import app
from regentree.errors import ModelFolderError
from regentree.persistence.model_folder import MANIFEST

runner = CliRunner()


def _snapshot(root):
    """Every path under `root` (the folder itself included) with the sha256 of each file's bytes."""
    return {str(p.relative_to(root.parent)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in [root, *root.rglob("*")]}


def _manifest(folder, text):
    folder.mkdir()
    (folder / MANIFEST).write_text(text)
    (folder / "keep").write_text("precious")


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda v: _manifest(v, "{}"), "has no format"),  # the case: `echo '{}' > v/manifest.json`
        (lambda v: _manifest(v, "{not json"), "not readable JSON"),
        (lambda v: _manifest(v, json.dumps({"format": "other", "estimator": "flat"})), "has no format"),
        (lambda v: _manifest(v, json.dumps({"format": "regentree-model", "estimator": "forest"})), "no known estimator"),
        (lambda v: _manifest(v, json.dumps({"format": "regentree-model", "estimator": ["flat"]})), "no known estimator"),
        (lambda v: _manifest(v, "[" * 100_000), "not readable JSON"),
        (lambda v: (v.mkdir(), (v / "notes.txt").write_text("keep me")), "no manifest.json"),
        (lambda v: v.write_text("a file"), "not a folder"),
    ],
    ids=["empty-manifest", "bad-json", "other-format", "unknown-kind", "kind-not-a-string", "deep-json", "no-manifest",
         "a-file"],
)
def test_a_destination_that_is_not_a_model_is_refused_and_left_untouched(fitted_flat, tmp_path, make, reason):
    destination = tmp_path / "v"
    make(destination)
    before = _snapshot(tmp_path)
    with pytest.raises(ModelFolderError, match=f"not a regentree model folder \\([^)]*{reason}") as info:
        save_model(fitted_flat, destination)
    assert "\n" not in str(info.value)
    assert _snapshot(tmp_path) == before  # nothing touched, no staged folder or lock file left beside it


@pytest.mark.parametrize("make", [lambda v: None, lambda v: v.mkdir()], ids=["missing", "empty"])
def test_a_missing_or_empty_folder_becomes_a_model(fitted_flat, tmp_path, make):
    make(tmp_path / "v")
    save_model(fitted_flat, tmp_path / "v")
    assert load_model(tmp_path / "v").classes_.tolist() == fitted_flat.classes_.tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]


@pytest.mark.parametrize(
    "command",
    [
        ["train", "digits", "--out", "{out}", "--quiet"],
        ["build-tree", "digits", "--out", "{out}", "--quiet"],
        ["ensemble", "{model}", "{model}", "--out", "{out}"],
    ],
    ids=["train", "build-tree", "ensemble"],
)
def test_commands_refuse_the_destination_before_reading_data_or_models(tmp_path, monkeypatch, command, fitted_flat):
    model = save_model(fitted_flat, tmp_path / "model")
    _manifest(tmp_path / "v", "{}")
    before = _snapshot(tmp_path / "v")

    def too_late(*args, **kwargs):
        raise AssertionError("read data or models before checking --out")

    monkeypatch.setattr("regentree.data.load_dataset", too_late)
    monkeypatch.setattr("regentree.persistence.model_folder.load_model", too_late)
    args = [a.format(out=tmp_path / "v", model=model) for a in command]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "not a regentree model folder" in result.stderr
    assert _snapshot(tmp_path / "v") == before

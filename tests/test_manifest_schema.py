"""Tampered manifests and weight files fail in one line before anything is allocated (issue 26, items 3 and 8)."""

from __future__ import annotations

import json
import re
import struct

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from regentree.cli import app
from regentree.errors import ModelFolderError
from regentree.persistence.model_folder import MANIFEST, load_model, save_model, sha256_of

runner = CliRunner()


@pytest.fixture()
def saved(fitted_flat, tmp_path):
    return save_model(fitted_flat, tmp_path / "model")


def _edit(folder, change):
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _rewrite_weights(folder, change):
    """Replace the first VAE's tensors by `change(tensors)` and fix its hash, as a careful attacker would."""
    entry = json.loads((folder / MANIFEST).read_text())["vaes"][0]
    path = folder / entry["file"]
    from safetensors.torch import load_file

    save_file(change(load_file(str(path))), str(path))
    _edit(folder, lambda m: m["vaes"][0].update(sha256=sha256_of(path)))


def _huge_hidden_dims(folder):
    _edit(folder, lambda m: m["vaes"][0]["config"].update(hidden_dims=[30000000]))


def _huge_header(folder):
    """A weights file whose header claims a 60000x60000 tensor (a few bytes long; hash fixed)."""
    entry = json.loads((folder / MANIFEST).read_text())["vaes"][0]
    path = folder / entry["file"]
    header = json.dumps({"encoder.0.weight": {"dtype": "F32", "shape": [60000, 60000],
                                              "data_offsets": [0, 60000 * 60000 * 4]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    _edit(folder, lambda m: m["vaes"][0].update(sha256=sha256_of(path)))


def _nan_weights(tensors):
    tensors = dict(tensors)
    name = next(iter(tensors))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    return tensors


CASES = {
    "hidden_dims huge": (_huge_hidden_dims, "hidden_dims[0] must be an integer >= 1 (at most 65536, env REGENTREE_MAX_HIDDEN_DIM)"),
    "header claims huge tensor": (_huge_header, "of shape [60000, 60000] does not fit its byte range"),
    "nan weights": (lambda f: _rewrite_weights(f, _nan_weights), "NaN or infinite weights"),
    "integer weights": (lambda f: _rewrite_weights(f, lambda t: {k: v.to(torch.int32) for k, v in t.items()}),
                        "must be floating point"),
    "file as int": (lambda f: _edit(f, lambda m: m["vaes"][0].update(file=7)), "vaes[0].file must be a relative path"),
    "file with NUL": (lambda f: _edit(f, lambda m: m["vaes"][0].update(file="vaes/a\0b")), "vaes[0].file must be"),
    "image_shape string": (lambda f: _edit(f, lambda m: m.update(image_shape="ab")), "image_shape must be a list"),
    "params a list": (lambda f: _edit(f, lambda m: m.update(params=[1, 2])), "params must be an object"),
    "vaes a dict": (lambda f: _edit(f, lambda m: m.update(vaes={"a": 1})), "vaes must be a list"),
    "novelty ragged": (lambda f: _edit(f, lambda m: m["novelty_reference"].update(class_0=[1.0, [2.0]])),
                       "novelty_reference.class_0[1] must be a finite number"),
    "duplicate class": (lambda f: _edit(f, lambda m: m["classes"].update(values=["0", "0", "2", "3"])),
                        "classes.values holds duplicates"),
    "duplicate vae_keys": (lambda f: _edit(f, lambda m: m["extra"].update(vae_keys=["class_0"] * 4)),
                           "vae_keys holds duplicates"),
    "swapped vae_keys": (lambda f: _edit(f, lambda m: m["extra"].update(vae_keys=["class_1", "class_0", "class_2",
                                                                                   "class_3"])),
                         "must have a VAE of its own"),
    "duplicate vae entry": (lambda f: _edit(f, lambda m: m["vaes"].__setitem__(1, dict(m["vaes"][0]))),
                            "same key twice"),
    "huge K": (lambda f: _edit(f, lambda m: m["params"].update(n_regenerations=10**12)),
               "n_regenerations must be an integer >= 2 (at most 100000, env REGENTREE_MAX_REGENERATIONS)"),
    "K a float": (lambda f: _edit(f, lambda m: m["params"].update(n_regenerations=30.5)), "n_regenerations must be"),
    "bad calibration": (lambda f: _edit(f, lambda m: m.update(calibrated=True, calibration={"max_rejection": "x"})),
                        "calibration.max_rejection must be"),
    "deep nesting": (lambda f: (f / MANIFEST).write_text('{"a": ' + "[" * 100000 + "]" * 100000 + "}"),
                     "nested too deeply"),
    "5000-digit integer": (lambda f: (f / MANIFEST).write_text('{"format": ' + "9" * 5000 + "}"), "5000 digits"),
    "NaN literal": (lambda f: (f / MANIFEST).write_text('{"format": NaN}'), "literal NaN"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_tampered_model_fails_in_one_line(saved, name):
    breakage, message = CASES[name]
    breakage(saved)
    with pytest.raises(ModelFolderError, match=re.escape(message)) as info:
        load_model(saved)
    text = str(info.value)
    assert "\n" not in text and ("manifest.json" in text or ".safetensors" in text)


def test_a_limit_can_be_raised_by_its_environment_variable(saved, monkeypatch):
    _edit(saved, lambda m: m["params"].update(n_regenerations=200_000))
    with pytest.raises(ModelFolderError, match="n_regenerations"):
        load_model(saved)
    monkeypatch.setenv("REGENTREE_MAX_REGENERATIONS", "300000")
    assert load_model(saved).n_regenerations == 200_000


@pytest.mark.parametrize("name", ["hidden_dims huge", "nan weights", "bad calibration", "deep nesting"])
def test_cli_info_and_classify_give_exit_2_and_one_line(saved, name):
    CASES[name][0](saved)
    for command in (["info", str(saved)], ["classify", str(saved)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert result.stdout == "" and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.output

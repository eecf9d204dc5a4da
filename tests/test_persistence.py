"""Model folders: round trip with tensor equality, atomic writes, and every way a folder can be broken."""

import json
import numpy as np
import pytest
from safetensors.torch import load_file

from regentree import FlatRegenClassifier, load_model, save_model
from regentree.errors import ModelFolderError
from regentree.persistence.model_folder import FORMAT_VERSION, MANIFEST, sha256_of


@pytest.fixture()
def saved(fitted_flat, tmp_path):
    return save_model(fitted_flat, tmp_path / "model")


def _edit_manifest(folder, change):
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_round_trip_keeps_every_tensor_and_every_prediction(fitted_flat, saved, digits_test):
    loaded = load_model(saved)
    assert isinstance(loaded, FlatRegenClassifier)
    assert loaded.get_params() == fitted_flat.get_params()
    assert list(loaded.classes_) == list(fitted_flat.classes_) and loaded.image_shape_ == (8, 8)
    for key, vae in fitted_flat.vaes_.items():
        for name, tensor in vae.state_dict().items():
            assert np.array_equal(tensor.numpy(), loaded.vaes_[key].state_dict()[name].numpy()), (key, name)
        np.testing.assert_array_equal(loaded.reference_distortions_[key], fitted_flat.reference_distortions_[key])
    X = digits_test.X[:15]
    np.testing.assert_array_equal(loaded.class_distances(X), fitted_flat.class_distances(X))
    assert loaded.predict_with_rejection(X).to_records() == fitted_flat.predict_with_rejection(X).to_records()


def test_folder_layout_manifest_and_hashes(saved, fitted_flat):
    manifest = json.loads((saved / MANIFEST).read_text())
    assert manifest["format_version"] == FORMAT_VERSION and manifest["estimator"] == "flat"
    assert manifest["classes"] == {"dtype": "str", "values": ["0", "1", "2", "3"]}
    for entry in manifest["vaes"]:
        assert sha256_of(saved / entry["file"]) == entry["sha256"]
        assert set(load_file(str(saved / entry["file"]))) == set(fitted_flat.vaes_[entry["key"]].state_dict())
    assert not any(p.name.endswith(".pkl") or p.suffix == ".pt" for p in saved.rglob("*"))


def test_save_over_an_existing_model_replaces_it_and_leaves_no_temp_folders(fitted_flat, saved):
    save_model(fitted_flat, saved)
    assert load_model(saved).classes_.tolist() == ["0", "1", "2", "3"]
    assert sorted(p.name for p in saved.parent.iterdir()) == ["model"]


def test_failed_save_keeps_the_previous_model(fitted_flat, saved, monkeypatch):
    before = {p.name: sha256_of(p) for p in (saved / "vaes").iterdir()}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("regentree.persistence.model_folder._write_json", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(fitted_flat, saved)
    assert {p.name: sha256_of(p) for p in (saved / "vaes").iterdir()} == before
    assert sorted(p.name for p in saved.parent.iterdir()) == ["model"]
    load_model(saved)


def test_refuses_to_overwrite_a_folder_that_is_not_a_model(fitted_flat, tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ModelFolderError, match="not a regentree model folder"):
        save_model(fitted_flat, tmp_path / "precious")
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def _tamper_weights(folder):
    file = next((folder / "vaes").iterdir())
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))


def _truncate_weights_consistently(folder):
    file = next((folder / "vaes").iterdir())
    file.write_bytes(file.read_bytes()[:100])
    _edit_manifest(folder, lambda m: [e.update(sha256=sha256_of(file)) for e in m["vaes"] if file.name.startswith(e["key"] + ".")])


def _wrong_shape_config(folder):
    _edit_manifest(folder, lambda m: m["vaes"][0]["config"].update(latent_dim=9))


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda f: (f / MANIFEST).unlink(), "manifest.json: missing"),
        (lambda f: (f / MANIFEST).write_text("{not json"), "not valid JSON"),
        (lambda f: _edit_manifest(f, lambda m: m.update(format_version=99)), "format version 99"),
        (lambda f: _edit_manifest(f, lambda m: m.update(format="other")), "not a regentree manifest"),
        (lambda f: _edit_manifest(f, lambda m: m.pop("classes")), "missing keys"),
        (lambda f: next((f / "vaes").iterdir()).unlink(), "missing weights"),
        (_tamper_weights, "sha256 does not match"),
        (_truncate_weights_consistently, "unreadable safetensors"),
        (_wrong_shape_config, "do not match the VAE config"),
        (lambda f: _edit_manifest(f, lambda m: m["vaes"][0].update(file="../../etc/passwd")), "outside the model folder"),
        (lambda f: _edit_manifest(f, lambda m: m.update(estimator="forest")), "unknown estimator kind"),
        (lambda f: _edit_manifest(f, lambda m: m["extra"].update(vae_keys=["class_0"])), "one VAE key per class"),
        (lambda f: _edit_manifest(f, lambda m: m["params"].update(depth=3)), "parameters do not fit"),
    ],
    ids=["no-manifest", "bad-json", "version", "format", "missing-key", "missing-file", "tampered", "truncated",
         "shape", "path-escape", "kind", "keys", "params"],
)
def test_broken_folders_get_a_one_line_error(saved, breakage, message):
    breakage(saved)
    with pytest.raises(ModelFolderError, match=message) as info:
        load_model(saved)
    assert "\n" not in str(info.value)


def test_missing_folder(tmp_path):
    with pytest.raises(ModelFolderError, match="no such model folder"):
        load_model(tmp_path / "nope")


def test_classmethod_load_checks_the_kind(saved):
    assert FlatRegenClassifier.load(saved).kind == "flat"


def test_a_model_saved_for_cuda_loads_on_a_machine_without_one(saved, digits_test, fitted_flat, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    _edit_manifest(saved, lambda m: m["params"].update(device="cuda"))
    with pytest.warns(UserWarning, match="no CUDA device here; using the CPU"):
        loaded = load_model(saved)
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.predict(digits_test.X[:10]), fitted_flat.predict(digits_test.X[:10]))


def test_a_model_rebuilt_from_its_fitted_state_holds_every_fitted_attribute_and_saves_the_same_bytes(fitted_flat, saved,
                                                                                                      tmp_path):
    fitted = {name for name in vars(fitted_flat) if name.endswith("_") and not name.startswith("_")}
    assert fitted <= set(fitted_flat._fitted_attributes) and "novelty_reference_" in fitted
    rebuilt = FlatRegenClassifier._from_fitted_state(fitted_flat._fitted_state())
    assert {name for name in vars(rebuilt) if name.endswith("_") and not name.startswith("_")} == fitted
    again = save_model(rebuilt, tmp_path / "again")
    assert {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file() and p.name != "run.json"} == \
        {p.relative_to(saved): p.read_bytes() for p in saved.rglob("*") if p.is_file() and p.name != "run.json"}


def test_persistence_calls_no_private_estimator_method_but_the_state_pair():
    import ast
    import inspect

    from regentree.persistence import model_folder

    tree = ast.parse(inspect.getsource(model_folder))
    private = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr.startswith("_")
               and not node.attr.startswith("__")}
    assert private == {"_fitted_state", "_from_fitted_state"}

"""The base VAE: trained first on all (also unlabelled) images, the starting point of every class or node VAE."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from regentree import FlatRegenClassifier, TreeRegenClassifier, load_model
from regentree.cli import app
from regentree.errors import ConfigError, InvalidInputError, ModelFolderError
from regentree.training.stacked import train_vaes_stacked
from regentree.estimators.self_training import self_train
from regentree.training.loop import TrainingConfig, TrainingTask, train_vae
from regentree.vae.model import VAE, VAEConfig

from conftest import TINY

FROZEN = dict(TINY, learning_rate=1e-12)  # training barely moves a weight: a VAE stays where it started


def _max_difference(a: VAE, b: VAE) -> float:
    sb = b.state_dict()
    return max(float((v - sb[k]).abs().max()) for k, v in a.state_dict().items())


@pytest.fixture(scope="module")
def four_classes(digits_train):
    keep = np.isin(digits_train.y, [0, 1, 2, 3])
    return digits_train.X[keep], digits_train.labels[keep], digits_train.X[~keep]


def test_train_vae_starts_from_the_initial_state(digits_train):
    config, training = VAEConfig(64, (16,), 2), TrainingConfig(epochs=2, patience=0, learning_rate=1e-12)
    start = VAE(config).state_dict()
    result = train_vae(TrainingTask("k", config, training, digits_train.X[:100], seed=5, initial_state=start))
    assert max(float((result.state_dict[k] - v).abs().max()) for k, v in start.items()) < 1e-6
    scratch = train_vae(TrainingTask("k", config, training, digits_train.X[:100], seed=5))
    assert max(float((scratch.state_dict[k] - v).abs().max()) for k, v in start.items()) > 1e-2


def test_stacked_training_starts_from_the_initial_state(digits_train):
    config, training = VAEConfig(64, (16,), 2), TrainingConfig(epochs=2, patience=0, learning_rate=1e-12)
    start = VAE(config).state_dict()
    tasks = [TrainingTask(f"k{i}", config, training, digits_train.X[i * 50:(i + 1) * 50], seed=i, initial_state=start)
             for i in range(2)]
    for result in train_vaes_stacked(tasks):
        assert max(float((result.state_dict[k] - v).abs().max()) for k, v in start.items()) < 1e-6


def test_every_class_vae_starts_from_the_base_trained_on_labelled_and_unlabelled_images(four_classes):
    X, y, unlabelled = four_classes
    model = FlatRegenClassifier(**FROZEN, base_epochs=3).fit(X, y, X_unlabelled=unlabelled, image_shape=(8, 8))
    held_out = model.calibration_report_["n_calibration"]  # unseen by the base too: the default fit calibrates on them
    assert model.base_training_info_["n_samples"] == len(X) - held_out + len(unlabelled) and held_out == 58
    assert model.base_training_info_["epochs_run"] == 3
    for vae in model.vaes_.values():
        assert _max_difference(vae, model.base_vae_) < 1e-6
    without = FlatRegenClassifier(**FROZEN, base_epochs=0).fit(X, y, image_shape=(8, 8))
    assert without.base_vae_ is None
    assert _max_difference(without.vaes_["class_0"], without.vaes_["class_1"]) > 1e-2  # independent random starts


def test_tree_node_vaes_and_an_added_class_start_from_the_base(four_classes, digits_train):
    X, y, unlabelled = four_classes
    tree = TreeRegenClassifier(**FROZEN, base_epochs=2).fit(X, y, X_unlabelled=unlabelled, image_shape=(8, 8))
    assert all(_max_difference(vae, tree.base_vae_) < 1e-6 for vae in tree.vaes_.values())
    flat = FlatRegenClassifier(**FROZEN, base_epochs=2).fit(X, y, image_shape=(8, 8))
    update = flat.add_class(digits_train.X[digits_train.y == 7], "7")
    assert _max_difference(flat.vaes_[update.trained[0]], flat.base_vae_) < 1e-6


def test_the_base_of_another_model_is_used_as_is(four_classes):
    X, y, _ = four_classes
    first = FlatRegenClassifier(**TINY, base_epochs=2).fit(X, y, image_shape=(8, 8))
    second = FlatRegenClassifier(**TINY).fit(X[::2], y[::2], base_from=first, image_shape=(8, 8))
    assert second.base_vae_ is first.base_vae_
    assert second.base_training_info_ == first.base_training_info_
    with pytest.raises(ConfigError, match="base_from must hold a base VAE of config .* it has no base VAE"):
        FlatRegenClassifier(**TINY).fit(X, y, base_from=second.set_params(base_epochs=0).fit(X, y), image_shape=(8, 8))
    with pytest.raises(ConfigError, match="it has a base VAE of config"):
        FlatRegenClassifier(**dict(TINY, latent_dim=3)).fit(X, y, base_from=first, image_shape=(8, 8))


@pytest.mark.parametrize("value", [-1, 1.5, True, "3"])
def test_bad_base_epochs_is_a_config_error(four_classes, value):
    X, y, _ = four_classes
    with pytest.raises(ConfigError, match="base_epochs must be an integer >= 0"):
        FlatRegenClassifier(**TINY, base_epochs=value).fit(X, y, image_shape=(8, 8))


def test_unlabelled_images_are_checked(four_classes):
    X, y, unlabelled = four_classes
    with pytest.raises(ConfigError, match="set base_epochs > 0"):
        FlatRegenClassifier(**TINY, base_epochs=0).fit(X, y, X_unlabelled=unlabelled, image_shape=(8, 8))
    with pytest.raises(InvalidInputError, match="X_unlabelled has 63 features per image, X has 64"):
        FlatRegenClassifier(**TINY, base_epochs=1).fit(X, y, X_unlabelled=unlabelled[:, :63], image_shape=(8, 8))
    with pytest.raises(InvalidInputError, match="X_unlabelled"):
        FlatRegenClassifier(**TINY, base_epochs=1).fit(X, y, X_unlabelled=np.full((3, 64), np.nan), image_shape=(8, 8))


def test_the_base_vae_is_saved_and_checked_on_load(four_classes, tmp_path):
    X, y, _ = four_classes
    model = FlatRegenClassifier(**TINY, base_epochs=2).fit(X, y, image_shape=(8, 8))
    folder = model.save(tmp_path / "m")
    loaded = load_model(folder)
    assert _max_difference(loaded.base_vae_, model.base_vae_) == 0.0
    assert loaded.base_training_info_ == json.loads(json.dumps(model.base_training_info_))
    np.testing.assert_array_equal(loaded.predict(X[:20]), model.predict(X[:20]))

    weights = folder / "vaes" / "base.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ModelFolderError, match="base.safetensors: sha256 does not match"):
        load_model(folder)
    model.save(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["base_vae"]["config"]["latent_dim"] += 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match="base"):
        load_model(folder)


def test_self_training_trains_the_base_once_on_the_whole_pool(four_classes):
    X, y, unlabelled = four_classes
    template = FlatRegenClassifier(**TINY, base_epochs=2)
    initial = FlatRegenClassifier(**TINY, base_epochs=2).fit(X[::4], y[::4], X_unlabelled=unlabelled, image_shape=(8, 8))
    result = self_train(template, X[::4], y[::4], unlabelled, kl_threshold=2.0, n_rounds=2, initial=initial)
    assert result.model.base_vae_ is initial.base_vae_
    held_out = initial.calibration_report_["n_calibration"]  # the first fit's calibration split: the base never sees it
    assert result.model.base_training_info_["n_samples"] == len(X[::4]) - held_out + len(unlabelled)
    fresh = self_train(template, X[::4], y[::4], unlabelled, kl_threshold=2.0, image_shape=(8, 8))
    assert fresh.model.base_training_info_["n_samples"] == len(X[::4]) - held_out + len(unlabelled) and held_out > 0


def test_cli_train_with_a_base_vae_and_unlabelled_images(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "hidden_dims": list(TINY["hidden_dims"])}))
    out = tmp_path / "m"
    args = ["train", "digits", "--out", str(out), "--config", str(config), "--quiet", "--limit-per-class", "20"]
    result = CliRunner().invoke(app, [*args, "--base-epochs", "2", "--unlabelled", "digits"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["base_epochs"] == 2
    # 20 per class, less the 2 per class fit holds out for calibration, + the whole train split
    assert manifest["base_vae"]["training"]["n_samples"] == 200 - 20 + 1437
    failed = CliRunner().invoke(app, [*args[:3], str(tmp_path / "other"), *args[4:], "--unlabelled", "digits",
                                      "--base-epochs", "0"])
    assert failed.exit_code != 0
    assert "set base_epochs > 0" in failed.output
    assert not (tmp_path / "other").exists()


def test_auto_base_epochs_follow_the_median_class_size():
    model = FlatRegenClassifier(epochs=100)
    assert model.base_epochs == "auto"
    few, many = np.repeat(np.arange(3), [10, 20, 600]), np.repeat(np.arange(3), [10, 600, 700])
    assert model.base_epochs_for(few, has_unlabelled=False) == 40  # median class 20 < 500 images
    assert model.base_epochs_for(many, has_unlabelled=False) == 0  # median class 600: from scratch, as the paper
    assert model.base_epochs_for(many, has_unlabelled=True) == 40  # unlabelled images only help through a base
    assert FlatRegenClassifier(epochs=7).base_epochs_for(few, has_unlabelled=False) == 7  # never above `epochs`
    assert FlatRegenClassifier(base_epochs=0).base_epochs_for(few, has_unlabelled=True) == 0


def test_by_default_few_images_per_class_train_a_base_that_every_tree_node_starts_from(four_classes):
    X, y, _ = four_classes  # about 145 images per class: under AUTO_BASE_BELOW
    tree = TreeRegenClassifier(**FROZEN).fit(X, y, image_shape=(8, 8))
    assert tree.base_vae_ is not None and tree.base_training_info_["epochs_run"] == TINY["epochs"]
    assert tree.summary()["training"]["base_vae_epochs_run"] == TINY["epochs"]
    for vae in tree.vaes_.values():
        assert _max_difference(vae, tree.base_vae_) < 1e-6


@pytest.mark.parametrize("value", ["-1", "x", "1.5"])
def test_cli_bad_base_epochs_is_a_one_line_error(tmp_path, value):
    out = tmp_path / "m"
    result = CliRunner().invoke(app, ["train", "digits", "--out", str(out), "--quiet", "--base-epochs", value])
    assert result.exit_code == 2
    assert f"--base-epochs must be auto or an integer >= 0, got '{value}'" in result.output
    assert "Traceback" not in result.output and not out.exists()

"""The same code on a GPU: scoring, stacked training, tree, adaptive scoring, persistence and the CLI on CUDA.

Skipped where torch sees no CUDA device (CI); run on a GPU machine with `pytest tests/test_cuda.py`. Every
test compares the GPU result with the CPU one (or with what the CPU path is known to give), so a device
bug cannot pass as a fast wrong answer.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from regentree import FlatRegenClassifier, TreeRegenClassifier, load_model
from regentree.cli import app
from regentree.scoring.regeneration import regenerate_distances
from regentree.vae.model import VAE, VAEConfig

from conftest import TINY

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

GPU = dict(TINY, device="cuda")


@pytest.fixture(scope="module")
def four_classes(digits_train):
    keep = np.isin(digits_train.y, [0, 1, 2, 3])
    return digits_train.X[keep], digits_train.labels[keep]


@pytest.fixture(scope="module")
def gpu_flat(four_classes):
    X, y = four_classes
    return FlatRegenClassifier(**GPU, random_state=0).fit(X, y, image_shape=(8, 8))


@pytest.mark.parametrize("distance", ["cross_entropy", "mse", "neg_log_weight"])
def test_gpu_distances_match_the_cpu(digits_test, distance):
    torch.manual_seed(0)
    vaes = [VAE(VAEConfig(input_dim=64, hidden_dims=(32, 16), latent_dim=3)).eval() for _ in range(3)]
    X = digits_test.X[:40]
    kwargs = dict(n_regenerations=50, noise_variance=0.7, distance=distance, seed=3)
    cpu = regenerate_distances(vaes, X, device="cpu", **kwargs)
    gpu = regenerate_distances(vaes, X, device="cuda", **kwargs)
    np.testing.assert_allclose(gpu, cpu, rtol=2e-4, atol=2e-4)


def test_gpu_training_stacks_the_vaes_and_classifies(gpu_flat, fitted_flat, digits_test):
    keep = np.isin(digits_test.y, [0, 1, 2, 3])
    X, y = digits_test.X[keep], digits_test.labels[keep]
    gpu_accuracy = np.mean(gpu_flat.predict(X) == y)
    cpu_accuracy = np.mean(fitted_flat.predict(X) == y)  # the same settings trained one by one on the CPU
    assert gpu_accuracy >= cpu_accuracy - 0.05, (gpu_accuracy, cpu_accuracy)
    assert all(info["epochs_run"] == TINY["epochs"] for info in gpu_flat.training_info_.values())


def test_gpu_model_scores_like_its_cpu_copy(gpu_flat, digits_test, tmp_path):
    gpu_flat.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.device == "cuda"
    X = digits_test.X[:60]
    on_cpu = loaded.set_params(device="cpu").class_distances(X)
    np.testing.assert_allclose(gpu_flat.class_distances(X), on_cpu, rtol=1e-3, atol=1e-3)


def test_gpu_adaptive_scoring_agrees_with_fixed_k(gpu_flat, digits_test):
    X = digits_test.X[:80]
    fixed = gpu_flat.set_params(adaptive=False).decide(X)
    adaptive = gpu_flat.set_params(adaptive=True).decide(X)
    gpu_flat.set_params(adaptive=False)
    assert np.mean(fixed.class_index == adaptive.class_index) >= 0.95


def test_gpu_bfloat16_and_base_vae_training(four_classes):
    X, y = four_classes
    model = FlatRegenClassifier(**GPU, training_precision="bfloat16", base_epochs=3, random_state=0)
    model.fit(X, y, image_shape=(8, 8))
    assert model.base_vae_ is not None
    assert all(np.isfinite(info["final_val_loss"]) for info in model.training_info_.values())
    assert np.mean(model.predict(X) == y) > 0.8


def test_gpu_tree_routes_like_on_the_cpu(digits_train, digits_test):
    X, y = digits_train.X, digits_train.labels
    tree = TreeRegenClassifier(**GPU, random_state=0).fit(X, y, image_shape=(8, 8))
    probes = digits_test.X[:50]
    on_gpu = tree.predict(probes)
    assert np.array_equal(on_gpu, tree.set_params(device="cpu").predict(probes))
    assert np.mean(on_gpu == digits_test.labels[:50]) > 0.6


def test_cli_trains_and_classifies_on_cuda(tmp_path, digits_test):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "hidden_dims": list(TINY["hidden_dims"])}))
    out = tmp_path / "model"
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "digits", "--out", str(out), "--config", str(config), "--device", "cuda",
                                  "--quiet"])
    assert trained.exit_code == 0, trained.output
    np.save(tmp_path / "probes.npy", digits_test.X[:5].reshape(5, 8, 8))
    classified = runner.invoke(app, ["classify", str(out), str(tmp_path / "probes.npy"), "--device", "cuda",
                                     "--json", "--quiet"])
    assert classified.exit_code == 0, classified.output
    assert len(json.loads(classified.stdout)) == 5

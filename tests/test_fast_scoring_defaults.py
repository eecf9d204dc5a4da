"""Fast scoring by default: bfloat16 decoder products where the hardware is fast, adaptive K in classify."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import regentree.backends.devices as devices
from regentree import FlatRegenClassifier, TreeRegenClassifier
from regentree.cli import app
from regentree.errors import ConfigError
from regentree.persistence.model_folder import load_model, save_model
from regentree.scoring.regeneration import VAEStack, regenerate_distances
from regentree.vae.model import VAE, VAEConfig
from tests.conftest import TINY


@pytest.fixture(scope="module")
def digits_model(digits_train):
    """A flat model on all ten digits, scored in float32 unless a test sets otherwise."""
    labels = digits_train.labels
    return FlatRegenClassifier(**{**TINY, "epochs": 30}, scoring_precision="float32").fit(digits_train.X, labels)


def test_bfloat16_decisions_and_rejections_agree_with_float32_on_held_out_digits(digits_model, digits_test):
    exact = digits_model.set_params(scoring_precision="float32").predict_with_rejection(digits_test.X)
    exact_distances = digits_model.class_distances(digits_test.X)
    fast = digits_model.set_params(scoring_precision="bfloat16").predict_with_rejection(digits_test.X)
    fast_distances = digits_model.class_distances(digits_test.X)
    digits_model.set_params(scoring_precision="float32")
    assert not np.array_equal(exact_distances, fast_distances)  # the bfloat16 path really ran
    # per-class mean distortions move by far less than the spread of the K draws
    shift = np.abs(exact_distances.mean(-1) - fast_distances.mean(-1)).max()
    assert shift < 0.05 * exact_distances.std(-1).mean()
    # 360 probes: one disagreement in 360 would already be under the 99.9 % target, so all must agree here
    assert (exact.labels == fast.labels).mean() >= 0.99
    assert (exact.rejected == fast.rejected).mean() >= 0.99


@pytest.mark.parametrize("architecture, hidden", [("mlp", (16, 8)), ("conv", (4, 8, 16))])
def test_both_kernels_score_bfloat16_close_to_float32(architecture, hidden):
    torch.manual_seed(0)
    vaes = [VAE(VAEConfig(input_dim=64, hidden_dims=hidden, latent_dim=3, architecture=architecture)).eval()
            for _ in range(3)]
    X = np.random.default_rng(0).random((7, 64), dtype=np.float32)
    for distance in ("cross_entropy", "mse", "neg_log_weight"):
        exact = regenerate_distances(VAEStack(vaes, precision="float32"), X, n_regenerations=11, distance=distance)
        fast = regenerate_distances(VAEStack(vaes, precision="bfloat16"), X, n_regenerations=11, distance=distance)
        assert fast.dtype == np.float32
        np.testing.assert_allclose(fast, exact, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("fast_hardware, expected", [(True, "bfloat16"), (False, "float32")])
def test_the_default_scores_in_bfloat16_exactly_where_the_hardware_multiplies_it(
        monkeypatch, digits_model, digits_test, fast_hardware, expected):
    monkeypatch.setattr(devices, "has_fast_bfloat16", lambda device: fast_hardware)
    assert FlatRegenClassifier().scoring_precision == "auto"
    assert TreeRegenClassifier().scoring_precision == "auto"
    X = digits_test.X[:20]
    chosen = digits_model.set_params(scoring_precision="auto").class_distances(X)
    explicit = digits_model.set_params(scoring_precision=expected).class_distances(X)
    digits_model.set_params(scoring_precision="float32")
    np.testing.assert_array_equal(chosen, explicit)
    assert digits_model.set_params(scoring_precision="auto").summary()["scoring"]["precision_here"] == expected
    digits_model.set_params(scoring_precision="float32")


def test_this_machine_reports_bfloat16_as_fast_only_with_amx_or_avx512_bf16():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo to compare with")
    flags = cpuinfo.read_text().split()
    native = "amx_bf16" in flags or "avx512_bf16" in flags
    assert devices.has_fast_bfloat16(torch.device("cpu")) == native


def test_an_unknown_precision_is_a_config_error_naming_the_parameter():
    with pytest.raises(ConfigError, match="scoring_precision"):
        FlatRegenClassifier(scoring_precision="float16").fit(np.zeros((4, 4), np.float32), [0, 0, 1, 1])
    with pytest.raises(ConfigError, match="scoring_precision='half'"):
        VAEStack([VAE(VAEConfig(input_dim=4, hidden_dims=(3,), latent_dim=2))], precision="half")


def test_the_precision_is_saved_with_the_model_and_shown_by_info(digits_model, tmp_path):
    digits_model.set_params(scoring_precision="bfloat16")
    try:
        save_model(digits_model, tmp_path / "m")
    finally:
        digits_model.set_params(scoring_precision="float32")
    assert load_model(tmp_path / "m").scoring_precision == "bfloat16"
    result = CliRunner().invoke(app, ["info", str(tmp_path / "m"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["scoring"]["precision"] == "bfloat16"
    table = CliRunner().invoke(app, ["info", str(tmp_path / "m")])
    assert "precision bfloat16" in " ".join(table.output.split())


def test_classify_and_evaluate_take_a_scoring_precision_and_refuse_a_bad_one(digits_model, tmp_path):
    save_model(digits_model, tmp_path / "m")
    runner = CliRunner()
    bad = runner.invoke(app, ["classify", str(tmp_path / "m"), "--scoring-precision", "int8", "--quiet"])
    assert bad.exit_code == 2
    assert "scoring_precision='int8' is unknown" in bad.output and "Traceback" not in bad.output
    runs = {}
    for precision in ("float32", "bfloat16"):
        result = runner.invoke(app, ["evaluate", str(tmp_path / "m"), "digits", "--limit", "40", "--json",
                                     "--scoring-precision", precision])
        assert result.exit_code == 0, result.output
        runs[precision] = json.loads(result.output)
    assert abs(runs["float32"]["accuracy_no_rejection"] - runs["bfloat16"]["accuracy_no_rejection"]) <= 1 / 40


def test_classify_scores_flat_models_with_adaptive_k_unless_fixed_k_is_asked(digits_model, digits_test, tmp_path):
    save_model(digits_model, tmp_path / "m")
    probes = tmp_path / "probes.npy"
    np.save(probes, digits_test.X[:30].reshape(-1, 8, 8))
    runner = CliRunner()
    adaptive = runner.invoke(app, ["classify", str(tmp_path / "m"), str(probes), "--quiet"])
    fixed = runner.invoke(app, ["classify", str(tmp_path / "m"), str(probes), "--quiet", "--fixed-k"])
    assert adaptive.exit_code == 0 and fixed.exit_code == 0, adaptive.output + fixed.output
    assert "scoring: adaptive K" in adaptive.output and "--fixed-k" in adaptive.output
    assert f"scoring: K={digits_model.n_regenerations} draws" in fixed.output
    labels = {}
    for name, extra in (("adaptive", []), ("fixed", ["--fixed-k"])):
        result = runner.invoke(app, ["classify", str(tmp_path / "m"), str(probes), "--json", *extra])
        labels[name] = [r["label"] for r in json.loads(result.output)]
    assert np.mean(np.array(labels["adaptive"]) == np.array(labels["fixed"])) >= 0.9
    assert load_model(tmp_path / "m").adaptive is False  # the saved model is not changed

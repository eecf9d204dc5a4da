"""The core commands through typer's CliRunner: train, classify, evaluate, and their errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from regentree.cli import app
from regentree.cli import common, demo

from conftest import TINY

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.json"
    path.write_text(json.dumps({**TINY, "hidden_dims": list(TINY["hidden_dims"])}))
    return path


@pytest.fixture(scope="module")
def model_dir(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "digits"
    result = runner.invoke(app, ["train", "digits", "--out", str(out), "--config", str(tiny_config), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_a_model_folder(model_dir):
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["classes"]["values"] == [str(i) for i in range(10)]
    weights = sorted(p.name for p in (model_dir / "vaes").glob("*.safetensors"))
    assert len(weights) == 11 and "base.safetensors" in weights  # 10 class VAEs and, few images per class, a base


def test_evaluate_prints_accuracy_and_the_threshold_table(model_dir):
    result = runner.invoke(app, ["evaluate", str(model_dir), "digits", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # 0.75: the tiny 15-epoch VAEs train on 90 % of the images since fit holds out its calibration split
    assert report["n_probes"] == 360 and report["accuracy_no_rejection"] > 0.75
    assert [row["threshold"] for row in report["threshold_table"]] == [1, 5, 10, 15, 20]
    # a higher threshold rejects more: P_miss grows, and Acc on the kept (NaN once all are rejected) does not fall
    p_miss = [row["p_miss"] for row in report["threshold_table"]]
    assert p_miss == sorted(p_miss) and p_miss[-1] > p_miss[0]
    accs = [row["accuracy"] for row in report["threshold_table"] if row["accuracy"] == row["accuracy"]]
    assert accs and accs[-1] >= accs[0]
    table = runner.invoke(app, ["evaluate", str(model_dir), "digits", "--quiet", "--thresholds", "2,4"])
    assert "accuracy without rejection" in table.stdout and "P_miss" in table.stdout


def test_classify_png_and_npy_files_as_json(model_dir, digits_test, tmp_path):
    image = (digits_test.X[0].reshape(8, 8) * 255).astype(np.uint8)
    Image.fromarray(image, mode="L").save(tmp_path / "probe.png")
    np.save(tmp_path / "stack.npy", digits_test.X[:3].reshape(3, 8, 8))
    result = runner.invoke(app, ["classify", str(model_dir), str(tmp_path / "probe.png"), str(tmp_path / "stack.npy"), "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["probe"] for r in records] == ["probe.png", "stack.npy[0]", "stack.npy[1]", "stack.npy[2]"]
    assert records[0]["label"] == records[1]["label"]
    assert {"label", "rejected", "reason", "kl", "novelty_p", "distortion"} <= set(records[0])


def test_classify_table_shows_probe_verdict_and_rule(model_dir, digits_test, tmp_path):
    np.save(tmp_path / "one.npy", digits_test.X[:1])
    result = runner.invoke(app, ["classify", str(model_dir), str(tmp_path / "one.npy"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "one.npy" in result.stdout and "calibrated at fit on 144 held-out training probes" in " ".join(
        result.stdout.split())
    explained = runner.invoke(app, ["classify", str(model_dir), str(tmp_path / "one.npy"), "--quiet", "--explain"])
    assert explained.exit_code == 0, explained.output
    assert "closest classes (" in explained.stdout and "decided the verdict (KL" in explained.stdout


def test_classify_without_a_model_trains_a_quick_one(monkeypatch):
    monkeypatch.setattr(demo, "QUICK_PARAMS", {**TINY})
    result = runner.invoke(app, ["classify", "--n-probes", "6", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "accuracy on these 6 held-out digits" in result.stdout


def test_info_describes_the_model_folder_as_saved(model_dir):
    manifest = json.loads((model_dir / "manifest.json").read_text())
    result = runner.invoke(app, ["info", str(model_dir), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["kind"] == "flat" and summary["classes"] == manifest["classes"]["values"]
    assert summary["n_vaes"] == summary["max_vae_evaluations"] == len(manifest["vaes"]) == 10
    assert summary["vae"]["latent_dim"] == TINY["latent_dim"] and summary["vae"]["input_dim"] == 64
    hidden, latent = TINY["hidden_dims"], TINY["latent_dim"]  # encoder (mean and log-variance heads) + decoder
    encoder_sizes, decoder_sizes = [64, *hidden, 2 * latent], [latent, *reversed(hidden), 64]
    weights = sum(a * b + b for sizes in (encoder_sizes, decoder_sizes) for a, b in zip(sizes, sizes[1:]))
    assert summary["n_parameters"] == 10 * weights
    runs = [v["training"]["epochs_run"] for v in manifest["vaes"]]
    assert (summary["training"]["epochs_run_min"], summary["training"]["epochs_run_max"]) == (min(runs), max(runs))
    # the default rule: fit held out 10 % of the 1,437 training digits and set the KL threshold rejecting 5 % of them
    assert manifest["params"]["kl_threshold"] == "auto" and manifest["params"]["rejection_target"] == 0.05
    stored = {k: v for k, v in manifest["calibration"].items() if k != "kl_sample"}  # info leaves the KL sample out
    assert len(manifest["calibration"]["kl_sample"]) == 144  # kept for evaluate's shift test
    assert summary["rejection"] == {"kl_threshold": manifest["rejection"]["kl_threshold"], "novelty_threshold": None,
                                    "calibrated": True, "calibration": stored,
                                    "origin": {"how": "calibrated", "source": "fit", "rule": "kl", "max_rejection": 0.05,
                                               "max_selective_error": None, "confidence": None, "n_calibration": 144}}
    assert summary["rejection"]["kl_threshold"] == manifest["calibration"]["kl_threshold"] != 5.0
    assert summary["novelty_references"]["applicable"] and summary["novelty_references"]["per_vae_min"] > 0
    table = runner.invoke(app, ["info", str(model_dir)])
    assert table.exit_code == 0 and "flat (10 VAEs" in table.stdout
    assert "rejection rule: doubtful if KL < " in table.stdout
    assert "calibrated at fit on 144 held-out training probes for rejection <= 5.00%" in " ".join(table.stdout.split())


def test_info_shows_calibrated_thresholds(model_dir, tmp_path):
    copy = tmp_path / "calibrated"
    shutil.copytree(model_dir, copy)
    result = runner.invoke(app, ["calibrate", str(copy), "digits", "--max-rejection", "0.1", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    chosen = json.loads(result.stdout)
    assert (chosen.pop("data"), chosen.pop("split")) == ("digits", "test")  # where the probes came from
    summary = json.loads(runner.invoke(app, ["info", str(copy), "--json"]).stdout)
    assert summary["rejection"]["calibrated"] and summary["rejection"]["calibration"] == chosen
    assert "calibrated on" in runner.invoke(app, ["info", str(copy)]).stdout


def test_info_plot_draws_the_training_curves_kept_in_the_folder(model_dir, tmp_path):
    manifest = json.loads((model_dir / "manifest.json").read_text())
    for entry in manifest["vaes"]:  # one loss value per epoch run, the kept epoch the lowest validation loss
        training = entry["training"]
        assert len(training["val_loss"]) == len(training["train_loss"]) == training["epochs_run"]
        assert min(training["val_loss"]) == training["val_loss"][training["best_epoch"] - 1]
    result = runner.invoke(app, ["info", str(model_dir), "--plot", str(tmp_path / "curves.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary file left behind


def test_info_plot_refuses_a_bad_name_and_a_folder_without_curves(model_dir, tmp_path):
    result = runner.invoke(app, ["info", str(model_dir), "--plot", str(tmp_path / "curves.jpg")])
    assert result.exit_code == 2 and ".png" in result.stderr and not list(tmp_path.iterdir())
    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    manifest = json.loads((old / "manifest.json").read_text())
    for entry in manifest["vaes"]:  # as a folder saved before the curves were kept
        del entry["training"]["train_loss"], entry["training"]["val_loss"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["info", str(old), "--plot", str(tmp_path / "curves.png")])
    assert result.exit_code == 2 and result.stdout == "" and result.stderr.count("\n") == 1
    assert "no training curves" in result.stderr and not (tmp_path / "curves.png").exists()


def test_info_of_a_folder_without_a_model_is_one_line(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 2 and result.stdout == ""
    assert "manifest.json" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "/no/such/model", "digits"], "no such model folder"),
        (["train", "/no/such/data", "--out", "{tmp}/m"], "/no/such/data"),
        (["train", "digits", "--out", "{tmp}/m", "--config", "{tmp}/bad.json"], "not valid JSON"),
        (["train", "digits", "--out", "{tmp}/m", "--config", "{tmp}/unknown.json"], "unknown parameter"),
        (["evaluate", "{model}", "digits", "--thresholds", "a,b"], "--thresholds"),
        (["classify", "{model}", "{tmp}/big.png"], "(8, 8)"),
        (["classify", "{model}", "{tmp}/notes.txt"], "notes.txt"),
    ],
    ids=["no-model", "no-data", "bad-json", "unknown-param", "bad-thresholds", "wrong-size", "unknown-file"],
)
def test_errors_are_one_line_with_non_zero_exit_and_no_output(model_dir, tmp_path, args, message):
    (tmp_path / "bad.json").write_text("{oops")
    (tmp_path / "unknown.json").write_text('{"depth": 3}')
    (tmp_path / "notes.txt").write_text("hello")
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8), mode="L").save(tmp_path / "big.png")
    args = [a.format(tmp=tmp_path, model=model_dir) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_a_conv_config_trains_and_info_names_the_architecture(tmp_path):
    config = tmp_path / "conv.json"
    config.write_text(json.dumps({**TINY, "architecture": "conv", "hidden_dims": [4, 8, 16], "epochs": 2}))
    out = tmp_path / "conv_model"
    result = runner.invoke(app, ["train", "digits", "--out", str(out), "--config", str(config), "--quiet",
                                 "--limit-per-class", "20"])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(app, ["info", str(out), "--json"]).stdout)
    assert info["vae"]["architecture"] == "conv" and info["vae"]["hidden_dims"] == [4, 8, 16]
    assert "conv: channels 4, 8, dense 16, latent 4" in runner.invoke(app, ["info", str(out)]).stdout
    # the softmax baseline beside a conv model is the paper's MLP: a conv VAE's hidden_dims are channels
    result = runner.invoke(app, ["evaluate", str(out), "digits", "--limit", "30", "--baseline", "digits",
                                 "--baseline-epochs", "1", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["baseline"]["hidden_dims"] == [500, 500]


def test_a_conv_config_on_images_it_cannot_take_fails_in_one_line(tmp_path):
    """The conv VAE needs square images with a side divisible by 4: 28x28 and 8x8 are, 10x10 is not."""
    rng = np.random.default_rng(0)
    data = tmp_path / "odd"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8), mode="L").save(data / label / f"{i}.png")
    config = tmp_path / "conv.json"
    config.write_text(json.dumps({**TINY, "architecture": "conv", "hidden_dims": [4, 8, 16]}))
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "m"), "--config", str(config), "--quiet"])
    assert result.exit_code == 2
    assert "multiple of 4" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("config", sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.json")),
                         ids=lambda p: p.name)
def test_every_shipped_config_makes_a_valid_estimator(config):
    estimator = common.make_estimator("flat", common.read_config(config), {})
    estimator._check_params()

"""The command line run unattended (output to a log file): progress lines, capped limits, one shared option set."""

import json

import pytest
from typer.testing import CliRunner

from regentree.cli import app
from regentree.cli import progress_display
from regentree.cli.progress_display import LogProgress, chosen_mode
from regentree.errors import ConfigError
from regentree.progress import ProgressEvent

from conftest import TINY

runner = CliRunner()
TINY_OPTIONS = ["--epochs", "3", "--latent-dim", "4", "--k", "10"]


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.json"
    path.write_text(json.dumps({**TINY, "hidden_dims": list(TINY["hidden_dims"]), "epochs": 3}))
    return path


def test_auto_progress_is_bars_on_a_terminal_and_log_lines_elsewhere():
    assert chosen_mode("auto", quiet=False, is_terminal=True) == "bar"
    assert chosen_mode("auto", quiet=False, is_terminal=False) == "log"
    assert chosen_mode("bar", quiet=True, is_terminal=True) == "none"
    with pytest.raises(ConfigError, match="--progress 'loud'"):
        chosen_mode("loud", quiet=False, is_terminal=False)


def test_log_progress_writes_at_most_one_line_per_interval_and_each_finished_outer_stage():
    lines, now = [], [0.0]
    log = LogProgress(lines.append, interval=10, clock=lambda: now[0])
    for second, event in [(0, ProgressEvent("training VAEs", 0, 4)), (1, ProgressEvent("0", 1, 5, "loss 9.50")),
                          (2, ProgressEvent("0", 5, 5)), (3, ProgressEvent("training VAEs", 1, 4)),
                          (12, ProgressEvent("1", 2, 5, "loss 8.25")), (13, ProgressEvent("1", 5, 5)),
                          (20, ProgressEvent("training VAEs", 4, 4))]:
        now[0] = second
        log(event)
    assert len(lines) == 3  # the start, the one due at 12 s, the end of the outer stage; not one per event
    assert "training VAEs 0/4" in lines[0]
    assert "training VAEs 1/4 | 1 2/5 (loss 8.25) | elapsed 12s, ETA 36s" in lines[1]  # 12 s for 1 of 4
    assert lines[2].endswith("training VAEs 4/4 | elapsed 20s")


def test_train_off_a_terminal_logs_progress_lines(tmp_path, tiny_config, monkeypatch):
    monkeypatch.setattr(progress_display, "LOG_INTERVAL_S", 0.0)
    result = runner.invoke(app, ["train", "digits", "--out", str(tmp_path / "m"), "--config", str(tiny_config)])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert any("training VAEs 10/10" in line for line in lines)
    assert any(": epoch " in line and "(loss " in line for line in lines)  # one VAE's epochs, with its loss
    assert all("elapsed" in line for line in lines)


def test_quiet_and_progress_none_log_nothing(tmp_path, tiny_config):
    for flag in (["--quiet"], ["--progress", "none"]):
        result = runner.invoke(app, ["train", "digits", "--out", str(tmp_path / flag[-1]), "--config",
                                     str(tiny_config), *flag])
        assert result.exit_code == 0, result.output
        assert result.stderr == ""


def test_build_tree_prints_a_summary_unless_asked_for_the_drawing(tmp_path, tiny_config):
    result = runner.invoke(app, ["build-tree", "digits", "--out", str(tmp_path / "t"), "--config", str(tiny_config),
                                 "--limit-per-class", "40", "-q"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert "node 0:" not in result.stdout and len(lines) <= 6  # a summary, not one line per node
    assert "tree of 10 classes: depth" in result.stdout and "10 leaves" in result.stdout
    assert "most lopsided split" in result.stdout


def test_limit_per_class_caps_small_classes_and_says_so_once(tmp_path, tiny_config):
    # digits' train split has 142-146 images per class: a cap of 144 leaves some classes short
    result = runner.invoke(app, ["train", "digits", "--out", str(tmp_path / "m"), "--config", str(tiny_config),
                                 "--limit-per-class", "144", "-q"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "--limit-per-class 144" in line]
    assert len(notes) == 1 and "used whole" in notes[0] and "smallest:" in notes[0]
    info = json.loads(runner.invoke(app, ["info", str(tmp_path / "m"), "--json"]).stdout)
    assert info["n_classes"] == 10


def test_limit_per_class_below_one_names_the_option(tmp_path, tiny_config):
    result = runner.invoke(app, ["train", "digits", "--out", str(tmp_path / "m"), "--config", str(tiny_config),
                                 "--limit-per-class", "0"])
    assert result.exit_code == 2 and "--limit-per-class must be at least 1" in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("command", ["train", "build-tree", "compare"])
def test_every_training_command_has_the_same_training_options(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    for option in ("--n-jobs", "--training-precision", "--base-epochs", "--device", "--kl-threshold", "--config",
                   "--limit-per-class", "--sigma2", "--k", "--seed", "--progress"):
        assert option in result.stdout, (command, option)


def test_a_shipped_config_is_accepted_by_name(tmp_path):
    from regentree.cli.common import read_config, shipped_configs

    assert {"paper_mnist", "quick_digits", "limited_labels", "conv"} <= set(shipped_configs())
    assert read_config("paper_mnist")["latent_dim"] == 15
    result = runner.invoke(app, ["train", "digits", "--out", str(tmp_path / "m"), "--config", "quick_digits",
                                 "--epochs", "2", "-q"])
    assert result.exit_code == 0, result.output
    missing = runner.invoke(app, ["train", "digits", "--out", str(tmp_path / "n"), "--config", "nope"])
    assert missing.exit_code == 2 and "not a shipped config" in missing.stderr and "paper_mnist" in missing.stderr


def test_a_single_split_file_is_calibrated_on_whole(tmp_path, digits_test):
    import numpy as np

    from regentree.data import held_out_split

    np.savez(tmp_path / "held_out.npz", x=digits_test.X.reshape(-1, 8, 8), y=digits_test.y)
    assert held_out_split(str(tmp_path / "held_out.npz")) == "all" and held_out_split("digits") == "test"


def test_classify_with_a_bad_first_argument_fails_before_training(tmp_path):
    result = runner.invoke(app, ["classify", str(tmp_path / "no_such_model"), "x.png"])
    assert result.exit_code == 2 and "no such model folder or probe file" in result.stderr
    assert "training a quick one" not in result.stderr
    (tmp_path / "plain").mkdir()
    folder = runner.invoke(app, ["classify", str(tmp_path / "plain")])
    assert folder.exit_code == 2 and "not a model folder" in folder.stderr


def test_compare_trains_into_missing_folders_and_calibrates_both(tmp_path, tiny_config):
    flat, tree = tmp_path / "flat", tmp_path / "tree"
    result = runner.invoke(app, ["compare", "digits", "--flat", str(flat), "--tree", str(tree), "--config",
                                 str(tiny_config), "--limit-per-class", "40", "--calibrate", "0.1", "--json", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["calibration"]["n_calibration"] == 72 and report["n_probes"] == 360 - 72
    assert (flat / "manifest.json").is_file() and (tree / "manifest.json").is_file()
    for name in ("flat", "tree"):
        info = json.loads(runner.invoke(app, ["info", str(tmp_path / name), "--json"]).stdout)
        assert info["kind"] == name

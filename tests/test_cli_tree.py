"""`regentree build-tree`, `regentree compare` and `classify --explain` on a tree model, via CliRunner."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from regentree.cli import app
from regentree.persistence.model_folder import load_model

runner = CliRunner()
TINY = {"hidden_dims": [16], "latent_dim": 2, "epochs": 4, "batch_size": 32, "patience": 0, "n_regenerations": 20}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


@pytest.fixture(scope="module")
def tree_model(tmp_path_factory, config):
    out = tmp_path_factory.mktemp("models") / "tree"
    result = runner.invoke(app, ["build-tree", "digits", "--out", str(out), "--config", str(config),
                                 "--limit-per-class", "60", "-q", "--show-tree", "--routing", "hard"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_build_tree_prints_tree_and_saves_model(tree_model) -> None:
    out, output = tree_model
    model = load_model(out)
    assert model.kind == "tree" and (out / "tree.json").is_file()
    assert "depth 4" in output and "node 0: 10 classes" in output
    for node in model.tree_.leaves:  # with --show-tree, every leaf printed with its class name
        assert f"node {node}: {model.classes_[model.tree_.classes(node)[0]]}" in output


def test_info_of_a_tree_model_draws_its_tree(tree_model) -> None:
    out, _ = tree_model
    model = load_model(out)
    summary = json.loads(runner.invoke(app, ["info", str(out), "--json"]).stdout)
    assert summary["kind"] == "tree" and summary["n_nodes"] == model.tree_.n_nodes == 19
    assert summary["depth"] == model.depth_ and summary["max_vae_evaluations"] == model.max_vae_evaluations()
    assert summary["n_vaes"] == len(model.vaes_) and summary["routing"] == model.routing
    table = runner.invoke(app, ["info", str(out)])
    assert table.exit_code == 0, table.output
    assert f"depth {model.depth_}, 19 nodes" in table.stdout and "node 0: 10 classes" in table.stdout


def test_info_words_gated_routing_with_the_gate_of_each_depth(tree_model) -> None:
    from regentree.cli.info_command import ROUTING_LINES

    out, _ = tree_model
    model = load_model(out).set_params(routing="gated", beam_width=3)
    line = ROUTING_LINES["gated"](model.summary())
    gates = model.routing_kl_gate()
    assert "beam width 3" in line and len(gates) == model.depth_ and line.endswith(f"{gates[-1]:.3g})")


def test_build_tree_bad_option_writes_nothing(tmp_path, config) -> None:
    out = tmp_path / "never"
    result = runner.invoke(app, ["build-tree", "digits", "--out", str(out), "--config", str(config), "--routing", "greedy"])
    assert result.exit_code == 2
    assert "routing='greedy' is unknown" in result.output
    assert not out.exists()


def test_classify_explain_reads_as_a_path(tree_model) -> None:
    out, _ = tree_model
    result = runner.invoke(app, ["classify", str(out), "--explain", "--n-probes", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert "node 0: node 1 {" in result.output and "mean distance" in result.output
    # two probes: the root's two children, then the five leaves under the chosen one (flat_below 6)
    text = " ".join(result.output.split())  # undo the console's line wrapping
    assert text.count("chose node") == 2 * 2 and text.count(" vs node ") == 2 * (1 + 4)


def test_classify_plot_needs_a_flat_model(tmp_path, tree_model) -> None:
    out, _ = tree_model
    figure = tmp_path / "probes.png"
    result = runner.invoke(app, ["classify", str(out), "--plot", str(figure), "-q"])
    assert result.exit_code == 2 and "only a flat model" in result.output
    assert not figure.exists()


def test_evaluate_plot_of_a_tree_model(tmp_path, tree_model) -> None:
    out, _ = tree_model
    figure = tmp_path / "tree_evaluation.png"
    result = runner.invoke(app, ["evaluate", str(out), "digits", "--limit", "60", "--plot", str(figure), "-q"])
    assert result.exit_code == 0, result.output
    assert figure.read_bytes().startswith(b"\x89PNG")


def test_compare_end_to_end(tmp_path, config, tree_model) -> None:
    report = tmp_path / "report"
    result = runner.invoke(app, ["compare", "digits", "--out", str(report), "--config", str(config),
                                 "--tree", str(tree_model[0]), "--flat", str(tmp_path / "flat"),
                                 "--limit-per-class", "60", "--limit", "120", "--batch-size", "40", "--baseline", "-q"])
    assert result.exit_code == 0, result.output
    assert "tree speed-up over flat" in result.output and "softmax baseline" in result.output
    assert sorted(p.name for p in report.iterdir()) == ["report.json", "report.md", "report.png"]
    data = json.loads((report / "report.json").read_text())
    flat, tree = data["models"]["flat"], data["models"]["tree"]
    assert data["n_probes"] == 120
    assert flat["mean_vae_evaluations"] == 10 and flat["n_vaes"] == 10
    assert tree["depth"] == 4 and tree["max_vae_evaluations_seen"] <= 2 * math.ceil(math.log2(10))
    assert 0.0 <= tree["accuracy_no_rejection"] <= 1.0 and tree["probes_per_s"] > 0
    assert len(tree["threshold_table"]) == 5
    assert (report / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| tree depth | - | 4 |" in (report / "report.md").read_text()
    assert set(data["baseline"]["at_rejection_rate_of"]) == {"flat", "tree"}
    assert "## Softmax baseline" in (report / "report.md").read_text()
    # both fitted on the same 60 images per class and seed: both rules calibrated at fit for the default 5 %
    assert data["calibration"] == {"max_rejection": 0.05, "where": "fit", "n_calibration": 60,
                                   "source": "the seeded stratified split each fit held out from its training images"}
    for row in (flat, tree):
        assert row["with_model_rule"]["origin"]["source"] == "fit"
        assert row["with_model_rule"]["origin"]["max_rejection"] == 0.05
    markdown = " ".join((report / "report.md").read_text().split())
    assert "calibrated to reject 5.00%" in markdown and markdown.count("calibrated at fit on 60 held-out") == 2


def test_compare_calibrates_saved_models_at_one_target(tmp_path, config, tree_model) -> None:
    """Two models with different rules are both re-calibrated to --calibrate on one held-out part of the test split."""
    flat = tmp_path / "flat"
    trained = runner.invoke(app, ["train", "digits", "--out", str(flat), "--config", str(config),
                                  "--limit-per-class", "30", "--kl-threshold", "5", "-q"])
    assert trained.exit_code == 0, trained.output
    assert load_model(flat).rejection_origin() == {"how": "fixed"}  # an explicit --kl-threshold: nothing calibrated
    result = runner.invoke(app, ["compare", "digits", "--flat", str(flat), "--tree", str(tree_model[0]),
                                 "--calibrate", "0.1", "--json", "-q"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["calibration"]["max_rejection"] == 0.1 and data["calibration"]["where"] == "test split"
    assert data["n_probes"] + data["calibration"]["n_calibration"] == 360
    for row in data["models"].values():
        origin = row["with_model_rule"]["origin"]
        assert origin["source"] == "calibrate" and origin["max_rejection"] == 0.1
        assert origin["n_calibration"] == data["calibration"]["n_calibration"]
    own = runner.invoke(app, ["compare", "digits", "--flat", str(flat), "--tree", str(tree_model[0]), "--own-rules",
                              "--limit", "20", "--json", "-q"])
    assert own.exit_code == 0, own.output
    rules = {name: row["with_model_rule"] for name, row in json.loads(own.stdout)["models"].items()}
    assert rules["flat"]["kl_threshold"] == 5.0 and rules["flat"]["origin"] == {"how": "fixed"}
    assert rules["tree"]["origin"]["source"] == "fit" and "calibration" not in json.loads(own.stdout)


def test_compare_rejects_a_model_of_the_wrong_kind(tmp_path, tree_model) -> None:
    report = tmp_path / "report"
    result = runner.invoke(app, ["compare", "digits", "--out", str(report), "--flat", str(tree_model[0]), "-q"])
    assert result.exit_code == 2
    assert "holds a tree model, not a flat model" in result.output
    assert not report.exists()


def test_explain_line_of_a_step_comparing_several_leaves() -> None:
    from regentree.cli.explain import explanation, format_step

    step = {"node": 2, "children": [5, 7, 8], "children_classes": [["c"], ["d"], ["e"]],
            "mean_distance": [3.0, 1.5, 2.0], "score": [3.0, 1.5, 2.0], "kl": 0.75, "chosen": 7}
    line = format_step(explanation([step])[0])
    assert line.startswith("node 2: node 5 {c} vs node 7 {d} vs node 8 {e} | mean distance 3")
    assert line.endswith("chose node 7 {d}")


def test_classify_explain_json_marks_the_routing_step_whose_kl_is_the_verdicts(tree_model) -> None:
    out, _ = tree_model
    result = runner.invoke(app, ["classify", str(out), "--explain", "--json", "--n-probes", "4", "-q"])
    assert result.exit_code == 0, result.output
    for record in json.loads(result.stdout):
        kls = [step["kl"] for step in record["trace"]]
        deciding = [i for i, step in enumerate(record["trace"]) if step["decides"]]
        assert deciding == [kls.index(min(kls))] and kls[deciding[0]] == record["kl"]
        assert all(len(step["compared"]) <= 5 for step in record["trace"])

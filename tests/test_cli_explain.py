"""`classify --explain` (the deciding step marked, short candidate lists) and the demo of `classify` with no model."""

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from regentree.cli import app, demo, explain
from regentree.cli.explain import explanation, explanation_lines
from regentree.data import load_digits_dataset

from conftest import TINY

runner = CliRunner()


def _routing_step(node: int, children: list[int], kl: float, chosen: int, scores=None) -> dict:
    scores = scores or [float(i) for i in range(len(children))]
    return {"node": node, "children": children, "children_classes": [[f"c{c}"] for c in children],
            "mean_distance": scores, "score": scores, "kl": kl, "chosen": chosen}


def test_the_routing_step_with_the_smallest_kl_is_marked_as_deciding():
    steps = [_routing_step(0, [1, 2], 3.0, 1), _routing_step(1, [3, 4], 0.4, 3), _routing_step(3, [5, 6], 1.2, 5)]
    explained = explanation(steps)
    assert [step["decides"] for step in explained] == [False, True, False]
    lines = explanation_lines(explained, kl_threshold=1.0)
    assert [line.startswith(explain.DECIDING_MARK) for line in lines] == [False, True, False]
    assert lines[1].startswith(">> node 1: node 3 {c3} vs node 4 {c4}")
    assert lines[1].endswith("<- decided the verdict (KL 0.40 < threshold 1.000: doubtful)")
    assert "decided" not in lines[0] + lines[2]


def test_a_step_of_many_compared_nodes_shows_the_best_few_and_the_chosen_one(monkeypatch):
    monkeypatch.setattr(explain, "SHORTLIST", 3)
    scores = [5.0, 1.0, 7.0, 2.0, 3.0, 9.0, 8.0, 6.0]
    step = _routing_step(4, [10, 11, 12, 13, 14, 15, 16, 17], 0.9, 17, scores)  # soft routing chose a poor one
    step["children_classes"][1] = [f"k{i}" for i in range(500)]
    short = explanation([step])[0]
    assert [c["node"] for c in short["compared"]] == [11, 13, 17]  # the two best, then the chosen in place of 14
    assert short["more"] == 5 and short["compared"][0]["n_classes"] == 500
    line = explanation_lines([short], kl_threshold=None)[0]
    assert "node 11 {k0, k1, k2, ... (+497)} vs node 13 {c13} vs node 17 {c17} ... 5 more |" in line
    assert line.endswith("chose node 17 {c17}  <- decided the verdict (no KL rule in force)")


@pytest.fixture(scope="module")
def flat_model_dir(tmp_path_factory, fitted_flat):
    return fitted_flat.save(tmp_path_factory.mktemp("explain") / "flat4")


@pytest.fixture(scope="module")
def four_digits(tmp_path_factory, digits_test):
    path = tmp_path_factory.mktemp("probes") / "four.npy"
    np.save(path, digits_test.X[np.isin(digits_test.y, [0, 1, 2, 3])][:4])
    return path


def test_flat_explain_json_marks_the_best_vs_second_step_and_cuts_the_class_list(flat_model_dir, four_digits,
                                                                                   monkeypatch):
    monkeypatch.setattr(explain, "SHORTLIST", 2)
    result = runner.invoke(app, ["classify", str(flat_model_dir), str(four_digits), "--explain", "--json", "-q"])
    assert result.exit_code == 0, result.output
    for record in json.loads(result.stdout):
        (step,) = record["trace"]
        assert step["decides"] and step["kl"] == record["kl"]  # the KL the threshold was compared with
        assert [c["class"] for c in step["closest"]][0] == record["label"]
        assert len(step["closest"]) == 2 and step["more"] == 2  # 4 classes met, 2 shown
    text = runner.invoke(app, ["classify", str(flat_model_dir), str(four_digits), "--explain", "-q"])
    assert text.exit_code == 0, text.output
    marked = [line.strip() for line in text.stdout.splitlines() if line.strip().startswith(">>")]
    assert len(marked) == 4 and all(" ... 2 more | KL(" in line and "decided the verdict (KL" in line
                                    for line in marked)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The demo's quick model, of tiny settings."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "QUICK_PARAMS", {**TINY})
        return demo.quick_model(quiet=True, progress_mode="none", seed=0)


def test_quick_demo_sums_up_the_whole_held_out_split_beside_the_rows(quick, monkeypatch):
    monkeypatch.setattr("regentree.cli.core_commands.quick_model", lambda *args: quick)
    result = runner.invoke(app, ["classify", "--n-probes", "5", "--quiet"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())  # undo the console's line wrapping
    found = re.search(r"on all (\d+) held-out digits \(the digits test split\): accuracy ([\d.]+)% without "
                      r"rejection; ([\d.]+)% rejected; accuracy on the (\d+) kept ([\d.]+)%", text)
    assert found, text
    n, accuracy, rejected, kept, kept_accuracy = found.groups()
    assert int(n) == len(load_digits_dataset("test", seed=0)) == 360
    assert int(kept) == round(int(n) * (1 - float(rejected) / 100))
    assert 0 < float(accuracy) <= 100 and 0 < float(kept_accuracy) <= 100
    assert text.count("test[") == 5 and "accuracy on these 5 held-out digits" in text


def test_quick_model_is_calibrated_on_part_of_the_train_split(quick):
    report = quick.calibration_report_
    assert report["n_calibration"] == 144 and report["max_rejection"] == demo.QUICK_MAX_REJECTION  # 10 % of 1,437
    assert quick.rejection_origin()["source"] == "fit"


def test_quick_demo_rows_are_the_full_split_verdicts_of_those_probes(quick):
    shown = demo.classify_held_out_digits(quick, 4, 0, explain=True, progress=None, backend=None)
    alone = quick.predict_with_rejection(shown.X, explain=True)
    assert list(shown.prediction.labels) == list(alone.labels) and np.allclose(shown.prediction.kl, alone.kl)
    assert list(shown.prediction.rejected) == list(alone.rejected) and len(shown.prediction.trace) == 4
    assert shown.truth == [load_digits_dataset("test", seed=0).labels[int(name[5:-1])] for name in shown.names]

"""Every figure function of `regentree.evaluation.plots` for the paper's figures renders a PNG from tiny inputs."""

from __future__ import annotations

import numpy as np
import pytest

from regentree.evaluation import plots
from regentree.tree import build_tree

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png(figure) -> bytes:
    data = plots.figure_png(figure)
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 2000
    return data


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_kl_distribution_figure_draws_both_groups_and_thresholds(rng):
    kl = np.r_[rng.lognormal(3, 1, 80), rng.lognormal(0, 1, 20)]
    correct = np.r_[np.ones(80, bool), np.zeros(20, bool)]
    figure = plots.kl_distribution_figure(kl, correct, thresholds=(1, 10))
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["correct (80)", "wrong (20)"]
    assert ax.get_xscale() == "log"
    assert len(ax.lines) == 2  # one line per threshold
    _png(figure)


def test_kl_distribution_figure_with_zero_kl_and_no_wrong_probe():
    figure = plots.kl_distribution_figure(np.array([0.0, 0.5, 3.0, 40.0]), np.ones(4, bool))
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["correct (4)"]
    _png(figure)


def test_evaluation_figure_without_unseen_has_risk_coverage_and_kl_panels(rng):
    kl = np.r_[rng.lognormal(3, 1, 90), rng.lognormal(0, 1, 10)]
    correct = np.r_[np.ones(90, bool), np.zeros(10, bool)]
    rejected = kl < 1.0
    figure = plots.evaluation_figure(correct, kl, rejected=rejected, kl_threshold=1.0)
    risk, hist = figure.axes
    curve, point = risk.lines
    assert curve.get_xdata()[-1] == pytest.approx(100.0)  # the curve ends at full coverage ...
    assert curve.get_ydata()[-1] == pytest.approx(10.0)   # ... with the error rate of all probes
    assert point.get_xdata()[0] == pytest.approx(100 * np.mean(~rejected))
    assert point.get_ydata()[0] == pytest.approx(100 * (1 - correct[~rejected].mean()))
    assert [t.get_text() for t in hist.get_legend().get_texts()] == ["correct (90)", "wrong (10)"]
    assert len(hist.lines) == 1  # the rule's threshold
    _png(figure)
    with_baseline = plots.evaluation_figure(correct, kl, baseline_correct=np.ones(100, bool),
                                            baseline_confidence=rng.random(100))
    curves = with_baseline.axes[0].lines
    assert len(curves) == 2 and curves[1].get_label() == "max-softmax MLP (AURC 0.0000)"  # never wrong


def test_evaluation_figure_with_unseen_draws_roc_of_kl_and_novelty(rng):
    kl, correct = rng.lognormal(2, 1, 60), rng.random(60) < 0.9
    novelty, unseen_novelty = rng.uniform(0.05, 1, 60), rng.uniform(0, 0.04, 40)  # novelty separates perfectly
    figure = plots.evaluation_figure(correct, kl, unseen_kl=rng.lognormal(2, 1, 40), novelty=novelty,
                                     unseen_novelty=unseen_novelty)
    hist, roc = figure.axes[1:]
    assert [t.get_text() for t in hist.get_legend().get_texts()][-1] == "unseen (40)"
    labels = [t.get_text() for t in roc.get_legend().get_texts()]
    assert labels[0].startswith("KL (AUROC") and labels[1] == "novelty (AUROC 1.0000)"
    no_novelty = plots.evaluation_figure(correct, kl, unseen_kl=rng.lognormal(2, 1, 40),
                                         novelty=np.full(60, np.nan), unseen_novelty=np.full(40, np.nan))
    assert len(no_novelty.axes[2].get_legend().get_texts()) == 1  # novelty references absent: KL only
    _png(figure)


def test_regeneration_figure_titles_best_and_second_class(rng):
    n_classes, k = 3, 20
    distances = rng.normal(100, 5, (2, n_classes, k))
    distances[0, 2] -= 40  # class "c" best for probe 0, then...
    distances[0, 0] -= 20  # ... class "a" second
    images = rng.random((2, 16))
    figure = plots.regeneration_figure(images, distances, images, images, ["a", "b", "c"], (4, 4),
                                       titles=["clear", "doubtful"])
    captions = [ax.get_title() for ax in figure.axes[:4]]
    assert captions == ["clear", "input", "best: c", "second: a"]
    assert len(figure.axes) == 8
    _png(figure)
    by_scores = plots.regeneration_figure(images, distances, images, images, ["a", "b", "c"], (4, 4),
                                          scores=np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]), distance_label="d")
    assert [ax.get_title() for ax in by_scores.axes[2:4]] == ["best: a", "second: b"]  # the given ranking wins
    assert by_scores.axes[0].get_xlabel() == "d"


def test_decoder_filters_figure_one_grid_per_model(rng):
    filters = {"class 0": rng.normal(size=(6, 5, 5)), "common": rng.normal(size=(4, 5, 5))}
    figure = plots.decoder_filters_figure(filters, n_cols=3)
    shown = [ax for ax in figure.axes if ax.images]
    assert len(shown) == 10
    assert {ax.get_title(loc="left") for ax in figure.axes} >= {"class 0", "common"}
    _png(figure)


def test_class_tree_figure_labels_leaves_with_class_names():
    distance = np.array([[0, 1, 5, 5], [1, 0, 5, 5], [5, 5, 0, 1], [5, 5, 1, 0]], dtype=float)
    tree = build_tree(distance)
    figure = plots.class_tree_figure(tree, ["cat", "dog", "car", "bus"])
    texts = {t.get_text() for t in figure.axes[0].texts}
    assert {"cat", "dog", "car", "bus"} <= texts
    assert "{cat, dog}" in texts or "{car, bus}" in texts
    _png(figure)


def test_tree_positions_put_parents_above_and_between_children():
    tree = build_tree(np.array([[0, 1, 4], [1, 0, 4], [4, 4, 0]], dtype=float))
    positions = plots._tree_positions(tree)
    xs = sorted(positions[leaf][0] for leaf in tree.leaves)
    assert xs == [0.0, 1.0, 2.0]
    for node in tree.internal_nodes():
        children = tree.children(node)
        assert positions[node][1] > max(positions[c][1] for c in children)
        assert positions[node][0] == pytest.approx(np.mean([positions[c][0] for c in children]))


def test_training_curves_figure_draws_each_vae_and_marks_its_kept_epoch():
    info = {f"class_{i}": {"train_loss": [9.0 - i, 7.0 - i, 6.0 - i], "val_loss": [10.0 - i, 8.0 - i, 8.5 - i],
                           "best_epoch": 2} for i in range(3)}
    figure = plots.training_curves_figure(info, names={"class_0": "zero"})
    ax = figure.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 3 * 3  # validation, training, kept-epoch point per VAE
    points = [line for line in lines if line.get_marker() == "o"]
    assert [(p.get_xdata()[0], p.get_ydata()[0]) for p in points] == [(2, 8.0), (2, 7.0), (2, 6.0)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["zero", "class_1", "class_2"]


def test_training_curves_figure_caps_the_legend():
    info = {f"node_{i}": {"train_loss": [1.0], "val_loss": [1.0], "best_epoch": 1} for i in range(20)}
    ax = plots.training_curves_figure(info, max_legend=5).axes[0]
    assert len(ax.get_legend().get_texts()) == 5 and "first 5 of 20" in ax.get_legend().get_title().get_text()

"""Matplotlib figures of evaluation, comparison and scaling results, the paper's figures 3-5, the class tree
and training curves (matplotlib is imported lazily, Agg backend)."""

from __future__ import annotations

import io
from typing import Sequence


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(figure) -> bytes:
    """PNG bytes of `figure`; the figure is closed afterwards."""
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def comparison_figure(result: dict, title: str = "flat vs tree"):
    """Three panels from a `regentree.evaluation.comparison.compare_models` result.

    Accuracy against P_miss over the KL thresholds (with the no-rejection point), mean VAE
    evaluations per probe, and probes/s, one colour per model.
    """
    plt = _pyplot()
    figure, (ax_acc, ax_eval, ax_speed) = plt.subplots(1, 3, figsize=(13, 3.8))
    names = list(result["models"])
    colours = [f"C{i}" for i in range(len(names))]
    for name, colour in zip(names, colours):
        model = result["models"][name]
        p_miss = [0.0] + [row["p_miss"] for row in model["threshold_table"]]
        accuracy = [model["accuracy_no_rejection"]] + [row["accuracy"] for row in model["threshold_table"]]
        ax_acc.plot(p_miss, [100 * a for a in accuracy], "o-", color=colour, label=name)
    ax_acc.set(xlabel="P_miss (correct probes rejected)", ylabel="accuracy on kept probes (%)",
               title="rejection by KL threshold")
    ax_acc.legend()
    ax_eval.bar(names, [result["models"][n]["mean_vae_evaluations"] for n in names], color=colours)
    ax_eval.set(ylabel="VAE evaluations per probe", title="cost per probe")
    ax_speed.bar(names, [result["models"][n]["probes_per_s"] for n in names], color=colours)
    ax_speed.set(ylabel="probes / s", title="speed, side by side")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def scaling_figure(rows: Sequence[dict], title: str = "cost per probe against the number of classes"):
    """Two log-log panels from scaling rows with keys ``n_classes``, ``flat_vae_evaluations``,
    ``tree_vae_evaluations``, ``flat_ms_per_probe`` and ``tree_ms_per_probe``."""
    plt = _pyplot()
    figure, (ax_eval, ax_time) = plt.subplots(1, 2, figsize=(11, 4))
    m = [row["n_classes"] for row in rows]
    for kind, style in (("flat", "o-"), ("tree", "s-")):
        ax_eval.plot(m, [row[f"{kind}_vae_evaluations"] for row in rows], style, label=kind)
        ax_time.plot(m, [row[f"{kind}_ms_per_probe"] for row in rows], style, label=kind)
    ax_eval.set(xscale="log", yscale="log", xlabel="classes M", ylabel="VAE evaluations per probe",
                title="VAE evaluations per probe")
    ax_time.set(xscale="log", yscale="log", xlabel="classes M", ylabel="wall time per probe (ms)",
                title="wall time per probe")
    for ax in (ax_eval, ax_time):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def _kl_histogram(ax, groups: Sequence[tuple], thresholds: Sequence[float] = (), bins: int = 40) -> None:
    """Histograms of KL scores on a log axis, one per (values, name, colour) group, each summing to 1
    (values floored at 1e-3), with the thresholds as dashed vertical lines."""
    import numpy as np

    groups = [(np.maximum(np.asarray(v, dtype=float), 1e-3), name, colour) for v, name, colour in groups]
    values = np.concatenate([v for v, _, _ in groups])
    edges = np.logspace(np.log10(values.min()), np.log10(values.max()) + 1e-9, bins + 1)
    for v, name, colour in groups:
        if v.size:
            ax.hist(v, bins=edges, weights=np.full(v.size, 1.0 / v.size), alpha=0.55, color=colour,
                    label=f"{name} ({v.size})")
    for t in thresholds:
        ax.axvline(t, color="k", linestyle="--", linewidth=0.8)
        ax.annotate(f"Thr {t:g}", (t, ax.get_ylim()[1] * 0.98), fontsize=8, ha="right", va="top", rotation=90)
    ax.set(xscale="log", xlabel="KL(P_first || P_second) (nats)", ylabel="share of the group per bin")
    ax.legend()


def kl_distribution_figure(kl, correct, thresholds: Sequence[float] = (), bins: int = 40,
                           title: str = "KL(P_first || P_second) of correct and wrong classifications"):
    """The paper's Fig. 3: distributions of the KL score for correct and for wrong classifications.

    Parameters
    ----------
    kl : array-like of shape (n_probes,)
        KL(P_first || P_second) of each probe (>= 0); binned on a log axis (values are floored at 1e-3),
        each group's bars summing to 1.
    correct : array-like of bool of shape (n_probes,)
    thresholds : sequence of float
        KL thresholds drawn as vertical lines (probes left of a line are rejected).
    """
    import numpy as np

    plt = _pyplot()
    kl, correct = np.asarray(kl, dtype=float), np.asarray(correct, dtype=bool)
    figure, ax = plt.subplots(figsize=(7, 3.8))
    _kl_histogram(ax, [(kl[correct], "correct", "C0"), (kl[~correct], "wrong", "C3")], thresholds, bins)
    ax.set_title(title)
    figure.tight_layout()
    return figure


def evaluation_figure(correct, kl, rejected=None, kl_threshold=None, unseen_kl=None, novelty=None,
                      unseen_novelty=None, baseline_correct=None, baseline_confidence=None,
                      title: str = "regentree evaluate"):
    """What `regentree evaluate` reports, drawn: the risk–coverage curve with KL as the confidence (and
    the rule in force as a point), the KL distributions of correct, wrong and unseen probes, and, given
    unseen probes, the ROC curves of the KL and novelty scores for telling them from known ones.

    Parameters
    ----------
    correct, kl : array-like of shape (n_probes,)
        Whether each known-class probe is classified correctly, and its KL(P_first || P_second).
    rejected : array-like of bool of shape (n_probes,), optional
        The rule in force's verdicts: drawn as its (coverage, risk) point.
    kl_threshold : float, optional
        The rule's KL threshold, drawn on the histogram.
    unseen_kl : array-like of shape (n_unseen,), optional
        KL of probes of unseen objects: adds their histogram and the ROC panel.
    novelty, unseen_novelty : array-like, optional
        Novelty p-values of known and unseen probes; their ROC curve is drawn when both are finite.
    baseline_correct, baseline_confidence : array-like of shape (n_probes,), optional
        A softmax baseline's correctness and maximum softmax probability on the same probes: its
        risk–coverage curve is drawn beside the model's.
    """
    import numpy as np
    from sklearn.metrics import roc_curve

    from regentree.evaluation.metrics import ood_metrics, risk_coverage_curve

    plt = _pyplot()
    correct, kl = np.asarray(correct, dtype=bool), np.asarray(kl, dtype=float)
    with_unseen = unseen_kl is not None
    figure, axes = plt.subplots(1, 3 if with_unseen else 2, figsize=(15 if with_unseen else 10.5, 3.9))
    ax_risk, ax_kl = axes[0], axes[1]
    coverage, risk = risk_coverage_curve(correct, kl)
    ax_risk.plot(100 * coverage, 100 * risk, color="C0", label=f"KL as confidence (AURC {risk.mean():.4f})")
    if baseline_correct is not None:
        coverage_msp, risk_msp = risk_coverage_curve(baseline_correct, baseline_confidence)
        ax_risk.plot(100 * coverage_msp, 100 * risk_msp, color="C7",
                     label=f"max-softmax MLP (AURC {risk_msp.mean():.4f})")
    kept = None if rejected is None else ~np.asarray(rejected, dtype=bool)
    if kept is not None and kept.any():
        ax_risk.plot(100 * kept.mean(), 100 * (1 - correct[kept].mean()), "o", color="C3", label="rule in force")
    ax_risk.set(xlabel="coverage (% of probes kept)", ylabel="error on kept probes (%)", title="risk–coverage")
    ax_risk.grid(True, alpha=0.3)
    ax_risk.legend()
    groups = [(kl[correct], "correct", "C0"), (kl[~correct], "wrong", "C3")]
    if with_unseen:
        groups.append((np.asarray(unseen_kl, dtype=float), "unseen", "C2"))
    _kl_histogram(ax_kl, groups, [] if kl_threshold is None else [kl_threshold])
    ax_kl.set_title("KL of the two best classes")
    if with_unseen:
        ax_roc = axes[2]
        scores = {"KL": (-kl, -np.asarray(unseen_kl, dtype=float))}
        if novelty is not None and unseen_novelty is not None:
            known_p, unseen_p = np.asarray(novelty, dtype=float), np.asarray(unseen_novelty, dtype=float)
            if np.isfinite(known_p).all() and np.isfinite(unseen_p).all():
                scores["novelty"] = (1.0 - known_p, 1.0 - unseen_p)
        for i, (name, (known_score, unseen_score)) in enumerate(scores.items()):
            fpr, tpr, _ = roc_curve(np.r_[np.zeros(known_score.size), np.ones(unseen_score.size)],
                                    np.r_[known_score, unseen_score])
            auroc = ood_metrics(known_score, unseen_score)["auroc"]  # the number `evaluate` reports
            ax_roc.plot(100 * fpr, 100 * tpr, color=f"C{i}", label=f"{name} (AUROC {auroc:.4f})")
        ax_roc.plot([0, 100], [0, 100], ":", color="grey", linewidth=0.8)
        ax_roc.set(xlabel="known probes flagged (%)", ylabel="unseen probes flagged (%)", title="unseen objects: ROC")
        ax_roc.legend(loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def regeneration_figure(images, distances, best, second, class_names: Sequence[str], image_shape,
                        titles: Sequence[str] = (), bins: int = 30, scores=None,
                        distance_label: str = "cross-entropy distance to the re-generations"):
    """The paper's Fig. 4: per probe, histograms of the K distances under every class VAE, the input,
    and the best and second-best (noise-free) re-generations.

    Parameters
    ----------
    images : array-like of shape (n_probes, n_features)
    distances : array-like of shape (n_probes, n_classes, K)
    best, second : array-like of shape (n_probes, n_features)
        Re-generations by the first- and second-ranked class VAEs (pixel means in [0, 1]).
    class_names : sequence of str, length n_classes
    image_shape : (height, width)
    titles : sequence of str, optional
        One caption per probe.
    scores : array-like of shape (n_probes, n_classes), optional
        The decision statistic (lower = better) that ranks the classes; by default the mean distance.
    distance_label : str
        What the distances are (the x axis).
    """
    import numpy as np

    plt = _pyplot()
    distances = np.asarray(distances, dtype=float)
    n = distances.shape[0]
    ranked = np.argsort(distances.mean(axis=2) if scores is None else np.asarray(scores, dtype=float), axis=1)
    figure, axes = plt.subplots(n, 4, figsize=(13, 3 * n), squeeze=False,
                                gridspec_kw={"width_ratios": [3.2, 1, 1, 1]})
    for i in range(n):
        ax = axes[i, 0]
        edges = np.histogram_bin_edges(distances[i].ravel(), bins=bins)
        for c in range(distances.shape[1]):
            emphasis = 2.0 if c in ranked[i, :2] else 0.8
            ax.hist(distances[i, c], bins=edges, histtype="step", linewidth=emphasis, color=f"C{c % 10}",
                    label=str(class_names[c]))
        ax.set(xlabel=distance_label, ylabel="count",
               title=titles[i] if i < len(titles) else f"probe {i}")
        ax.legend(fontsize=7, ncol=2)
        panels = ((images, "input"), (best, f"best: {class_names[ranked[i, 0]]}"),
                  (second, f"second: {class_names[ranked[i, 1]]}"))
        for ax, (array, caption) in zip(axes[i, 1:], panels):
            ax.imshow(np.asarray(array)[i].reshape(image_shape), cmap="gray", vmin=0, vmax=1)
            ax.set_title(caption, fontsize=9)
            ax.axis("off")
    figure.tight_layout()
    return figure


def decoder_filters_figure(filters: dict, n_cols: int = 4, title: str = "filters of the last decoder layer"):
    """The paper's Fig. 5: last-layer decoder filters, one grid per model (e.g. class VAEs vs a common VAE).

    Parameters
    ----------
    filters : dict of str -> array-like of shape (n_filters, height, width)
        The outgoing weights of hidden units of each model's last decoder layer, as images.
    n_cols : int
        Filters per row in each grid.
    """
    import numpy as np

    plt = _pyplot()
    names = list(filters)
    n_rows = max(int(np.ceil(len(filters[k]) / n_cols)) for k in names)
    figure, axes = plt.subplots(n_rows, len(names) * n_cols, figsize=(2.0 * len(names) * n_cols / 2, 1.1 * n_rows + 0.6),
                                squeeze=False)
    for m, name in enumerate(names):
        stack = np.asarray(filters[name], dtype=float)
        for j in range(n_rows * n_cols):
            ax = axes[j // n_cols, m * n_cols + j % n_cols]
            ax.axis("off")
            if j < len(stack):
                limit = np.abs(stack[j]).max() or 1.0
                ax.imshow(stack[j], cmap="seismic", vmin=-limit, vmax=limit)
        axes[0, m * n_cols].set_title(name, loc="left", fontsize=10)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def _tree_positions(tree) -> dict:
    """Leaves spread evenly left to right in depth-first order, parents centred above their children."""
    positions, next_x = {}, [0.0]

    def place(node: int) -> float:
        children = tree.children(node)
        x = float(sum(place(c) for c in children) / len(children)) if children else next_x[0]
        if not children:
            next_x[0] += 1.0
        positions[node] = (x, -float(tree.node_depth(node)))
        return x

    place(tree.root)
    return positions


def class_tree_figure(tree, class_names: Sequence[str] | None = None, title: str = "class tree", max_listed: int = 4):
    """A `ClassTree` (e.g. `TreeRegenClassifier.tree_` or `regentree.tree.build_tree(...)`) drawn with class names.

    Leaves carry their class name; an internal node lists up to `max_listed` of the classes under it.
    """
    import networkx as nx

    plt = _pyplot()
    names = list(class_names) if class_names is not None else [str(c) for c in range(tree.n_classes)]

    def label(node: int) -> str:
        classes = [names[c] for c in tree.classes(node)]
        listed = ", ".join(classes[:max_listed]) + (", ..." if len(classes) > max_listed else "")
        return listed if tree.is_leaf(node) else "{" + listed + "}"

    positions = _tree_positions(tree)
    figure, ax = plt.subplots(figsize=(max(6.0, 1.1 * tree.n_classes), 1.2 * (tree.depth + 1) + 0.8))
    leaves = set(tree.leaves)
    nx.draw_networkx_edges(tree.graph, positions, ax=ax, arrows=False, edge_color="0.6")
    nx.draw_networkx_nodes(tree.graph, positions, ax=ax, node_size=60,
                           node_color=["C0" if n in leaves else "0.4" for n in tree.graph.nodes])
    for node, (x, y) in positions.items():
        ax.annotate(label(node), (x, y), xytext=(0, -11 if node in leaves else 8), textcoords="offset points",
                    ha="center", va="top" if node in leaves else "bottom", fontsize=8,
                    rotation=30 if node in leaves else 0)
    ax.set_title(title)
    ax.axis("off")
    ax.margins(0.08, 0.2)
    figure.tight_layout()
    return figure


def training_curves_figure(training_info: dict, names: dict | None = None, max_legend: int = 12,
                           title: str = "training curves"):
    """Validation loss (solid) and training loss (dotted) of each VAE against the epoch, the kept (best
    validation) epoch marked with a dot: the curves `training_record` stores in a model folder.

    Parameters
    ----------
    training_info : dict
        VAE key -> training record with ``train_loss``, ``val_loss`` (one value per epoch) and ``best_epoch``.
    names : dict, optional
        VAE key -> name shown in the legend (e.g. its class); the key otherwise.
    max_legend : int
        Legend entries at most (a tree of many nodes would bury the plot); the rest are drawn unlabelled.
    """
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(8, 4.5))
    for i, (key, record) in enumerate(training_info.items()):
        colour = f"C{i % 10}"
        epochs = range(1, len(record["val_loss"]) + 1)
        label = (names or {}).get(key, key) if i < max_legend else None
        ax.plot(epochs, record["val_loss"], "-", color=colour, lw=1.2, label=label)
        ax.plot(epochs, record["train_loss"], ":", color=colour, lw=1.0)
        best = record["best_epoch"]
        ax.plot([best], [record["val_loss"][best - 1]], "o", color=colour, ms=4)
    ax.set(xlabel="epoch", ylabel="loss (negative ELBO, nats per image)",
           title=f"{title} (validation solid, training dotted; dot: the kept epoch)")
    if training_info:
        ax.legend(fontsize=8, ncol=2, title="VAE" if len(training_info) <= max_legend
                  else f"VAE (first {max_legend} of {len(training_info)})")
    figure.tight_layout()
    return figure

"""Matplotlib figures of comparison and scaling results and the paper's figures 3-5 and class tree
(matplotlib is imported lazily, Agg backend)."""

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
    """Three panels from a `regentree.comparison.compare_models` result.

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
    kl = np.maximum(np.asarray(kl, dtype=float), 1e-3)
    correct = np.asarray(correct, dtype=bool)
    edges = np.logspace(np.log10(kl.min()), np.log10(kl.max()) + 1e-9, bins + 1)
    figure, ax = plt.subplots(figsize=(7, 3.8))
    for mask, name, colour in ((correct, "correct", "C0"), (~correct, "wrong", "C3")):
        if mask.any():
            ax.hist(kl[mask], bins=edges, weights=np.full(int(mask.sum()), 1.0 / mask.sum()), alpha=0.55,
                    color=colour, label=f"{name} ({int(mask.sum())})")
    for t in thresholds:
        ax.axvline(t, color="k", linestyle="--", linewidth=0.8)
        ax.annotate(f"Thr {t:g}", (t, ax.get_ylim()[1] * 0.98), fontsize=8, ha="right", va="top", rotation=90)
    ax.set(xscale="log", xlabel="KL(P_first || P_second) (nats)", ylabel="share of the group per bin", title=title)
    ax.legend()
    figure.tight_layout()
    return figure


def regeneration_figure(images, distances, best, second, class_names: Sequence[str], image_shape,
                        titles: Sequence[str] = (), bins: int = 30):
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
    """
    import numpy as np

    plt = _pyplot()
    distances = np.asarray(distances, dtype=float)
    n = distances.shape[0]
    ranked = np.argsort(distances.mean(axis=2), axis=1)
    figure, axes = plt.subplots(n, 4, figsize=(13, 3 * n), squeeze=False,
                                gridspec_kw={"width_ratios": [3.2, 1, 1, 1]})
    for i in range(n):
        ax = axes[i, 0]
        edges = np.histogram_bin_edges(distances[i].ravel(), bins=bins)
        for c in range(distances.shape[1]):
            emphasis = 2.0 if c in ranked[i, :2] else 0.8
            ax.hist(distances[i, c], bins=edges, histtype="step", linewidth=emphasis, color=f"C{c % 10}",
                    label=str(class_names[c]))
        ax.set(xlabel="cross-entropy distance to the re-generations", ylabel="count",
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

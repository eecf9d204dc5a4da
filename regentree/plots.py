"""Matplotlib figures of comparison and scaling results (matplotlib is imported lazily, Agg backend)."""

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

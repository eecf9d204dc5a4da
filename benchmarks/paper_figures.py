"""Render the paper's figures from saved benchmark results (no training): PNGs in benchmarks/results/figures/.

    python benchmarks/paper_figures.py            # full-mode results where present, else quick ones
    python benchmarks/paper_figures.py --quick    # quick results only

Inputs are written by `paper_tables.py` into benchmarks/results/figure_data/: Table I (MNIST) saves the
per-probe KL and correctness (Fig. 3), two chosen probes with their distances and re-generations (Fig. 4),
the last decoder layer of class VAEs 0 and 9 and of one common VAE (Fig. 5) and the MNIST class tree;
Table III saves the Fashion-MNIST class tree.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import numpy as np

from regentree.evaluation import plots
from regentree.tree import ClassTree

ROOT = Path(__file__).resolve().parents[1]
FIGURE_DATA = ROOT / "benchmarks" / "results" / "figure_data"
FIGURES = ROOT / "benchmarks" / "results" / "figures"
THRESHOLDS = (1, 5, 10, 20)


def _find(stem: str, suffix: str, quick_only: bool) -> Optional[Path]:
    """figure_data/<stem>.<suffix>, else <stem>_quick.<suffix>; None when neither exists."""
    names = [f"{stem}_quick.{suffix}"] if quick_only else [f"{stem}.{suffix}", f"{stem}_quick.{suffix}"]
    return next((FIGURE_DATA / n for n in names if (FIGURE_DATA / n).exists()), None)


def figure_data(quick_only: bool = False) -> dict:
    """The saved inputs of every figure that has them: name -> dict of arrays (plus "source": the file)."""
    found = {}
    path = _find("fig3_kl", "npz", quick_only)
    if path:
        with np.load(path) as data:
            found["fig3"] = {"kl": data["kl"], "correct": data["correct"], "source": path.name}
    path = _find("fig4_probes", "npz", quick_only)
    if path:
        with np.load(path) as data:
            found["fig4"] = {k: data[k] for k in data.files} | {"source": path.name}
    path = _find("fig5_filters", "npz", quick_only)
    if path:
        with np.load(path) as data:
            found["fig5"] = {"filters": {"class VAE 0": data["class_0"], "class VAE 9": data["class_9"],
                                         "common VAE (all classes)": data["common"]}, "source": path.name}
    for dataset in ("mnist", "fashion"):
        path = _find(f"tree_{dataset}", "json", quick_only)
        if path:
            record = json.loads(path.read_text())
            found[f"tree_{dataset}"] = {"tree": ClassTree.from_node_link(record["tree"]),
                                        "class_names": record["class_names"], "source": path.name}
    return found


def render(data: dict) -> dict:
    """name -> matplotlib figure for every entry of `figure_data()`."""
    figures = {}
    if "fig3" in data:
        figures["fig3_kl_distributions"] = plots.kl_distribution_figure(
            data["fig3"]["kl"], data["fig3"]["correct"], thresholds=THRESHOLDS,
            title=f"Fig. 3: KL for correct and wrong classifications, MNIST ({data['fig3']['source']})")
    if "fig4" in data:
        d = data["fig4"]
        figures["fig4_regenerations"] = plots.regeneration_figure(
            d["images"], d["distances"], d["best"], d["second"], [str(c) for c in d["class_names"]],
            tuple(int(s) for s in d["image_shape"]),
            titles=[f"{t}: true {d['class_names'][y]}, KL {k:.2f}" for t, y, k in zip(d["titles"], d["true"], d["kl"])])
    if "fig5" in data:
        figures["fig5_decoder_filters"] = plots.decoder_filters_figure(
            data["fig5"]["filters"], title=f"Fig. 5: last decoder layer filters ({data['fig5']['source']})")
    for dataset in ("mnist", "fashion"):
        if f"tree_{dataset}" in data:
            d = data[f"tree_{dataset}"]
            figures[f"tree_{dataset}"] = plots.class_tree_figure(
                d["tree"], d["class_names"], title=f"class tree of {dataset} by cross-distortion ({d['source']})")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="use quick results only")
    args = parser.parse_args()
    FIGURES.mkdir(parents=True, exist_ok=True)
    figures = render(figure_data(quick_only=args.quick))
    if not figures:
        raise SystemExit(f"error: no figure data under {FIGURE_DATA}; run benchmarks/paper_tables.py first")
    for name, figure in figures.items():
        (FIGURES / f"{name}.png").write_bytes(plots.figure_png(figure))
        print("wrote", FIGURES / f"{name}.png")


if __name__ == "__main__":
    main()

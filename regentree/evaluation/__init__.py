"""Evaluation: metrics, one scoring pass over a labelled set -> reports, flat vs tree, the baseline, plots.

`metrics`: Acc / P_miss, threshold tables, risk-coverage, AURC and friends, OOD metrics; `evaluate`:
`score_for_evaluation` and the reports derived from it; `comparison`: flat vs tree timed side by side;
`baseline`: `SoftmaxBaseline`, the discriminative MLP compared against; `plots`: matplotlib figures.
"""

from regentree._lazy import lazy_exports

_EXPORTS = {
    "selective_report": "regentree.evaluation.metrics",
    "threshold_table": "regentree.evaluation.metrics",
    "aurc": "regentree.evaluation.metrics",
    "ood_metrics": "regentree.evaluation.metrics",
    "score_for_evaluation": "regentree.evaluation.evaluate",
    "evaluation_report": "regentree.evaluation.evaluate",
    "compare_models": "regentree.evaluation.comparison",
    "SoftmaxBaseline": "regentree.evaluation.baseline",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["SoftmaxBaseline", "aurc", "compare_models", "evaluation_report", "ood_metrics", "score_for_evaluation", "selective_report", "threshold_table"]

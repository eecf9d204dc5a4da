"""Rejection: "doubtful" probes by KL(first || second), "unseen" ones by novelty, thresholds, conformal sets.

`kl`: KL estimators between distance distributions (paper eq. 6); `novelty`: `NoveltyScorer`, how typical
a distortion is for its class, and `NoveltyReference`, the held-out distortions a fitted model keeps; `novelty_scores`: distortions corrected for how easy a probe is to encode
(base-VAE ratio, input complexity), measured by benchmarks/unseen.py; `thresholds`: thresholds for a rejection rate or selective error and the
`RejectionRule` applying them; `calibration`: thresholds chosen for a target on a calibration split;
`conformal`: class-conditional conformal p-values and prediction sets. No torch here.
"""

from regentree._lazy import lazy_exports

_EXPORTS = {
    "KL_ESTIMATORS": "regentree.rejection.kl",
    "kl_divergence": "regentree.rejection.kl",
    "first_second_kl": "regentree.rejection.kl",
    "NoveltyScorer": "regentree.rejection.novelty",
    "RejectionRule": "regentree.rejection.thresholds",
    "threshold_for_rejection_rate": "regentree.rejection.thresholds",
    "threshold_for_selective_error": "regentree.rejection.thresholds",
    "choose_thresholds": "regentree.rejection.calibration",
    "calibrate_model": "regentree.rejection.calibration",
    "calibration_split": "regentree.rejection.calibration",
    "conformal_p_values": "regentree.rejection.conformal",
    "mondrian_p_values": "regentree.rejection.conformal",
    "prediction_sets": "regentree.rejection.conformal",
    "coverage_report": "regentree.rejection.conformal",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["KL_ESTIMATORS", "NoveltyScorer", "RejectionRule", "calibrate_model", "calibration_split", "choose_thresholds", "conformal_p_values", "coverage_report", "first_second_kl", "kl_divergence", "mondrian_p_values", "prediction_sets", "threshold_for_rejection_rate", "threshold_for_selective_error"]

"""Have the scores of the probes being evaluated shifted from the calibration probes' scores? Torch-free.

A calibrated threshold promises its rejection rate only for probes like the calibration probes. A
two-sample Kolmogorov-Smirnov test between the KL scores stored at calibration and those of the probes
at hand tells when that premise fails (e.g. a later part of a test set, another scanner, another font);
the realized share below the threshold is reported beside the share the calibration promised.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.stats import ks_2samp

from regentree.errors import InvalidInputError

__all__ = ["SAMPLE_SIZE", "SHIFT_ALPHA", "score_sample", "score_shift", "shift_warning"]

SHIFT_ALPHA = 0.001
"""KS p-value below which the scores count as shifted: small, as thousands of probes make any test sensitive."""


SAMPLE_SIZE = 1000
"""Most calibration scores kept with the model: evenly spaced quantiles keep the KS test's power and a small manifest."""


def score_sample(scores, size: int = SAMPLE_SIZE) -> list:
    """The sorted `scores`, or `size` evenly spaced quantiles of them (actual scores) when there are more."""
    arr = np.sort(_finite_scores(scores, "calibration scores"))
    if arr.size > size:
        arr = arr[np.floor((np.arange(size) + 0.5) * arr.size / size).astype(int)]
    return [float(v) for v in arr]


def _finite_scores(values, name: str) -> np.ndarray:
    """`values` as a non-empty 1-D float array without NaN (inf is a valid KL of a very clear probe)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or np.any(np.isnan(arr)):
        raise InvalidInputError(f"{name} must be a non-empty 1-D array without NaN, got shape {arr.shape}")
    return arr


def score_shift(calibration, scores, *, threshold: Optional[float] = None, alpha: float = SHIFT_ALPHA) -> dict:
    """KS test of `scores` against the `calibration` scores, and the share of each below `threshold` (reject below).

    Returns a JSON-able dict: ``test``, ``statistic``, ``p_value``, ``alpha``, ``shifted`` (p < alpha),
    ``n_calibration``, ``n_probes`` and, with a threshold, ``calibration_rejected`` and ``probes_rejected``.
    """
    cal, now = _finite_scores(calibration, "calibration scores"), _finite_scores(scores, "scores")
    result = ks_2samp(cal, now)
    report = {"test": "ks_2samp", "statistic": float(result.statistic), "p_value": float(result.pvalue),
              "alpha": float(alpha), "shifted": bool(result.pvalue < alpha),
              "n_calibration": int(cal.size), "n_probes": int(now.size)}
    if threshold is not None:
        report["calibration_rejected"] = float(np.mean(cal < threshold))
        report["probes_rejected"] = float(np.mean(now < threshold))
    return report


def shift_warning(report: dict) -> Optional[str]:
    """One warning line for a shifted `score_shift` report, None when the scores agree."""
    if not report.get("shifted"):
        return None
    share = ""
    if "probes_rejected" in report:
        share = (f"; the KL threshold rejects {report['probes_rejected']:.1%} of them, "
                 f"{report['calibration_rejected']:.1%} at calibration")
    return (f"warning: the KL scores of these probes differ from those of the {report['n_calibration']} calibration "
            f"probes (KS {report['statistic']:.3f}, p = {report['p_value']:.1e}){share}: "
            f"the calibrated rejection rate may not hold here; recalibrate on probes like these")

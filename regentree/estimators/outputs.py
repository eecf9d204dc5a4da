"""What an estimator returns for a batch of probes: the raw `Decision`, and the `Prediction` after rejection."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

import numpy as np


@dataclass
class Decision:
    """What a classifier concluded for each of n probes, before rejection.

    `class_scores` is (n, n_classes) of the decision statistic (lower = better), NaN for classes
    a probe never met; `winner_distances` (n, K) are the distances under the winning class's VAE.
    """

    class_index: np.ndarray
    kl: np.ndarray
    winner_distances: np.ndarray
    class_scores: np.ndarray
    n_vae_evaluations: np.ndarray
    trace: Optional[list] = None

    @classmethod
    def concatenate(cls, parts: list["Decision"]) -> "Decision":
        """One decision for probes decided in consecutive shards, in shard order."""
        arrays = {f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls) if f.name != "trace"}
        traces = None if parts[0].trace is None else [step for p in parts for step in p.trace]
        return cls(**arrays, trace=traces)


@dataclass
class Prediction:
    """Labels with the rejection verdict and the evidence behind it, one entry per probe."""

    labels: np.ndarray
    rejected: np.ndarray
    reasons: np.ndarray
    kl: np.ndarray
    novelty: np.ndarray
    distortion: np.ndarray
    n_vae_evaluations: np.ndarray
    trace: Optional[list] = field(default=None)

    def to_records(self) -> list[dict]:
        """One JSON-able dict per probe."""
        records = []
        for i in range(len(self.labels)):
            record = {
                "label": self.labels[i].item() if hasattr(self.labels[i], "item") else self.labels[i],
                "rejected": bool(self.rejected[i]),
                "reason": str(self.reasons[i]),
                "kl": float(self.kl[i]),
                "novelty_p": float(self.novelty[i]),
                "distortion": float(self.distortion[i]),
                "vae_evaluations": int(self.n_vae_evaluations[i]),
            }
            if self.trace is not None:
                record["trace"] = self.trace[i]
            records.append(record)
        return records

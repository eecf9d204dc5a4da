"""The scoring setup as one frozen value: what shapes a distortion and how it is computed.

An estimator builds its `ScoringConfig` once from its (sklearn) parameters (`_scoring_config`) and hands
it whole to scoring instead of 6-8 loose keywords. Two named views of its fields answer two questions:
`distortion_fields` are the fields a distortion depends on (novelty references recorded under other
values do not apply), `pooling_fields` those every member of an ensemble must share (pooled draws must
measure the same thing, equally often; the seed may differ, the KL estimator may not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Optional, Sequence

import numpy as np

from regentree.progress import ProgressCallback
from regentree.scoring.adaptive import AdaptiveDistances, adaptive_distances
from regentree.scoring.regeneration import VAEStack, level_distances, regenerate_distances

if TYPE_CHECKING:
    from regentree.vae.model import VAE


@dataclass(frozen=True)
class ScoringConfig:
    """K draws, noise, distance, decision, seed and the compute setup of scoring probes under VAEs."""

    n_regenerations: int = 300
    noise_variance: float = 1.0
    distance: str = "cross_entropy"
    decision: str = "mean"
    kl_estimator: str = "gaussian"
    random_state: int = 0
    n_regenerations_min: int = 16
    memory_budget_mb: float = 64.0
    device: str = "cpu"
    scoring_precision: str = "auto"

    distortion_fields: ClassVar[tuple[str, ...]] = (
        "distance", "decision", "noise_variance", "n_regenerations", "random_state")
    """Fields a distortion depends on: novelty references recorded under other values do not apply."""
    pooling_fields: ClassVar[tuple[str, ...]] = (
        "distance", "decision", "noise_variance", "n_regenerations", "kl_estimator")
    """Fields every ensemble member must share: its pooled draws must measure the same thing, equally often."""

    @classmethod
    def from_params(cls, params: object) -> "ScoringConfig":
        """The config of an object carrying the estimators' scoring parameters as attributes."""
        return cls(
            n_regenerations=int(params.n_regenerations),
            noise_variance=float(params.noise_variance),
            distance=params.distance,
            decision=params.decision,
            kl_estimator=params.kl_estimator,
            random_state=int(params.random_state),
            n_regenerations_min=int(params.n_regenerations_min),
            memory_budget_mb=float(params.memory_budget_mb),
            device=params.device,
            scoring_precision=params.scoring_precision,
        )

    def stack(self, vaes: Sequence[VAE]) -> VAEStack:
        """The VAEs as one `VAEStack` on this config's device and precision."""
        return VAEStack(list(vaes), device=self.device, precision=self.scoring_precision)

    def distances(self, vaes: Sequence[VAE], X: np.ndarray, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Distances (n_probes, len(vaes), K) of probes `X` under `vaes`, K fixed."""
        return regenerate_distances(
            self.stack(vaes), X, n_regenerations=self.n_regenerations, noise_variance=self.noise_variance,
            distance=self.distance, seed=self.random_state, memory_budget_mb=self.memory_budget_mb,
            device=self.device, progress=progress,
        )

    def level_distances(
        self, vaes: Sequence[VAE], X: np.ndarray, requests: Sequence[tuple[Sequence[int], np.ndarray]]
    ) -> list[np.ndarray]:
        """Distances of each request ``(positions, probe_idx)``: probes ``X[probe_idx]`` under those of `vaes`, K fixed."""
        return level_distances(
            self.stack(vaes), X, requests, n_regenerations=self.n_regenerations, noise_variance=self.noise_variance,
            distance=self.distance, seed=self.random_state, memory_budget_mb=self.memory_budget_mb,
        )

    def adaptive_distances(
        self, vaes: Sequence[VAE], X: np.ndarray, kl_band: Optional[tuple[float, float]],
        progress: Optional[ProgressCallback] = None,
    ) -> AdaptiveDistances:
        """Adaptive-K distances of probes `X` under `vaes`, keeping the KL verdicts of `kl_band`."""
        return adaptive_distances(
            self.stack(vaes), X, n_regenerations=self.n_regenerations,
            n_regenerations_min=self.n_regenerations_min, noise_variance=self.noise_variance,
            distance=self.distance, decision=self.decision, kl_band=kl_band, seed=self.random_state,
            memory_budget_mb=self.memory_budget_mb, progress=progress,
        )

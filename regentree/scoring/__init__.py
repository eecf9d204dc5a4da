"""Scoring: K noisy re-generations of each probe by each VAE -> distances (n_probes, n_vaes, K).

`regeneration`: `VAEStack`, the noise bank, `regenerate_distances`, the distances; `distances`: the `Distance`
registry; `config`: the frozen `ScoringConfig` estimators hand whole to scoring; `kernels`: the batched per-architecture re-generation kernels (float32 or bfloat16 products); `adaptive`: adaptive K, draws spent
only where the verdict is uncertain; `statistics`: decision statistics of the K distances (numpy only, so
the tree's routing can use them without torch).
"""

from regentree._lazy import lazy_exports

_EXPORTS = {
    "VAEStack": "regentree.scoring.regeneration",
    "DISTANCES": "regentree.scoring.distances",
    "Distance": "regentree.scoring.distances",
    "ScoringConfig": "regentree.scoring.config",
    "regenerate_distances": "regentree.scoring.regeneration",
    "noise_bank": "regentree.scoring.regeneration",
    "mean_regenerations": "regentree.scoring.regeneration",
    "make_kernel": "regentree.scoring.regeneration",
    "adaptive_distances": "regentree.scoring.adaptive",
    "AdaptiveDistances": "regentree.scoring.adaptive",
    "STATISTICS": "regentree.scoring.statistics",
    "summarize": "regentree.scoring.statistics",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["AdaptiveDistances", "DISTANCES", "Distance", "STATISTICS", "ScoringConfig", "VAEStack", "adaptive_distances", "make_kernel", "mean_regenerations", "noise_bank", "regenerate_distances", "summarize"]

"""Novelty: how typical a probe's distortion is for the class it was assigned to ("unseen" when it is not).

`NoveltyScorer` compares the probe's distortion with the distortions the winning class showed on its own
held-out data; a small p-value flags a probe of an unseen kind. Higher = more confident. `NoveltyReference`
is what a fitted estimator keeps of those held-out distortions: one array per VAE and the scoring setup they
were recorded under, so that distortions scored under another setup are never compared with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np

from regentree.errors import ConfigError, InvalidInputError, NotFittedError
from regentree.rejection.conformal import conformal_p_values

__all__ = ["NoveltyReference", "NoveltyScorer"]


class NoveltyScorer:
    """Empirical p-value of a probe's distortion under the distortions its class showed in training.

    ``p = (1 + #{reference >= d}) / (1 + n_reference)``, computed against the reference distortions of
    the predicted class. A small p-value means the distortion is larger than (almost) anything the class
    VAE produced on its own data: the probe is likely of an unseen kind.

    Attributes
    ----------
    reference_ : dict of int to ndarray of shape (n_reference,)
        Sorted reference distortions per class index, set by `fit`.
    """

    def fit(self, distortions_by_class: Mapping[int, np.ndarray] | Sequence[np.ndarray]) -> NoveltyScorer:
        """Store the sorted reference distortions of every class.

        Parameters
        ----------
        distortions_by_class : dict of int to array-like of shape (n_reference,), or list of them
            Distortions of each class's training (or calibration) probes under its own VAE; a list is
            indexed by class index.

        Returns
        -------
        self : NoveltyScorer

        Raises
        ------
        InvalidInputError
            If a class has no distortions, or they are not a finite 1-D array.
        """
        items = (
            distortions_by_class.items()
            if isinstance(distortions_by_class, Mapping)
            else enumerate(distortions_by_class)
        )
        reference = {}
        for key, values in items:
            arr = np.asarray(values, dtype=float)
            if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
                raise InvalidInputError(
                    f"distortions of class {key} must be a non-empty finite 1-D array, got shape {arr.shape}"
                )
            reference[int(key)] = np.sort(arr)
        if not reference:
            raise InvalidInputError("distortions_by_class holds no class")
        self.reference_ = reference
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "reference_"):
            raise NotFittedError("NoveltyScorer is not fitted; call fit first")

    def score(self, class_index, distortion) -> np.ndarray:
        """Novelty p-value of each probe under its (predicted) class.

        Parameters
        ----------
        class_index : array-like of int of shape (n_probes,)
            Class index each probe is scored against (usually the predicted class).
        distortion : array-like of shape (n_probes,)
            The probe's distortion, the same statistic as the reference distortions.

        Returns
        -------
        p_value : ndarray of shape (n_probes,)
            Values in (0, 1]; small = unusually large distortion = likely unseen.

        Raises
        ------
        NotFittedError
            If `fit` has not been called.
        InvalidInputError
            If the shapes differ, a distortion is NaN, or a class index has no reference.
        """
        self._check_fitted()
        cls = np.asarray(class_index)
        dist = np.asarray(distortion, dtype=float)
        if cls.ndim != 1 or cls.shape != dist.shape:
            raise InvalidInputError(
                f"class_index {cls.shape} and distortion {dist.shape} must be 1-D of the same length"
            )
        if np.any(np.isnan(dist)):
            raise InvalidInputError("distortion contains NaN")
        unknown = sorted(set(cls.tolist()) - set(self.reference_))
        if unknown:
            raise InvalidInputError(f"class_index holds classes without reference distortions: {unknown}")
        p_value = np.empty(dist.shape, dtype=float)
        for key in np.unique(cls):
            ref = self.reference_[int(key)]
            mask = cls == key
            p_value[mask] = conformal_p_values(ref, dist[mask])
        return p_value

    def to_dict(self) -> dict:
        """JSON-able state: ``{"reference": {"<class index>": [sorted distortions, ...]}}``."""
        self._check_fitted()
        return {"reference": {str(k): v.tolist() for k, v in self.reference_.items()}}

    @classmethod
    def from_dict(cls, state: Mapping) -> NoveltyScorer:
        """Rebuild a fitted scorer from `to_dict` output.

        Raises
        ------
        ConfigError
            If `state` lacks the ``"reference"`` mapping or holds invalid distortions.
        """
        reference = state.get("reference") if isinstance(state, Mapping) else None
        if not isinstance(reference, Mapping):
            raise ConfigError("novelty scorer state must be a dict with a 'reference' mapping")
        try:
            return cls().fit({int(k): v for k, v in reference.items()})
        except (InvalidInputError, ValueError, TypeError) as exc:
            raise ConfigError(f"invalid novelty scorer state: {exc}") from None


class NoveltyReference:
    """The held-out distortions of each VAE of a fitted model and the scoring setup they were recorded under.

    Parameters
    ----------
    setup : dict of str to value
        The `distortion_fields` of the `ScoringConfig` the distortions were scored under (``under`` builds it).
    distortions : dict of str to array-like of shape (n_held_out,), optional
        Per VAE key, the decision statistic of that VAE's own held-out samples.

    Attributes
    ----------
    setup : dict of str to value
    distortions : dict of str to ndarray of shape (n_held_out,)
        Changed through `record` and `drop`; a key assigned directly is picked up too (`scorer` compares arrays).
    """

    def __init__(self, setup: Mapping, distortions: Optional[Mapping[str, np.ndarray]] = None):
        self.setup = dict(setup)
        self.distortions = {key: np.asarray(values, dtype=np.float64) for key, values in (distortions or {}).items()}
        self._scorer: Optional[tuple[tuple, NoveltyScorer]] = None

    @classmethod
    def under(cls, config) -> NoveltyReference:
        """An empty reference for distortions scored under `config` (a `ScoringConfig`: its `distortion_fields`)."""
        return cls({name: getattr(config, name) for name in config.distortion_fields})

    def mismatch(self, config) -> dict:
        """Setup entries `config` (a `ScoringConfig`) changes, name -> [recorded, now]; empty when the references apply."""
        now = {name: getattr(config, name, None) for name in self.setup}
        return {name: [value, now[name]] for name, value in self.setup.items() if now[name] != value}

    def check_applies(self, config) -> None:
        """Raise a one-line `ConfigError` unless distortions scored under `config` may join these references."""
        mismatch = self.mismatch(config)
        if mismatch:
            raise ConfigError(f"cannot record a novelty reference: the others were recorded with other scoring "
                              f"parameters ({describe_mismatch(mismatch)}); set them back first")

    def record(self, key: str, distortions: np.ndarray) -> None:
        """Keep `distortions` (n_held_out,) as the reference of VAE `key`."""
        self.distortions[key] = np.asarray(distortions, dtype=np.float64)

    def drop(self, key: str) -> None:
        """Forget the reference of VAE `key` (a VAE the model no longer has); nothing if there is none."""
        self.distortions.pop(key, None)

    def scorer(self, keys: Sequence[str]) -> NoveltyScorer:
        """The `NoveltyScorer` of class index i against the references of VAE ``keys[i]``.

        Built once and reused while the references of `keys` are the same arrays (recording or dropping one
        builds it again on the next call), instead of sorting every reference again for each batch of probes.
        """
        arrays = tuple(self.distortions[key] for key in keys)
        cached = self._scorer
        if cached is None or len(cached[0]) != len(arrays) or any(a is not b for a, b in zip(cached[0], arrays)):
            self._scorer = cached = (arrays, NoveltyScorer().fit(list(arrays)))
        return cached[1]

    def to_dict(self) -> dict:
        """JSON-able state: ``{"distortions": {key: [...]}, "setup": {...}}``."""
        return {"distortions": {key: values.tolist() for key, values in self.distortions.items()},
                "setup": dict(self.setup)}


def describe_mismatch(mismatch: dict) -> str:
    """'decision was 'mean', is 'median'; ...' for a `NoveltyReference.mismatch` result."""
    return "; ".join(f"{name} was {old!r}, is {new!r}" for name, (old, new) in mismatch.items())

"""Ensembles: several flat models over the same classes, their re-generations pooled per class.

Each member holds one VAE per class (of any architecture, latent size or seed). A probe is re-generated
K times by every member's class VAE and the draws are pooled, so each class has one distance
distribution of K x n_members draws: the equal-weight mixture of the members' VAEs. With the
`likelihood` decision the class score is the log of the mixture's likelihood estimate. The KL rule
compares the two best classes either on the pooled distributions, as in a single model (paper, eq. 6),
or member by member on each member's own draws, averaged (`kl_pooling="members"`, the default).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Optional, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from regentree.constraints import validate_params
from regentree.errors import ConfigError, InvalidInputError, NotFittedError
from regentree.estimators.outputs import Decision, Prediction
from regentree.estimators.selective import SelectiveClassifierMixin
from regentree.estimators.flat import FlatRegenClassifier, decide_from_distances
from regentree.estimators.incremental import ClassUpdate, check_known_class, transaction
from regentree.persistence.fitted_state import FittedState
from regentree.progress import ProgressCallback
from regentree.rejection.kl import first_second_kl
from regentree.scoring.config import ScoringConfig
from regentree.scoring.statistics import summarize

SHARED_SCORING = ScoringConfig.pooling_fields
"""Scoring parameters every member must share: the pooled draws must measure the same thing, equally often."""

ENSEMBLE_PARAMS = ("members", "kl_threshold", "novelty_threshold", "kl_pooling")
SAVED_PARAMS = ENSEMBLE_PARAMS[1:]
"""The parameters a fitted state keeps of the ensemble itself (each member has a state of its own)."""
KL_POOLINGS = ("members", "pooled")


class RegenEnsemble(SelectiveClassifierMixin, ClassifierMixin, BaseEstimator):
    """Flat re-generation classifiers over the same classes, scored as one model.

    Parameters
    ----------
    members : sequence of FlatRegenClassifier
        The members, at least two; `fit` trains a clone of each on the same data. They must share
        the scoring parameters in `SHARED_SCORING` (K draws each, so every member weighs the same).
    kl_threshold : float or None
        Reject as "doubtful" when the KL score of the two best classes (see `kl_pooling`) is below it;
        None switches the rule off.
    novelty_threshold : float or None
        Reject as "unseen" when the novelty p-value (the mean of the members' p-values for the
        winning class, each against that member's own held-out distortions) is below it.
    kl_pooling : {"members", "pooled"}
        "members" (default): the mean over members of each member's KL between its own draws of the
        ensemble's two best classes, counted as 0 for a member that ranks those two the other way round
        (so disagreement lowers the score). "pooled": KL(P_first || P_second) of the pooled
        distributions, which mixes the members' per-probe offsets into one wider Gaussian and blurs the
        separation: on MNIST it kept fewer correct probes than the members' mean at the same P_miss
        (docs/results.md).

    Attributes
    ----------
    members_ : list of FlatRegenClassifier
        The fitted members.
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    image_shape_ : tuple of int
    likelihood_ : str
        The members' decoder likelihood, "bernoulli" or "gaussian" (they must share it).
    """

    kind = "ensemble"

    def __init__(self, members: Sequence[FlatRegenClassifier] = (), kl_threshold: Optional[float] = 5.0,
                 novelty_threshold: Optional[float] = None, kl_pooling: str = "members"):
        self.members = members
        self.kl_threshold = kl_threshold
        self.novelty_threshold = novelty_threshold
        self.kl_pooling = kl_pooling

    # ----------------------------------------------------------------- building
    def fit(self, X, y, *, image_shape: Optional[tuple[int, int]] = None, progress: Optional[ProgressCallback] = None):
        """Train a clone of every member on the same labelled images (see `FlatRegenClassifier.fit`); returns self."""
        self._check_members(self.members, fitted=False)
        self._check_kl_pooling(self.kl_pooling)
        self._check_thresholds()
        fitted = [clone(member).fit(X, y, image_shape=image_shape, progress=progress) for member in self.members]
        return self._bind(fitted)

    @classmethod
    def from_fitted(cls, members: Sequence[FlatRegenClassifier], **params) -> "RegenEnsemble":
        """An ensemble of already fitted flat models (e.g. loaded from their folders); nothing is trained."""
        return cls(members=tuple(members), **params)._bind(list(members))

    @staticmethod
    def _check_kl_pooling(kl_pooling) -> None:
        if kl_pooling not in KL_POOLINGS:
            raise ConfigError(f"kl_pooling must be one of {', '.join(KL_POOLINGS)}, got {kl_pooling!r}")

    def _check_thresholds(self) -> None:
        """The rejection thresholds against the constraints the flat models declare for them."""
        own = {name: FlatRegenClassifier._parameter_constraints[name] for name in ("kl_threshold", "novelty_threshold")}
        validate_params(type(self).__name__, self.get_params(deep=False), own)

    @staticmethod
    def _check_members(members, *, fitted: bool) -> None:
        """At least two flat models, fitted if `fitted`, scoring alike (`SHARED_SCORING`, fixed K): before any work."""
        if not isinstance(members, (list, tuple)) or len(members) < 2:
            got = f"{len(members)}" if isinstance(members, (list, tuple)) else f"a {type(members).__name__}"
            raise ConfigError(f"an ensemble needs a list of at least two flat models as members, got {got}")
        for i, member in enumerate(members):
            if not isinstance(member, FlatRegenClassifier):
                raise ConfigError(f"ensemble member {i} is a {type(member).__name__}; members must be flat models")
            if fitted and not hasattr(member, "vaes_"):
                raise NotFittedError(f"ensemble member {i} is not fitted; fit it first or call fit on the ensemble")
            if member.adaptive:
                raise ConfigError(f"ensemble member {i} scores adaptively; ensembles pool fixed-K draws")
            for name in SHARED_SCORING:
                if getattr(member, name) != getattr(members[0], name):
                    raise ConfigError(f"ensemble members disagree on {name}: {getattr(members[0], name)!r} (member 0) "
                                      f"vs {getattr(member, name)!r} (member {i}); set it alike on all")

    def _bind(self, members: list[FlatRegenClassifier]) -> "RegenEnsemble":
        """Adopt fitted `members` (checked by `_check_members`) after checking they share classes and image shape."""
        self._check_members(members, fitted=True)
        self._check_kl_pooling(self.kl_pooling)
        self._check_thresholds()
        first = members[0]
        for i, member in enumerate(members[1:], start=1):
            if member.classes_.dtype.kind != first.classes_.dtype.kind or not np.array_equal(member.classes_, first.classes_):
                raise ConfigError(f"ensemble member {i} has classes {list(member.classes_)}, member 0 {list(first.classes_)}")
            if tuple(member.image_shape_) != tuple(first.image_shape_):
                raise ConfigError(f"ensemble member {i} takes {member.image_shape_} images, member 0 {first.image_shape_}")
            if member.likelihood_ != first.likelihood_:  # pooled draws must be distances of one kind
                raise ConfigError(f"ensemble member {i} has a {member.likelihood_} decoder, member 0 a "
                                  f"{first.likelihood_} one; fit them with one likelihood")
        self.members_ = members
        self.classes_ = first.classes_
        self.n_features_in_ = first.n_features_in_
        self.image_shape_ = tuple(first.image_shape_)
        return self

    def set_params(self, **params):
        """Set the ensemble's own parameters; any other (device, distance, decision, ...) is set on every member."""
        own = {k: v for k, v in params.items() if k in ENSEMBLE_PARAMS}
        forwarded = {k: v for k, v in params.items() if k not in ENSEMBLE_PARAMS}
        self._check_kl_pooling(own.get("kl_pooling", self.kl_pooling))  # before anything changes
        super().set_params(**own)
        if forwarded:
            self._check_fitted()
            for member in self.members_:
                member.set_params(**forwarded)
            self._bind(self.members_)
        return self

    # ----------------------------------------------------------------- what the members share
    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) or from_fitted first")

    def _shared(self, name: str):
        self._check_fitted()
        return getattr(self.members_[0], name)

    likelihood_ = property(lambda self: self._shared("likelihood_"), doc="The members' decoder likelihood.")
    distance = property(lambda self: self._shared("distance"))
    decision = property(lambda self: self._shared("decision"))
    noise_variance = property(lambda self: self._shared("noise_variance"))
    kl_estimator = property(lambda self: self._shared("kl_estimator"))
    device = property(lambda self: self._shared("device"))
    n_jobs = property(lambda self: self._shared("n_jobs"))

    @property
    def n_regenerations(self) -> int:
        """Pooled draws per probe and class: K of every member."""
        return int(sum(member.n_regenerations for member in self.members_))

    def _by_member(self, attribute: str) -> dict:
        """A per-VAE table of every member (`vaes_`, `training_info_`, `vae_classes_`), keyed "member<i>/<key>"."""
        self._check_fitted()
        return {f"member{i}/{key}": value for i, m in enumerate(self.members_) for key, value in getattr(m, attribute).items()}

    vaes_ = property(lambda self: self._by_member("vaes_"), doc="Every member's VAEs, keyed 'member<i>/<key>'.")
    training_info_ = property(lambda self: self._by_member("training_info_"), doc="Every member's training records.")
    vae_classes_ = property(lambda self: self._by_member("vae_classes_"), doc="Class indices under every member's VAEs.")

    # ----------------------------------------------------------------- scoring
    def _validate_probes(self, X) -> np.ndarray:
        self._check_fitted()
        return self.members_[0]._validate_probes(X)

    def class_distances(self, X, *, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Pooled distances of every probe under every class, shape (n_probes, n_classes, K x n_members)."""
        return self._pooled_distances(self._validate_probes(X), progress)

    def _pooled_distances(self, X: np.ndarray, progress: Optional[ProgressCallback]) -> np.ndarray:
        return np.concatenate([m._distances(m.vae_keys_, X, progress) for m in self.members_], axis=2)

    def _probes_per_chunk(self) -> int:
        """Probes decided at once: the pooled distances of all members within one member's memory budget."""
        return max(1, min(member._probes_per_chunk() for member in self.members_) // len(self.members_))

    def _decide(self, X: np.ndarray, progress: Optional[ProgressCallback]) -> Decision:
        return self.decide_from_distances(self._pooled_distances(X, progress))

    def decide_from_distances(self, distances: np.ndarray) -> Decision:
        """Ranking and KL from pooled distances (`class_distances`): one scoring serves several `kl_pooling`s."""
        self._check_fitted()
        expected = (len(self.classes_), self.n_regenerations)
        if np.ndim(distances) != 3 or np.shape(distances)[1:] != expected:
            raise InvalidInputError(f"distances must have shape (n_probes, {expected[0]}, {expected[1]}) as "
                                    f"class_distances gives, got {np.shape(distances)}")
        kl_of = self._members_kl if self.kl_pooling == "members" else None
        decision = decide_from_distances(distances, self.classes_, self.decision, self.kl_estimator, kl_of=kl_of)
        decision.n_vae_evaluations = decision.n_vae_evaluations * len(self.members_)
        return decision

    def _members_kl(self, distances: np.ndarray, order: np.ndarray) -> np.ndarray:
        """Mean over members of KL(P_first || P_second) on the member's own draws of the ensemble's two best
        classes, 0 where the member's own statistic ranks the second above the first."""
        pair = np.take_along_axis(distances, order[:, :2, None], axis=1)  # (n, 2, K pooled): first, second
        scores, start = [], 0
        for member in self.members_:
            own = pair[:, :, start : start + member.n_regenerations]
            start += member.n_regenerations
            statistic = summarize(own, self.decision)
            agrees = statistic[:, 0] <= statistic[:, 1]
            scores.append(agrees * first_second_kl(own, np.tile([0, 1], (len(own), 1)), self.kl_estimator))
        return np.mean(scores, axis=0)

    def judge(self, decision: Decision) -> Prediction:
        """Novelty (the members' mean p-value) and the rejection rule in force applied to a `decide` result."""
        self._check_fitted()
        novelty = self._novelty(decision)
        rejected, reasons = self.rejection_rule().apply(decision.kl, novelty)
        return Prediction(
            labels=self.classes_[decision.class_index],
            rejected=rejected,
            reasons=reasons,
            kl=decision.kl,
            novelty=np.full(len(rejected), np.nan) if novelty is None else novelty,
            distortion=summarize(decision.winner_distances, self.decision),
            n_vae_evaluations=decision.n_vae_evaluations,
            trace=decision.trace,
        )

    def _novelty(self, decision: Decision) -> Optional[np.ndarray]:
        """Mean over members of the empirical p-value of the winner's distortion under that member's own
        draws (its slice of the pooled winner distances); None when a member's references do not apply."""
        if any(member.novelty_reference_.mismatch(member._scoring_config()) for member in self.members_):
            if self.rejection_rule().novelty_threshold is not None:
                raise ConfigError("the novelty rule is on, but a member's novelty references were recorded with "
                                  "other scoring parameters; set them back or refit")
            return None
        p_values, start = [], 0
        for member in self.members_:
            own = decision.winner_distances[:, start : start + member.n_regenerations]
            p_values.append(member.novelty_scorer().score(decision.class_index, summarize(own, member.decision)))
            start += member.n_regenerations
        return np.mean(p_values, axis=0)

    # ----------------------------------------------------------------- adding and removing classes
    def add_class(self, X, label, *, progress: Optional[ProgressCallback] = None) -> ClassUpdate:
        """Learn a new class: one new VAE in every member (`FlatRegenClassifier.add_class`), nothing else trained.

        If a member fails, every member gets its fitted state back (`transaction`), so the ensemble is unchanged.
        """
        self._check_fitted()
        started = time.perf_counter()
        with ExitStack() as members_unchanged_on_failure:
            for member in self.members_:
                members_unchanged_on_failure.enter_context(transaction(member))
            updates = [member.add_class(X, label, progress=progress) for member in self.members_]
        self._bind(self.members_)
        trained = tuple(f"member{i}/{key}" for i, update in enumerate(updates) for key in update.trained)
        return ClassUpdate("add", label, trained, (), time.perf_counter() - started)

    def remove_class(self, label, *, progress: Optional[ProgressCallback] = None) -> ClassUpdate:
        """Forget a class: every member drops its VAE of that class; nothing is trained."""
        self._check_fitted()
        started = time.perf_counter()
        check_known_class(self, label)  # fails before any member changes
        updates = [member.remove_class(label, progress=progress) for member in self.members_]
        self._bind(self.members_)
        dropped = tuple(f"member{i}/{key}" for i, update in enumerate(updates) for key in update.dropped)
        return ClassUpdate("remove", label, (), dropped, time.perf_counter() - started)

    def _training_config(self):
        """The members' training config that asks the most samples of a new class (what `check_new_class` reads)."""
        return max((member._training_config() for member in self.members_), key=lambda config: config.min_samples)

    # ----------------------------------------------------------------- inspection
    def summary(self) -> dict:
        """What the ensemble is, JSON-ready: classes, members (each one's own summary), pooled scoring, rule."""
        self._check_fitted()
        return {
            **self._summary_head(),
            "n_members": len(self.members_),
            "n_vaes": len(self.vaes_),
            "max_vae_evaluations": len(self.vaes_),
            "scoring": {"n_regenerations_pooled": self.n_regenerations, "noise_variance": float(self.noise_variance),
                        "distance": self.distance, "decision": self.decision, "kl_estimator": self.kl_estimator,
                        "kl_pooling": self.kl_pooling},
            "members": [member.summary() for member in self.members_],
        }

    # ----------------------------------------------------------------- fitted state
    def _fitted_state(self) -> FittedState:
        """The ensemble as a `FittedState`: its own thresholds, the rule in force, and one state per member."""
        self._check_fitted()
        params = {name: getattr(self, name) for name in SAVED_PARAMS}
        return FittedState(**self._fitted_state_head(params),
                           members=tuple(member._fitted_state() for member in self.members_))

    @classmethod
    def _from_fitted_state(cls, state: FittedState) -> "RegenEnsemble":
        """The ensemble of the flat models rebuilt from `state.members`, bound by `from_fitted`."""
        if not isinstance(state.params, dict) or set(state.params) - set(SAVED_PARAMS):
            raise state.error("manifest", "ensemble 'params' hold only kl_threshold, novelty_threshold and kl_pooling")
        members = []
        for member in state.members:
            if member.kind != "flat":
                raise member.error(None, f"ensemble members must be flat models, this one is {member.kind}")
            members.append(FlatRegenClassifier._from_fitted_state(member))
        try:  # folders written before kl_pooling existed used the pooled draws' KL
            model = cls.from_fitted(members, **{"kl_pooling": "pooled", **state.params})
        except ConfigError as exc:
            raise state.error(None, f"members do not form an ensemble ({exc})") from None
        model._adopt_calibration(state)
        return model

"""Tree mode: one VAE per non-root node of a binary class tree; a probe meets one pair per level.

The tree is built from a class similarity (`regentree.tree.similarity`) by a builder
(`regentree.tree.builder`); node ``n`` owns the VAE ``node_{n}`` trained on the union of the classes
under it (leaves hold one class each). A routing rule (`regentree.tree.routing`) walks the probes down
the tree; every probe that sits at a node is scored by that node's two children, all the nodes of a
level in one call.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Optional, Union

import numpy as np

from regentree.rejection.calibration import DEFAULT_REJECTION_TARGET, calibration_split
from regentree.constraints import Interval, Options
from regentree.errors import InvalidInputError
from regentree.estimators.base import AUTO_BASE_BELOW, BaseRegenClassifier
from regentree.estimators.keys import class_key, node_key
from regentree.estimators.outputs import Decision
from regentree.estimators.incremental import TreeClassChanges
from regentree.progress import ProgressCallback, report
from regentree.rejection.kl import kl_divergence
from regentree.scoring.statistics import STATISTICS, summarize
from regentree.tree import (
    BUILDERS,
    ROUTING_RULES,
    SIMILARITIES,
    ClassTree,
    RoutingResult,
    SoftRouting,
    build_tree,
    routing_named,
)
from regentree.tree.similarity import cross_distortion_distance, mean_distance

FLAT_ONLY = ("adaptive", "n_regenerations_min", "adaptive_kl_band")  # base parameters the tree does not take
CROSS_DISTORTION_SAMPLES = 20  # held-out samples per class scored by every leaf VAE


class TreeRegenClassifier(TreeClassChanges, BaseRegenClassifier):
    """Classification by re-generation down a binary class tree (paper, section III, last paragraph).

    Takes every parameter of `FlatRegenClassifier` (the VAE shape and likelihood, training, K, sigma^2, distance,
    decision statistic, rejection, base VAE, seed, device, backend) except adaptive K (`adaptive`,
    `n_regenerations_min`, `adaptive_kl_band`: a routing step compares two nodes, which stops no earlier than
    all K draws would settle it; passing them is an error), plus the five below. A probe is scored at
    each node it reaches by the VAEs of the node's two children and goes down to the one with the
    lower `decision` statistic, until a node of at most `flat_below` classes, whose leaves are compared
    directly; the smallest KL(P_chosen || P_runner_up) along its path is its doubtfulness score. With M classes and a balanced tree a probe meets at most
    ``2 * ceil(log2 M)`` VAEs instead of M.

    Parameters
    ----------
    similarity : {"mean", "cross_distortion"}, default "mean"
        How alike two classes are: Euclidean distance between class-mean images (cheap), or the
        symmetrised excess distortion of each class's held-out samples under the other class's VAE
        (trains the leaf VAEs first and scores `CROSS_DISTORTION_SAMPLES` samples per class with
        all of them, i.e. M^2 small scorings).
    builder : str, default "balanced"
        Key of `regentree.tree.BUILDERS`: "balanced" keeps the depth at ceil(log2 M);
        "average", "complete", "single", "ward" are agglomerative and may be deeper.
    routing : str, default "auto"
        Key of `regentree.tree.ROUTING_RULES` (`regentree.tree.register_routing` adds one), or "auto". "hard"
        descends greedily (2 VAE evaluations per level, within the 2 * ceil(log2 M) budget); "soft" keeps the
        `beam_width` best nodes per level and picks the best leaf reached, so a wrong early turn can be
        recovered at up to `beam_width` times the cost; "gated" keeps a runner-up only at the doubtful steps
        (a step KL under the `beam_share` quantile of its level's held-out step KLs) and descends greedily
        elsewhere. "auto" (`routing_`, resolved at fit) is "gated" when the median class has fewer than
        `AUTO_BASE_BELOW` images, where greedy group VAEs err most and the gated beam recovers most of flat's
        accuracy at fewer evaluations than soft routing (benchmarks/large_label_sets.py), and "hard" otherwise:
        with large classes hard stays close to flat at the 2 * ceil(log2 M) budget (benchmarks/tree_vs_flat.py).
    beam_width : int, default 2
        Nodes kept per level by soft and gated routing (ignored by hard routing).
    beam_share : float in [0, 1], default 0.5
        Gated routing only: the share of routing steps of each level allowed to branch. The KL gate of a level
        is this quantile of its `routing_step_kl_` (a runner-up stays in the beam only below it); 0 = never
        branch, 1 = soft routing.
    flat_below : int, default 6
        Hard routing only: a probe that reaches a node of at most this many classes has all the leaf
        VAEs under it compared at once, as in flat mode, instead of descending through the group VAEs
        below (see `regentree.tree.HardRouting`); 1 = pure tree routing. The default 6 is the largest
        n for which comparing n leaves never costs more than descending a balanced subtree of n classes
        (n <= 2 * ceil(log2 n)), so the evaluation budget holds while the last levels, where the small
        group VAEs err most, are decided as in flat mode.

    Attributes
    ----------
    tree_ : ClassTree
        The class tree; node ids are integers, root 0.
    depth_ : int
        Edges on the longest root-to-leaf path.
    routing_ : str
        The routing rule in force: `routing`, or what "auto" resolved to at fit.
    routing_step_kl_ : list of ndarray
        Per depth, sorted, KL(P_chosen || P_runner_up) of the steps at that depth of greedy routing (beam width
        1) of the calibration split `fit` held out, or of a seeded share of the training images when it holds
        none out (those KLs run high: the VAEs were trained on them); empty for folders saved before it. Sets
        gated routing's KL gates.
    vaes_ : dict of str -> VAE
        One fitted VAE per non-root node, keyed ``node_{id}``.
    vae_classes_, novelty_reference_, training_info_, base_vae_, classes_, n_features_in_, image_shape_, likelihood_
        As in `FlatRegenClassifier`.

    Notes
    -----
    As in `FlatRegenClassifier` (no `sample_weight`; pickle copies in memory, `save` persists), except that
    `decision_function` and `predict_proba` weigh only the leaves of each probe's last routing step: a leaf
    met earlier lost to a group VAE, so the rule chose without comparing it with the leaf it reached.
    """

    kind = "tree"
    _fitted_attributes = (*BaseRegenClassifier._fitted_attributes, "tree_", "depth_", "routing_", "routing_step_kl_")
    _parameter_constraints = {
        **{name: rule for name, rule in BaseRegenClassifier._parameter_constraints.items() if name not in FLAT_ONLY},
        "similarity": [Options(SIMILARITIES)],
        "builder": [Options(BUILDERS)],
        "routing": [Options(ROUTING_RULES), Options(("auto",))],
        "beam_width": [Interval("int", 1, "max_classes")],
        "beam_share": [Interval("real", 0, 1)],
        "flat_below": [Interval("int", 1, "max_classes")],
    }

    def __init__(
        self,
        latent_dim: int = 15,
        hidden_dims: tuple[int, ...] = (500, 500),
        architecture: str = "mlp",
        likelihood: str = "auto",
        epochs: int = 100,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        patience: int = 10,
        learning_rate_schedule: str = "constant",
        training_precision: str = "float32",
        base_epochs="auto",
        n_regenerations: int = 300,
        noise_variance: float = 1.0,
        distance: str = "cross_entropy",
        decision: str = "mean",
        kl_estimator: str = "gaussian",
        kl_threshold: Union[float, str, None] = "auto",
        novelty_threshold: Optional[float] = None,
        rejection_target: Optional[float] = DEFAULT_REJECTION_TARGET,
        random_state: int = 0,
        device: str = "cpu",
        backend: str = "local",
        n_jobs: int = 1,
        memory_budget_mb: float = 64.0,
        scoring_precision: str = "auto",
        similarity: str = "mean",
        builder: str = "balanced",
        routing: str = "auto",
        beam_width: int = 2,
        beam_share: float = 0.5,
        flat_below: int = 6,
    ):
        super().__init__(
            latent_dim=latent_dim, hidden_dims=hidden_dims, architecture=architecture, likelihood=likelihood, epochs=epochs,
            batch_size=batch_size, learning_rate=learning_rate, validation_fraction=validation_fraction,
            patience=patience, learning_rate_schedule=learning_rate_schedule, training_precision=training_precision,
            base_epochs=base_epochs, n_regenerations=n_regenerations, noise_variance=noise_variance,
            distance=distance, decision=decision, kl_estimator=kl_estimator, kl_threshold=kl_threshold,
            novelty_threshold=novelty_threshold, rejection_target=rejection_target, random_state=random_state,
            device=device, backend=backend, n_jobs=n_jobs, memory_budget_mb=memory_budget_mb,
            scoring_precision=scoring_precision,
        )
        self.similarity = similarity
        self.builder = builder
        self.routing = routing
        self.beam_width = beam_width
        self.beam_share = beam_share
        self.flat_below = flat_below

    # ----------------------------------------------------------------- configuration
    def routing_rule(self):
        """The routing rule object in force (`HardRouting`, `SoftRouting`, `GatedRouting` or a registered one)."""
        return routing_named(self.routing_in_force()).from_params(self)

    def routing_in_force(self) -> str:
        """The name of the routing rule in force: `routing`, or under "auto" what fit resolved it to (`routing_`)."""
        if self.routing != "auto":
            return self.routing
        self._check_fitted()
        return self.routing_

    def routing_kl_gate(self) -> list[float]:
        """Gated routing's KL gate per depth: the `beam_share` quantile of that depth's `routing_step_kl_` (share 1:
        inf; share 0 or none recorded: 0, the beam never opens)."""
        self._check_fitted()
        share, recorded = float(self.beam_share), self.routing_step_kl_
        if share >= 1:
            return [float(np.inf)]
        if share <= 0 or not recorded:
            return [0.0]
        return [float(np.quantile(kls, share)) if kls.size else 0.0 for kls in recorded]

    # ----------------------------------------------------------------- training
    def _vae_class_sets(self, n_classes: int, X: np.ndarray, y_index: np.ndarray) -> dict[str, list[int]]:
        if self.similarity == "cross_distortion":
            self._fit_tree_from_leaf_vaes(n_classes, X, y_index)
            return self.node_class_sets(self.tree_.internal_nodes()[1:])
        self._set_tree(mean_distance(self._standardized(X), y_index, n_classes))
        return self.node_class_sets(self.tree_.non_root_nodes())

    def _set_tree(self, distance: np.ndarray) -> None:
        self.tree_ = build_tree(distance, method=self.builder)
        self.depth_ = self.tree_.depth

    def node_class_sets(self, nodes) -> dict[str, list[int]]:
        """VAE key -> class indices under the node, for the given non-root `nodes`."""
        return {node_key(n): list(self.tree_.classes(n)) for n in nodes}

    def train_nodes(self, X: np.ndarray, y_index: np.ndarray, nodes, progress: Optional[ProgressCallback] = None):
        """(Re)train the VAEs of `nodes` of `tree_` on validated `X` with class indices `y_index`."""
        return self._train_vaes(X, y_index, self.node_class_sets(nodes), progress)

    def _fit_tree_from_leaf_vaes(self, n_classes: int, X: np.ndarray, y_index: np.ndarray) -> None:
        """Train one VAE per class, build the tree from their cross distortions, re-key them as leaves."""
        class_keys = [class_key(c) for c in range(n_classes)]
        results = self._train_vaes(X, y_index, {k: [c] for c, k in enumerate(class_keys)}, None)
        rng = np.random.default_rng(self.random_state)
        samples, owner = [], []
        for c, result in enumerate(results):
            own = X[y_index == c]
            pool = own[result.validation_index] if len(result.validation_index) else own
            pick = rng.choice(len(pool), size=min(CROSS_DISTORTION_SAMPLES, len(pool)), replace=False)
            samples.append(pool[pick])
            owner.append(np.full(len(pick), c))
        owner = np.concatenate(owner)
        scores = summarize(self._distances(class_keys, np.concatenate(samples)), self.decision)  # (n, M)
        D = np.stack([scores[owner == c].mean(axis=0) for c in range(n_classes)])
        self._set_tree(cross_distortion_distance(D))
        for c, key in enumerate(class_keys):
            leaf = node_key(self.tree_.leaf_of_class(c))
            for table in (self.vaes_, self.vae_classes_, self.training_info_, self.novelty_reference_.distortions):
                table[leaf] = table.pop(key)

    def _after_training(self, X: np.ndarray, y_index: np.ndarray, progress: Optional[ProgressCallback]) -> None:
        """Resolve `routing_` ("auto": gated for small classes, else hard) and record `routing_step_kl_` on a seeded
        share of the training images unless fit holds out a calibration split (`_calibrate_on_held_out` does)."""
        small = float(np.median(np.bincount(y_index))) < AUTO_BASE_BELOW
        self.routing_ = self.routing if self.routing != "auto" else ("gated" if small else "hard")
        self.routing_step_kl_ = []
        if not self.calibrates_at_fit():
            self._record_step_kl(X[calibration_split(y_index, self.random_state, 0)[1]])

    def _calibrate_on_held_out(self, X_cal: np.ndarray, y_cal: np.ndarray, progress: Optional[ProgressCallback]) -> None:
        """Record `routing_step_kl_` on the held-out probes first: a gated rule in force needs it to calibrate."""
        self._record_step_kl(X_cal)
        super()._calibrate_on_held_out(X_cal, y_cal, progress)

    def _record_step_kl(self, X: np.ndarray) -> None:
        """`routing_step_kl_`: the step KLs of greedy routing (beam width 1) of validated images `X` by depth, chunk by
        chunk (the i-th step of a greedy path routes at depth i)."""
        greedy = SoftRouting(beam_width=1, statistic=self.decision)
        size = self._probes_per_chunk()
        by_depth: list[list[float]] = [[] for _ in range(self.depth_)]
        for start in range(0, len(X), size):
            for path in self._route(X[start:start + size], greedy, None)[0].kl_path:
                for depth, kl in enumerate(path):
                    by_depth[depth].append(kl)
        self.routing_step_kl_ = [np.sort(np.asarray(kls, dtype=np.float64)) for kls in by_depth]

    # ----------------------------------------------------------------- routing
    def winner_key(self, class_index: np.ndarray) -> list[str]:
        return [node_key(self.tree_.leaf_of_class(int(c))) for c in class_index]

    def _decide(self, X: np.ndarray, progress: Optional[ProgressCallback]) -> Decision:
        result, class_scores = self._route(X, self.routing_rule(), progress)
        return Decision(
            class_index=result.leaf_class,
            kl=result.min_kl,
            winner_distances=result.leaf_distances,
            class_scores=class_scores,
            n_vae_evaluations=result.n_vae_evaluations,
            trace=self._named_trace(result),
        )

    def _route(self, X: np.ndarray, rule, progress: Optional[ProgressCallback]) -> tuple[RoutingResult, np.ndarray]:
        """Route validated probes `X` with `rule`: its result and the leaf statistics met, (n_probes, n_classes)."""
        n, tree = len(X), self.tree_
        class_scores = np.full((n, len(self.classes_)), np.nan)
        statistic = STATISTICS[self.decision]
        total, done = max(1, n * rule.max_evaluations(tree)), 0  # progress counts VAE evaluations

        def score_level(requests: list[tuple[tuple[int, ...], np.ndarray]]) -> list[np.ndarray]:
            nonlocal done
            nodes = sorted({c for compared, _ in requests for c in compared})
            position = {node: i for i, node in enumerate(nodes)}
            answers = self._level_distances(
                [node_key(c) for c in nodes], X, [([position[c] for c in compared], idx) for compared, idx in requests])
            for (compared, idx), distances in zip(requests, answers, strict=True):
                for pos, node in enumerate(compared):
                    if tree.is_leaf(node):
                        class_scores[idx, tree.classes(node)[0]] = statistic(distances[:, pos])
                done += len(idx) * len(compared)
            report(progress, "routing", min(done, total), total)
            return answers

        kl_fn = partial(kl_divergence, estimator=self.kl_estimator)
        result = rule.route(tree, n, score_level, kl_fn)
        report(progress, "routing", total, total)  # most probes cost fewer than the most evaluations
        return result, class_scores

    def _level_distances(self, keys: list[str], X: np.ndarray, requests: list[tuple[list[int], np.ndarray]]) -> list:
        """Distances of one routing level: per request ``(positions, probe_idx)``, probes ``X[probe_idx]`` under the
        VAEs named by ``keys[positions]``, all from one stack (`regentree.scoring.regeneration.level_distances`)."""
        return self._scoring_config().level_distances([self.vaes_[k] for k in keys], X, requests)

    def _decision_values(self, decision: Decision) -> np.ndarray:
        """Minus the distortions of the leaves in each probe's last routing step, -inf for every other class: a
        leaf met earlier lost to a group VAE, so its distortion must not outrank the leaf routing chose."""
        last = np.zeros(decision.class_scores.shape, dtype=bool)
        for probe, steps in enumerate(decision.trace):
            last[probe, [self.tree_.classes(c)[0] for c in steps[-1]["children"] if self.tree_.is_leaf(c)]] = True
        return np.where(last, super()._decision_values(decision), -np.inf)

    def class_distortions(self, X, *, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """The decision statistic of every probe under every leaf VAE, (n_probes, n_classes): all M leaves, not
        only those routing meets, so that conformal p-values (`predict_p`) keep their guarantee at flat cost."""
        X = self._validate_probes(X)
        keys = self.winner_key(np.arange(len(self.classes_)))
        return summarize(self._distances(keys, X, progress), self.decision)

    def _named_trace(self, result: RoutingResult) -> list[list[dict]]:
        """The routing trace with the class names under each child added (lists shared between steps)."""
        names = [str(c) for c in self.classes_]
        under = {node: [names[c] for c in self.tree_.classes(node)] for node in self.tree_.non_root_nodes()}
        return [
            [{**step, "children_classes": [under[c] for c in step["children"]]} for step in steps]
            for steps in result.trace
        ]

    def _vaes_held_per_probe(self) -> int:
        """Twice the most VAEs a probe meets, not every node's VAE: routing keeps each evaluation's distances in
        float64, and again in the chosen / runner-up pairs of the KL, twice a flat decision's copies."""
        return 2 * self.max_vae_evaluations()

    def max_vae_evaluations(self) -> int:
        """Most VAEs one probe can meet (hard routing on a balanced tree: at most 2 * ceil(log2 M))."""
        self._check_fitted()
        return self.routing_rule().max_evaluations(self.tree_)

    def _summary_extra(self) -> dict:
        routing = {"routing": self.routing_in_force(), **self.routing_rule().settings()}
        return {"max_vae_evaluations": self.max_vae_evaluations(), "depth": int(self.depth_),
                "n_nodes": self.tree_.n_nodes, **routing, "similarity": self.similarity, "builder": self.builder,
                "tree": self.tree_.render_text([str(c) for c in self.classes_])}

    # ----------------------------------------------------------------- fitted state
    def _fitted_state(self):
        extra = {"depth": int(self.depth_), "similarity": self.similarity, "builder": self.builder,
                 "routing": self.routing_, "routing_step_kl": [kls.tolist() for kls in self.routing_step_kl_]}
        return replace(super()._fitted_state(), extra=extra, tree=self.tree_.to_node_link())

    def _set_fitted_state(self, state) -> None:
        super()._set_fitted_state(state)
        if state.tree is None:
            raise state.error("tree", "missing; a tree model needs its class tree")
        try:
            self.tree_ = ClassTree.from_node_link(state.tree)
        except InvalidInputError as exc:
            raise state.error("tree", str(exc)) from None
        if self.tree_.n_classes != len(self.classes_):
            raise state.error("tree", f"the tree holds {self.tree_.n_classes} classes, the manifest lists "
                                      f"{len(self.classes_)}")
        for node in self.tree_.non_root_nodes():
            key = node_key(node)
            if key not in self.vaes_:
                raise state.error("tree", f"node {node} has no VAE {key!r} in the manifest")
            if self.vae_classes_[key] != list(self.tree_.classes(node)):
                raise state.error("tree", f"node {node} holds classes {list(self.tree_.classes(node))}, its VAE "
                                          f"{key!r} was trained on {self.vae_classes_[key]}")
        stray = sorted(set(self.vaes_) - {node_key(n) for n in self.tree_.non_root_nodes()})
        if stray:
            raise state.error("manifest", f"VAE {stray[0]!r} belongs to no node of the tree")
        self.depth_ = self.tree_.depth
        extra = state.extra or {}
        self.routing_ = extra.get("routing", self.routing)  # older folders name their rule in the parameters
        if self.routing_ == "auto":
            raise state.error("manifest", "routing='auto' with no 'extra.routing' saying what fit resolved it to")
        self.routing_step_kl_ = [np.asarray(kls, dtype=np.float64) for kls in extra.get("routing_step_kl", [])]

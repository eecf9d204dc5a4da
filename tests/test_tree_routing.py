"""Routing rules on hand-built trees with fake, deterministic `score_level` callbacks."""

import json
import math

import numpy as np
import pytest

from regentree.errors import ConfigError, InvalidInputError
from regentree.rejection.kl import kl_divergence
from regentree.tree import (
    ROUTING_RULES,
    ClassTree,
    GatedRouting,
    HardRouting,
    RoutingResult,
    SoftRouting,
    build_tree,
    register_routing,
)

K = 5
SPREAD = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])  # zero mean, exact: a child's mean is its table value


def gap_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Stand-in KL: squared gap of the means (vectorised over leading dims)."""
    return (p.mean(axis=-1) - q.mean(axis=-1)) ** 2


def per_node(score_nodes):
    """A `score_level` callback answering each request of a level with ``score_nodes(nodes, probe_idx)``."""
    return lambda requests: [score_nodes(nodes, idx) for nodes, idx in requests]


class FakeScorer:
    """`score_level` from a table ``value[probe, node]`` = mean distance of the probe under node's VAE."""

    def __init__(self, tree: ClassTree, value: np.ndarray) -> None:
        self.tree = tree
        self.value = np.asarray(value, dtype=float)
        self.calls: list[tuple[tuple[int, ...], list[int]]] = []  # one per request, in order
        self.levels: list[list[tuple[int, ...]]] = []  # the compared nodes of each call's requests

    def __call__(self, requests: list[tuple[tuple[int, ...], np.ndarray]]) -> list[np.ndarray]:
        assert all(isinstance(idx, np.ndarray) and idx.dtype.kind == "i" for _, idx in requests)
        self.levels.append([tuple(nodes) for nodes, _ in requests])
        self.calls.extend((tuple(nodes), idx.tolist()) for nodes, idx in requests)
        return [self.value[idx][:, list(nodes), None] + SPREAD for nodes, idx in requests]

    def nodes_called(self) -> list[int]:
        """The node each two-way call routed at (the parent of the two compared children)."""
        return [self.tree.parent(nodes[0]) for nodes, _ in self.calls]


@pytest.fixture
def tree4() -> ClassTree:
    # 0 -> 1 {0,1}, 2 {2,3}; 1 -> 3 (class 0), 4 (class 1); 2 -> 5 (class 2), 6 (class 3)
    return ClassTree.from_nested(((0, 1), (2, 3)))


def truth_table(tree: ClassTree, truth: list[int], good: float = 1.0, bad: float = 2.0) -> np.ndarray:
    """Every node on the path to the true class scores `good`, every other node `bad`."""
    value = np.full((len(truth), tree.n_nodes), bad)
    for p, c in enumerate(truth):
        value[p, tree.path_to_class(c)] = good
    return value


@pytest.mark.parametrize("rule", [HardRouting(), SoftRouting(), SoftRouting(beam_width=3)])
def test_routes_to_true_class(tree4: ClassTree, rule) -> None:
    truth = [0, 1, 2, 3, 3, 2, 1, 0]
    result = rule.route(tree4, len(truth), FakeScorer(tree4, truth_table(tree4, truth)), gap_kl)
    assert isinstance(result, RoutingResult)
    assert result.leaf_class.tolist() == truth
    assert result.leaf_class.dtype == np.int64
    np.testing.assert_allclose(result.min_kl, 1.0)
    assert result.kl_path == [[1.0, 1.0]] * len(truth)
    np.testing.assert_allclose(result.leaf_distances, np.tile(1.0 + SPREAD, (len(truth), 1)))


def test_hard_batches_one_call_per_node(tree4: ClassTree) -> None:
    truth = [0, 2, 1, 3, 0, 2]
    scorer = FakeScorer(tree4, truth_table(tree4, truth))
    result = HardRouting().route(tree4, len(truth), scorer, gap_kl)
    assert scorer.calls == [((1, 2), [0, 1, 2, 3, 4, 5]), ((3, 4), [0, 2, 4]), ((5, 6), [1, 3, 5])]
    assert scorer.levels == [[(1, 2)], [(3, 4), (5, 6)]]  # one call per level, holding all its nodes
    assert result.n_vae_evaluations.tolist() == [4] * 6


def test_trace_content(tree4: ClassTree) -> None:
    value = truth_table(tree4, [2])
    value[0, 1] = 1.5  # node 1 closer than "bad"
    result = HardRouting().route(tree4, 1, FakeScorer(tree4, value), gap_kl)
    assert result.trace[0] == [
        {"node": 0, "children": [1, 2], "mean_distance": [1.5, 1.0], "score": [1.5, 1.0], "kl": 0.25, "chosen": 2},
        {"node": 2, "children": [5, 6], "mean_distance": [1.0, 2.0], "score": [1.0, 2.0], "kl": 1.0, "chosen": 5},
    ]
    assert result.kl_path == [[0.25, 1.0]]
    assert result.min_kl.tolist() == [0.25]
    json.dumps(result.trace)


def test_soft_recovers_wrong_early_turn(tree4: ClassTree) -> None:
    # probe 0 is class 2, but at the root the {0,1} group looks slightly better (1.0 vs 1.1);
    # inside {0,1} both leaves fit badly, while class 2's leaf fits very well.
    value = np.array([[0.0, 1.0, 1.1, 2.0, 2.5, 0.5, 3.0]])
    hard = HardRouting().route(tree4, 1, FakeScorer(tree4, value), gap_kl)
    assert hard.leaf_class.tolist() == [0]
    scorer = FakeScorer(tree4, value)
    soft = SoftRouting(beam_width=2).route(tree4, 1, scorer, gap_kl)
    assert soft.leaf_class.tolist() == [2]
    assert scorer.calls == [((1, 2), [0]), ((3, 4), [0]), ((5, 6), [0])]
    assert soft.n_vae_evaluations.tolist() == [6]
    # the trace follows the path actually taken to the answer, including the root step against the odds
    assert [step["node"] for step in soft.trace[0]] == [0, 2]
    assert [step["chosen"] for step in soft.trace[0]] == [2, 5]
    assert soft.trace[0][0]["mean_distance"] == [1.0, pytest.approx(1.1)]
    np.testing.assert_allclose(soft.kl_path[0], [0.01, 6.25])
    np.testing.assert_allclose(soft.leaf_distances[0], 0.5 + SPREAD)


def test_soft_batches_probes_sharing_a_node(tree4: ClassTree) -> None:
    truth = [0, 3, 1, 2]
    scorer = FakeScorer(tree4, truth_table(tree4, truth))
    SoftRouting(beam_width=2).route(tree4, 4, scorer, gap_kl)
    assert scorer.calls == [((1, 2), [0, 1, 2, 3]), ((3, 4), [0, 1, 2, 3]), ((5, 6), [0, 1, 2, 3])]
    assert scorer.levels == [[(1, 2)], [(3, 4), (5, 6)]]


@pytest.mark.parametrize("nested", [(((0, 1), (2, 3)), ((4, 5), (6, 7))), (0, (1, (2, (3, 4))))])
def test_soft_beam_one_equals_hard(nested) -> None:
    tree = ClassTree.from_nested(nested)
    value = np.random.default_rng(0).random((40, tree.n_nodes))
    hard = HardRouting().route(tree, 40, FakeScorer(tree, value), kl_divergence)
    soft = SoftRouting(beam_width=1).route(tree, 40, FakeScorer(tree, value), kl_divergence)
    assert np.array_equal(hard.leaf_class, soft.leaf_class)
    assert hard.trace == soft.trace
    assert np.array_equal(hard.n_vae_evaluations, soft.n_vae_evaluations)
    np.testing.assert_allclose(hard.min_kl, soft.min_kl)


def _same_result(a: RoutingResult, b: RoutingResult) -> None:
    assert np.array_equal(a.leaf_class, b.leaf_class) and a.trace == b.trace
    assert np.array_equal(a.n_vae_evaluations, b.n_vae_evaluations)
    np.testing.assert_array_equal(a.min_kl, b.min_kl)


@pytest.mark.parametrize("nested", [(((0, 1), (2, 3)), ((4, 5), (6, 7))), (0, (1, (2, (3, 4))))])
def test_kl_gate_extremes_are_greedy_and_beam_search(nested) -> None:
    tree = ClassTree.from_nested(nested)
    value = np.random.default_rng(0).random((40, tree.n_nodes))
    route = lambda rule: rule.route(tree, 40, FakeScorer(tree, value), kl_divergence)  # noqa: E731
    _same_result(route(SoftRouting(beam_width=3, kl_gate=0.0)), route(HardRouting()))
    _same_result(route(SoftRouting(beam_width=3, kl_gate=np.inf)), route(SoftRouting(beam_width=3)))


def test_kl_gate_keeps_the_runner_up_only_at_doubtful_steps() -> None:
    tree = ClassTree.from_nested((((0, 1), (2, 3)), ((4, 5), (6, 7))))
    # every first child scores 1, every second 2 (confident steps), except probe 0's root: 1 and 1.1 (doubtful)
    value = np.ones((2, tree.n_nodes))
    value[:, [tree.children(n)[1] for n in tree.internal_nodes()]] = 2.0
    value[0, tree.children(tree.root)[1]] = 1.1
    gate = 0.5 * ((0.1 ** 2) + (1.0 ** 2))  # between the two probes' squared gaps (gap_kl)
    gated = SoftRouting(beam_width=2, kl_gate=gate).route(tree, 2, FakeScorer(tree, value), gap_kl)
    greedy = 2 * tree.depth
    assert gated.n_vae_evaluations[1] == greedy < gated.n_vae_evaluations[0]
    assert {step["node"] for step in gated.trace[1]} <= set(tree.path_to_class(int(gated.leaf_class[1])))
    per_depth = SoftRouting(beam_width=2, kl_gate=[0.0, np.inf]).route(tree, 2, FakeScorer(tree, value), gap_kl)
    # shut at the root, open below: one live node at depth 1, both of its children kept at depth 2 and below
    assert per_depth.n_vae_evaluations.tolist() == [2 + 2 + 2 * 2 * (tree.depth - 2)] * 2


def test_vae_evaluations_balanced_tree() -> None:
    m = 16
    rng = np.random.default_rng(1)
    points = rng.normal(size=(m, 3))
    tree = build_tree(np.linalg.norm(points[:, None] - points[None], axis=-1), method="balanced")
    assert tree.depth == math.ceil(math.log2(m)) == 4
    value = rng.random((30, tree.n_nodes))
    scorer = FakeScorer(tree, value)
    hard = HardRouting().route(tree, 30, scorer, kl_divergence)
    assert hard.n_vae_evaluations.tolist() == [2 * tree.depth] * 30
    # one call per node reached, each node at most once, level by level
    nodes = scorer.nodes_called()
    assert len(nodes) == len(set(nodes))
    assert [tree.node_depth(n) for n in nodes] == sorted(tree.node_depth(n) for n in nodes)
    assert sum(len(idx) for _, idx in scorer.calls) == 30 * tree.depth
    soft = SoftRouting(beam_width=2).route(tree, 30, FakeScorer(tree, value), kl_divergence)
    # root, then two live nodes per level below it
    assert soft.n_vae_evaluations.tolist() == [2 * (1 + 2 * (tree.depth - 1))] * 30
    assert np.all(np.isfinite(soft.min_kl)) and np.all(soft.min_kl >= 0)
    assert soft.leaf_distances.shape == (30, K)


def test_unbalanced_tree_depths() -> None:
    tree = ClassTree.from_nested((0, (1, (2, 3))))
    truth = [0, 1, 2, 3]
    hard = HardRouting().route(tree, 4, FakeScorer(tree, truth_table(tree, truth)), gap_kl)
    assert hard.leaf_class.tolist() == truth
    assert hard.n_vae_evaluations.tolist() == [2, 4, 6, 6]
    assert [len(t) for t in hard.trace] == [1, 2, 3, 3]


def test_median_statistic(tree4: ClassTree) -> None:
    def scorer(nodes: tuple, idx: np.ndarray) -> np.ndarray:
        # first child: one huge outlier (mean 3.0, median 0.5); second child: steady 1.0
        first = np.array([0.5, 0.5, 0.5, 0.5, 10.5])
        return np.stack([first, np.ones(K)])[None].repeat(idx.size, axis=0)

    by_mean = HardRouting().route(tree4, 1, per_node(scorer), gap_kl)
    by_median = HardRouting(statistic="median").route(tree4, 1, per_node(scorer), gap_kl)
    assert by_mean.leaf_class.tolist() == [3]
    assert by_median.leaf_class.tolist() == [0]
    assert by_median.trace[0][0]["mean_distance"] == [2.5, 1.0]
    assert by_median.trace[0][0]["score"] == [0.5, 1.0]


def test_empty_batch(tree4: ClassTree) -> None:
    for rule in (HardRouting(), SoftRouting()):
        scorer = FakeScorer(tree4, np.zeros((0, 7)))
        result = rule.route(tree4, 0, scorer, gap_kl)
        assert result.leaf_class.shape == (0,) and result.min_kl.shape == (0,)
        assert result.trace == [] and scorer.calls == []


def test_bad_callbacks(tree4: ClassTree) -> None:
    with pytest.raises(InvalidInputError, match=r"nodes \[1, 2\] must have shape \(2, 2, K\)"):
        HardRouting().route(tree4, 2, per_node(lambda nodes, idx: np.zeros((idx.size, 3, K))), gap_kl)
    with pytest.raises(InvalidInputError, match=r"\[1, 2\].*NaN"):
        HardRouting().route(tree4, 2, per_node(lambda nodes, idx: np.full((idx.size, 2, K), np.nan)), gap_kl)
    with pytest.raises(InvalidInputError, match="answer each of the 1 requests, got 0"):
        HardRouting().route(tree4, 2, lambda requests: [], gap_kl)

    def changing_k(nodes: tuple, idx: np.ndarray) -> np.ndarray:
        return np.ones((idx.size, 2, K + nodes[0] - 1))

    with pytest.raises(InvalidInputError, match="K=7"):
        HardRouting().route(tree4, 2, per_node(changing_k), gap_kl)
    with pytest.raises(InvalidInputError, match="kl_fn must return shape"):
        HardRouting().route(tree4, 2, per_node(lambda nodes, idx: np.ones((idx.size, 2, K))), lambda p, q: np.zeros(1))


def test_bad_settings(tree4: ClassTree) -> None:
    scorer = FakeScorer(tree4, np.zeros((1, 7)))
    with pytest.raises(ConfigError, match="statistic"):
        HardRouting(statistic="mode").route(tree4, 1, scorer, gap_kl)
    with pytest.raises(ConfigError, match="beam_width"):
        SoftRouting(beam_width=0).route(tree4, 1, scorer, gap_kl)
    for bad in (-1.0, np.nan, True, "1"):
        with pytest.raises(ConfigError, match="kl_gate"):
            SoftRouting(kl_gate=bad).route(tree4, 1, scorer, gap_kl)
    for bad in (0, True, 2.5):
        with pytest.raises(ConfigError, match="flat_below"):
            HardRouting(flat_below=bad).route(tree4, 1, scorer, gap_kl)
    with pytest.raises(InvalidInputError, match="n_probes"):
        HardRouting().route(tree4, -1, scorer, gap_kl)
    with pytest.raises(InvalidInputError, match="ClassTree"):
        HardRouting().route(tree4.graph, 1, scorer, gap_kl)


def test_registry() -> None:
    assert ROUTING_RULES == {"hard": HardRouting, "soft": SoftRouting, "gated": GatedRouting}
    rule = ROUTING_RULES["soft"](beam_width=3)
    assert rule.beam_width == 3 and rule.statistic == "mean" and rule.kl_gate == np.inf
    assert repr(rule) == "SoftRouting(beam_width=3, statistic='mean', kl_gate=inf)"
    assert repr(GatedRouting(kl_gate=[1.0, 0.5])) == "GatedRouting(beam_width=2, statistic='mean', kl_gate=[1.0, 0.5])"


def test_flat_below_compares_the_leaves_of_a_small_node() -> None:
    # 0 -> 1 {0, 1, 2} -> (leaf 0, {1, 2}); 0 -> {3, 4}: node 1 holds 3 classes
    tree = ClassTree.from_nested(((0, (1, 2)), (3, 4)))
    leaves = [tree.leaf_of_class(c) for c in range(5)]
    node_012 = tree.parent(leaves[0])
    truth = [2, 0, 4]
    value = truth_table(tree, truth)
    value[0, tree.parent(leaves[1])] = 3.0  # the group VAE {1, 2} misleads probe 0; its leaf does not
    pure = HardRouting().route(tree, 3, FakeScorer(tree, value), gap_kl)
    assert pure.leaf_class.tolist() == [0, 0, 4]
    scorer = FakeScorer(tree, value)
    flat = HardRouting(flat_below=3).route(tree, 3, scorer, gap_kl)
    assert flat.leaf_class.tolist() == truth
    assert scorer.calls[1] == ((leaves[0], leaves[1], leaves[2]), [0, 1])  # one call for the three leaves
    assert flat.n_vae_evaluations.tolist() == [5, 5, 4]
    assert HardRouting(flat_below=3).max_evaluations(tree) == 5 and HardRouting().max_evaluations(tree) == 6
    step = flat.trace[0][-1]
    assert step["node"] == node_012 and step["children"] == [leaves[0], leaves[1], leaves[2]]
    assert step["chosen"] == leaves[2] and step["mean_distance"] == [2.0, 2.0, 1.0]
    # KL against the best other leaf (gap_kl of means 1.0 and 2.0)
    assert flat.kl_path[0] == [1.0, 1.0] and flat.min_kl[0] == 1.0
    np.testing.assert_allclose(flat.leaf_distances[0], 1.0 + SPREAD)
    # flat_below >= M compares every leaf at the root: flat mode through the tree's leaf VAEs
    flat_all = HardRouting(flat_below=5).route(tree, 3, FakeScorer(tree, value), gap_kl)
    assert flat_all.leaf_class.tolist() == truth and flat_all.n_vae_evaluations.tolist() == [5, 5, 5]


def test_max_evaluations_matches_routing() -> None:
    rng = np.random.default_rng(3)
    for m in (3, 5, 16, 17):
        points = rng.normal(size=(m, 2))
        tree = build_tree(np.linalg.norm(points[:, None] - points[None], axis=-1), method="balanced")
        value = rng.random((60, tree.n_nodes))
        for rule in (HardRouting(), HardRouting(flat_below=3), HardRouting(flat_below=4), SoftRouting(beam_width=2)):
            result = rule.route(tree, 60, FakeScorer(tree, value), gap_kl)
            assert result.n_vae_evaluations.max() <= rule.max_evaluations(tree) <= 2 * tree.depth * 2
            if isinstance(rule, HardRouting):
                assert rule.max_evaluations(tree) <= 2 * math.ceil(math.log2(m))


def test_register_routing_refuses_a_taken_name_and_a_rule_without_from_params() -> None:
    before = dict(ROUTING_RULES)
    with pytest.raises(ConfigError, match="registered already"):
        register_routing("hard", SoftRouting)
    with pytest.raises(ConfigError, match="from_params"):
        register_routing("plain", object)
    with pytest.raises(ConfigError, match="non-empty string"):
        register_routing("", HardRouting)
    assert ROUTING_RULES == before

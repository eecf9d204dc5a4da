"""Tree builders and class similarity measures."""

import math
from pathlib import Path

import numpy as np
import pytest

from regentree.errors import ConfigError, InvalidInputError
from regentree.tree import (
    BUILDERS,
    SIMILARITIES,
    ClassTree,
    build_tree,
    cross_distortion_distance,
    get_similarity,
    mean_distance,
)


def random_distance(m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(m, 5))
    return np.linalg.norm(points[:, None] - points[None], axis=-1)


TWO_PAIRS = np.array(
    [
        [0.0, 10.0, 9.0, 1.0],
        [10.0, 0.0, 1.0, 8.0],
        [9.0, 1.0, 0.0, 10.0],
        [1.0, 8.0, 10.0, 0.0],
    ]
)


@pytest.mark.parametrize("method", sorted(BUILDERS))
def test_two_obvious_pairs(method: str) -> None:
    tree = build_tree(TWO_PAIRS, method=method)
    assert tree.to_nested() == ((0, 3), (1, 2))
    assert tree.children(0) == (1, 2)
    assert tree.classes(1) == (0, 3)
    assert tree.classes(2) == (1, 2)


@pytest.mark.parametrize("method", sorted(BUILDERS))
def test_groups_of_three_and_two(method: str) -> None:
    # two tight groups {0, 2, 4} and {1, 3}, far apart
    group = np.array([0, 1, 0, 1, 0])
    d = np.where(group[:, None] == group[None], 1.0, 20.0)
    d[0, 2] = d[2, 0] = 0.5
    np.fill_diagonal(d, 0.0)
    tree = build_tree(d, method=method)
    assert {tree.classes(c) for c in tree.children(0)} == {(0, 2, 4), (1, 3)}
    assert tree.to_nested() == (((0, 2), 4), (1, 3))


@pytest.mark.parametrize("m", [2, 3, 5, 16, 17, 100])
def test_balanced_depth(m: int) -> None:
    tree = build_tree(random_distance(m, seed=m), method="balanced")
    assert tree.depth == math.ceil(math.log2(m))
    tree.validate(n_classes=m)
    for node in tree.internal_nodes():
        sizes = sorted(len(tree.classes(c)) for c in tree.children(node))
        assert sizes[1] - sizes[0] <= 1


@pytest.mark.parametrize("method", ["average", "complete", "single", "ward"])
@pytest.mark.parametrize("m", [2, 3, 17])
def test_agglomerative_is_valid(method: str, m: int) -> None:
    tree = build_tree(random_distance(m, seed=7), method=method)
    tree.validate(n_classes=m)
    assert tree.n_nodes == 2 * m - 1
    assert math.ceil(math.log2(m)) <= tree.depth <= m - 1
    # breadth-first ids: depth never decreases with the id
    depths = [tree.node_depth(n) for n in sorted(tree.graph.nodes)]
    assert depths == sorted(depths)


def test_single_linkage_chain_is_deep() -> None:
    x = np.array([0.0, 1.0, 2.1, 3.3, 4.6])
    d = np.abs(x[:, None] - x[None])
    assert build_tree(d, method="single").depth == 4
    assert build_tree(d, method="balanced").depth == 3


@pytest.mark.parametrize("method", sorted(BUILDERS))
def test_deterministic(method: str) -> None:
    d = random_distance(23, seed=1)
    assert build_tree(d, method) == build_tree(d.copy(), method)


def test_balanced_keeps_clusters_together() -> None:
    rng = np.random.default_rng(3)
    centers = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    labels = np.repeat(np.arange(4), 4)
    perm = rng.permutation(16)
    points = centers[labels[perm]] + rng.normal(size=(16, 2))
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    tree = build_tree(d, method="balanced")
    groups = {tuple(sorted(labels[perm][list(tree.classes(n))])) for n in tree.levels()[2]}
    assert groups == {(k,) * 4 for k in range(4)}


@pytest.mark.parametrize(
    ("distance", "message"),
    [
        (np.zeros((1, 1)), "at least 2"),
        (np.zeros((2, 3)), "square"),
        (np.array([[0.0, np.nan], [np.nan, 0.0]]), "NaN"),
        (np.array([[0.0, 1.0], [2.0, 0.0]]), "not symmetric"),
        (np.array([[1.0, 1.0], [1.0, 0.0]]), "diagonal"),
        (np.array([[0.0, -1.0], [-1.0, 0.0]]), "negative"),
        ("abc", "numeric"),
    ],
)
def test_bad_distance(distance: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build_tree(distance)


def test_unknown_method() -> None:
    with pytest.raises(ConfigError, match="unknown tree builder 'kmeans'"):
        build_tree(TWO_PAIRS, method="kmeans")


def test_mean_distance() -> None:
    X = np.array([[0.0, 0.0], [2.0, 0.0], [3.0, 4.0], [3.0, 4.0], [0.0, 1.0]])
    y = np.array([0, 0, 1, 1, 2])
    d = mean_distance(X, y, 3)
    a, b, c = np.hypot(2, 4), np.sqrt(2), np.hypot(3, 3)  # means (1, 0), (3, 4), (0, 1)
    np.testing.assert_allclose(d, [[0.0, a, b], [a, 0.0, c], [b, c, 0.0]])
    assert SIMILARITIES["mean"] is mean_distance
    with pytest.raises(InvalidInputError, match="class 3 has no sample"):
        mean_distance(X, y, 4)
    with pytest.raises(InvalidInputError, match="NaN"):
        mean_distance(np.full((5, 2), np.nan), y, 3)
    with pytest.raises(InvalidInputError, match="y must have shape"):
        mean_distance(X, y[:3], 3)
    with pytest.raises(InvalidInputError, match="class indices"):
        mean_distance(X, y + 1, 3)


def test_cross_distortion_distance() -> None:
    D = np.array([[1.0, 5.0, 2.0], [4.0, 2.0, 1.0], [1.5, 3.0, 3.0]])
    d = cross_distortion_distance(D)
    # d(0,1) = (5-1 + 4-2)/2 = 3; d(0,2) = (2-1 + 1.5-3)/2 = -0.25 -> 0; d(1,2) = (1-2 + 3-3)/2 -> 0
    np.testing.assert_allclose(d, [[0, 3, 0], [3, 0, 0], [0, 0, 0]])
    assert np.array_equal(d, d.T)
    assert get_similarity("cross_distortion") is cross_distortion_distance
    D4 = np.array([[1, 9, 9, 1.2], [9, 1, 1.1, 9], [9, 1.3, 1, 9], [1.1, 9, 9, 1]])
    tree = build_tree(cross_distortion_distance(D4))
    assert tree.to_nested() == ((0, 3), (1, 2))
    with pytest.raises(InvalidInputError, match="NaN"):
        cross_distortion_distance(np.array([[1.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(InvalidInputError, match="square"):
        cross_distortion_distance(np.ones((2, 3)))
    with pytest.raises(ConfigError, match="unknown similarity"):
        get_similarity("cosine")


def test_tree_package_does_not_import_torch() -> None:
    folder = Path(__file__).resolve().parents[1] / "regentree" / "tree"
    for path in folder.glob("*.py"):
        text = path.read_text()
        assert "import torch" not in text and "from torch" not in text, path
        assert "regentree.estimators" not in text, path


def test_built_tree_is_classtree() -> None:
    assert isinstance(build_tree(TWO_PAIRS), ClassTree)

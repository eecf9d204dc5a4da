"""Binary class-tree builders: (M, M) class distance matrix -> `ClassTree`.

Builders are looked up by name in `BUILDERS`:

- ``"average"``, ``"complete"``, ``"single"``, ``"ward"``: agglomerative merges
  (`scipy.cluster.hierarchy.linkage` on the condensed matrix). In a linkage row, a child index below M is
  the leaf of that class, otherwise it is the merge made at row ``index - M``. Depth can reach M - 1.
  ``ward`` is exact only for Euclidean distances (e.g. ``"mean"``).
- ``"balanced"``: recursive bisection into halves of ceil(n/2) and floor(n/2) classes, so the depth is
  exactly ``ceil(log2 M)``. Each bisection seeds the halves with the two most distant classes, assigns the
  rest by their preference ``d(x, a) - d(x, b)``, then improves with greedy pair swaps that lower the total
  within-half distance (equivalently: raise the cut between halves).

All builders are deterministic. Children are ordered by their smallest class and node ids are given
breadth-first from the root 0, so equal structures give equal trees whatever the builder.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

from regentree.errors import ConfigError
from regentree.tree.class_tree import ClassTree, Nested
from regentree.tree.similarity import check_distance_matrix

__all__ = ["BUILDERS", "build_tree", "nested_agglomerative", "nested_balanced"]


def _canonical(item: Nested) -> Nested:
    """Order every pair by its smallest class."""
    if isinstance(item, int):
        return item
    left, right = (_canonical(child) for child in item)
    return (left, right) if _min_class(left) < _min_class(right) else (right, left)


def _min_class(item: Nested) -> int:
    return item if isinstance(item, int) else min(_min_class(item[0]), _min_class(item[1]))


def nested_agglomerative(distance: np.ndarray, method: str) -> Nested:
    """Agglomerative binary tree as nested pairs (distance already validated)."""
    m = distance.shape[0]
    merges = linkage(squareform(distance, checks=False), method=method)
    built: list[Nested] = []
    for row in merges:
        a, b = int(row[0]), int(row[1])
        built.append((a if a < m else built[a - m], b if b < m else built[b - m]))
    return built[-1]


def _bisect(distance: np.ndarray, members: np.ndarray, max_swaps: int) -> tuple[np.ndarray, np.ndarray]:
    """Split `members` into halves of sizes ceil(n/2), floor(n/2) with small within-half distance."""
    n = members.size
    sub = distance[np.ix_(members, members)]
    flat = int(np.argmax(np.triu(sub, k=1)))
    a, b = divmod(flat, n)
    if a == b:  # all distances 0: any split is as good
        a, b = 0, 1
    rest = np.array([i for i in range(n) if i not in (a, b)], dtype=np.int64)
    preference = sub[rest, a] - sub[rest, b]
    order = rest[np.argsort(preference, kind="stable")]
    size_a = math.ceil(n / 2)
    in_a = np.zeros(n, dtype=bool)
    in_a[a] = True
    in_a[order[: size_a - 1]] = True
    for _ in range(max_swaps):
        ia, ib = np.flatnonzero(in_a), np.flatnonzero(~in_a)
        to_a = sub[:, ia].sum(axis=1)
        to_b = sub[:, ib].sum(axis=1)
        # change of the within-half total when x in A and y in B swap halves
        delta = (to_b[ia] - to_a[ia])[:, None] + (to_a[ib] - to_b[ib])[None, :] - 2.0 * sub[np.ix_(ia, ib)]
        best = int(np.argmin(delta))
        x, y = divmod(best, ib.size)
        if delta[x, y] >= -1e-12 * max(1.0, float(sub.max())):
            break
        in_a[ia[x]], in_a[ib[y]] = False, True
    return members[in_a], members[~in_a]


def nested_balanced(distance: np.ndarray, max_swaps: int = 1000) -> Nested:
    """Balanced binary tree as nested pairs (distance already validated); depth ceil(log2 M)."""

    def split(members: np.ndarray) -> Nested:
        if members.size == 1:
            return int(members[0])
        left, right = _bisect(distance, members, max_swaps)
        return (split(left), split(right))

    return split(np.arange(distance.shape[0]))


def _agglomerative(method: str) -> Callable[[np.ndarray], Nested]:
    def build(distance: np.ndarray) -> Nested:
        return nested_agglomerative(distance, method)

    build.__name__ = f"{method}_linkage"
    build.__doc__ = f"Agglomerative tree, scipy linkage method {method!r}."
    return build


BUILDERS: dict[str, Callable[[np.ndarray], Nested]] = {
    "average": _agglomerative("average"),
    "complete": _agglomerative("complete"),
    "single": _agglomerative("single"),
    "ward": _agglomerative("ward"),
    "balanced": nested_balanced,
}


def build_tree(distance: object, method: str = "balanced") -> ClassTree:
    """Turn M classes into a binary `ClassTree`.

    Parameters
    ----------
    distance : array-like of shape (M, M)
        Symmetric class distance matrix (smaller = more alike), 0 on the diagonal, M >= 2; see
        `regentree.tree.similarity`.
    method : str, default "balanced"
        A key of `BUILDERS`.

    Returns
    -------
    ClassTree
        Root 0, node ids breadth-first, children ordered by their smallest class.

    Raises
    ------
    InvalidInputError
        If `distance` is malformed or M < 2.
    ConfigError
        If `method` is unknown.
    """
    try:
        builder = BUILDERS[method]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown tree builder {method!r}; known: {sorted(BUILDERS)}") from None
    d = check_distance_matrix(distance)
    return ClassTree.from_nested(_canonical(builder(d)))

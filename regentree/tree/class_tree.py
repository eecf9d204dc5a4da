"""`ClassTree`: a validated binary class tree over a `networkx.DiGraph`.

The graph has integer node ids, root ``0``, and one node attribute, ``classes``: the sorted list of the
class indices (``0..M-1``) under the node. Every internal node has exactly two children, every leaf holds
exactly one class, and a node's classes are the disjoint union of its children's. Every non-root node owns
a VAE trained on its classes; the VAEs live elsewhere, in a dict keyed by node id.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from typing import Any

import networkx as nx

from regentree.errors import InvalidInputError, RegentreeError

__all__ = ["ClassTree", "Nested"]

ROOT = 0

Nested = Any  # an int (a leaf's class) or a pair (left, right) of Nested


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class ClassTree:
    """A binary tree of classes; node ``0`` is the root, leaves hold one class each.

    Parameters
    ----------
    graph : networkx.DiGraph
        Edges point from parent to child; node attribute ``classes`` is the sorted list of class indices
        under the node. The graph is deep-copied, then validated.
    n_classes : int, optional
        When given, the root must hold exactly ``0..n_classes-1``.
    error_cls : type of RegentreeError, default InvalidInputError
        Raised (with a one-line message naming the node) when the graph is not a valid class tree; pass
        `ModelFolderError` when the graph comes from a model folder.

    Notes
    -----
    Treat `graph` as read-only: the cached parent/children/leaf maps are only rebuilt by `insert_class`
    and `remove_class`.
    """

    def __init__(
        self,
        graph: nx.DiGraph,
        *,
        n_classes: int | None = None,
        error_cls: type[RegentreeError] = InvalidInputError,
    ) -> None:
        self._set_graph(copy.deepcopy(graph), n_classes=n_classes, error_cls=error_cls)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_nested(cls, nested: Nested) -> ClassTree:
        """Build a tree from nested pairs, e.g. ``((0, 3), (1, (2, 4)))``; ids are breadth-first from 0.

        Children keep the order given (left child gets the smaller id).
        """
        graph = nx.DiGraph()
        queue: list[tuple[Nested, int | None]] = [(nested, None)]
        next_id = 0
        while queue:
            item, parent = queue.pop(0)
            node = next_id
            next_id += 1
            graph.add_node(node, classes=sorted(_flatten(item)))
            if parent is not None:
                graph.add_edge(parent, node)
            if not _is_leaf_item(item):
                if not isinstance(item, Sequence) or len(item) != 2:
                    raise InvalidInputError(
                        f"nested class tree: {item!r} is neither a class index nor a pair"
                    )
                queue.extend((child, node) for child in item)
        return cls(graph)

    def to_nested(self) -> Nested:
        """The tree as nested pairs of class indices, children in `children` order."""

        def walk(node: int) -> Nested:
            if self.is_leaf(node):
                return self.classes(node)[0]
            left, right = self.children(node)
            return (walk(left), walk(right))

        return walk(ROOT)

    def to_node_link(self) -> dict:
        """JSON-able node-link dict (``networkx.node_link_data``, nodes and edges sorted)."""
        ordered = nx.DiGraph()
        ordered.graph.update(copy.deepcopy(self._graph.graph))
        for node in sorted(self._graph.nodes):
            ordered.add_node(node, **copy.deepcopy(self._graph.nodes[node]))
        ordered.add_edges_from(sorted(self._graph.edges))
        return nx.node_link_data(ordered, edges="edges")

    @classmethod
    def from_node_link(
        cls,
        data: dict,
        *,
        n_classes: int | None = None,
        error_cls: type[RegentreeError] = InvalidInputError,
    ) -> ClassTree:
        """Inverse of `to_node_link`; validates, raising `error_cls` on any malformed content."""
        if not isinstance(data, dict):
            raise error_cls(f"class tree node-link data must be a dict, got {type(data).__name__}")
        try:
            graph = nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")
        except (KeyError, TypeError, ValueError, AttributeError, nx.NetworkXError) as exc:
            raise error_cls(f"class tree node-link data is malformed: {exc!r}") from None
        return cls(graph, n_classes=n_classes, error_cls=error_cls)

    # ------------------------------------------------------------------ validation
    @staticmethod
    def check_graph(
        graph: nx.DiGraph,
        n_classes: int | None = None,
        error_cls: type[RegentreeError] = InvalidInputError,
    ) -> None:
        """Raise `error_cls` with a one-line message naming the node if `graph` is not a valid class tree."""

        def fail(message: str) -> None:
            raise error_cls(f"class tree: {message}")

        if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
            fail(f"expected a networkx.DiGraph, got {type(graph).__name__}")
        try:
            json.dumps(graph.graph)
        except (TypeError, ValueError):
            fail("graph attributes are not JSON-serialisable")
        for node, attrs in graph.nodes(data=True):
            if not _is_int(node):
                fail(f"node id {node!r} is not an int")
            if "classes" not in attrs:
                fail(f"node {node} has no 'classes' attribute")
            classes = attrs["classes"]
            if not isinstance(classes, list) or not all(_is_int(c) for c in classes):
                fail(f"node {node}: 'classes' must be a list of ints, got {classes!r}")
            if not classes:
                fail(f"node {node} holds no class")
            if any(b <= a for a, b in zip(classes, classes[1:], strict=False)):
                fail(f"node {node}: 'classes' must be sorted and without duplicates, got {classes}")
            try:
                json.dumps(attrs)
            except (TypeError, ValueError):
                fail(f"node {node}: attributes are not JSON-serialisable")
        if graph.number_of_nodes() == 0:
            fail("the graph is empty")
        roots = sorted(n for n, deg in graph.in_degree() if deg == 0)
        if len(roots) != 1:
            fail(f"expected a single root, found {len(roots)}: {roots[:10]}")
        if roots[0] != ROOT:
            fail(f"the root must be node {ROOT}, found node {roots[0]}")
        for node, deg in graph.in_degree():
            if deg > 1:
                fail(f"node {node} has {deg} parents")
        if not nx.is_arborescence(graph):
            reachable = nx.descendants(graph, ROOT) | {ROOT}
            lost = sorted(set(graph.nodes) - reachable)
            fail(f"not a tree: node {lost[0] if lost else '?'} is not reachable from the root (cycle?)")
        nodes = sorted(graph.nodes)
        for node in nodes:
            n_kids = graph.out_degree(node)
            if n_kids not in (0, 2):
                fail(f"node {node} has {n_kids} children, expected 2")
        for node in nodes:
            classes = graph.nodes[node]["classes"]
            if graph.out_degree(node) == 0 and len(classes) != 1:
                fail(f"leaf node {node} must hold exactly one class, holds {classes}")
        for node in nodes:
            kids = sorted(graph.successors(node))
            if not kids:
                continue
            classes = graph.nodes[node]["classes"]
            a, b = (set(graph.nodes[k]["classes"]) for k in kids)
            if a & b:
                fail(f"node {node}: children {kids} share classes {sorted(a & b)}")
            if sorted(a | b) != classes:
                fail(
                    f"node {node} holds classes {classes} but its children {kids} hold {sorted(a | b)}"
                )
        root_classes = graph.nodes[ROOT]["classes"]
        m = len(root_classes)
        if m < 2:
            fail(f"root node {ROOT} must hold at least 2 classes, holds {root_classes}")
        if root_classes != list(range(m)):
            fail(f"root node {ROOT} must hold classes 0..{m - 1}, holds {root_classes}")
        if n_classes is not None and m != n_classes:
            fail(f"root node {ROOT} holds {m} classes, expected {n_classes}")

    def validate(self, n_classes: int | None = None) -> None:
        """Re-check the tree (see `check_graph`); raises `InvalidInputError` naming the node."""
        self.check_graph(self._graph, n_classes=n_classes)

    def _set_graph(
        self,
        graph: nx.DiGraph,
        *,
        n_classes: int | None = None,
        error_cls: type[RegentreeError] = InvalidInputError,
    ) -> None:
        self.check_graph(graph, n_classes=n_classes, error_cls=error_cls)
        self._graph = graph
        self._children = {
            n: tuple(sorted(graph.successors(n))) for n in graph.nodes
        }
        self._parent = {child: parent for parent, child in graph.edges}
        self._depth_of = nx.single_source_shortest_path_length(graph, ROOT)
        self._leaf_of_class = {
            graph.nodes[n]["classes"][0]: n for n in graph.nodes if not self._children[n]
        }

    # ------------------------------------------------------------------ queries
    @property
    def graph(self) -> nx.DiGraph:
        """The underlying `networkx.DiGraph` (read-only by convention)."""
        return self._graph

    @property
    def root(self) -> int:
        """The root node id, always 0."""
        return ROOT

    @property
    def n_classes(self) -> int:
        """Number of classes M (classes are ``0..M-1``)."""
        return len(self._graph.nodes[ROOT]["classes"])

    @property
    def n_nodes(self) -> int:
        """Number of nodes (``2*M - 1``)."""
        return self._graph.number_of_nodes()

    @property
    def depth(self) -> int:
        """Number of edges on the longest root-to-leaf path."""
        return max(self._depth_of.values())

    @property
    def leaves(self) -> tuple[int, ...]:
        """Leaf node ids, sorted."""
        return tuple(sorted(self._leaf_of_class.values()))

    def _check_node(self, node: int) -> None:
        try:
            known = node in self._children
        except TypeError:
            known = False
        if not known:
            raise InvalidInputError(f"class tree has no node {node!r}")

    def children(self, node: int) -> tuple[int, ...]:
        """The two children of an internal node sorted by id (an empty tuple for a leaf)."""
        self._check_node(node)
        return self._children[node]

    def parent(self, node: int) -> int | None:
        """The parent of `node`, None for the root."""
        self._check_node(node)
        return self._parent.get(node)

    def sibling(self, node: int) -> int:
        """The other child of `node`'s parent."""
        parent = self.parent(node)
        if parent is None:
            raise InvalidInputError("the root node 0 has no sibling")
        a, b = self._children[parent]
        return b if a == node else a

    def classes(self, node: int) -> tuple[int, ...]:
        """Sorted class indices under `node`."""
        self._check_node(node)
        return tuple(self._graph.nodes[node]["classes"])

    def is_leaf(self, node: int) -> bool:
        """Whether `node` has no children."""
        self._check_node(node)
        return not self._children[node]

    def node_depth(self, node: int) -> int:
        """Edges between the root and `node`."""
        self._check_node(node)
        return self._depth_of[node]

    def leaf_of_class(self, c: int) -> int:
        """The leaf node holding class `c`."""
        if not _is_int(c) and not hasattr(c, "__index__"):
            raise InvalidInputError(f"class index must be an int, got {c!r}")
        try:
            return self._leaf_of_class[int(c)]
        except KeyError:
            raise InvalidInputError(
                f"class {c} is not in the class tree (classes 0..{self.n_classes - 1})"
            ) from None

    def path_to_class(self, c: int) -> list[int]:
        """Node ids from the root down to the leaf of class `c` (both included)."""
        node: int | None = self.leaf_of_class(c)
        path = []
        while node is not None:
            path.append(node)
            node = self._parent.get(node)
        return path[::-1]

    def ancestors(self, node: int) -> list[int]:
        """Node ids from the root down to `node`'s parent."""
        self._check_node(node)
        out = []
        parent = self._parent.get(node)
        while parent is not None:
            out.append(parent)
            parent = self._parent.get(parent)
        return out[::-1]

    def non_root_nodes(self) -> list[int]:
        """Sorted ids of all nodes except the root: the nodes that own a VAE."""
        return sorted(n for n in self._graph.nodes if n != ROOT)

    def internal_nodes(self) -> list[int]:
        """Sorted ids of the nodes with children (the nodes where a probe is routed)."""
        return sorted(n for n, kids in self._children.items() if kids)

    def levels(self) -> list[list[int]]:
        """Nodes grouped by depth: ``levels()[d]`` is the sorted list of nodes at depth d."""
        out: list[list[int]] = [[] for _ in range(self.depth + 1)]
        for node, d in self._depth_of.items():
            out[d].append(node)
        return [sorted(level) for level in out]

    # ------------------------------------------------------------------ editing
    def insert_class(self, c: int, sibling_node: int) -> set[int]:
        """Add a leaf for a new class `c` next to `sibling_node`.

        A new internal node takes `sibling_node`'s place and holds `sibling_node` and the new leaf
        (new ids: ``max + 1`` for the internal node, ``max + 2`` for the leaf). Existing class indices
        ``>= c`` shift up by one, so `c` may be anything in ``0..M`` (``M`` appends). When `sibling_node`
        is the root, the new internal node takes over the root's children and the root keeps id 0.

        Returns
        -------
        set of int
            Nodes that are new or whose class membership grew (the new leaf, the new internal node and all
            their ancestors, root included). Intersect with `non_root_nodes()` for the VAEs to (re)train;
            the index shift alone does not change what a VAE was trained on.
        """
        m = self.n_classes
        if not _is_int(c) or not 0 <= c <= m:
            raise InvalidInputError(f"insert_class: class index must be an int in 0..{m}, got {c!r}")
        self._check_node(sibling_node)
        graph = copy.deepcopy(self._graph)
        for node in graph.nodes:
            graph.nodes[node]["classes"] = [x + 1 if x >= c else x for x in graph.nodes[node]["classes"]]
        new_internal = max(graph.nodes) + 1
        new_leaf = new_internal + 1
        graph.add_node(new_leaf, classes=[c])
        if sibling_node == ROOT:
            graph.add_node(new_internal, classes=list(graph.nodes[ROOT]["classes"]))
            for kid in list(graph.successors(ROOT)):
                graph.remove_edge(ROOT, kid)
                graph.add_edge(new_internal, kid)
            graph.add_edges_from([(ROOT, new_internal), (ROOT, new_leaf)])
            grown = {ROOT}
        else:
            parent = self._parent[sibling_node]
            graph.add_node(new_internal, classes=list(graph.nodes[sibling_node]["classes"]))
            graph.remove_edge(parent, sibling_node)
            graph.add_edges_from(
                [(parent, new_internal), (new_internal, sibling_node), (new_internal, new_leaf)]
            )
            grown = {new_internal, *self.ancestors(sibling_node)}
        for node in grown:
            graph.nodes[node]["classes"] = sorted({*graph.nodes[node]["classes"], c})
        self._set_graph(graph, n_classes=m + 1)
        return grown | {new_internal, new_leaf}

    def next_leaf_id(self) -> int:
        """The node id `insert_class` will give the new leaf (so its VAE can be trained before it is placed)."""
        return max(self._graph.nodes) + 2

    def replace_subtree(self, top: int, subtree: ClassTree, classes: Sequence[int]) -> tuple[list[int], list[int]]:
        """Put `subtree` in place of the subtree under inner node `top`, which keeps its id.

        `subtree`'s class ``i`` is class ``classes[i]`` of this tree; `classes` must be exactly the classes under
        `top`. Leaves keep their ids; the new inner nodes get fresh ones. Returns the ids of the inner nodes
        removed and of those added (below `top`, sorted).
        """
        self._check_node(top)
        if sorted(classes) != list(self.classes(top)) or subtree.n_classes != len(classes):
            raise InvalidInputError(
                f"replace_subtree: node {top} holds classes {list(self.classes(top))}, the subtree {sorted(classes)}")
        graph = copy.deepcopy(self._graph)
        removed = sorted(n for n in nx.descendants(graph, top) if graph.out_degree(n))
        graph.remove_edges_from(list(nx.bfs_edges(graph, top)))
        graph.remove_nodes_from(removed)
        ids, fresh = {subtree.root: top}, max(self._graph.nodes) + 1
        for node in sorted(subtree.graph.nodes):
            if subtree.is_leaf(node):
                ids[node] = self.leaf_of_class(classes[subtree.classes(node)[0]])
            elif node != subtree.root:
                ids[node], fresh = fresh, fresh + 1
                graph.add_node(ids[node], classes=sorted(classes[c] for c in subtree.classes(node)))
        graph.add_edges_from((ids[a], ids[b]) for a, b in subtree.graph.edges)
        self._set_graph(graph, n_classes=self.n_classes)
        return removed, sorted(ids[n] for n in subtree.internal_nodes() if n != subtree.root)

    def remove_class(self, c: int) -> set[int]:
        """Remove the leaf of class `c`; its sibling takes the parent's place.

        Class indices ``> c`` shift down by one. The leaf and its parent disappear (when the parent is the
        root, the sibling disappears instead and its children move up under the root, which keeps id 0);
        VAEs of nodes no longer in `graph` should be dropped.

        Returns
        -------
        set of int
            Surviving nodes whose class membership shrank: the ancestors of the removed leaf's parent
            (root included), or ``{0}`` when the parent was the root.

        Raises
        ------
        InvalidInputError
            If `c` is unknown or the tree would drop below 2 classes.
        """
        m = self.n_classes
        leaf = self.leaf_of_class(c)
        if m <= 2:
            raise InvalidInputError(f"remove_class: a class tree needs at least 2 classes, has {m}")
        parent = self._parent[leaf]
        sibling = self.sibling(leaf)
        graph = copy.deepcopy(self._graph)
        graph.remove_node(leaf)
        if parent == ROOT:
            grandkids = list(graph.successors(sibling))
            graph.remove_node(sibling)
            graph.add_edges_from((ROOT, kid) for kid in grandkids)
            changed = {ROOT}
        else:
            grandparent = self._parent[parent]
            graph.remove_node(parent)
            graph.add_edge(grandparent, sibling)
            changed = set(self.ancestors(parent))
        for node in changed:
            graph.nodes[node]["classes"] = [x for x in graph.nodes[node]["classes"] if x != c]
        for node in graph.nodes:
            graph.nodes[node]["classes"] = [x - 1 if x > c else x for x in graph.nodes[node]["classes"]]
        self._set_graph(graph, n_classes=m - 1)
        return changed

    # ------------------------------------------------------------------ display
    def render_text(self, class_names: Sequence[str] | None = None, *, max_listed: int = 6) -> str:
        """An indented ASCII drawing of the tree, one node per line, for the CLI.

        Leaves show ``node <id>: <name>``; internal nodes list their class names when there are at most
        `max_listed`, otherwise their count.
        """
        if class_names is not None and len(class_names) != self.n_classes:
            raise InvalidInputError(
                f"render_text: got {len(class_names)} class names for {self.n_classes} classes"
            )
        names = [str(c) for c in range(self.n_classes)] if class_names is None else list(map(str, class_names))

        def label(node: int) -> str:
            classes = self.classes(node)
            if self.is_leaf(node):
                return f"node {node}: {names[classes[0]]}"
            if len(classes) <= max_listed:
                return f"node {node}: {{{', '.join(names[c] for c in classes)}}}"
            return f"node {node}: {len(classes)} classes"

        lines = [label(ROOT)]

        def walk(node: int, prefix: str) -> None:
            kids = self._children[node]
            for i, kid in enumerate(kids):
                last = i == len(kids) - 1
                lines.append(f"{prefix}{'`-- ' if last else '|-- '}{label(kid)}")
                walk(kid, prefix + ("    " if last else "|   "))

        walk(ROOT, "")
        return "\n".join(lines)

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassTree):
            return NotImplemented
        return nx.utils.graphs_equal(self._graph, other._graph)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ClassTree(n_classes={self.n_classes}, depth={self.depth}, n_nodes={self.n_nodes})"


def _is_leaf_item(item: Nested) -> bool:
    return _is_int(item) or (hasattr(item, "__index__") and not isinstance(item, (list, tuple)))


def _flatten(item: Nested) -> Iterable[int]:
    if _is_leaf_item(item):
        yield int(item)
        return
    if not isinstance(item, Sequence) or isinstance(item, str):
        raise InvalidInputError(f"nested class tree: {item!r} is neither a class index nor a pair")
    for child in item:
        yield from _flatten(child)

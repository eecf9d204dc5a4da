"""ClassTree: validation errors, queries, node-link round trip, insert/remove, rendering."""

import json

import networkx as nx
import pytest

from regentree.errors import InvalidInputError, ModelFolderError
from regentree.tree import ClassTree


def graph_of(nodes: dict[int, list[int]], edges: list[tuple[int, int]]) -> nx.DiGraph:
    g = nx.DiGraph()
    for node, classes in nodes.items():
        g.add_node(node, classes=classes)
    g.add_edges_from(edges)
    return g


@pytest.fixture
def four() -> ClassTree:
    # 0:{0,1,2,3} -> 1:{0,3}, 2:{1,2}; leaves 3:0, 4:3, 5:1, 6:2
    return ClassTree.from_nested(((0, 3), (1, 2)))


def test_queries(four: ClassTree) -> None:
    assert four.root == 0
    assert four.n_classes == 4
    assert four.n_nodes == 7
    assert four.children(0) == (1, 2)
    assert four.children(1) == (3, 4)
    assert four.children(4) == ()
    assert four.parent(0) is None and four.parent(4) == 1
    assert four.sibling(5) == 6
    assert four.classes(1) == (0, 3)
    assert four.is_leaf(6) and not four.is_leaf(2)
    assert four.leaves == (3, 4, 5, 6)
    assert four.leaf_of_class(3) == 4
    assert four.path_to_class(2) == [0, 2, 6]
    assert four.depth == 2
    assert four.non_root_nodes() == [1, 2, 3, 4, 5, 6]
    assert four.internal_nodes() == [0, 1, 2]
    assert four.levels() == [[0], [1, 2], [3, 4, 5, 6]]
    assert four.to_nested() == ((0, 3), (1, 2))
    with pytest.raises(InvalidInputError, match="no node 99"):
        four.children(99)
    with pytest.raises(InvalidInputError, match="class 7"):
        four.leaf_of_class(7)


def test_unbalanced_depth() -> None:
    tree = ClassTree.from_nested((0, (1, (2, 3))))
    assert tree.depth == 3
    assert tree.levels()[3] == sorted(tree.leaves)[-2:]
    tree.validate(n_classes=4)


@pytest.mark.parametrize(
    ("nodes", "edges", "message"),
    [
        # not binary: root with three leaf children
        ({0: [0, 1, 2], 1: [0], 2: [1], 3: [2]}, [(0, 1), (0, 2), (0, 3)], "node 0 has 3 children"),
        # internal node with one child
        ({0: [0, 1], 1: [0, 1], 2: [0], 3: [1]}, [(0, 1), (1, 2), (0, 3)], "node 1 has 1 children"),
        # two roots
        ({0: [0, 1], 1: [0], 2: [1], 3: [0, 1]}, [(0, 1), (0, 2)], "single root"),
        # root is not node 0
        ({5: [0, 1], 1: [0], 2: [1]}, [(5, 1), (5, 2)], "root must be node 0"),
        # class missing: root says {0,1,2} but children hold {0,1}
        ({0: [0, 1, 2], 1: [0], 2: [1]}, [(0, 1), (0, 2)], "node 0 holds classes"),
        # class 1 missing from 0..M-1
        ({0: [0, 2], 1: [0], 2: [2]}, [(0, 1), (0, 2)], "classes 0..1"),
        # duplicated class in two leaves
        ({0: [0, 1], 1: [0, 1], 2: [1], 3: [0], 4: [1]}, [(0, 1), (0, 2), (1, 3), (1, 4)], "node 0: children"),
        # leaf with two classes
        ({0: [0, 1, 2], 1: [0], 2: [1, 2]}, [(0, 1), (0, 2)], "leaf node 2"),
        # unsorted classes
        ({0: [1, 0], 1: [0], 2: [1]}, [(0, 1), (0, 2)], "sorted"),
        # non-int node id
        ({0: [0, 1], "a": [0], 2: [1]}, [(0, "a"), (0, 2)], "not an int"),
        # one class only
        ({0: [0]}, [], "at least 2 classes"),
        # node with two parents
        ({0: [0, 1], 1: [0], 2: [1]}, [(0, 1), (0, 2), (2, 1)], "node 1 has 2 parents"),
    ],
)
def test_validation_errors(nodes: dict, edges: list, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        ClassTree(graph_of(nodes, edges))
    assert "\n" not in str(info.value)


def test_missing_attribute_and_non_json() -> None:
    g = graph_of({0: [0, 1], 1: [0], 2: [1]}, [(0, 1), (0, 2)])
    del g.nodes[2]["classes"]
    with pytest.raises(InvalidInputError, match="node 2 has no 'classes'"):
        ClassTree(g)
    g = graph_of({0: [0, 1], 1: [0], 2: [1]}, [(0, 1), (0, 2)])
    g.nodes[1]["vae"] = object()
    with pytest.raises(InvalidInputError, match="node 1: attributes are not JSON"):
        ClassTree(g)


def test_n_classes_mismatch(four: ClassTree) -> None:
    with pytest.raises(InvalidInputError, match="expected 5"):
        four.validate(n_classes=5)


def test_constructor_copies_graph(four: ClassTree) -> None:
    g = four.graph.copy()
    tree = ClassTree(g)
    g.nodes[1]["classes"].append(9)
    tree.validate()


def test_node_link_round_trip(four: ClassTree) -> None:
    data = four.to_node_link()
    text = json.dumps(data)
    back = ClassTree.from_node_link(json.loads(text))
    assert back == four
    assert back.to_node_link() == data
    assert [n["id"] for n in data["nodes"]] == list(range(7))
    assert all(set(n) == {"id", "classes"} for n in data["nodes"])


def test_node_link_errors(four: ClassTree) -> None:
    data = four.to_node_link()
    data["nodes"][3]["classes"] = [0, 1]
    with pytest.raises(ModelFolderError, match="leaf node 3 must hold exactly one class"):
        ClassTree.from_node_link(data, error_cls=ModelFolderError)
    with pytest.raises(ModelFolderError, match="malformed"):
        ClassTree.from_node_link({"nodes": []}, error_cls=ModelFolderError)
    with pytest.raises(InvalidInputError, match="must be a dict"):
        ClassTree.from_node_link([1, 2])
    with pytest.raises(ModelFolderError, match="expected 3"):
        ClassTree.from_node_link(four.to_node_link(), n_classes=3, error_cls=ModelFolderError)


def test_insert_class_appends(four: ClassTree) -> None:
    changed = four.insert_class(4, sibling_node=6)  # class 2's leaf
    # new internal 7 replaces leaf 6 under node 2; new leaf 8 holds class 4
    assert changed == {7, 8, 2, 0}
    four.validate(n_classes=5)
    assert four.children(2) == (5, 7)
    assert four.children(7) == (6, 8)
    assert four.classes(7) == (2, 4)
    assert four.classes(2) == (1, 2, 4)
    assert four.path_to_class(4) == [0, 2, 7, 8]


def test_insert_class_shifts_indices(four: ClassTree) -> None:
    changed = four.insert_class(0, sibling_node=1)
    assert changed == {0, 7, 8}
    four.validate(n_classes=5)
    assert four.classes(8) == (0,)
    assert four.classes(7) == (0, 1, 4)  # old {0, 3} shifted to {1, 4}, plus new 0
    assert four.classes(1) == (1, 4)  # membership unchanged, only renumbered
    assert four.children(0) == (2, 7)  # children are ordered by node id
    assert four.to_nested() == ((2, 3), ((1, 4), 0))


def test_insert_next_to_root(four: ClassTree) -> None:
    changed = four.insert_class(4, sibling_node=0)
    assert changed == {0, 7, 8}
    four.validate(n_classes=5)
    assert four.children(0) == (7, 8)
    assert four.children(7) == (1, 2)
    assert four.classes(7) == (0, 1, 2, 3)
    assert four.depth == 3


def test_insert_errors(four: ClassTree) -> None:
    with pytest.raises(InvalidInputError, match="0..4"):
        four.insert_class(6, sibling_node=1)
    with pytest.raises(InvalidInputError, match="no node 42"):
        four.insert_class(4, sibling_node=42)
    four.validate(n_classes=4)  # untouched after a failed insert


def test_remove_class(four: ClassTree) -> None:
    tree = ClassTree.from_nested(((0, 3), (1, (2, 4))))
    # leaves: class 2 under node 6 = {2, 4}
    node_24 = tree.parent(tree.leaf_of_class(2))
    sibling = tree.leaf_of_class(4)
    changed = tree.remove_class(2)
    assert changed == {0, 2}
    tree.validate(n_classes=4)
    assert node_24 not in tree.graph
    assert tree.parent(sibling) == 2
    assert tree.classes(sibling) == (3,)  # class 4 renumbered to 3
    assert tree.to_nested() == ((0, 2), (1, 3))


def test_remove_child_of_root() -> None:
    tree = ClassTree.from_nested((0, (1, 2)))
    changed = tree.remove_class(0)
    assert changed == {0}
    tree.validate(n_classes=2)
    assert tree.children(0) == (3, 4)
    assert tree.to_nested() == (0, 1)


def test_remove_errors() -> None:
    tree = ClassTree.from_nested((0, 1))
    with pytest.raises(InvalidInputError, match="at least 2 classes"):
        tree.remove_class(0)
    with pytest.raises(InvalidInputError, match="class 5"):
        tree.remove_class(5)


def test_insert_then_remove_round_trip(four: ClassTree) -> None:
    before = four.to_nested()
    four.insert_class(2, sibling_node=3)
    four.remove_class(2)
    assert four.to_nested() == before


def test_render_text(four: ClassTree) -> None:
    text = four.render_text(["cat", "dog", "eel", "fox"])
    assert text.splitlines() == [
        "node 0: {cat, dog, eel, fox}",
        "|-- node 1: {cat, fox}",
        "|   |-- node 3: cat",
        "|   `-- node 4: fox",
        "`-- node 2: {dog, eel}",
        "    |-- node 5: dog",
        "    `-- node 6: eel",
    ]
    assert four.render_text(max_listed=2).splitlines()[0] == "node 0: 4 classes"
    with pytest.raises(InvalidInputError, match="3 class names"):
        four.render_text(["a", "b", "c"])


def test_next_leaf_id_is_the_id_insert_class_gives(four: ClassTree) -> None:
    new_leaf = four.next_leaf_id()
    four.insert_class(4, sibling_node=6)
    assert four.leaf_of_class(4) == new_leaf


def test_replace_subtree_keeps_leaves_and_top() -> None:
    chain = ClassTree.from_nested((0, (1, (2, 3))))
    leaves = {c: chain.leaf_of_class(c) for c in range(4)}
    top = chain.parent(leaves[1])
    old_inner = chain.parent(leaves[2])
    removed, added = chain.replace_subtree(top, ClassTree.from_nested(((0, 1), 2)), [1, 2, 3])
    chain.validate(n_classes=4)
    assert chain.to_nested() == (0, (3, (1, 2)))  # children listed by id: the new inner node is the newest
    assert {c: chain.leaf_of_class(c) for c in range(4)} == leaves
    assert chain.parent(leaves[1]) != top and chain.parent(chain.parent(leaves[1])) == top
    assert removed == [old_inner] and len(added) == 1 and added[0] > max(leaves.values())
    assert chain.classes(added[0]) == (1, 2)


def test_replace_subtree_refuses_other_classes() -> None:
    chain = ClassTree.from_nested((0, (1, (2, 3))))
    top = chain.parent(chain.leaf_of_class(1))
    with pytest.raises(InvalidInputError, match="holds classes"):
        chain.replace_subtree(top, ClassTree.from_nested((0, 1)), [1, 2])

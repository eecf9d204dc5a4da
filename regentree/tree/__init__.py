"""Tree mode: class similarity, binary class-tree builders, `ClassTree`, routing rules (no torch here)."""

from regentree.tree.builder import BUILDERS, build_tree
from regentree.tree.class_tree import ClassTree
from regentree.tree.routing import (
    ROUTING_RULES,
    GatedRouting,
    HardRouting,
    RoutingResult,
    SoftRouting,
    register_routing,
    routing_named,
)
from regentree.tree.similarity import (
    SIMILARITIES,
    check_distance_matrix,
    cross_distortion_distance,
    get_similarity,
    mean_distance,
)

__all__ = [
    "BUILDERS",
    "ROUTING_RULES",
    "SIMILARITIES",
    "ClassTree",
    "GatedRouting",
    "HardRouting",
    "RoutingResult",
    "SoftRouting",
    "build_tree",
    "check_distance_matrix",
    "cross_distortion_distance",
    "get_similarity",
    "mean_distance",
    "register_routing",
    "routing_named",
]

"""`classify --explain`: each probe's steps, cut to the best few candidates, with the step that decided marked.

A verdict's KL is the smallest KL of its steps (a tree's weakest routing step; a flat model has one step,
best class against second best), so that step is the one compared with the KL threshold and is marked.
The same explanation, as JSON-able dicts, goes to the text display and to `classify --json`.
"""

from __future__ import annotations

from typing import Optional

from regentree.cli.common import fmt

SHORTLIST = 5  # candidates (classes or tree nodes) shown per step; the others are only counted
DECIDING_MARK = ">>"


def _step_kl(step: dict) -> float:
    """The KL a trace step measured: a tree routing step's "kl", a flat step's "kl_first_second"."""
    return float(step["kl"] if "kl" in step else step["kl_first_second"])


def deciding_step(steps: list[dict]) -> Optional[int]:
    """Index of the step whose KL is the verdict's KL (the smallest; the first of equals); None without steps."""
    if not steps:
        return None
    kls = [_step_kl(step) for step in steps]
    return kls.index(min(kls))


def _is_routing_step(step: dict) -> bool:
    """Whether a trace step is a tree routing step (`regentree.tree.routing.RoutingResult.trace`)."""
    return {"node", "children", "children_classes", "mean_distance", "kl", "chosen"} <= set(step)


def _short_routing_step(step: dict) -> dict:
    """A tree step with the `SHORTLIST` best-scored compared nodes (the chosen one always among them)."""
    n = len(step["children"])
    scores = step.get("score", step["mean_distance"])
    chosen = step["children"].index(step["chosen"])
    shown = sorted(range(n), key=lambda pos: scores[pos])[:SHORTLIST]
    if chosen not in shown:
        shown[-1] = chosen
    compared = [{"node": step["children"][pos], "classes": step["children_classes"][pos][:SHORTLIST],
                 "n_classes": len(step["children_classes"][pos]), "mean_distance": step["mean_distance"][pos],
                 "score": scores[pos]} for pos in sorted(shown)]
    return {"node": step["node"], "compared": compared, "more": n - len(shown), "kl": step["kl"],
            "chosen": step["chosen"]}


def _short_flat_step(step: dict) -> dict:
    """A flat step with the `SHORTLIST` closest classes and their distance; the other classes are counted."""
    distance_key = next(key for key in step if key.endswith("_distance"))
    shown = min(SHORTLIST, len(step["closest"]))
    closest = [{"class": name, "distance": distance}
               for name, distance in zip(step["closest"][:shown], step[distance_key][:shown])]
    return {"closest": closest, "distance": distance_key.removesuffix("_distance"),
            "more": step.get("n_classes", len(step["closest"])) - shown, "kl": step["kl_first_second"],
            "draws": step.get("draws")}


def explanation(steps: list[dict]) -> list[dict]:
    """The steps of one probe's trace, shortened, each with "decides" true on the step that decided."""
    decides = deciding_step(steps)
    shortened = []
    for i, step in enumerate(steps):
        if _is_routing_step(step):
            short = _short_routing_step(step)
        elif "closest" in step and "kl_first_second" in step:
            short = _short_flat_step(step)
        else:
            short = dict(step)
        shortened.append({**short, "decides": i == decides})
    return shortened


def _in_braces(node: dict) -> str:
    """"{a, b, ... (+N)}": the class names kept for a compared node and a count of the others."""
    rest = node["n_classes"] - len(node["classes"])
    return "{" + ", ".join(node["classes"]) + (f", ... (+{rest})" if rest > 0 else "") + "}"


def _more(count: int) -> str:
    """" ... N more" for candidates left out of a step's short list; nothing when none were."""
    return f" ... {count} more" if count > 0 else ""


def format_step(step: dict) -> str:
    """One line of an `explanation` step: a tree routing step or a flat ranking in words."""
    if "compared" in step:
        nodes = [f"node {c['node']} {_in_braces(c)}" for c in step["compared"]]
        chosen = next(c for c in step["compared"] if c["node"] == step["chosen"])
        line = (f"node {step['node']}: {' vs '.join(nodes)}{_more(step['more'])} | "
                f"mean distance {' vs '.join(fmt(c['mean_distance']) for c in step['compared'])} | "
                f"KL {fmt(step['kl'])} | chose node {chosen['node']} {_in_braces(chosen)}")
    elif "closest" in step:
        ranked = ", ".join(f"{c['class']} {fmt(c['distance'], 3)}" for c in step["closest"])
        best_two = " || ".join(str(c["class"]) for c in step["closest"][:2])
        line = (f"closest classes ({step['distance']} distance): {ranked}{_more(step['more'])} | "
                f"KL({best_two}) {fmt(step['kl'])}" + (f" | {step['draws']} draws" if step.get("draws") else ""))
    else:
        line = ", ".join(f"{k}={v}" for k, v in step.items() if k != "decides")
    return line


def explanation_lines(steps: list[dict], kl_threshold: Optional[float]) -> list[str]:
    """The display of one probe's `explanation`: one line per step, the deciding one marked with the rule."""
    lines = []
    for step in steps:
        line = format_step(step)
        if step["decides"]:
            rule = ("no KL rule in force" if kl_threshold is None else
                    f"KL {fmt(step['kl'])} {'<' if step['kl'] < kl_threshold else '>='} threshold "
                    f"{fmt(kl_threshold, 3)}: {'doubtful' if step['kl'] < kl_threshold else 'not doubtful'}")
            lines.append(f"{DECIDING_MARK} {line}  <- decided the verdict ({rule})")
        else:
            lines.append(f"{' ' * len(DECIDING_MARK)} {line}")
    return lines

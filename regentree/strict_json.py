"""JSON from untrusted files: no NaN/Infinity literals or overflowing floats, bounded integers, bounded nesting, one-line errors.

Model manifests, trees and configs are read through `loads_strict`, so a hostile file cannot crash the
parser (RecursionError on 100k nested lists), spend minutes on a 5000-digit integer, or smuggle NaN in.
"""

from __future__ import annotations

import json

from regentree.errors import RegentreeError
from regentree.limits import limit


def _refuse_constant(name: str):
    raise ValueError(f"the literal {name} is not JSON")


def _bounded_int(text: str) -> int:
    digits = limit("max_int_digits")
    if len(text.lstrip("-")) > digits:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (more than {digits})")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} overflows a float")
    return value


def _depth(value) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), walked without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads_strict(text: str, where: str, error_cls: type[RegentreeError]):
    """Parse `text` (the contents of `where`) or raise `error_cls` with one line naming `where`."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int,
                           parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise error_cls(f"{where}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except ValueError as exc:
        raise error_cls(f"{where}: refused JSON ({exc})") from None
    except RecursionError:
        raise error_cls(f"{where}: JSON nested too deeply") from None
    if _depth(value) > limit("max_json_depth"):
        raise error_cls(f"{where}: JSON nested deeper than {limit('max_json_depth')} levels "
                        "(raise REGENTREE_MAX_JSON_DEPTH if this is a genuine file)")
    return value

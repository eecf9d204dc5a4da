"""Declared parameter constraints, checked once at `fit` (scikit-learn's `_parameter_constraints` pattern).

An estimator holds a table `{name: [constraint, ...]}`; a value passes when any constraint of its list
accepts it. Integers never accept floats or booleans (3.7 is not silently truncated to 3), reals are
finite unless a bound says otherwise, and every bound that guards memory (K, widths) reads `regentree.limits`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable, Optional, Union

import numpy as np

from regentree.errors import ConfigError
from regentree.limits import limit

Bound = Union[float, str, None]  # a number, the name of a `regentree.limits` entry, or None (unbounded)


def _resolve(bound: Bound) -> Optional[float]:
    return limit(bound) if isinstance(bound, str) else bound


def is_integer(value) -> bool:
    """True for Python and numpy integers, False for booleans and floats (even 3.0)."""
    return isinstance(value, (Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """True for integers and floats that are not booleans or NaN."""
    return isinstance(value, (Real, np.number)) and not isinstance(value, (bool, np.bool_)) and not math.isnan(value)


@dataclass(frozen=True)
class Interval:
    """A number of `kind` ("int" or "real") in [low, high]; `closed` says which ends belong to it."""

    kind: str
    low: Bound = None
    high: Bound = None
    closed: str = "both"  # "both", "left", "right" or "neither"
    allow_inf: bool = False

    def accepts(self, value) -> bool:
        if not (is_integer(value) if self.kind == "int" else is_real(value)):
            return False
        if math.isinf(value) and not self.allow_inf:
            return False
        low, high = _resolve(self.low), _resolve(self.high)
        if low is not None and (value < low or (value == low and self.closed in ("right", "neither"))):
            return False
        return not (high is not None and (value > high or (value == high and self.closed in ("left", "neither"))))

    def describe(self) -> str:
        """E.g. "an integer >= 1 (at most 65536, env REGENTREE_MAX_LATENT_DIM)" or "a finite number in (0, 1]"."""
        noun = "an integer" if self.kind == "int" else "a finite number"
        low, high = _resolve(self.low), _resolve(self.high)
        if low is not None and high is not None and not isinstance(self.high, str):
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            return f"{noun} in {left}{low:g}, {high:g}{right}"
        parts = []
        if low is not None:
            parts.append(f"{'>=' if self.closed in ('both', 'left') else '>'} {low:g}")
        if high is not None and not isinstance(self.high, str):
            parts.append(f"{'<=' if self.closed in ('both', 'right') else '<'} {high:g}")
        text = f"{noun} {' and '.join(parts)}" if parts else noun
        if isinstance(self.high, str):
            text += f" (at most {high:g}, env REGENTREE_{self.high.upper()})"
        return text


@dataclass(frozen=True)
class Options:
    """One of a set of strings: a tuple, or a registry dict whose keys are read at each check (so a name
    registered after import, e.g. by `regentree.tree.register_routing` or added to `BUILDERS`, is accepted)."""

    choices: Union[tuple, dict]

    def accepts(self, value) -> bool:
        return isinstance(value, str) and value in self.choices

    def describe(self) -> str:
        return f"one of {sorted(self.choices)}"


@dataclass(frozen=True)
class Sequence:
    """A list or tuple of `min_length`..`max_length` items, each accepted by `item`."""

    item: Any
    min_length: int = 0
    max_length: Bound = None

    def accepts(self, value) -> bool:
        if not isinstance(value, (list, tuple)):
            return False
        longest = _resolve(self.max_length)
        if len(value) < self.min_length or (longest is not None and len(value) > longest):
            return False
        return all(self.item.accepts(v) for v in value)

    def describe(self) -> str:
        longest = _resolve(self.max_length)
        length = f"{self.min_length}..{longest:g}" if longest is not None else f"at least {self.min_length}"
        return f"a list of {length} items, each {self.item.describe()}"


@dataclass(frozen=True)
class Check:
    """Any value `test` accepts, described by `text` (for types such as a string or a backend object)."""

    test: Callable[[Any], bool]
    text: str

    def accepts(self, value) -> bool:
        return self.test(value)

    def describe(self) -> str:
        return self.text


NONE = Check(lambda v: v is None, "None")
BOOLEAN = Check(lambda v: isinstance(v, (bool, np.bool_)), "a boolean (true/false)")
STRING = Check(lambda v: isinstance(v, str), "a string")


def _short(value) -> str:
    """repr of `value`, cut to 60 characters (a hostile value may be a 5000-digit number or a huge list)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_params(owner: str, params: dict, constraints: dict) -> None:
    """Raise a one-line `ConfigError` for the first parameter that no constraint of its list accepts."""
    for name, allowed in constraints.items():
        if name not in params:
            continue
        value = params[name]
        if not any(constraint.accepts(value) for constraint in allowed):
            if all(isinstance(constraint, Options) for constraint in allowed):  # the wording of `check_choice`
                choices = sorted({choice for constraint in allowed for choice in constraint.choices})
                raise ConfigError(f"{name}={_short(value)} is unknown; choose one of {choices}")
            wanted = " or ".join(constraint.describe() for constraint in allowed)
            raise ConfigError(f"{owner}: {name} must be {wanted}, got {_short(value)}")


def check_choice(name: str, value: str, registry: dict) -> None:
    """Raise `ConfigError` unless `value` is a key of `registry`."""
    if value not in registry:
        raise ConfigError(f"{name}={value!r} is unknown; choose one of {sorted(registry)}")

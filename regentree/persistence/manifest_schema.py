"""The declared schema of a model manifest (flat / tree / ensemble), checked before any field is used.

A tampered or hand-edited manifest fails here in one line naming the file and the field, instead of
deep inside loading with a traceback or an allocation sized by a hostile number. Sizes are bounded by
`regentree.limits`; the estimator's own parameters are checked later by its `_parameter_constraints`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regentree.constraints import BOOLEAN, NONE, STRING, Check, Interval, Options, is_real
from regentree.errors import ModelFolderError


class SchemaError(Exception):
    """A value breaks the schema at a dotted path (turned into a `ModelFolderError` naming the file)."""


@dataclass(frozen=True)
class Obj:
    """A JSON object with `required` and `optional` fields, each checked by its schema; other keys allowed."""

    required: dict = field(default_factory=dict)
    optional: dict = field(default_factory=dict)

    def check(self, value, path: str) -> None:
        if not isinstance(value, dict):
            raise SchemaError(f"{path} must be an object, got {type(value).__name__}")
        for name, schema in self.required.items():
            if name not in value:
                raise SchemaError(f"{path}.{name} is missing")
            check(schema, value[name], f"{path}.{name}")
        for name, schema in self.optional.items():
            if name in value:
                check(schema, value[name], f"{path}.{name}")


@dataclass(frozen=True)
class ListOf:
    """A JSON list of `min_length`..`max_length` (a limit name or a number) items of one schema."""

    item: Any
    min_length: int = 0
    max_length: Any = "max_count"
    unique: bool = False

    def check(self, value, path: str) -> None:
        from regentree.limits import limit

        if not isinstance(value, list):
            raise SchemaError(f"{path} must be a list, got {type(value).__name__}")
        longest = limit(self.max_length) if isinstance(self.max_length, str) else self.max_length
        if not self.min_length <= len(value) <= longest:
            raise SchemaError(f"{path} must hold {self.min_length}..{longest} items, holds {len(value)}")
        for i, item in enumerate(value):
            check(self.item, item, f"{path}[{i}]")
        if self.unique and len({repr(v) for v in value}) != len(value):
            raise SchemaError(f"{path} holds duplicates")


@dataclass(frozen=True)
class MapOf:
    """A JSON object of any keys whose values share one schema."""

    value: Any

    def check(self, value, path: str) -> None:
        if not isinstance(value, dict):
            raise SchemaError(f"{path} must be an object, got {type(value).__name__}")
        for key, item in value.items():
            check(self.value, item, f"{path}.{key}")


@dataclass(frozen=True)
class AnyOf:
    """A value accepted by any one of several leaf constraints (`regentree.constraints`)."""

    options: tuple

    def check(self, value, path: str) -> None:
        if not any(option.accepts(value) for option in self.options):
            wanted = " or ".join(option.describe() for option in self.options)
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise SchemaError(f"{path} must be {wanted}, got {shown}")


@dataclass(frozen=True)
class Nullable:
    """None, or a value of `schema`."""

    schema: Any

    def check(self, value, path: str) -> None:
        if value is not None:
            check(self.schema, value, path)


def check(schema, value, path: str) -> None:
    """Check `value` at `path` against a schema node or a leaf constraint."""
    (schema if hasattr(schema, "check") else AnyOf((schema,))).check(value, path)


def _plain_name(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 255 and not set(value) & {"/", "\\", "\0"} \
        and value not in (".", "..")


def _relative_file(value) -> bool:
    """A '/'-separated relative path without NUL or backslash (escapes by '..' are refused where it is resolved)."""
    return isinstance(value, str) and 0 < len(value) <= 1024 and not set(value) & {"\\", "\0"} \
        and not value.startswith("/")


NAME = Check(_plain_name, "a plain name (no path separator or NUL, at most 255 characters)")
RELATIVE_FILE = Check(_relative_file, "a relative path ('/'-separated, no NUL or backslash)")
SHA256 = Check(lambda v: isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v),
               "a hex sha256")
NUMBER = Check(lambda v: is_real(v) and math.isfinite(v), "a finite number")
THRESHOLD = AnyOf((NONE, Interval("real", 0, None, allow_inf=True)))
COUNT = Interval("int", 0, "max_count")

VAE_CONFIG = Obj(required={
    "input_dim": Interval("int", 1, "max_input_dim"),
    "hidden_dims": ListOf(Interval("int", 1, "max_hidden_dim"), 0, "max_hidden_layers"),
    "latent_dim": Interval("int", 1, "max_latent_dim"),
    "architecture": STRING,
})
VAE_ENTRY = Obj(
    required={"key": NAME, "config": VAE_CONFIG, "classes": ListOf(Interval("int", 0, "max_classes"), 0, "max_classes",
                                                                     unique=True),
              "file": RELATIVE_FILE, "sha256": SHA256},
    optional={"training": Obj(optional={"train_loss": ListOf(NUMBER), "val_loss": ListOf(NUMBER),
                                        "epochs_run": COUNT, "best_epoch": COUNT})},
)
CLASSES = Obj(required={"dtype": Options(("int", "str")), "values": ListOf(AnyOf((
    Interval("int", -(2**63), 2**63 - 1), Check(lambda v: isinstance(v, str) and "\0" not in v, "a string"))),
    1, "max_classes", unique=True)})
CALIBRATION = Obj(optional={
    **{name: AnyOf((NONE, Interval("real", 0, 1))) for name in (
        "max_rejection", "max_selective_error", "confidence", "rejection_rate", "selective_error", "accuracy",
        "p_miss", "accuracy_no_rejection")},
    "kl_threshold": THRESHOLD, "novelty_threshold": THRESHOLD, "rule": STRING, "source": STRING,
    **{name: COUNT for name in ("n_calibration", "rejected_doubtful", "rejected_unseen")},
})
HEAD = {
    "format": STRING, "format_version": Interval("int", 0, None), "estimator": STRING, "params": Obj(),
    "classes": CLASSES, "n_features": Interval("int", 1, "max_input_dim"),
    "image_shape": ListOf(Interval("int", 1, "max_input_dim"), 2, 2),
}
HEAD_OPTIONAL = {
    "package_version": STRING, "calibrated": BOOLEAN, "calibration": Nullable(CALIBRATION),
    "rejection": Obj(required={"kl_threshold": THRESHOLD, "novelty_threshold": AnyOf((NONE, Interval("real", 0, 1)))}),
}
MODEL = Obj(
    required={**HEAD, "vaes": ListOf(VAE_ENTRY, 1, "max_classes")},
    optional={**HEAD_OPTIONAL, "novelty_reference": MapOf(ListOf(NUMBER)), "novelty_reference_setup": Obj(),
              "extra": Obj(optional={"vae_keys": ListOf(NAME, 0, "max_classes", unique=True),
                                     "routing": STRING, "routing_step_kl": ListOf(ListOf(Interval("real", 0, None)), 0, "max_classes")}),
              "base_vae": VAE_ENTRY, "tree_sha256": SHA256},
)
ENSEMBLE = Obj(
    required={**HEAD, "members": ListOf(Obj(required={"folder": RELATIVE_FILE, "manifest_sha256": SHA256}),
                                        2, "max_classes")},
    optional=HEAD_OPTIONAL,
)


SCHEMAS = {"flat": MODEL, "tree": MODEL, "ensemble": ENSEMBLE}
"""The manifest schema of each estimator kind."""


def schema_for(manifest) -> Obj:
    """The schema of the kind `manifest` names (`MODEL` for an unknown one: loading then names the kind)."""
    return SCHEMAS.get(manifest.get("estimator") if isinstance(manifest, dict) else None, MODEL)


def check_manifest(manifest, file: Path) -> None:
    """Raise a one-line `ModelFolderError` naming `file` and the field unless `manifest` fits its kind's schema."""
    try:
        schema_for(manifest).check(manifest, "manifest")
        keys = [entry["key"] for entry in manifest.get("vaes", [])]
        if len(set(keys)) != len(keys):
            raise SchemaError("manifest.vaes holds the same key twice")
    except SchemaError as exc:
        raise ModelFolderError(f"{file}: {exc}") from None
    height, width = manifest["image_shape"]
    if height * width != manifest["n_features"]:
        raise ModelFolderError(f"{file}: image_shape {manifest['image_shape']} does not hold n_features="
                               f"{manifest['n_features']} pixels")

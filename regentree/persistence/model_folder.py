"""A fitted model is a folder: `manifest.json`, optional `tree.json`, `vaes/<key>.safetensors` and `run.json`.

Saving replaces only a missing or empty folder or a regentree model folder; it writes a hidden sibling and swaps
it in atomically under a lock (`regentree.persistence.folder_swap`), so an interrupted save leaves the old model or the new
one. What differs from run to run (timings) goes to `run.json` (`regentree.persistence.run_record`), so the same seed gives
the same manifest bytes. Loading first repairs an interrupted save, then reads only JSON and safetensors (never
pickle: no code runs), checks the manifest against its declared schema (`regentree.persistence.manifest_schema`), the format
version, every file's presence and sha256, tensor shapes in the safetensors header against the configs before any
weight is allocated, and that every weight is a finite float (`regentree.persistence.weights_check`).

Persistence is I/O only: a model hands over its `FittedState` (`regentree.persistence.fitted_state`), which is
written to files, and loading reads the files into a state that the estimator of the manifest's kind rebuilds
itself from (`_from_fitted_state`), checking that the parts fit. A state with members is written as one model
folder per member.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from regentree import __version__
from regentree.errors import ConfigError, ModelFolderError
from regentree.estimators.keys import BASE_KEY
from regentree.persistence.fitted_state import FittedState, StateError, StoredVAE
from regentree.persistence.folder_swap import fault, recover_if_interrupted, replace_folder
from regentree.persistence.run_record import RUN_FILE, build_run_record, model_part, read_vae_runs, run_part
from regentree.limits import limit
from regentree.persistence.manifest_schema import check_manifest, schema_for
from regentree.strict_json import loads_strict
from regentree.vae.model import VAE, VAEConfig
from regentree.persistence.weights_check import check_finite, check_header_against_config

FORMAT_NAME = "regentree-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TREE_FILE = "tree.json"
VAE_DIR = "vaes"
MEMBER_DIR = "members"
# loads tried again when the folder was swapped by a concurrent save while being read
SWAPPED_WHILE_READING_RETRIES = 3


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _strict(value):
    """`value` with arrays made lists and non-finite floats strict JSON: +-inf -> "inf"/"-inf" (read back by
    `_finite`), NaN -> null."""
    if isinstance(value, np.ndarray):
        return _strict(value.tolist())
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _finite(value):
    """Inverse of `_strict` for infinities: the strings "inf"/"-inf" become floats again."""
    if isinstance(value, str) and value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(_strict(data), indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")


def write_file_atomically(path: Union[str, Path], data: bytes) -> Path:
    """Write `data` to `path` through a temporary sibling and a rename, so a crash leaves the old file
    or the new one, never a part; missing parent folders are made. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _json_params(params: dict) -> dict:
    """Constructor parameters as JSON values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def _classes_to_json(classes: np.ndarray) -> dict:
    kind = "int" if np.issubdtype(classes.dtype, np.integer) else "str"
    values = [int(c) for c in classes] if kind == "int" else [str(c) for c in classes]
    return {"dtype": kind, "values": values}


def _classes_from_json(data: dict, where: Path) -> np.ndarray:
    try:
        kind, values = data["dtype"], data["values"]
        return np.array(values, dtype=np.int64 if kind == "int" else str)
    except (KeyError, TypeError, ValueError):
        raise ModelFolderError(f"{where}: 'classes' must be {{'dtype': 'int'|'str', 'values': [...]}}") from None


def save_model(model, path: Union[str, Path]) -> Path:
    """Write a fitted estimator (flat, tree or ensemble) to folder `path` atomically; returns the path.

    `path` must be missing, an empty folder or a regentree model folder (`check_model_destination`). The new
    folder is written as a hidden sibling and swapped in under a lock: a crash at any point leaves either the
    old model or the new one, never a mix, and concurrent saves run one after the other.
    """
    state = model._fitted_state()
    path = Path(path)
    replace_folder(path, lambda folder: _write_state(state, folder), check=check_model_destination,
                   is_complete=_is_complete)
    return path


def check_model_destination(path: Union[str, Path]) -> None:
    """Refuse in one line a `path` that saving must not replace: anything but a missing or empty folder or a
    regentree model folder (manifest with the format marker and a known kind). Commands call it before training."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        reason = "it is not a folder"
    elif not any(path.iterdir()):
        return
    else:
        reason = _not_a_model_reason(path)
    if reason:
        raise ModelFolderError(f"{path} exists and is not a regentree model folder ({reason}); refusing to replace it")


def _not_a_model_reason(folder: Path) -> str:
    """Why the non-empty `folder` is not a regentree model folder, or "" if it is one."""
    from regentree.estimators import ESTIMATORS

    file = folder / MANIFEST
    if not file.is_file():
        return f"no {MANIFEST}"
    try:
        manifest = loads_strict(file.read_text(encoding="utf-8"), str(file), ModelFolderError)
    except (OSError, ValueError, ModelFolderError):
        return f"{MANIFEST} is not readable JSON"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        return f"{MANIFEST} has no format {FORMAT_NAME!r}"
    if not isinstance(manifest.get("estimator"), str) or manifest["estimator"] not in ESTIMATORS:
        return f"{MANIFEST} names no known estimator kind"
    return ""


def _is_complete(folder: Path) -> bool:
    """Whether the leftover `folder` of an interrupted save holds a whole model (it loads)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _load_folder(folder)
    except Exception:  # any failure to load means a partial folder, never worth restoring
        return False
    return True


def _write_state(state: FittedState, folder: Path) -> None:
    """A fitted state into the empty folder `folder`: one model folder per member (`members/<i>/`, hashed), the VAE
    weights, the tree, the run record, and the manifest last (a folder without one is partial)."""
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "estimator": state.kind,
        "params": _json_params(state.params),
        "classes": _classes_to_json(state.classes),
        "n_features": int(state.n_features),
        "image_shape": list(state.image_shape),
    }
    members = [_write_member(member, folder, i) for i, member in enumerate(state.members)]
    if state.vaes:
        (folder / VAE_DIR).mkdir()
    manifest["vaes"] = [_write_vae(folder, key, stored) for key, stored in state.vaes.items()]
    manifest.update(rejection=state.rejection, calibrated=state.calibrated_rule is not None,
                    calibration=state.calibration)
    for key in ("novelty_reference", "novelty_reference_setup", "extra"):
        if getattr(state, key) is not None:
            manifest[key] = getattr(state, key)
    if members:
        manifest["members"] = members
    training = {key: stored.training for key, stored in state.vaes.items()}
    if state.base_vae is not None:
        training[BASE_KEY] = state.base_vae.training
        manifest["base_vae"] = _write_vae(folder, BASE_KEY, state.base_vae)
    if state.tree is not None:
        _write_json(folder / TREE_FILE, state.tree)
        manifest["tree_sha256"] = sha256_of(folder / TREE_FILE)
    _write_json(folder / RUN_FILE, build_run_record({key: run_part(info) for key, info in training.items()}))
    fault("weights_written")
    _write_json(folder / MANIFEST, manifest)


def _write_member(state: FittedState, folder: Path, i: int) -> dict:
    """Member `i` as its own model folder under `folder`/members/; returns its manifest entry."""
    member_folder = folder / MEMBER_DIR / str(i)
    member_folder.mkdir(parents=True)
    _write_state(state, member_folder)
    return {"folder": f"{MEMBER_DIR}/{i}", "manifest_sha256": sha256_of(member_folder / MANIFEST)}


def _write_vae(folder: Path, key: str, stored: StoredVAE) -> dict:
    """Write one VAE's weights under `folder`/vaes/ and return its manifest entry."""
    file = f"{VAE_DIR}/{key}.safetensors"
    tensors = {k: v.detach().cpu().contiguous() for k, v in stored.vae.state_dict().items()}
    # one metadata entry only: safetensors writes a metadata map in random order, so the same
    # weights would hash differently from save to save (the key is in the file name and manifest)
    save_file(tensors, str(folder / file), metadata={"format": FORMAT_NAME})
    return {"key": key, "config": stored.vae.config.to_dict(), "classes": list(stored.classes), "file": file,
            "sha256": sha256_of(folder / file), "training": model_part(stored.training)}


def read_manifest(path: Union[str, Path]) -> dict:
    """Parse and check the manifest of model folder `path`."""
    path = Path(path)
    file = path / MANIFEST
    if not path.is_dir():
        raise ModelFolderError(f"{path}: no such model folder")
    if not file.is_file():
        raise ModelFolderError(f"{file}: missing; {path} is not a regentree model folder")
    if file.stat().st_size > limit("max_manifest_bytes"):
        raise ModelFolderError(f"{file}: {file.stat().st_size} bytes, more than a manifest may hold "
                               f"({limit('max_manifest_bytes')}; raise REGENTREE_MAX_MANIFEST_BYTES)")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFolderError(f"{file}: not valid JSON ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    manifest = loads_strict(text, str(file), ModelFolderError)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFolderError(f"{file}: not a regentree manifest (format must be {FORMAT_NAME!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(
            f"{file}: format version {manifest.get('format_version')!r} is not supported "
            f"(this regentree {__version__} reads version {FORMAT_VERSION})"
        )
    missing = set(schema_for(manifest).required) - set(manifest)
    if missing:
        raise ModelFolderError(f"{file}: missing keys {sorted(missing)}")
    for key in ("params", "rejection", "calibration"):  # the numbers that may be infinite
        if key in manifest:
            manifest[key] = _finite(manifest[key])
    check_manifest(manifest, file)
    return manifest


def _load_vae(folder: Path, entry: dict) -> tuple[str, VAE, list[int]]:
    """One VAE from its manifest entry, with hash and shape checks."""
    try:
        key, file, expected_hash = entry["key"], entry["file"], entry["sha256"]
        config = VAEConfig.from_dict(entry["config"])
        classes = [int(c) for c in entry["classes"]]
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise ModelFolderError(f"{folder / MANIFEST}: malformed VAE entry {entry.get('key', '?')!r}: {exc}") from None
    target = (folder / file).resolve()
    if folder.resolve() not in target.parents:
        raise ModelFolderError(f"{folder / MANIFEST}: VAE file {file!r} points outside the model folder")
    if not target.is_file():
        raise ModelFolderError(f"{folder / file}: missing weights of VAE {key!r}")
    check_header_against_config(folder / file, config)  # before anything the config sizes is allocated
    if sha256_of(target) != expected_hash:
        raise ModelFolderError(f"{folder / file}: sha256 does not match the manifest (corrupt or tampered file)")
    try:
        tensors = load_file(str(target))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFolderError(f"{folder / file}: unreadable safetensors file ({exc})") from None
    check_finite(folder / file, tensors)
    with torch.device("meta"):  # no random initialisation of weights that are replaced at once
        vae = VAE(config)
    vae.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()}, assign=True)
    return key, vae.eval(), classes


def _with_run(training, run: dict):
    """A VAE's training record from the manifest completed by its run fields from run.json."""
    return {**training, **run} if isinstance(training, dict) else training


def _fall_back_to_cpu_without_cuda(params: dict, folder: Path) -> dict:
    """`params` with the CPU (and a warning) for a model saved with a CUDA device where torch sees none: a model
    trained on a GPU must still load and run on a CPU-only machine."""
    device = str(params.get("device", "cpu"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(f"{folder}: saved with device={device!r}, but torch sees no CUDA device here; using the CPU",
                      stacklevel=4)
        return {**params, "device": "cpu"}
    return params


def load_model(path: Union[str, Path]):
    """Read a model folder written by `save_model` and return the fitted estimator.

    An interrupted save is repaired first; a load that fails because a concurrent save swapped the folder
    while it was read is tried again on the new folder.
    """
    folder = Path(path)
    recover_if_interrupted(folder, _is_complete)
    for _ in range(SWAPPED_WHILE_READING_RETRIES):
        before = _identity(folder)
        try:
            return _load_folder(folder)
        except (ModelFolderError, OSError):
            if _identity(folder) == before:
                raise
    return _load_folder(folder)


def _identity(folder: Path):
    """Which folder is at `folder` now (device and inode), None if none: a swap changes it."""
    try:
        stat = os.stat(folder)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _load_folder(folder: Path):
    """The fitted estimator in model folder `folder`, as it is (no repair)."""
    from regentree.estimators import ESTIMATORS

    state = _read_state(folder)
    try:
        return ESTIMATORS[state.kind]._from_fitted_state(state)
    except StateError as exc:
        source = Path(exc.source)
        where = {"manifest": source / MANIFEST, "tree": source / TREE_FILE}.get(exc.part, source)
        raise ModelFolderError(f"{where}: {exc}") from None


def _read_state(folder: Path) -> FittedState:
    """The fitted state in model folder `folder`: manifest, VAEs, tree and member folders, each file checked."""
    from regentree.estimators import ESTIMATORS

    manifest = read_manifest(folder)
    kind = manifest["estimator"]
    if kind not in ESTIMATORS:
        raise ModelFolderError(f"{folder / MANIFEST}: unknown estimator kind {kind!r}")
    runs = read_vae_runs(folder)
    vaes = {}
    for entry in manifest.get("vaes", []):
        key, vae, classes = _load_vae(folder, entry)
        vaes[key] = StoredVAE(vae, classes, _with_run(entry.get("training", {}), runs.get(key, {})))
    base = None
    if "base_vae" in manifest:
        entry = manifest["base_vae"] if isinstance(manifest["base_vae"], dict) else {}
        key, vae, _ = _load_vae(folder, entry)
        if key != BASE_KEY:
            raise ModelFolderError(f"{folder / MANIFEST}: 'base_vae' does not match the model's VAE config")
        base = StoredVAE(vae, [], _with_run(entry.get("training", {}), runs.get(BASE_KEY, {})))
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in manifest["params"].items()}
    return FittedState(
        kind=kind,
        params=_fall_back_to_cpu_without_cuda(params, folder),
        classes=_classes_from_json(manifest["classes"], folder / MANIFEST),
        n_features=int(manifest["n_features"]),
        image_shape=tuple(int(s) for s in manifest["image_shape"]),
        rejection=manifest.get("rejection"),
        calibrated_rule=manifest.get("rejection") if manifest.get("calibrated") else None,
        calibration=manifest.get("calibration"),
        novelty_reference=manifest.get("novelty_reference"),
        novelty_reference_setup=manifest.get("novelty_reference_setup"),
        extra=manifest.get("extra"),
        vaes=vaes,
        base_vae=base,
        tree=_read_tree(folder, manifest),
        members=tuple(_read_member(folder, entry) for entry in _member_entries(folder, manifest)),
        source=str(folder),
    )


def _read_tree(folder: Path, manifest: dict):
    """The node-link JSON of `tree.json`, checked against its hash; None when the folder has no tree."""
    if not (folder / TREE_FILE).exists() and "tree_sha256" not in manifest:
        return None
    if not (folder / TREE_FILE).is_file():
        raise ModelFolderError(f"{folder / TREE_FILE}: missing, but the manifest lists a tree")
    if sha256_of(folder / TREE_FILE) != manifest.get("tree_sha256"):
        raise ModelFolderError(f"{folder / TREE_FILE}: sha256 does not match the manifest (corrupt or tampered file)")
    return loads_strict((folder / TREE_FILE).read_text(encoding="utf-8"), str(folder / TREE_FILE), ModelFolderError)


def _member_entries(folder: Path, manifest: dict) -> list[dict]:
    """The manifest's member entries (none for a model of VAEs), checked to be objects."""
    entries = manifest.get("members", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ModelFolderError(f"{folder / MANIFEST}: 'members' must list one {{'folder', 'manifest_sha256'}} per member")
    return entries


def _read_member(folder: Path, entry: dict) -> FittedState:
    """The state of one member folder, checked to lie inside `folder` and against its manifest hash."""
    target = (folder / str(entry.get("folder", ""))).resolve()
    if folder.resolve() not in target.parents:
        raise ModelFolderError(f"{folder / MANIFEST}: member folder {entry.get('folder')!r} points outside the ensemble folder")
    if not (target / MANIFEST).is_file():
        raise ModelFolderError(f"{target}: missing member model folder")
    if sha256_of(target / MANIFEST) != entry.get("manifest_sha256"):
        raise ModelFolderError(f"{target / MANIFEST}: sha256 does not match the ensemble manifest (corrupt or tampered file)")
    return _read_state(target)

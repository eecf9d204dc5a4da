"""Model folders: `manifest.json` + `tree.json` + `vaes/*.safetensors` + `run.json`, written atomically.

`fitted_state`: `FittedState`, a fitted estimator as the values a folder holds; `model_folder`: `save_model` /
`load_model`, a state to files and back; `manifest_schema`: the manifest's declared schema, checked
before any field is used; `weights_check`: safetensors headers and values checked before use;
`folder_swap`: one-step atomic folder replacement, the writer lock, recovery; `run_record`: `run.json`.
Loading never executes code (no pickle).
"""

from regentree._lazy import lazy_exports

_EXPORTS = {
    "save_model": "regentree.persistence.model_folder",
    "load_model": "regentree.persistence.model_folder",
    "read_manifest": "regentree.persistence.model_folder",
    "check_manifest": "regentree.persistence.manifest_schema",
    "replace_folder": "regentree.persistence.folder_swap",
    "folder_lock": "regentree.persistence.folder_swap",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["check_manifest", "folder_lock", "load_model", "read_manifest", "replace_folder", "save_model"]

"""A fitted estimator as plain values: what a model folder holds, and what a failed add-class restores.

Each estimator turns its fitted attributes into a `FittedState` (`_fitted_state`) and rebuilds itself from
one (`_from_fitted_state`), checking that the parts fit together; `regentree.persistence.model_folder` only
writes a state to files and reads files into one. A state that breaks what its estimator needs raises a
`StateError` naming the part at fault, which loading turns into a one-line `ModelFolderError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

from regentree.errors import RegentreeError

if TYPE_CHECKING:
    from regentree.vae.model import VAE


class StateError(RegentreeError):
    """A fitted state whose parts do not fit together; `part` is "manifest", "tree" or None (the whole folder)."""

    def __init__(self, message: str, part: Optional[str], source: str):
        super().__init__(message)
        self.part = part
        self.source = source


@dataclass(frozen=True)
class StoredVAE:
    """One VAE of a fitted model: the module, the class indices it was trained on and its training record."""

    vae: VAE
    classes: list[int]
    training: dict


@dataclass(frozen=True)
class FittedState:
    """Everything a fitted estimator is, as values; the manifest's fields plus the VAEs, the tree and the members.

    Attributes
    ----------
    kind : str
        The estimator's kind ("flat", "tree", "ensemble"; `regentree.estimators.registry`).
    params : dict
        Constructor parameters as `get_params` gives them.
    classes : ndarray of shape (n_classes,)
    n_features : int
    image_shape : tuple of int
    rejection : dict
        The rejection rule in force (`RejectionRule.to_dict`).
    calibrated_rule : dict or None
        The calibrated rule, if the model was calibrated, with its `calibration` report.
    calibration : dict or None
    novelty_reference : dict of str to ndarray, or None
        Held-out distortions per VAE key, recorded under `novelty_reference_setup` (None: a folder older than it).
    novelty_reference_setup : dict or None
    extra : dict or None
        Kind-specific JSON fields (a flat model's VAE key per class; a tree's depth, similarity, builder and routing
        step KLs).
    vaes : dict of str to StoredVAE
    base_vae : StoredVAE or None
    tree : dict or None
        Node-link JSON of the class tree.
    members : tuple of FittedState
        An ensemble's members.
    source : str
        The model folder the state was read from ("" for one taken from a model in memory), for errors.
    """

    kind: str
    params: dict
    classes: np.ndarray
    n_features: int
    image_shape: tuple[int, ...]
    rejection: Optional[dict]
    calibrated_rule: Optional[dict]
    calibration: Optional[dict]
    novelty_reference: Optional[dict] = None
    novelty_reference_setup: Optional[dict] = None
    extra: Optional[dict] = None
    vaes: dict = field(default_factory=dict)
    base_vae: Optional[StoredVAE] = None
    tree: Optional[dict] = None
    members: tuple = ()
    source: str = field(default="", compare=False)

    def error(self, part: Optional[str], message: str) -> StateError:
        """A `StateError` about `part` of this state (raise it)."""
        return StateError(message, part, self.source)

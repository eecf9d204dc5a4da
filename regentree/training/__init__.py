"""Training VAEs: seeded, with a validation split, early stopping and optionally a base VAE to start from.

`loop`: `TrainingConfig`, `TrainingTask`, `train_vae` (one VAE on one array); `steps`: one optimisation
step (the `mlp` VAE's hand-derived gradients, or autograd for any architecture); `stacked`:
`train_vaes_stacked`, the independent VAEs of a model as one stacked model; `dispatch`: `run_training_tasks`,
where a model's tasks run (stacked on a GPU, in process, or on a backend's workers).
"""

from regentree._lazy import lazy_exports

_EXPORTS = {
    "TrainingConfig": "regentree.training.loop",
    "TrainingTask": "regentree.training.loop",
    "TrainedVAE": "regentree.training.loop",
    "train_vae": "regentree.training.loop",
    "make_training_step": "regentree.training.loop",
    "train_vaes_stacked": "regentree.training.stacked",
    "run_training_tasks": "regentree.training.dispatch",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "TrainedVAE", "TrainingConfig", "TrainingTask", "make_training_step", "run_training_tasks", "train_vae",
    "train_vaes_stacked",
]

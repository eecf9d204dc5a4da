"""Training one VAE: seeding, early stopping, validation split, errors."""

import numpy as np
import pytest
import torch

from conftest import TINY
from regentree import FlatRegenClassifier
from regentree.errors import ConfigError, InvalidInputError
from regentree.training.steps import AutogradTrainingStep
from regentree.training.loop import TrainingConfig, TrainingTask, learning_rate_at, split_validation, train_vae
from regentree.vae.model import VAEConfig


def _task(X, seed=0, **training):
    config = TrainingConfig(**{"epochs": 8, "batch_size": 32, **training})
    return TrainingTask("class_0", VAEConfig(input_dim=X.shape[1], hidden_dims=(16,), latent_dim=2), config, X, seed)


def test_same_seed_same_weights_other_seed_other_weights(digits_train):
    X = digits_train.X[digits_train.y == 3]
    a, b, c = train_vae(_task(X, 1)), train_vae(_task(X, 1)), train_vae(_task(X, 2))
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert not all(torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)


def test_training_lowers_validation_loss_and_reports_progress(digits_train):
    X = digits_train.X[digits_train.y == 0]
    events = []
    result = train_vae(_task(X, epochs=20), progress=events.append)
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    assert events[-1].done == events[-1].total == 20
    assert len(result.validation_index) == round(0.1 * len(X))


def test_early_stopping_stops_and_keeps_best_epoch(digits_train):
    X = digits_train.X[digits_train.y == 0]
    result = train_vae(_task(X, epochs=200, patience=2, learning_rate=0.05))
    assert result.epochs_run < 200
    assert result.best_epoch == min(result.history, key=lambda h: h["val_loss"])["epoch"]


def test_validation_split_is_seeded_and_disjoint():
    train, val = split_validation(100, 0.2, seed=3)
    assert len(val) == 20 and not set(train) & set(val)
    assert np.array_equal(val, split_validation(100, 0.2, seed=3)[1])


def test_too_few_samples_and_bad_config():
    minimum = TrainingConfig().min_samples
    with pytest.raises(InvalidInputError, match=f"at least {minimum}"):
        train_vae(_task(np.random.rand(minimum - 1, 64).astype(np.float32)))
    with pytest.raises(ConfigError, match="validation_fraction"):
        TrainingConfig(validation_fraction=1.5)


def test_cosine_schedule_anneals_from_the_learning_rate_towards_zero():
    config = TrainingConfig(epochs=4, learning_rate=2e-3, learning_rate_schedule="cosine")
    rates = [learning_rate_at(config, e) for e in range(1, 5)]
    assert rates[0] == pytest.approx(2e-3)
    assert rates[2] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] > 0
    assert learning_rate_at(TrainingConfig(epochs=5, learning_rate=2e-3), 5) == 2e-3
    with pytest.raises(ConfigError, match="learning_rate_schedule"):
        TrainingConfig(learning_rate_schedule="step")


def test_cosine_schedule_changes_training_and_still_learns(digits_train):
    X = digits_train.X[digits_train.y == 5]
    constant = train_vae(_task(X, epochs=12, patience=0))
    cosine = train_vae(_task(X, epochs=12, patience=0, learning_rate_schedule="cosine"))
    assert not torch.equal(constant.state_dict["decoder.0.weight"], cosine.state_dict["decoder.0.weight"])
    assert cosine.history[-1]["val_loss"] < cosine.history[0]["val_loss"]


def test_bfloat16_training_changes_the_products_but_learns_as_well_and_keeps_float32_weights(digits_train):
    X = digits_train.X[digits_train.y == 4]
    full = train_vae(_task(X, epochs=15, patience=0))
    mixed = train_vae(_task(X, epochs=15, patience=0, precision="bfloat16"))
    assert all(t.dtype == torch.float32 for t in mixed.state_dict.values())
    assert not torch.equal(full.state_dict["decoder.0.weight"], mixed.state_dict["decoder.0.weight"])
    assert mixed.history[-1]["val_loss"] < mixed.history[0]["val_loss"]
    assert mixed.history[-1]["val_loss"] == pytest.approx(full.history[-1]["val_loss"], rel=0.05)
    with pytest.raises(ConfigError, match=r"precision.*'float32', 'bfloat16'"):
        TrainingConfig(precision="float16")


def test_worker_processes_reproduce_in_process_training_and_share_the_threads(digits_train):
    from regentree.backends.local import LocalBackend

    tasks = [_task(digits_train.X[digits_train.y == c], seed=c) for c in range(3)]
    here = LocalBackend(1).map(train_vae, tasks)
    workers = LocalBackend(2).map(train_vae, tasks)
    for a, b in zip(here, workers):
        assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    threads = LocalBackend(2).map(_threads_in_worker, [0, 1])
    assert threads == [max(1, torch.get_num_threads() // 2)] * 2


def _threads_in_worker(_):
    return torch.get_num_threads()


def test_estimator_names_a_bad_training_precision_by_its_parameter(digits_train):
    from regentree import FlatRegenClassifier

    with pytest.raises(ConfigError, match=r"training_precision='fp16' is unknown"):
        FlatRegenClassifier(training_precision="fp16").fit(digits_train.X, digits_train.y, image_shape=(8, 8))


DENORMAL = 1e-39
"""A float32 denormal: flushed to zero in arithmetic while `flushing_denormals` is in force."""


def test_train_vae_takes_its_step_factory_and_denormal_flushing_as_arguments(digits_train):
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    X = digits_train.X[digits_train.y == 1]
    seen = []

    def recording_step(vae, learning_rate, precision):
        seen.append(float(torch.tensor([DENORMAL]) * 1.0) == 0.0)  # is flushing in force?
        return AutogradTrainingStep(vae, learning_rate, precision)

    train_vae(_task(X, epochs=2), make_step=recording_step)
    train_vae(_task(X, epochs=2), make_step=recording_step, flush_denormals=False)
    assert seen == [True, False]
    assert float(torch.tensor([DENORMAL]) * 1.0) != 0.0  # flushing is off again after training


class _RecordingClassifier(FlatRegenClassifier):
    """Trains with `train_vae` through the `vae_trainer` hook, noting each task's key."""

    keys: list = []

    @staticmethod
    def vae_trainer(task, progress=None, device="cpu"):
        _RecordingClassifier.keys.append(task.key)
        return train_vae(task, progress=progress, device=device)


def test_an_estimator_subclass_names_the_function_that_trains_its_vaes(digits_train):
    X, labels = digits_train.X[digits_train.y < 3], digits_train.labels[digits_train.y < 3]
    params = {**TINY, "epochs": 2, "base_epochs": 0, "random_state": 0, "rejection_target": None}
    _RecordingClassifier.keys = []
    recorded = _RecordingClassifier(**params).fit(X, labels)
    plain = FlatRegenClassifier(**params).fit(X, labels)
    assert _RecordingClassifier.keys == plain.vae_keys_
    for key in plain.vae_keys_:
        assert all(torch.equal(a, b) for a, b in zip(recorded.vaes_[key].state_dict().values(),
                                                     plain.vaes_[key].state_dict().values()))

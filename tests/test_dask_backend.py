"""Dask backend: same weights and predictions as the local backend, survival of a killed worker, errors.

One `LocalCluster` on loopback (2 worker processes, 1 thread each) serves the whole module; the
estimators reach it through the spec ``dask:tcp://127.0.0.1:PORT``.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("distributed")

import cloudpickle  # noqa: E402  (a dependency of distributed)
from distributed import LocalCluster  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from conftest import TINY  # noqa: E402
from regentree.backends.local import LocalBackend
from regentree.backends.registry import backend_spec, make_backend  # noqa: E402
from regentree.cli import app  # noqa: E402
from regentree.errors import ConfigError, InvalidInputError  # noqa: E402
from regentree.data import load_digits_dataset  # noqa: E402
from regentree.estimators import FlatRegenClassifier, TreeRegenClassifier, selective  # noqa: E402
from regentree.persistence.model_folder import load_model  # noqa: E402
from regentree.training.loop import train_vae  # noqa: E402

SMALL = {**TINY, "epochs": 5, "base_epochs": 0}  # equality, not accuracy, is under test; no in-process base VAE

# workers unpickle this module's task functions by value, whatever their sys.path
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def scheduler():
    """Address of a 2-worker loopback cluster shared by the module's tests."""
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture
def small_shards(monkeypatch):
    """Several scoring shards even for the small digits test set."""
    monkeypatch.setattr(selective, "PROBES_PER_SHARD", 64)


def _assert_same_weights(a, b) -> None:
    assert list(a.vaes_) == list(b.vaes_)
    for key in a.vaes_:
        sa, sb = a.vaes_[key].state_dict(), b.vaes_[key].state_dict()
        assert sa.keys() == sb.keys()
        for name in sa:
            assert torch.equal(sa[name], sb[name]), f"{key}.{name} differs"


def _assert_same_predictions(pa, pb) -> None:
    """Same labels, verdicts and routes; scores equal up to float32 rounding.

    The MLP scoring kernel's matrix products round differently for a batch of one or two probes than
    for a larger one (about 1 ulp of a distance), and a tree node sees smaller batches when the probes
    are sharded; so KL and distortion agree to ~1e-7 relative, not always bit for bit. A KL near 0 is a
    difference of nearly equal statistics, so it gets an absolute floor (1e-6) too.
    """
    for field in ("labels", "rejected", "reasons", "n_vae_evaluations"):
        np.testing.assert_array_equal(getattr(pa, field), getattr(pb, field), err_msg=field)
    for field in ("kl", "novelty", "distortion"):
        np.testing.assert_allclose(getattr(pa, field), getattr(pb, field), rtol=1e-5, atol=1e-6, err_msg=field)
    route = lambda trace: None if trace is None else [[(s["node"], s["chosen"]) for s in steps] for steps in trace]  # noqa: E731
    assert route(pa.trace) == route(pb.trace)


def _four_classes(dataset):
    keep = np.isin(dataset.y, [0, 1, 2, 3])
    return dataset.X[keep], dataset.labels[keep]


def _train_or_die(task, marker_dir: str, device: str = "cpu"):
    """`train_vae`, except that the first attempt at class_1 kills its own worker process."""
    marker = Path(marker_dir) / f"{task.key}.attempted"
    if task.key == "class_1" and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return train_vae(task, device=device)


def _always_fails(task, device: str = "cpu"):
    raise InvalidInputError(f"task {task.key} refuses to train")


# --------------------------------------------------------------------------- same results
@pytest.fixture(scope="module")
def four_digits():
    return _four_classes(load_digits_dataset("train", seed=0)), _four_classes(load_digits_dataset("test", seed=0))[0]


@pytest.fixture(scope="module")
def per_task_flat(four_digits):
    """Reference: the local backend running one `train_vae` task per VAE in this process.

    (The default in-process path, n_jobs=1, trains all VAEs as one stacked model instead, which by
    design does not reproduce `train_vae` bit for bit; see `regentree.training.stacked`.)
    """
    (X, y), _ = four_digits
    return FlatRegenClassifier(**SMALL, random_state=0, backend=LocalBackend(1)).fit(X, y, image_shape=(8, 8))


def test_flat_model_identical_to_local(scheduler, per_task_flat, four_digits, small_shards):
    (X, y), X_test = four_digits
    events = []
    model = FlatRegenClassifier(**SMALL, random_state=0, backend=f"dask:{scheduler}")
    model.fit(X, y, image_shape=(8, 8), progress=events.append)
    _assert_same_weights(per_task_flat, model)
    assert [(e.done, e.total) for e in events if e.stage == "training VAEs"] == [(i, 4) for i in range(1, 5)]
    assert len(X_test) > 2 * selective.PROBES_PER_SHARD
    _assert_same_predictions(
        per_task_flat.predict_with_rejection(X_test), per_task_flat.predict_with_rejection(X_test, backend=f"dask:{scheduler}")
    )


def test_tree_model_identical_to_local(scheduler, four_digits, small_shards):
    (X, y), X_test = four_digits
    local = TreeRegenClassifier(**SMALL, random_state=0, backend=LocalBackend(1)).fit(X, y, image_shape=(8, 8))
    remote = TreeRegenClassifier(**SMALL, random_state=0, backend=f"dask:{scheduler}").fit(X, y, image_shape=(8, 8))
    assert len(remote.vaes_) == 2 * 4 - 2
    _assert_same_weights(local, remote)
    _assert_same_predictions(
        local.predict_with_rejection(X_test, explain=True),
        local.predict_with_rejection(X_test, explain=True, backend=f"dask:{scheduler}"),
    )


# --------------------------------------------------------------------------- command line
def test_cli_train_on_scheduler_records_backend(scheduler, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(SMALL))
    out = tmp_path / "model"
    result = CliRunner().invoke(
        app, ["train", "digits", "--config", str(config), "--quiet", "--limit-per-class", "10", "--out", str(out),
              "--scheduler", scheduler],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["backend"] == f"dask:{scheduler}"
    assert len(load_model(out).vaes_) == 10


def test_cli_tree_training_and_sharded_evaluation_on_scheduler(scheduler, tmp_path, small_shards):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(SMALL))
    out, runner = tmp_path / "tree", CliRunner()
    common = ["--config", str(config), "--quiet", "--limit-per-class", "10"]
    built = runner.invoke(app, ["build-tree", "digits", "--out", str(out), *common, "--scheduler", scheduler])
    assert built.exit_code == 0, built.output
    assert json.loads((out / "manifest.json").read_text())["params"]["backend"] == f"dask:{scheduler}"
    local = runner.invoke(app, ["evaluate", str(out), "digits", "--json", "--quiet", "--limit", "150"])
    sharded = runner.invoke(app, ["evaluate", str(out), "digits", "--json", "--quiet", "--limit", "150",
                                  "--scheduler", scheduler])
    assert local.exit_code == sharded.exit_code == 0, sharded.output
    local_report, sharded_report = json.loads(local.stdout), json.loads(sharded.stdout)
    assert sharded_report["confusion_matrix"] == local_report["confusion_matrix"]
    assert sharded_report["with_model_rule"] == local_report["with_model_rule"]


def test_cli_rejects_bad_scheduler_before_writing(tmp_path):
    runner = CliRunner()
    for extra, message in ((["--scheduler", "nowhere"], "tcp://HOST:PORT or local:N"),
                           (["--backend", "local", "--scheduler", "local:2"], "needs backend 'dask'")):
        result = runner.invoke(app, ["train", "digits", "--out", str(tmp_path / "m"), *extra])
        assert result.exit_code == 2
        assert message in result.output
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- faults
def test_killed_worker_is_survived(scheduler, per_task_flat, four_digits, tmp_path, monkeypatch):
    monkeypatch.setattr(FlatRegenClassifier, "vae_trainer", staticmethod(functools.partial(_train_or_die, marker_dir=str(tmp_path))))
    (X, y), _ = four_digits
    model = FlatRegenClassifier(**SMALL, random_state=0, backend=f"dask:{scheduler}").fit(X, y, image_shape=(8, 8))
    assert (tmp_path / "class_1.attempted").exists()
    model.save(tmp_path / "model")
    _assert_same_weights(per_task_flat, load_model(tmp_path / "model"))


def test_failing_task_raises_its_error(scheduler, four_digits, monkeypatch):
    monkeypatch.setattr(FlatRegenClassifier, "vae_trainer", staticmethod(_always_fails))
    (X, y), _ = four_digits
    model = FlatRegenClassifier(**SMALL, random_state=0, backend=f"dask:{scheduler}")
    with pytest.raises(InvalidInputError, match="refuses to train"):
        model.fit(X, y, image_shape=(8, 8))
    assert model.vaes_ == {}


# --------------------------------------------------------------------------- specs and errors
def test_backend_specs():
    assert backend_spec(None, None) is None
    assert backend_spec("local", None) == "local"
    assert backend_spec(None, "tcp://h:1") == "dask:tcp://h:1"
    assert backend_spec("dask", "local:3") == "dask:local:3"
    with pytest.raises(ConfigError, match="needs backend 'dask'"):
        backend_spec("local", "tcp://h:1")
    assert make_backend("dask", n_workers=3).address == "local:3"
    remote = make_backend("dask:tcp://h:1")
    assert remote.address == "tcp://h:1"
    copy = pickle.loads(pickle.dumps(remote))
    assert (copy.address, copy.retries, copy.client) == ("tcp://h:1", remote.retries, None)
    for spec in ("dask:local:0", "dask:local:x", "dask:h:1", "local:2", "spark"):
        with pytest.raises(ConfigError):
            make_backend(spec)


def test_unreachable_scheduler_is_one_config_error(monkeypatch):
    from regentree.backends import dask_cluster as dask_backend

    monkeypatch.setattr(dask_backend, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        make_backend("dask:tcp://127.0.0.1:9").map(abs, [1])


def test_missing_dask_is_one_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.delitem(sys.modules, "regentree.backends.dask_cluster", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'regentree\[dask\]'"):
        make_backend("dask:local:1")


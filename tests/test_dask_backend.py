"""Dask backend: same weights and predictions as the local backend, survival of a killed worker, errors.

One `LocalCluster` on loopback (2 worker processes, 1 thread each) serves the whole module; the
estimators reach it through the spec ``dask:tcp://127.0.0.1:PORT``.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone

pytest.importorskip("distributed")

import cloudpickle  # noqa: E402  (a dependency of distributed)
from distributed import LocalCluster  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from conftest import TINY  # noqa: E402
from regentree.backends import backend_spec, make_backend  # noqa: E402
from regentree.cli import app  # noqa: E402
from regentree.errors import ConfigError, InvalidInputError  # noqa: E402
from regentree.estimators import base  # noqa: E402
from regentree.persistence import load_model  # noqa: E402
from regentree.training import train_vae  # noqa: E402

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
    monkeypatch.setattr(base, "PROBES_PER_SHARD", 64)


def _assert_same_weights(a, b) -> None:
    assert list(a.vaes_) == list(b.vaes_)
    for key in a.vaes_:
        sa, sb = a.vaes_[key].state_dict(), b.vaes_[key].state_dict()
        assert sa.keys() == sb.keys()
        for name in sa:
            assert torch.equal(sa[name], sb[name]), f"{key}.{name} differs"


def _assert_same_predictions(pa, pb) -> None:
    for field in ("labels", "rejected", "reasons", "kl", "novelty", "distortion", "n_vae_evaluations"):
        np.testing.assert_array_equal(getattr(pa, field), getattr(pb, field), err_msg=field)
    assert pa.trace == pb.trace


def _four_classes(dataset):
    keep = np.isin(dataset.y, [0, 1, 2, 3])
    return dataset.X[keep], np.asarray(dataset.class_names)[dataset.y[keep]]


def _train_or_die(task, marker_dir: str):
    """`train_vae`, except that the first attempt at class_1 kills its own worker process."""
    marker = Path(marker_dir) / f"{task.key}.attempted"
    if task.key == "class_1" and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return train_vae(task)


def _always_fails(task):
    raise InvalidInputError(f"task {task.key} refuses to train")


# --------------------------------------------------------------------------- same results
def test_flat_model_identical_to_local(scheduler, fitted_flat, digits_train, digits_test, small_shards):
    events = []
    model = clone(fitted_flat).set_params(backend=f"dask:{scheduler}")
    model.fit(*_four_classes(digits_train), image_shape=(8, 8), progress=events.append)
    _assert_same_weights(fitted_flat, model)
    assert [(e.done, e.total) for e in events if e.stage == "training VAEs"] == [(i, 4) for i in range(1, 5)]
    X, _ = _four_classes(digits_test)
    assert len(X) > 2 * base.PROBES_PER_SHARD
    local = fitted_flat.predict_with_rejection(X)
    sharded = fitted_flat.predict_with_rejection(X, backend=f"dask:{scheduler}")
    _assert_same_predictions(local, sharded)


def test_tree_model_identical_to_local(scheduler, digits_train, digits_test, small_shards):
    from regentree.estimators.tree import TreeRegenClassifier

    X, y = _four_classes(digits_train)
    local = TreeRegenClassifier(**TINY, random_state=0).fit(X, y, image_shape=(8, 8))
    remote = TreeRegenClassifier(**TINY, random_state=0, backend=f"dask:{scheduler}").fit(X, y, image_shape=(8, 8))
    assert len(remote.vaes_) == 2 * 4 - 2
    _assert_same_weights(local, remote)
    X_test, _ = _four_classes(digits_test)
    _assert_same_predictions(
        local.predict_with_rejection(X_test, explain=True),
        local.predict_with_rejection(X_test, explain=True, backend=f"dask:{scheduler}"),
    )


# --------------------------------------------------------------------------- faults
def test_killed_worker_is_survived(scheduler, fitted_flat, digits_train, tmp_path, monkeypatch):
    monkeypatch.setattr(base, "train_vae", functools.partial(_train_or_die, marker_dir=str(tmp_path)))
    model = clone(fitted_flat).set_params(backend=f"dask:{scheduler}").fit(*_four_classes(digits_train), image_shape=(8, 8))
    assert (tmp_path / "class_1.attempted").exists()
    model.save(tmp_path / "model")
    _assert_same_weights(fitted_flat, load_model(tmp_path / "model"))


def test_failing_task_raises_its_error(scheduler, fitted_flat, digits_train, monkeypatch):
    monkeypatch.setattr(base, "train_vae", _always_fails)
    model = clone(fitted_flat).set_params(backend=f"dask:{scheduler}")
    with pytest.raises(InvalidInputError, match="refuses to train"):
        model.fit(*_four_classes(digits_train), image_shape=(8, 8))
    assert model.vaes_ == {}


# --------------------------------------------------------------------------- command line
def test_cli_train_on_scheduler_records_backend(scheduler, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    args = ["train", "digits", "--config", str(config), "--quiet", "--limit-per-class", "30"]
    runner = CliRunner()
    local = runner.invoke(app, [*args, "--out", str(tmp_path / "local")])
    remote = runner.invoke(app, [*args, "--out", str(tmp_path / "dask"), "--scheduler", scheduler])
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    manifest = json.loads((tmp_path / "dask" / "manifest.json").read_text())
    assert manifest["params"]["backend"] == f"dask:{scheduler}"
    local_hashes = [v["sha256"] for v in json.loads((tmp_path / "local" / "manifest.json").read_text())["vaes"]]
    assert [v["sha256"] for v in manifest["vaes"]] == local_hashes


def test_cli_rejects_bad_scheduler_before_writing(tmp_path):
    result = CliRunner().invoke(app, ["train", "digits", "--out", str(tmp_path / "m"), "--scheduler", "nowhere"])
    assert result.exit_code == 2
    assert "tcp://HOST:PORT or local:N" in result.output
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- specs and errors
def test_backend_specs():
    assert backend_spec(None, None) is None
    assert backend_spec("local", None) == "local"
    assert backend_spec(None, "tcp://h:1") == "dask:tcp://h:1"
    assert backend_spec("dask", "local:3") == "dask:local:3"
    with pytest.raises(ConfigError, match="needs backend 'dask'"):
        backend_spec("local", "tcp://h:1")
    assert make_backend("dask", n_workers=3).address == "local:3"
    assert make_backend("dask:tcp://h:1").address == "tcp://h:1"
    for spec in ("dask:local:0", "dask:local:x", "dask:h:1", "local:2", "spark"):
        with pytest.raises(ConfigError):
            make_backend(spec)


def test_unreachable_scheduler_is_one_config_error(monkeypatch):
    from regentree import dask_backend

    monkeypatch.setattr(dask_backend, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        make_backend("dask:tcp://127.0.0.1:9").map(abs, [1])


def test_missing_dask_is_one_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.delitem(sys.modules, "regentree.dask_backend", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'regentree\[dask\]'"):
        make_backend("dask:local:1")


"""Ensembles of flat models: pooled draws are the members' mixture, rejection and persistence work, bad members fail."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from conftest import TINY
from typer.testing import CliRunner

from regentree import FlatRegenClassifier, RegenEnsemble, load_model
from regentree.cli import app
from regentree.errors import ConfigError, InvalidInputError, ModelFolderError, NotFittedError
from regentree.scoring.statistics import summarize

LIKELIHOOD = dict(distance="neg_log_weight", decision="likelihood")


@pytest.fixture(scope="module")
def four_digits(digits_train, digits_test):
    """Train and test images of digits 0-3 with class names as labels."""
    names = np.asarray(digits_train.class_names)
    keep_train, keep_test = np.isin(digits_train.y, range(4)), np.isin(digits_test.y, range(4))
    return (digits_train.X[keep_train], names[digits_train.y[keep_train]],
            digits_test.X[keep_test], names[digits_test.y[keep_test]])


@pytest.fixture(scope="module")
def members(four_digits):
    """Two fitted members of different latent size and seed, scored by the likelihood rule."""
    X, y, _, _ = four_digits
    return [FlatRegenClassifier(**{**TINY, "latent_dim": latent}, **LIKELIHOOD, random_state=seed)
            .fit(X, y, image_shape=(8, 8)) for latent, seed in ((4, 0), (6, 1))]


@pytest.fixture(scope="module")
def ensemble(members):
    return RegenEnsemble.from_fitted(members, kl_threshold=1.0, kl_pooling="pooled")


def test_pooled_likelihood_is_the_mixture_of_the_members(ensemble, members, four_digits):
    _, _, X_test, _ = four_digits
    pooled = ensemble.class_distances(X_test[:20])
    own = [m.class_distances(X_test[:20]) for m in members]
    assert pooled.shape == (20, 4, 2 * TINY["n_regenerations"])
    np.testing.assert_array_equal(pooled, np.concatenate(own, axis=2))  # same noise bank, same draws
    # log of the mean of the members' likelihood estimates: an equal-weight mixture
    mixture = -(np.logaddexp(-summarize(own[0], "likelihood"), -summarize(own[1], "likelihood")) - np.log(2))
    np.testing.assert_allclose(summarize(pooled, "likelihood"), mixture, rtol=1e-5)


def test_ensemble_classifies_and_rejects(ensemble, four_digits):
    _, _, X_test, y_test = four_digits
    assert ensemble.score(X_test, y_test) >= 0.85
    prediction = ensemble.predict_with_rejection(X_test)
    assert set(prediction.reasons) <= {"", "doubtful"}
    assert np.all((prediction.kl < 1.0) == prediction.rejected)
    assert np.all(prediction.n_vae_evaluations == 8)
    assert np.all((prediction.novelty >= 0) & (prediction.novelty <= 1))
    probabilities = ensemble.predict_proba(X_test[:5])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_novelty_is_the_mean_of_the_members_p_values(ensemble, members, four_digits):
    _, _, X_test, _ = four_digits
    decision = ensemble.decide(X_test[:10])
    expected = np.mean([m.novelty_scorer().score(decision.class_index,
                                                  summarize(m.class_distances(X_test[:10])[np.arange(10), decision.class_index], "likelihood"))
                        for m in members], axis=0)
    np.testing.assert_allclose(ensemble.judge(decision).novelty, expected)


def test_members_kl_is_the_mean_of_the_members_kl(ensemble, members, four_digits):
    _, _, X_test, _ = four_digits
    distances = ensemble.class_distances(X_test[:30])
    model = RegenEnsemble.from_fitted(members, kl_pooling="members")
    pooled, mean = ensemble.decide_from_distances(distances), model.decide_from_distances(distances)
    np.testing.assert_array_equal(pooled.class_index, mean.class_index)  # the ranking is the pooled one either way
    rows, first, second = np.arange(30), pooled.class_index, np.argsort(pooled.class_scores, axis=1)[:, 1]
    expected = []
    for m in members:  # by hand: Gaussian KL of the member's own draws of the two best classes, 0 if it disagrees
        d = m.class_distances(X_test[:30])
        p, q = d[rows, first], d[rows, second]
        mp, mq, vp, vq = p.mean(1), q.mean(1), p.var(1, ddof=1), q.var(1, ddof=1)
        kl = np.maximum(0.5 * (np.log(vq / vp) + (vp + (mp - mq) ** 2) / vq - 1), 0)
        agrees = summarize(p[:, None], "likelihood")[:, 0] <= summarize(q[:, None], "likelihood")[:, 0]
        expected.append(np.where(agrees, kl, 0.0))
    np.testing.assert_allclose(mean.kl, np.mean(expected, axis=0), rtol=1e-4, atol=1e-6)  # float32 draws
    assert not np.allclose(mean.kl, pooled.kl)
    assert np.any(np.array(expected) == 0) and np.all(mean.kl >= 0)  # some member disagrees on some probe
    # identical members always agree: the score is the member's own KL
    twins = RegenEnsemble.from_fitted([members[0], members[0]], kl_pooling="members")
    own = members[0].decide(X_test[:30])
    np.testing.assert_allclose(twins.decide(X_test[:30]).kl, own.kl, rtol=1e-6, atol=1e-9)


def test_kl_pooling_is_checked_saved_and_loaded(members, tmp_path):
    with pytest.raises(ConfigError, match="kl_pooling must be one of members, pooled"):
        RegenEnsemble.from_fitted(members, kl_pooling="sum")
    model = RegenEnsemble.from_fitted(members)
    with pytest.raises(ConfigError, match="kl_pooling must be one of"):
        model.set_params(kl_pooling="mean")
    assert model.kl_pooling == "members"  # a refused value leaves the model as it was
    with pytest.raises(InvalidInputError, match="distances must have shape"):
        model.decide_from_distances(np.zeros((3, 4, 5)))
    folder = model.save(tmp_path / "e")
    assert load_model(folder).kl_pooling == "members"  # the default
    assert load_model(folder).summary()["scoring"]["kl_pooling"] == "members"
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["params"]["kl_pooling"]  # a folder written before the option: its KL was the pooled one
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert load_model(folder).kl_pooling == "pooled"
    for i, member in enumerate(members):
        member.save(tmp_path / f"m{i}")
    runner, paths = CliRunner(), [str(tmp_path / "m0"), str(tmp_path / "m1")]
    made = runner.invoke(app, ["ensemble", *paths, "-o", str(tmp_path / "cli"), "--kl-pooling", "pooled"])
    assert made.exit_code == 0, made.output
    assert "pooled KL" in runner.invoke(app, ["info", str(tmp_path / "cli")]).output
    refused = runner.invoke(app, ["ensemble", *paths, "-o", str(tmp_path / "bad"), "--kl-pooling", "sum"])
    assert refused.exit_code == 2 and "kl_pooling must be one of" in refused.output
    assert not (tmp_path / "bad").exists()


def test_fit_trains_a_clone_of_every_member(four_digits):
    X, y, X_test, y_test = four_digits
    templates = [FlatRegenClassifier(**TINY, random_state=0), FlatRegenClassifier(**TINY, random_state=1)]
    model = RegenEnsemble(templates).fit(X, y, image_shape=(8, 8))
    assert not hasattr(templates[0], "vaes_")  # the templates stay unfitted
    assert len(model.vaes_) == 8 and model.n_regenerations == 2 * TINY["n_regenerations"]
    assert model.score(X_test, y_test) >= 0.85


def test_save_load_round_trip_and_calibration(ensemble, four_digits, tmp_path):
    _, _, X_test, y_test = four_digits
    model = RegenEnsemble.from_fitted(ensemble.members_, kl_threshold=1.0)
    model.calibrate(X_test, y_test, max_rejection=0.1, rule="both")
    folder = model.save(tmp_path / "ensemble")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["estimator"] == "ensemble" and [m["folder"] for m in manifest["members"]] == ["members/0", "members/1"]
    loaded = load_model(folder)
    assert isinstance(loaded, RegenEnsemble)
    assert loaded.rejection_rule() == model.rejection_rule()
    before, after = model.predict_with_rejection(X_test), loaded.predict_with_rejection(X_test)
    np.testing.assert_array_equal(before.labels, after.labels)
    np.testing.assert_array_equal(before.rejected, after.rejected)
    assert RegenEnsemble.load(folder).summary()["n_members"] == 2


def test_members_that_disagree_fail_in_one_line(members, four_digits):
    X, y, _, _ = four_digits
    with pytest.raises(ConfigError, match="at least two"):
        RegenEnsemble.from_fitted(members[:1])
    other_k = FlatRegenClassifier(**{**TINY, "n_regenerations": 10}, **LIKELIHOOD).fit(X, y, image_shape=(8, 8))
    with pytest.raises(ConfigError, match="disagree on n_regenerations"):
        RegenEnsemble.from_fitted([members[0], other_k])
    three_classes = FlatRegenClassifier(**TINY, **LIKELIHOOD).fit(X[y != "3"], y[y != "3"], image_shape=(8, 8))
    with pytest.raises(ConfigError, match="has classes"):
        RegenEnsemble.from_fitted([members[0], three_classes])
    with pytest.raises(NotFittedError):
        RegenEnsemble.from_fitted([members[0], FlatRegenClassifier(**TINY)])
    with pytest.raises(NotFittedError):
        RegenEnsemble([members[0], members[1]]).predict(X[:2])
    with pytest.raises(ConfigError, match="disagree on distance"):  # before anything trains
        RegenEnsemble([FlatRegenClassifier(**TINY), FlatRegenClassifier(**TINY, **LIKELIHOOD)]).fit(X, y)


def test_set_params_reaches_every_member(ensemble):
    model = RegenEnsemble.from_fitted(copy.deepcopy(ensemble.members_))
    model.set_params(noise_variance=0.5, kl_threshold=2.0)
    assert model.kl_threshold == 2.0 and all(m.noise_variance == 0.5 for m in model.members_)
    with pytest.raises(ConfigError, match="novelty rule is on"):  # references were recorded at sigma^2 = 1
        model.set_params(novelty_threshold=0.01).predict_with_rejection(np.zeros((1, 64)))


def test_tampered_member_folder_fails_to_load(ensemble, tmp_path):
    folder = ensemble.save(tmp_path / "ensemble")
    member = folder / "members" / "1" / "manifest.json"
    member.write_text(member.read_text().replace('"kl_threshold"', '"kl_threshold" ', 1))
    with pytest.raises(ModelFolderError, match="sha256 does not match the ensemble manifest"):
        load_model(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["members"][0]["folder"] = "../outside"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match="outside the ensemble folder"):
        load_model(folder)


def test_cli_ensemble_info_and_classify(members, tmp_path):
    for i, member in enumerate(members):
        member.save(tmp_path / f"m{i}")
    runner = CliRunner()
    made = runner.invoke(app, ["ensemble", str(tmp_path / "m0"), str(tmp_path / "m1"), "-o", str(tmp_path / "e")])
    assert made.exit_code == 0, made.output
    assert "ensemble of 2 models" in made.output
    info = runner.invoke(app, ["info", str(tmp_path / "e"), "--json"])
    assert info.exit_code == 0 and json.loads(info.output)["scoring"]["n_regenerations_pooled"] == 2 * TINY["n_regenerations"]
    probe = tmp_path / "probe.npy"
    np.save(probe, np.zeros((1, 8, 8), dtype=np.float32))
    classified = runner.invoke(app, ["classify", str(tmp_path / "e"), str(probe), "--json", "-q"])
    assert classified.exit_code == 0, classified.output
    assert json.loads(classified.output)[0]["vae_evaluations"] == 8
    refused = runner.invoke(app, ["ensemble", str(tmp_path / "m0"), "-o", str(tmp_path / "f")])
    assert refused.exit_code == 2 and "at least two" in refused.output
    assert not (tmp_path / "f").exists()


def test_add_and_remove_a_class_touch_one_vae_per_member(ensemble, digits_train):
    model = RegenEnsemble.from_fitted(copy.deepcopy(ensemble.members_))
    before = {key: vae.state_dict()["encoder.0.weight"].clone() for key, vae in model.vaes_.items()
              if "encoder.0.weight" in vae.state_dict()}
    X_new = digits_train.X[digits_train.y == 7]
    added = model.add_class(X_new, "7")
    assert len(added.trained) == 2 and all(key.startswith(("member0/", "member1/")) for key in added.trained)
    assert list(model.classes_) == ["0", "1", "2", "3", "7"] and all(len(m.classes_) == 5 for m in model.members_)
    assert all(np.array_equal(model.vaes_[key].state_dict()["encoder.0.weight"], weight) for key, weight in before.items())
    assert (model.predict(X_new) == "7").mean() >= 0.8
    with pytest.raises(InvalidInputError, match="already"):
        model.add_class(X_new, "7")
    removed = model.remove_class("7")
    assert len(removed.dropped) == 2 and list(model.classes_) == ["0", "1", "2", "3"]


def test_a_member_failing_to_add_a_class_leaves_every_member_as_it_was(ensemble, digits_train, monkeypatch):
    model = RegenEnsemble.from_fitted(copy.deepcopy(ensemble.members_))
    before = [(list(m.classes_), list(m.vae_keys_), dict(m.vaes_)) for m in model.members_]

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(model.members_[-1], "_train_vaes", broken)
    with pytest.raises(KeyboardInterrupt):
        model.add_class(digits_train.X[digits_train.y == 7], "7")
    assert [(list(m.classes_), list(m.vae_keys_), dict(m.vaes_)) for m in model.members_] == before
    assert list(model.classes_) == before[0][0] and set(model.vaes_) == set(ensemble.vaes_)

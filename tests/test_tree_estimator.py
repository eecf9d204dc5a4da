"""TreeRegenClassifier: routing on a hand-built model, fitting, persistence and bad model folders."""

from __future__ import annotations

import copy
import hashlib
import json
import math

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from regentree import TreeRegenClassifier, load_model
from regentree.data import load_digits_dataset
from regentree.errors import ConfigError, ModelFolderError
from regentree.estimators.base import AUTO_BASE_BELOW
from regentree.tree import ROUTING_RULES, ClassTree, GatedRouting, HardRouting, register_routing
from regentree.vae.model import VAE, VAEConfig

TINY = dict(hidden_dims=(16,), latent_dim=2, epochs=4, batch_size=32, patience=0, n_regenerations=20)


@parametrize_with_checks([TreeRegenClassifier(hidden_dims=(8,), latent_dim=2, epochs=3, patience=0, n_regenerations=5)])
def test_sklearn_conventions(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------- a hand-built model
def constant_vae(template: np.ndarray) -> VAE:
    """A VAE whose re-generations are all `template` (zero decoder weights, logit biases)."""
    vae = VAE(VAEConfig(input_dim=template.size, hidden_dims=(3,), latent_dim=2)).eval()
    p = np.clip(template, 0.02, 0.98)
    with torch.no_grad():
        for module in vae.decoder:
            if isinstance(module, torch.nn.Linear):
                module.weight.zero_()
                module.bias.zero_()
        vae.decoder[-1].bias.copy_(torch.from_numpy(np.log(p / (1 - p))).float())
    return vae


@pytest.fixture(scope="module")
def hand_built():
    """Four classes, each lighting one quarter of a 4x4 image; tree ((0, 1), (2, 3))."""
    templates = np.zeros((4, 16), dtype=np.float32)
    for c in range(4):
        templates[c, 4 * c : 4 * c + 4] = 1.0
    model = TreeRegenClassifier(n_regenerations=10, kl_threshold=None, routing="hard", flat_below=1)  # pure tree
    model._start_fit()
    model.classes_ = np.array(["a", "b", "c", "d"])
    model.n_features_in_, model.image_shape_ = 16, (4, 4)
    model.tree_ = ClassTree.from_nested(((0, 1), (2, 3)))
    model.depth_ = model.tree_.depth
    for node in model.tree_.non_root_nodes():
        classes = list(model.tree_.classes(node))
        model.vaes_[f"node_{node}"] = constant_vae(templates[classes].mean(axis=0))
        model.vae_classes_[f"node_{node}"] = classes
        model.reference_distortions_[f"node_{node}"] = np.array([1.0, 2.0, 3.0])
    return model, templates


def test_hand_built_model_routes_each_template_to_its_class(hand_built) -> None:
    model, templates = hand_built
    decision = model.decide(templates)
    assert decision.class_index.tolist() == [0, 1, 2, 3]
    assert model.predict(templates).tolist() == ["a", "b", "c", "d"]
    assert decision.n_vae_evaluations.tolist() == [4, 4, 4, 4]
    # only the two leaves met at the last level are scored; the winner has the lowest score
    assert np.isnan(decision.class_scores).sum(axis=1).tolist() == [2, 2, 2, 2]
    assert np.nanargmin(decision.class_scores, axis=1).tolist() == [0, 1, 2, 3]
    assert np.all(decision.kl > 0)
    np.testing.assert_allclose(decision.winner_distances.std(axis=1), 0.0, atol=1e-5)  # constant decoders


def test_hand_built_trace_names_the_classes(hand_built) -> None:
    model, templates = hand_built
    trace = model.decide(templates[2:3]).trace[0]
    assert [step["node"] for step in trace] == [0, 2]
    assert [step["chosen"] for step in trace] == [2, 5]
    assert trace[0]["children_classes"] == [["a", "b"], ["c", "d"]]
    assert trace[1]["children_classes"] == [["c"], ["d"]]
    assert trace[1]["mean_distance"][0] < trace[1]["mean_distance"][1]
    json.dumps(trace)  # JSON-able


def test_soft_routing_on_hand_built_model_meets_more_vaes(hand_built) -> None:
    model, templates = hand_built
    soft = copy.copy(model).set_params(routing="soft", beam_width=2)
    decision = soft.decide(templates)
    assert decision.class_index.tolist() == [0, 1, 2, 3]
    assert decision.n_vae_evaluations.tolist() == [6, 6, 6, 6]
    assert np.isnan(decision.class_scores).sum() == 0  # all four leaves reached


def test_flat_below_compares_all_leaves_of_a_small_node(hand_built) -> None:
    model, templates = hand_built
    flat = copy.copy(model).set_params(flat_below=4)  # the root holds all 4 classes: flat mode via the leaves
    assert flat.max_vae_evaluations() == 4
    decision = flat.decide(templates)
    assert decision.class_index.tolist() == [0, 1, 2, 3]
    assert decision.n_vae_evaluations.tolist() == [4, 4, 4, 4]
    assert np.isnan(decision.class_scores).sum() == 0  # every leaf scored
    step = decision.trace[1][0]
    assert step["children"] == [3, 4, 5, 6] and step["chosen"] == 4
    assert step["children_classes"] == [["a"], ["b"], ["c"], ["d"]]
    assert np.all(decision.kl > 0)


class AllLeaves(HardRouting):
    """A user's rule: every probe compares all the leaves at once, as flat mode does."""

    @classmethod
    def from_params(cls, params) -> "AllLeaves":
        return cls(statistic=params.decision, flat_below=len(params.classes_))


@pytest.fixture
def all_leaves_registered():
    register_routing("all_leaves", AllLeaves)
    yield "all_leaves"
    del ROUTING_RULES["all_leaves"]


def test_a_registered_routing_rule_routes_the_estimator(hand_built, all_leaves_registered) -> None:
    model, templates = hand_built
    mine = copy.copy(model).set_params(routing=all_leaves_registered)
    assert isinstance(mine.routing_rule(), AllLeaves) and mine.max_vae_evaluations() == len(model.classes_)
    decision = mine.decide(templates)
    assert decision.class_index.tolist() == [0, 1, 2, 3]
    assert decision.n_vae_evaluations.tolist() == [len(model.classes_)] * len(templates)
    assert np.isnan(decision.class_scores).sum() == 0  # every leaf scored at the root


def test_a_registered_routing_name_passes_fit_and_an_unknown_one_is_one_line(digits, all_leaves_registered) -> None:
    train, test = digits
    keep = train.y < 3
    model = TreeRegenClassifier(**TINY, routing=all_leaves_registered).fit(train.X[keep], train.y[keep], image_shape=(8, 8))
    assert model.max_vae_evaluations() == 3
    with pytest.raises(ConfigError) as caught:
        copy.copy(model).set_params(routing="greedy").predict(test.X[:2])
    message = str(caught.value)
    assert "\n" not in message and "routing='greedy'" in message
    assert all(repr(name) in message for name in ROUTING_RULES)


# --------------------------------------------------------------------------- fitted on digits
@pytest.fixture(scope="module")
def digits():
    train, test = load_digits_dataset("train"), load_digits_dataset("test")
    return train, test


@pytest.fixture(scope="module")
def fitted_tree(digits):
    train, _ = digits
    labels = train.labels
    return TreeRegenClassifier(**TINY, random_state=0).fit(train.X, labels, image_shape=(8, 8))


def test_fit_builds_balanced_tree_with_one_vae_per_non_root_node(fitted_tree) -> None:
    m = len(fitted_tree.classes_)
    assert fitted_tree.depth_ == math.ceil(math.log2(m)) == 4
    assert sorted(fitted_tree.vaes_) == sorted(f"node_{n}" for n in fitted_tree.tree_.non_root_nodes())
    assert len(fitted_tree.vaes_) == 2 * m - 2
    for node in fitted_tree.tree_.non_root_nodes():
        assert fitted_tree.vae_classes_[f"node_{node}"] == list(fitted_tree.tree_.classes(node))
    assert fitted_tree.winner_key(np.array([3])) == [f"node_{fitted_tree.tree_.leaf_of_class(3)}"]


def test_vae_evaluations_within_log_budget(fitted_tree, digits) -> None:
    _, test = digits
    fitted_tree = copy.copy(fitted_tree).set_params(routing="hard")
    decision = fitted_tree.decide(test.X[:60])
    budget = 2 * math.ceil(math.log2(len(fitted_tree.classes_)))
    assert decision.n_vae_evaluations.max() <= fitted_tree.max_vae_evaluations() == 7 < budget  # flat_below 6
    assert copy.copy(fitted_tree).set_params(flat_below=1).max_vae_evaluations() == budget  # pure tree routing
    assert decision.n_vae_evaluations.min() == 7  # the root's two children, then the 5 leaves of one
    assert np.mean(fitted_tree.predict(test.X) == test.labels) > 0.3
    proba = fitted_tree.predict_proba(test.X[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_auto_routing_is_gated_for_small_classes_and_hard_for_large_ones(fitted_tree) -> None:
    assert TreeRegenClassifier().routing == "auto"
    assert fitted_tree.routing_ == fitted_tree.routing_in_force() == "gated"  # digits: under 200 images per class
    assert isinstance(fitted_tree.routing_rule(), GatedRouting) and fitted_tree.summary()["routing"] == "gated"
    rng = np.random.default_rng(0)
    n = AUTO_BASE_BELOW
    X = np.concatenate([rng.uniform(0, 0.3, (n, 16)), rng.uniform(0.7, 1, (n, 16)), rng.uniform(0, 1, (n, 16))])
    large = TreeRegenClassifier(hidden_dims=(4,), latent_dim=2, epochs=1, patience=0, n_regenerations=4,
                                kl_threshold=None).fit(X.astype(np.float32), np.repeat([0, 1, 2], n))
    assert large.routing_ == "hard" and isinstance(large.routing_rule(), HardRouting)


def _routed(model, X, **params):
    return copy.copy(model).set_params(**params).decide(X)


def _same_decision(a, b) -> None:
    np.testing.assert_array_equal(a.class_index, b.class_index)
    np.testing.assert_array_equal(a.kl, b.kl)
    np.testing.assert_array_equal(a.n_vae_evaluations, b.n_vae_evaluations)
    assert a.trace == b.trace


def test_gated_routing_extremes_are_hard_and_soft_routing(fitted_tree, digits) -> None:
    X = digits[1].X[:60]
    hard, soft = _routed(fitted_tree, X, routing="hard", flat_below=1), _routed(fitted_tree, X, routing="soft")
    _same_decision(_routed(fitted_tree, X, routing="gated", beam_share=0.0), hard)
    _same_decision(_routed(fitted_tree, X, routing="gated", beam_share=1.0), soft)
    half = _routed(fitted_tree, X, routing="gated", beam_share=0.5).n_vae_evaluations.sum()
    assert hard.n_vae_evaluations.sum() < half < soft.n_vae_evaluations.sum()


def test_the_kl_gate_is_the_beam_share_quantile_of_held_out_step_kls(fitted_tree) -> None:
    recorded = fitted_tree.routing_step_kl_
    n_held_out = fitted_tree.calibration_report_["n_calibration"]
    assert len(recorded) == fitted_tree.depth_ and recorded[0].size == n_held_out  # every greedy path starts at the root
    assert all(np.all(kls >= 0) for kls in recorded)
    gated = copy.copy(fitted_tree).set_params(routing="gated", beam_share=0.3)
    rule = gated.routing_rule()
    assert isinstance(rule, GatedRouting) and rule.kl_gate == [np.quantile(kls, 0.3) for kls in recorded]
    assert gated.summary()["kl_gate"] == rule.kl_gate


def test_without_a_calibration_split_the_step_kls_come_from_training_images(digits) -> None:
    train, _ = digits
    keep = train.y < 4
    model = TreeRegenClassifier(**TINY, kl_threshold=None).fit(train.X[keep], train.y[keep], image_shape=(8, 8))
    assert not model.calibrates_at_fit() and len(model.routing_step_kl_) == model.depth_
    assert all(0 < gate < np.inf for gate in model.set_params(routing="gated").routing_kl_gate())


def per_node_level_distances(model: TreeRegenClassifier):
    """The scoring before level batching: one `_distances` call (its own stack and noise bank) per request."""
    def level_distances(keys, X, requests):
        return [model._distances([keys[i] for i in positions], X[idx]) for positions, idx in requests]
    return level_distances


@pytest.mark.parametrize("params", [dict(flat_below=1), dict(flat_below=6, memory_budget_mb=0.1),
                                    dict(routing="soft", beam_width=2), dict(routing="soft", beam_width=3)])
def test_level_scoring_decides_as_one_call_per_node(fitted_tree, digits, params, monkeypatch) -> None:
    _, test = digits
    model = copy.copy(fitted_tree).set_params(**params)
    calls = []
    level_distances = model._level_distances
    monkeypatch.setattr(model, "_level_distances", lambda *a: calls.append(len(a[2])) or level_distances(*a))
    level = model.decide(test.X[:40])
    monkeypatch.setattr(model, "_level_distances", per_node_level_distances(model))
    per_node = model.decide(test.X[:40])
    assert max(calls) > 1  # some level scored several nodes in one call
    np.testing.assert_array_equal(level.class_index, per_node.class_index)
    np.testing.assert_array_equal(level.n_vae_evaluations, per_node.n_vae_evaluations)
    np.testing.assert_array_equal(level.winner_distances, per_node.winner_distances)
    np.testing.assert_array_equal(level.class_scores, per_node.class_scores)
    np.testing.assert_array_equal(level.kl, per_node.kl)
    assert level.trace == per_node.trace


def test_chunks_are_sized_by_the_vaes_a_probe_meets(fitted_tree, digits) -> None:
    """A tree decides more probes at once than a model scoring every node's VAE, and its decisions do not depend on it."""
    _, test = digits
    model = copy.copy(fitted_tree).set_params(memory_budget_mb=0.1, routing="hard")  # within 2 * ceil(log2 M)
    every_vae = copy.copy(model)
    every_vae._vaes_held_per_probe = lambda: len(model.vaes_)
    X = test.X[:60]
    assert every_vae._probes_per_chunk() < model._probes_per_chunk() < len(X)
    chunked, whole = model.decide(X), copy.copy(model).set_params(memory_budget_mb=1e6).decide(X)
    np.testing.assert_array_equal(chunked.class_index, whole.class_index)
    np.testing.assert_allclose(chunked.kl, whole.kl, rtol=1e-5, atol=1e-6)


def test_cross_distortion_similarity_keys_leaves_as_nodes(digits) -> None:
    train, _ = digits
    keep = train.y < 4
    model = TreeRegenClassifier(**TINY, similarity="cross_distortion").fit(train.X[keep], train.y[keep], image_shape=(8, 8))
    assert sorted(model.vaes_) == sorted(f"node_{n}" for n in model.tree_.non_root_nodes())
    assert set(model.reference_distortions_) == set(model.vaes_)
    assert model.depth_ == 2
    assert model.predict(train.X[keep][:5]).shape == (5,)


@pytest.mark.parametrize("params", [{"routing": "greedy"}, {"similarity": "pixels"}, {"builder": "x"}, {"beam_width": 0},
                                    {"flat_below": 0}])
def test_bad_parameters_raise_config_error(digits, params) -> None:
    train, _ = digits
    with pytest.raises(ConfigError):
        TreeRegenClassifier(**TINY, **params).fit(train.X, train.y)


# --------------------------------------------------------------------------- persistence
def test_save_load_round_trip(fitted_tree, digits, tmp_path) -> None:
    _, test = digits
    folder = fitted_tree.save(tmp_path / "model")
    loaded = load_model(folder)
    assert isinstance(loaded, TreeRegenClassifier)
    assert loaded.tree_ == fitted_tree.tree_ and loaded.depth_ == fitted_tree.depth_
    assert loaded.get_params() == fitted_tree.get_params()
    assert set(loaded.vaes_) == set(fitted_tree.vaes_)
    for key, vae in fitted_tree.vaes_.items():
        for name, tensor in vae.state_dict().items():
            assert torch.equal(loaded.vaes_[key].state_dict()[name], tensor), (key, name)
    a, b = fitted_tree.predict_with_rejection(test.X[:40]), loaded.predict_with_rejection(test.X[:40])
    assert a.labels.tolist() == b.labels.tolist()
    np.testing.assert_array_equal(a.kl, b.kl)
    np.testing.assert_array_equal(a.novelty, b.novelty)
    assert [kls.tolist() for kls in loaded.routing_step_kl_] == [kls.tolist() for kls in fitted_tree.routing_step_kl_]
    gated = {"routing": "gated", "beam_share": 0.4}
    assert loaded.set_params(**gated).routing_kl_gate() == copy.copy(fitted_tree).set_params(**gated).routing_kl_gate()


def test_a_folder_without_step_kls_loads_with_the_beam_closed(saved) -> None:
    _edit_json(saved / "manifest.json", lambda m: m["extra"].pop("routing_step_kl"))
    loaded = load_model(saved).set_params(routing="gated", beam_share=0.5)
    assert loaded.routing_step_kl_ == [] and loaded.routing_kl_gate() == [0.0]


@pytest.fixture
def saved(fitted_tree, tmp_path):
    return fitted_tree.save(tmp_path / "model")


def _edit_json(path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _rehash_tree(folder) -> None:
    digest = hashlib.sha256((folder / "tree.json").read_bytes()).hexdigest()
    _edit_json(folder / "manifest.json", lambda m: m.update(tree_sha256=digest))


def test_tampered_tree_file_is_caught_by_its_hash(saved) -> None:
    _edit_json(saved / "tree.json", lambda t: t["nodes"].pop())
    with pytest.raises(ModelFolderError, match="tree.json: sha256 does not match"):
        load_model(saved)


def _second_root(tree: dict) -> None:
    tree["edges"] = [e for e in tree["edges"] if e["source"] != 0 or e["target"] != 1]


def _three_children(tree: dict) -> None:
    leaf = max(n["id"] for n in tree["nodes"])
    tree["edges"].append({"source": 0, "target": leaf})


@pytest.mark.parametrize(
    ("edit", "message"),
    [(_second_root, "single root"), (_three_children, "parents|children")],
)
def test_rehashed_invalid_tree_gives_the_tree_error(saved, edit, message) -> None:
    _edit_json(saved / "tree.json", edit)
    _rehash_tree(saved)
    with pytest.raises(ModelFolderError, match=f"tree.json: class tree: .*({message})"):
        load_model(saved)


def test_classes_of_tree_and_manifest_must_agree(saved) -> None:
    _edit_json(saved / "manifest.json", lambda m: m["classes"]["values"].pop())
    with pytest.raises(ModelFolderError, match="tree holds 10 classes, the manifest lists 9"):
        load_model(saved)


def test_node_without_its_vae(saved) -> None:
    _edit_json(saved / "manifest.json", lambda m: m.update(vaes=[v for v in m["vaes"] if v["key"] != "node_3"]))
    with pytest.raises(ModelFolderError, match="node 3 has no VAE 'node_3'"):
        load_model(saved)


def test_missing_tree_file(saved) -> None:
    (saved / "tree.json").unlink()
    with pytest.raises(ModelFolderError, match="tree.json: missing"):
        load_model(saved)


@pytest.mark.parametrize("name, value", [("adaptive", True), ("n_regenerations_min", 8), ("adaptive_kl_band", (1, 20))])
def test_adaptive_k_is_refused_not_dropped(name, value) -> None:
    assert name not in TreeRegenClassifier().get_params()
    with pytest.raises(TypeError, match=name):
        TreeRegenClassifier(**{name: value})
    with pytest.raises(ValueError, match=name):
        TreeRegenClassifier().set_params(**{name: value})

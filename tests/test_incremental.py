"""Adding and removing classes: flat (one VAE trained, the rest byte-identical) and tree (only the path)."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from regentree import FlatRegenClassifier, TreeRegenClassifier, load_model
from regentree.errors import InvalidInputError
from regentree.estimators.incremental import choose_sibling, depth_limit
from regentree.training.loop import TrainingConfig
from regentree.tree import ClassTree

from conftest import TINY


def _names(dataset):
    return dataset.labels


def _of(dataset, label):
    return dataset.X[_names(dataset) == label]


def _vae_files(folder):
    """VAE key -> (sha256 in the manifest, tensors read back from the file)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    return {e["key"]: (e["sha256"], load_file(str(folder / e["file"]))) for e in manifest["vaes"]}


def _assert_identical(before, after, keys):
    for key in keys:
        assert after[key][0] == before[key][0], key
        assert before[key][1].keys() == after[key][1].keys()
        for name, tensor in before[key][1].items():
            assert torch.equal(tensor, after[key][1][name]), (key, name)


@pytest.fixture()
def flat(fitted_flat):
    return copy.deepcopy(fitted_flat)


@pytest.fixture(scope="module")
def fitted_tree(digits_train):
    keep = np.isin(digits_train.y, [0, 1, 2, 3])
    X, y = digits_train.X[keep], _names(digits_train)[keep]
    return TreeRegenClassifier(**{**TINY, "epochs": 8}, random_state=0).fit(X, y, image_shape=(8, 8))


@pytest.fixture(scope="module")
def added_tree(fitted_tree, digits_train, tmp_path_factory):
    """The tiny tree with class "4" added: (model, update, VAE files before, VAE files after)."""
    folder = tmp_path_factory.mktemp("tree")
    model = copy.deepcopy(fitted_tree)
    model.save(folder / "before")
    update = model.add_class(_of(digits_train, "4"), "4")
    model.save(folder / "after")
    return model, update, _vae_files(folder / "before"), _vae_files(folder / "after"), folder / "after"


# ----------------------------------------------------------------------------- flat
def test_flat_add_class_trains_one_vae_and_leaves_the_others_byte_identical(flat, digits_train, digits_test, tmp_path):
    flat.save(tmp_path / "before")
    update = flat.add_class(_of(digits_train, "4"), "4")
    flat.save(tmp_path / "after")
    before, after = _vae_files(tmp_path / "before"), _vae_files(tmp_path / "after")
    assert update.trained == ("class_4",) and update.dropped == ()
    assert set(after) - set(before) == {"class_4"}
    _assert_identical(before, after, before)
    assert list(flat.classes_) == ["0", "1", "2", "3", "4"]
    assert flat.vae_keys_ == ["class_0", "class_1", "class_2", "class_3", "class_4"]
    assert flat.vae_classes_["class_4"] == [4] and len(flat.reference_distortions_["class_4"]) > 0
    probes = _of(digits_test, "4")
    assert np.mean(flat.predict(probes) == "4") > 0.7
    assert list(load_model(tmp_path / "after").classes_) == list(flat.classes_)


def test_flat_added_class_takes_its_sorted_place_with_a_fresh_key(flat, digits_train):
    flat.remove_class("1")
    update = flat.add_class(_of(digits_train, "1"), "1")
    assert update.trained == ("class_4",)  # class_1's seed is not reused
    assert list(flat.classes_) == ["0", "1", "2", "3"]
    assert flat.vae_keys_ == ["class_0", "class_4", "class_2", "class_3"]
    assert [flat.vae_classes_[k] for k in flat.vae_keys_] == [[0], [1], [2], [3]]


def test_flat_built_class_by_class_equals_joint_training(digits_train):
    names = digits_train.labels
    first, all_three = np.isin(names, ["0", "1"]), np.isin(names, ["0", "1", "2"])
    # the fixed rule: with the default rejection_target, fit would hold out a calibration split that
    # add_class (which trains on every image of the new class) does not; from scratch: a base VAE
    # (base_epochs="auto" on small classes) would see other images in each model
    fixed = dict(TINY, rejection_target=None, base_epochs=0)
    joint = FlatRegenClassifier(**fixed).fit(digits_train.X[all_three], names[all_three], image_shape=(8, 8))
    grown = FlatRegenClassifier(**fixed).fit(digits_train.X[first], names[first], image_shape=(8, 8))
    grown.add_class(digits_train.X[names == "2"], "2")
    assert grown.vae_keys_ == joint.vae_keys_
    for key, vae in joint.vaes_.items():
        grown_state = grown.vaes_[key].state_dict()
        assert all(torch.equal(tensor, grown_state[name]) for name, tensor in vae.state_dict().items()), key


def test_flat_remove_class_drops_one_vae(flat, digits_test, tmp_path):
    flat.save(tmp_path / "before")
    update = flat.remove_class("2")
    flat.save(tmp_path / "after")
    before, after = _vae_files(tmp_path / "before"), _vae_files(tmp_path / "after")
    assert update.dropped == ("class_2",) and update.trained == ()
    assert set(before) - set(after) == {"class_2"}
    _assert_identical(before, after, after)
    assert list(flat.classes_) == ["0", "1", "3"] and "class_2" not in flat.reference_distortions_
    assert set(flat.predict(digits_test.X[:50])) <= {"0", "1", "3"}


def test_flat_integer_classes_take_integer_labels(digits_train):
    keep = np.isin(digits_train.y, [0, 1, 2])
    model = FlatRegenClassifier(**{**TINY, "epochs": 3})
    model.fit(digits_train.X[keep], digits_train.y[keep], image_shape=(8, 8))
    model.add_class(digits_train.X[digits_train.y == 7], 7)
    assert model.classes_.tolist() == [0, 1, 2, 7] and model.classes_.dtype.kind == "i"
    with pytest.raises(InvalidInputError, match="label '8' is a string, but the model's classes are integers"):
        model.add_class(digits_train.X[digits_train.y == 8], "8")


@pytest.mark.parametrize(
    "label, make_X, message",
    [
        ("3", lambda X: X, "class '3' already exists"),
        (5, lambda X: X, "label 5 is an integer, but the model's classes are strings"),
        ("5", lambda X: X[:0], "has no samples"),
        ("5", lambda X: X[:1], f"has 1 samples; a class needs at least {TrainingConfig().min_samples}"),
        ("5", lambda X: np.zeros((20, 100), np.float32), "100 features per image"),
        ("5", lambda X: np.zeros((20, 4, 16), np.float32), "expected (8, 8)"),
        ("5", lambda X: X * 2, "outside the allowed range"),
    ],
)
def test_flat_add_class_bad_input_leaves_model_untouched(flat, digits_train, label, make_X, message):
    state = (list(flat.classes_), list(flat.vae_keys_), dict(flat.vaes_))
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        flat.add_class(make_X(_of(digits_train, "5")), label)
    assert "\n" not in str(info.value)
    assert (list(flat.classes_), list(flat.vae_keys_), dict(flat.vaes_)) == state


def test_flat_remove_class_bad_input(flat):
    with pytest.raises(InvalidInputError, match="class '9' is not in the model"):
        flat.remove_class("9")
    flat.remove_class("0")
    flat.remove_class("1")
    with pytest.raises(InvalidInputError, match="keeps at least 2"):
        flat.remove_class("2")
    assert list(flat.classes_) == ["2", "3"]


def test_flat_failure_while_training_restores_the_model(flat, digits_train, monkeypatch):
    state = (list(flat.classes_), list(flat.vae_keys_), dict(flat.vaes_), dict(flat.reference_distortions_))

    def broken(key, X_val):
        raise KeyboardInterrupt

    monkeypatch.setattr(flat.novelty_reference_, "record", broken)
    with pytest.raises(KeyboardInterrupt):
        flat.add_class(_of(digits_train, "4"), "4")
    assert (list(flat.classes_), list(flat.vae_keys_), dict(flat.vaes_), dict(flat.reference_distortions_)) == state
    assert set(flat.training_info_) == set(flat.vaes_) == set(flat.vae_classes_)


# ----------------------------------------------------------------------------- tree placement
def test_choose_sibling_picks_the_closest_leaf_within_the_depth_limit():
    tree = ClassTree.from_nested(((0, 1), (2, (3, 4))))
    distance = np.array([5.0, 6.0, 7.0, 1.0, 8.0])
    leaf_of_3 = tree.leaf_of_class(3)
    assert choose_sibling(tree, distance, limit=4) == leaf_of_3
    # with depth limit 3 the leaf of class 3 (depth 3) cannot take a sibling: the closest feasible node wins
    chosen = choose_sibling(tree, distance, limit=3)
    assert tree.node_depth(chosen) + 1 <= 3 and chosen == tree.leaf_of_class(0)


def test_depth_limit():
    assert [depth_limit(m) for m in (2, 3, 4, 5, 8, 9)] == [2, 3, 3, 4, 4, 5]


# ----------------------------------------------------------------------------- tree
def test_tree_add_class_retrains_only_the_path(added_tree):
    model, update, before, after, folder = added_tree
    assert model.tree_.n_classes == 5 and list(model.classes_) == ["0", "1", "2", "3", "4"]
    assert model.depth_ <= math.ceil(math.log2(5)) + 1
    assert 2 <= len(update.trained) <= model.depth_ + 1
    new_leaf = f"node_{model.tree_.leaf_of_class(4)}"
    assert update.trained[0] == new_leaf and set(after) - set(before) <= set(update.trained)
    _assert_identical(before, after, set(before) - set(update.trained))
    beside = update.placement["beside_node"]
    path = set(model.tree_.ancestors(model.tree_.leaf_of_class(4))) - {0}
    assert {f"node_{n}" for n in path} == set(update.trained) - {new_leaf}
    assert set(update.placement["beside_classes"]) == {model.classes_[c] for c in model.tree_.classes(beside)}
    for node in model.tree_.non_root_nodes():
        assert model.vae_classes_[f"node_{node}"] == list(model.tree_.classes(node))
    loaded = load_model(folder)
    assert loaded.tree_ == model.tree_ and set(loaded.reference_distortions_) == set(loaded.vaes_)


def test_tree_remove_class_drops_the_leaf_and_retrains_ancestors(added_tree, tmp_path):
    model = copy.deepcopy(added_tree[0])
    leaf = model.tree_.leaf_of_class(1)
    parent = model.tree_.parent(leaf)
    ancestors = {f"node_{n}" for n in model.tree_.ancestors(parent) if n != 0}
    update = model.remove_class("1")
    assert f"node_{leaf}" in update.dropped
    assert set(update.trained) >= ancestors - set(update.dropped)
    assert list(model.classes_) == ["0", "2", "3", "4"] and model.depth_ <= depth_limit(4)
    assert set(model.vaes_) == {f"node_{n}" for n in model.tree_.non_root_nodes()}
    model.save(tmp_path / "m")
    assert list(load_model(tmp_path / "m").classes_) == ["0", "2", "3", "4"]


def test_tree_add_class_bad_input_leaves_model_untouched(fitted_tree, digits_train):
    model = copy.deepcopy(fitted_tree)
    tree = copy.deepcopy(model.tree_)
    with pytest.raises(InvalidInputError, match="already exists"):
        model.add_class(_of(digits_train, "2"), "2")
    with pytest.raises(InvalidInputError, match="is not in the model"):
        model.remove_class("7")
    assert model.tree_ == tree and set(model.vaes_) == set(fitted_tree.vaes_)


def test_tree_remove_class_rebalances_when_the_depth_promise_breaks(digits_train, monkeypatch, tmp_path):
    """9 classes at depth 5 (the promise for 9); without class 8 the promise is 4, so the deep side is rebuilt."""
    import regentree.estimators.tree as tree_module

    nested = ((0, (1, (2, (3, 4)))), ((5, 6), (7, 8)))
    monkeypatch.setattr(tree_module, "build_tree", lambda distance, method: ClassTree.from_nested(nested))
    keep = np.isin(digits_train.y, range(9))
    model = TreeRegenClassifier(**{**TINY, "epochs": 3}, random_state=0).fit(
        digits_train.X[keep], _names(digits_train)[keep], image_shape=(8, 8))
    assert model.depth_ == 5 == depth_limit(9)
    leaves_before = {c: {k: v.clone() for k, v in model.vaes_[f"node_{model.tree_.leaf_of_class(c)}"].state_dict().items()}
                     for c in range(8)}
    update = model.remove_class("8")
    assert model.depth_ <= depth_limit(8) == 4
    assert list(model.classes_) == [str(c) for c in range(8)]
    assert set(model.vaes_) == {f"node_{n}" for n in model.tree_.non_root_nodes()}
    rebuilt = set(update.trained) - {f"node_{n}" for n in model.tree_.leaves}
    assert rebuilt and rebuilt <= {f"node_{n}" for n in model.tree_.internal_nodes()}
    assert not set(update.dropped) & set(model.vaes_)
    for c, state in leaves_before.items():  # leaf VAEs keep their weights; only group VAEs are trained
        leaf = model.vaes_[f"node_{model.tree_.leaf_of_class(c)}"].state_dict()
        assert all(torch.equal(state[k], leaf[k]) for k in state), c
    for node in model.tree_.non_root_nodes():
        assert model.vae_classes_[f"node_{node}"] == list(model.tree_.classes(node))
    loaded = load_model(model.save(tmp_path / "m"))
    assert loaded.depth_ <= 4 and loaded.tree_ == model.tree_
    assert set(loaded.predict(digits_train.X[:20])) <= set(loaded.classes_)

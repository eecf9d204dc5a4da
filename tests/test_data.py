"""Tests of regentree.data: validation, IDX parsing, dataset loaders, probe files, splits."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from regentree.data import (
    Dataset,
    load_dataset,
    load_digits_dataset,
    load_idx,
    load_probes,
    stratified_subsample,
    train_test_split_dataset,
    validate_images,
    validate_labels,
)
from regentree.errors import InvalidInputError, RegentreeError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

_IDX_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D, "float64": 0x0E}


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    """Write `arr` as an IDX file (big-endian), optionally gzip-compressed."""
    header = bytes([0, 0, _IDX_CODES[arr.dtype.name], arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_png(path: Path, pixels: np.ndarray, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels.astype(np.uint8), mode="L")
    (image.convert(mode) if mode != "L" else image).save(path)
    return path


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def mnist_like_dir(tmp_path, rng):
    """A tiny MNIST-style directory: 30 train / 20 test images of 4x3, labels 0..4, gz and raw mixed."""
    directory = tmp_path / "mnist_like"
    directory.mkdir()
    train_x = rng.integers(0, 256, size=(30, 4, 3), dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(20, 4, 3), dtype=np.uint8)
    train_y = np.tile(np.arange(5, dtype=np.uint8), 6)
    test_y = np.tile(np.arange(5, dtype=np.uint8), 4)
    write_idx(directory / "train-images-idx3-ubyte.gz", train_x, gz=True)
    write_idx(directory / "train-labels-idx1-ubyte.gz", train_y, gz=True)
    write_idx(directory / "t10k-images-idx3-ubyte", test_x)
    write_idx(directory / "t10k-labels-idx1-ubyte", test_y)
    return directory, (train_x, train_y, test_x, test_y)


@pytest.fixture
def emnist_like_dir(tmp_path, rng):
    """A tiny EMNIST-style directory (test split only, transposed 5x4 images, mapping to characters)."""
    directory = tmp_path / "emnist_like"
    directory.mkdir()
    upright = rng.integers(0, 256, size=(40, 5, 4), dtype=np.uint8)
    labels = np.repeat(np.array([0, 1, 2, 3], dtype=np.uint8), 10)
    write_idx(directory / "emnist-tiny-test-images-idx3-ubyte.gz", upright.transpose(0, 2, 1).copy(), gz=True)
    write_idx(directory / "emnist-tiny-test-labels-idx1-ubyte.gz", labels, gz=True)
    (directory / "emnist-tiny-mapping.txt").write_text("0 48\n1 65\n2 97\n3 98\n")
    return directory, upright, labels


# ---------------------------------------------------------------- validate_images


class TestValidateImages:
    def test_uint8_2d_is_divided_by_255(self):
        X = np.array([[0, 128, 255]], dtype=np.uint8)
        out = validate_images(X)
        assert out.dtype == np.float32 and out.flags.c_contiguous
        np.testing.assert_allclose(out, [[0.0, 128 / 255, 1.0]], rtol=1e-6)
        assert out[0, 2] == 1.0

    def test_3d_is_flattened_row_major(self):
        X = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
        out = validate_images(X, image_shape=(3, 4))
        assert out.shape == (2, 12)
        np.testing.assert_allclose(out, X.reshape(2, 12) / 255.0, rtol=1e-6)

    def test_list_input_and_int64(self):
        out = validate_images([[0, 51, 255], [255, 0, 102]])
        assert out.shape == (2, 3) and out.dtype == np.float32
        np.testing.assert_allclose(out, [[0, 0.2, 1], [1, 0, 0.4]], rtol=1e-6)

    @pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint16])
    def test_other_integer_dtypes(self, dtype):
        out = validate_images(np.array([[0, 17, 102]], dtype=dtype))
        np.testing.assert_allclose(out, [[0, 17 / 255, 0.4]], rtol=1e-6)

    def test_bool_becomes_zero_one(self):
        out = validate_images(np.array([[True, False], [False, True]]))
        np.testing.assert_array_equal(out, [[1, 0], [0, 1]])
        assert out.dtype == np.float32

    @pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
    def test_float_in_range_is_kept(self, dtype):
        X = np.array([[0.0, 0.25, 1.0]], dtype=dtype)
        out = validate_images(X)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, [[0.0, 0.25, 1.0]])

    def test_tiny_float_error_is_clipped(self):
        out = validate_images(np.array([[-5e-7, 0.5, 1 + 5e-7]], dtype=np.float64))
        np.testing.assert_array_equal(out, np.array([[0.0, 0.5, 1.0]], dtype=np.float32))

    def test_returns_contiguous_copy(self):
        X = np.asfortranarray(np.full((3, 4), 0.5, dtype=np.float32))
        out = validate_images(X)
        assert out.flags.c_contiguous
        out[0, 0] = 0.0
        assert X[0, 0] == 0.5

    @pytest.mark.parametrize(
        "X, fragment",
        [
            (np.array([["a", "b"]]), "must hold numbers"),
            (np.array([[1 + 1j, 0]]), "Complex data not supported"),
            (np.array([[None, 1]], dtype=object), "NaN"),
            (np.array([[{"a": 1}, 1]], dtype=object), "non-numeric"),
            (np.zeros(5), "2-D"),
            (np.zeros((1, 2, 2, 2)), "2-D"),
            (np.zeros((0, 4)), "no samples"),
            (np.zeros((3, 0)), "0 feature"),
            (np.zeros((3, 2, 0)), "0 feature"),
            ([[0.1, 0.2], [0.3]], "rectangular"),
        ],
    )
    def test_shape_and_dtype_errors(self, X, fragment):
        with pytest.raises(InvalidInputError) as excinfo:
            validate_images(X, name="probes")
        message = one_line_error(excinfo)
        assert fragment in message and message.startswith("probes")

    def test_nan_and_inf_are_counted_with_first_index(self):
        X = np.full((3, 4), 0.5)
        X[1, 2] = np.nan
        X[2, 0] = np.inf
        X[2, 3] = -np.inf
        with pytest.raises(InvalidInputError) as excinfo:
            validate_images(X, name="X_train")
        message = one_line_error(excinfo)
        assert "X_train" in message and "3 NaN/inf" in message and "sample 1, feature 2" in message

    @pytest.mark.parametrize(
        "X, found, allowed",
        [
            (np.array([[0, 256]], dtype=np.int64), "[0, 256]", "[0, 255]"),
            (np.array([[-1, 10]], dtype=np.int16), "[-1, 10]", "[0, 255]"),
            (np.array([[0.0, 1.5]]), "[0, 1.5]", "[0, 1]"),
            (np.array([[-0.01, 0.5]], dtype=np.float32), "[-0.01, 0.5]", "[0, 1]"),
        ],
    )
    def test_out_of_range_names_min_max_and_range(self, X, found, allowed):
        with pytest.raises(InvalidInputError) as excinfo:
            validate_images(X, name="X")
        message = one_line_error(excinfo)
        assert found in message and allowed in message

    def test_image_shape_mismatch(self):
        with pytest.raises(InvalidInputError, match="10 features per image.*needs 9"):
            validate_images(np.zeros((2, 10)), image_shape=(3, 3))
        with pytest.raises(InvalidInputError, match=r"shape \(2, 6\), expected \(3, 4\)"):
            validate_images(np.zeros((2, 2, 6)), image_shape=(3, 4))
        with pytest.raises(InvalidInputError, match="image_shape"):
            validate_images(np.zeros((2, 4)), image_shape=(2, -2))

    def test_errors_are_regentree_and_value_errors(self):
        with pytest.raises(RegentreeError):
            validate_images(np.zeros(3))
        with pytest.raises(ValueError):
            validate_images(np.zeros(3))


class TestValidateLabels:
    def test_returns_labels_as_is(self):
        np.testing.assert_array_equal(validate_labels([3, 1, 2], 3), [3, 1, 2])
        out = validate_labels(np.array(["cat", "dog"]), 2)
        assert out.dtype.kind == "U" and list(out) == ["cat", "dog"]

    def test_length_and_ndim_errors(self):
        with pytest.raises(InvalidInputError, match="labels_a has 2 labels but there are 3 samples"):
            validate_labels([1, 2], 3, name="labels_a")
        with pytest.raises(InvalidInputError, match="1-D"):
            validate_labels(np.zeros((3, 1)), 3)

    def test_missing_labels(self):
        with pytest.raises(InvalidInputError, match="1 missing.*index 1"):
            validate_labels([1.0, np.nan, 2.0], 3)
        with pytest.raises(InvalidInputError, match="missing"):
            validate_labels(np.array(["a", None], dtype=object), 2)


# ---------------------------------------------------------------- IDX


class TestLoadIdx:
    @pytest.mark.parametrize("dtype", list(_IDX_CODES))
    @pytest.mark.parametrize("gz", [False, True])
    def test_round_trip(self, tmp_path, dtype, gz):
        arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
        if dtype == "uint8":
            arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
        out = load_idx(write_idx(tmp_path / "a-idx3-ubyte", arr, gz=gz))
        assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.shape == (2, 3, 4)
        np.testing.assert_array_equal(out, arr)
        out[0, 0, 0] = 1  # writable

    def test_one_dimensional_labels(self, tmp_path):
        labels = np.array([7, 2, 1, 0], dtype=np.uint8)
        np.testing.assert_array_equal(load_idx(write_idx(tmp_path / "l", labels, gz=True)), labels)

    def test_truncated_raw_file(self, tmp_path):
        path = write_idx(tmp_path / "t-idx3-ubyte", np.zeros((3, 4, 4), dtype=np.uint8))
        path.write_bytes(path.read_bytes()[:-5])
        with pytest.raises(InvalidInputError) as excinfo:
            load_idx(path)
        message = one_line_error(excinfo)
        assert str(path) in message and "truncated" in message and "48" in message and "43" in message

    def test_truncated_gzip_file(self, tmp_path):
        path = write_idx(tmp_path / "t.gz", np.zeros((50, 4, 4), dtype=np.uint8), gz=True)
        path.write_bytes(path.read_bytes()[:-10])
        with pytest.raises(InvalidInputError, match="gzip") as excinfo:
            load_idx(path)
        assert str(path) in one_line_error(excinfo)

    def test_corrupt_gzip_body(self, tmp_path):
        path = tmp_path / "c.gz"
        path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
        with pytest.raises(InvalidInputError, match="corrupt or truncated gzip"):
            load_idx(path)

    @pytest.mark.parametrize(
        "payload, fragment",
        [
            (b"\x00\x00", "too short"),
            (b"\x01\x02\x08\x01\x00\x00\x00\x01\x05", "magic"),
            (b"\x00\x00\x0a\x01\x00\x00\x00\x01\x05", "type code 0x0A"),
            (b"\x00\x00\x08\x03\x00\x00\x00\x01", "header"),
            (b"\x00\x00\x08\x00", "header"),
            (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", "trailing"),
        ],
    )
    def test_malformed_headers(self, tmp_path, payload, fragment):
        path = tmp_path / "bad-idx1-ubyte"
        path.write_bytes(payload)
        with pytest.raises(InvalidInputError, match=fragment) as excinfo:
            load_idx(path)
        assert str(path) in one_line_error(excinfo)

    def test_missing_file(self, tmp_path):
        with pytest.raises(InvalidInputError, match="does not exist"):
            load_idx(tmp_path / "nope")


# ---------------------------------------------------------------- digits


class TestDigits:
    def test_all_shapes_and_range(self):
        ds = load_digits_dataset("all")
        assert ds.X.shape == (1797, 64) and ds.X.dtype == np.float32 and ds.y.dtype == np.int64
        assert ds.X.min() == 0.0 and ds.X.max() == 1.0
        assert ds.class_names == tuple("0123456789") and ds.image_shape == (8, 8) and ds.n_classes == 10
        assert len(ds) == 1797 and ds.source == "digits"

    def test_split_is_a_deterministic_stratified_partition(self):
        full = load_digits_dataset("all")
        train, test = load_digits_dataset("train", seed=3), load_digits_dataset("test", seed=3)
        assert len(train) + len(test) == len(full) and len(test) == 360
        rows = lambda X: X[np.lexsort(X.T[::-1])]  # noqa: E731 - sorted rows, to compare as multisets
        np.testing.assert_array_equal(rows(np.concatenate([train.X, test.X])), rows(full.X))
        expected = np.bincount(full.y) * 0.2
        assert np.all(np.abs(np.bincount(test.y, minlength=10) - expected) <= 1)
        again = load_digits_dataset("test", seed=3)
        np.testing.assert_array_equal(again.X, test.X)
        np.testing.assert_array_equal(again.y, test.y)
        assert not np.array_equal(load_digits_dataset("test", seed=4).y, test.y)

    def test_load_dataset_digits_matches(self):
        a, b = load_dataset("digits", split="test", seed=1), load_digits_dataset("test", seed=1)
        np.testing.assert_array_equal(a.X, b.X)
        assert len(load_dataset("digits", split="test", test_fraction=0.5)) == 899


# ---------------------------------------------------------------- Dataset, subsets, splits


@pytest.fixture
def small_ds(rng):
    X = rng.random((12, 4), dtype=np.float32)
    y = np.array([0, 1, 2] * 4, dtype=np.int64)
    return Dataset(X, y, ("a", "b", "c"), (2, 2), "mem")


class TestDataset:
    def test_subset_mask_and_indices(self, small_ds):
        by_mask = small_ds.subset(small_ds.y == 1)
        assert len(by_mask) == 4 and set(by_mask.y) == {1} and by_mask.class_names == ("a", "b", "c")
        by_index = small_ds.subset([5, 0])
        np.testing.assert_array_equal(by_index.X, small_ds.X[[5, 0]])
        assert len(small_ds.subset([])) == 0

    def test_subset_errors(self, small_ds):
        with pytest.raises(InvalidInputError, match="mask"):
            small_ds.subset(np.ones(3, dtype=bool))
        with pytest.raises(InvalidInputError, match="out of range"):
            small_ds.subset([12])

    def test_select_classes_reindexes(self, small_ds):
        sub = small_ds.select_classes(["c", "a"])
        assert sub.class_names == ("a", "c") and len(sub) == 8
        np.testing.assert_array_equal(sub.y, [0, 1] * 4)
        np.testing.assert_array_equal(sub.X, small_ds.X[small_ds.y != 1])
        assert small_ds.select_classes("b").class_names == ("b",)
        with pytest.raises(InvalidInputError, match="unknown"):
            small_ds.select_classes(["a", "zebra"])

    def test_is_frozen_and_checked(self, small_ds):
        with pytest.raises(AttributeError):
            small_ds.source = "x"
        with pytest.raises(InvalidInputError, match="float32"):
            Dataset(small_ds.X.astype(np.float64), small_ds.y, ("a", "b", "c"), (2, 2), "m")
        with pytest.raises(InvalidInputError, match="image_shape"):
            Dataset(small_ds.X, small_ds.y, ("a", "b", "c"), (3, 2), "m")
        with pytest.raises(InvalidInputError, match="outside 0..1"):
            Dataset(small_ds.X, small_ds.y, ("a", "b"), (2, 2), "m")

    def test_stratified_subsample_is_balanced_and_deterministic(self, small_ds):
        sub = stratified_subsample(small_ds, 2, seed=0)
        np.testing.assert_array_equal(np.bincount(sub.y), [2, 2, 2])
        np.testing.assert_array_equal(stratified_subsample(small_ds, 2, seed=0).X, sub.X)
        with pytest.raises(InvalidInputError, match="class 'a'.*4 samples.*per_class=5"):
            stratified_subsample(small_ds, 5, seed=0)
        with pytest.raises(InvalidInputError, match="positive"):
            stratified_subsample(small_ds, 0, seed=0)

    def test_train_test_split_dataset(self, small_ds):
        train, test = train_test_split_dataset(small_ds, 0.25, seed=0)
        assert (len(train), len(test)) == (9, 3)
        np.testing.assert_array_equal(np.bincount(test.y), [1, 1, 1])
        assert train.class_names == test.class_names == small_ds.class_names
        with pytest.raises(InvalidInputError, match="test_fraction"):
            train_test_split_dataset(small_ds, 1.5, seed=0)


# ---------------------------------------------------------------- load_dataset sources


class TestIdxDirectory:
    def test_real_split_is_used(self, mnist_like_dir):
        directory, (train_x, train_y, test_x, test_y) = mnist_like_dir
        train = load_dataset(directory, "train")
        test = load_dataset(str(directory), "test")
        np.testing.assert_allclose(train.X, train_x.reshape(30, 12) / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(test.y, test_y)
        assert train.image_shape == (4, 3) and train.class_names == ("0", "1", "2", "3", "4")
        everything = load_dataset(directory, "all")
        assert len(everything) == 50
        np.testing.assert_array_equal(everything.y, np.concatenate([train_y, test_y]))

    def test_classes_txt_overrides_names(self, mnist_like_dir):
        directory, _ = mnist_like_dir
        (directory / "classes.txt").write_text("zero\none\ntwo\nthree\nfour\nfive\n")
        assert load_dataset(directory, "test").class_names == ("zero", "one", "two", "three", "four")

    def test_missing_labels_and_count_mismatch(self, mnist_like_dir, rng):
        directory, _ = mnist_like_dir
        (directory / "t10k-labels-idx1-ubyte").unlink()
        with pytest.raises(InvalidInputError, match="t10k-images-idx3-ubyte has no matching labels"):
            load_dataset(directory, "train")
        write_idx(directory / "t10k-labels-idx1-ubyte", np.zeros(7, dtype=np.uint8))
        with pytest.raises(InvalidInputError, match=r"\(20, 4, 3\).*7 labels"):
            load_dataset(directory, "test")

    def test_single_split_is_split_here(self, mnist_like_dir):
        directory, (train_x, train_y, _, _) = mnist_like_dir
        for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            (directory / name).unlink()
        train, test = load_dataset(directory, "train", seed=1), load_dataset(directory, "test", seed=1)
        assert (len(train), len(test)) == (24, 6)
        assert sorted(np.bincount(test.y, minlength=5)) == [1, 1, 1, 1, 2]  # 6 test images, 5 classes

    def test_emnist_is_upright_with_mapped_names(self, emnist_like_dir):
        directory, upright, labels = emnist_like_dir
        ds = load_dataset(directory, "all")
        assert ds.class_names == ("0", "A", "a", "b") and ds.image_shape == (5, 4)
        np.testing.assert_allclose(ds.X, upright.reshape(40, 20) / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(ds.y, labels)
        train, test = load_dataset(directory, "train"), load_dataset(directory, "test")
        assert (len(train), len(test)) == (32, 8)
        np.testing.assert_array_equal(np.bincount(test.y), [2, 2, 2, 2])

    def test_corrupt_idx_in_directory_names_file(self, mnist_like_dir):
        directory, _ = mnist_like_dir
        bad = directory / "t10k-images-idx3-ubyte"
        bad.write_bytes(bad.read_bytes()[:100])
        with pytest.raises(InvalidInputError, match="truncated") as excinfo:
            load_dataset(directory, "test")
        assert str(bad) in str(excinfo.value)


class TestNpzAndFolders:
    def test_npz_with_string_labels_in_numeric_order(self, tmp_path, rng):
        x = rng.integers(0, 256, size=(30, 3, 3), dtype=np.uint8)
        y = np.array(["10", "2", "cat"] * 10)
        np.savez(tmp_path / "d.npz", x=x, y=y)
        ds = load_dataset(tmp_path / "d.npz", "all")
        assert ds.class_names == ("2", "10", "cat") and ds.image_shape == (3, 3)
        np.testing.assert_array_equal(ds.y, [1, 0, 2] * 10)
        np.testing.assert_allclose(ds.X, x.reshape(30, 9) / 255.0, rtol=1e-6)
        test = load_dataset(tmp_path / "d.npz", "test", test_fraction=0.3)
        np.testing.assert_array_equal(np.bincount(test.y), [3, 3, 3])

    def test_npz_with_uppercase_x_and_class_names(self, tmp_path, rng):
        X = rng.random((8, 16))
        np.savez(tmp_path / "d.npz", X=X, y=np.array([1, 3] * 4), class_names=np.array(["n0", "n1", "n2", "n3"]))
        ds = load_dataset(tmp_path / "d.npz", "all")
        assert ds.class_names == ("n1", "n3") and ds.image_shape == (4, 4)
        np.testing.assert_array_equal(ds.y, [0, 1] * 4)

    def test_npz_errors(self, tmp_path):
        np.savez(tmp_path / "no_y.npz", x=np.zeros((2, 4)))
        with pytest.raises(InvalidInputError, match="'x' \\(or 'X'\\) and 'y'"):
            load_dataset(tmp_path / "no_y.npz", "all")
        np.savez(tmp_path / "count.npz", x=np.zeros((3, 4)), y=np.arange(2))
        with pytest.raises(InvalidInputError, match="2 labels but there are 3 samples"):
            load_dataset(tmp_path / "count.npz", "all")
        (tmp_path / "junk.npz").write_bytes(b"not a zip")
        with pytest.raises(InvalidInputError, match="cannot be read"):
            load_dataset(tmp_path / "junk.npz", "all")

    def test_image_folder(self, tmp_path, rng):
        root = tmp_path / "folders"
        pixels = {}
        for name in ("10", "2", "cat"):
            for i in range(5):
                pixels[(name, i)] = rng.integers(0, 256, size=(6, 5), dtype=np.uint8)
                write_png(root / name / f"img{i}.png", pixels[(name, i)], mode="RGB" if i == 0 else "L")
        (root / "cat" / "notes.txt").write_text("ignored")
        Image.fromarray(np.full((6, 5), 77, dtype=np.uint8)).save(root / "2" / "z.jpg", quality=100)
        ds = load_dataset(root, "all")
        assert ds.class_names == ("2", "10", "cat") and ds.image_shape == (6, 5) and len(ds) == 16
        np.testing.assert_array_equal(np.bincount(ds.y), [6, 5, 5])
        first_ten = ds.X[ds.y == 1][1]
        np.testing.assert_allclose(first_ten, pixels[("10", 1)].ravel() / 255.0, rtol=1e-6)
        assert abs(ds.X[ds.y == 0][-1].mean() * 255 - 77) < 2  # the JPEG, sorted last
        train = load_dataset(root, "train", test_fraction=0.4, seed=2)
        assert len(train) == 9

    def test_image_folder_errors(self, tmp_path):
        root = tmp_path / "folders"
        write_png(root / "a" / "1.png", np.zeros((4, 4)))
        (root / "b").mkdir()
        with pytest.raises(InvalidInputError, match="class folder .*b holds no PNG/JPEG"):
            load_dataset(root, "all")
        odd = write_png(root / "b" / "odd.png", np.zeros((5, 4)))
        with pytest.raises(InvalidInputError, match=r"shape \(5, 4\).*shape \(4, 4\)") as excinfo:
            load_dataset(root, "all")
        assert str(odd) in str(excinfo.value)

    def test_source_errors(self, tmp_path):
        with pytest.raises(InvalidInputError, match="neither 'digits'"):
            load_dataset(tmp_path / "missing")
        with pytest.raises(InvalidInputError, match="no recognisable files"):
            load_dataset(tmp_path)
        (tmp_path / "data.csv").write_text("1,2")
        with pytest.raises(InvalidInputError, match="not a .npz"):
            load_dataset(tmp_path / "data.csv")
        with pytest.raises(InvalidInputError, match="unknown split 'valid'"):
            load_dataset("digits", split="valid")
        with pytest.raises(InvalidInputError, match="test_fraction"):
            load_dataset("digits", test_fraction=0.0)


# ---------------------------------------------------------------- probes


class TestProbes:
    def test_png_npy_npz_idx(self, tmp_path, rng):
        img = rng.integers(0, 256, size=(4, 3), dtype=np.uint8)
        stack = rng.random((2, 4, 3))
        flat = rng.integers(0, 256, size=(3, 12), dtype=np.uint8)
        png = write_png(tmp_path / "one.png", img)
        np.save(tmp_path / "single.npy", img)
        np.save(tmp_path / "stack.npy", stack)
        np.savez(tmp_path / "flat.npz", X=flat)
        idx = write_idx(tmp_path / "p-images-idx3-ubyte.gz", flat.reshape(3, 4, 3), gz=True)
        paths = [png, tmp_path / "single.npy", str(tmp_path / "stack.npy"), tmp_path / "flat.npz", idx]
        X, names = load_probes(paths, (4, 3))
        assert X.shape == (1 + 1 + 2 + 3 + 3, 12) and X.dtype == np.float32
        assert names[:4] == ["one.png", "single.npy", "stack.npy[0]", "stack.npy[1]"]
        assert names[4:7] == ["flat.npz[0]", "flat.npz[1]", "flat.npz[2]"]
        assert names[7:] == [f"p-images-idx3-ubyte.gz[{i}]" for i in range(3)]
        np.testing.assert_allclose(X[0], img.ravel() / 255.0, rtol=1e-6)
        np.testing.assert_allclose(X[2:4], stack.reshape(2, 12), rtol=1e-6)
        np.testing.assert_allclose(X[7:], flat / 255.0, rtol=1e-6)

    def test_emnist_named_idx_probe_is_made_upright(self, tmp_path, rng):
        upright = rng.integers(0, 256, size=(2, 4, 3), dtype=np.uint8)
        path = write_idx(tmp_path / "emnist-x-test-images-idx3-ubyte", upright.transpose(0, 2, 1).copy())
        X, names = load_probes([path], (4, 3))
        np.testing.assert_allclose(X, upright.reshape(2, 12) / 255.0, rtol=1e-6)
        assert names == ["emnist-x-test-images-idx3-ubyte[0]", "emnist-x-test-images-idx3-ubyte[1]"]

    def test_single_path_is_accepted(self, tmp_path):
        png = write_png(tmp_path / "x.png", np.zeros((2, 2)))
        X, names = load_probes(png, (2, 2))
        assert X.shape == (1, 4) and names == ["x.png"]

    def test_wrong_size_names_file_and_both_sizes(self, tmp_path):
        png = write_png(tmp_path / "big.png", np.zeros((5, 5)))
        with pytest.raises(InvalidInputError) as excinfo:
            load_probes([png], (4, 3))
        message = one_line_error(excinfo)
        assert str(png) in message and "(5, 5)" in message and "(4, 3)" in message
        np.save(tmp_path / "s.npy", np.zeros((2, 10)))
        with pytest.raises(InvalidInputError, match=r"s\.npy holds shape \(2, 10\).*\(4, 3\)"):
            load_probes([tmp_path / "s.npy"], (4, 3))

    def test_bad_probe_files(self, tmp_path):
        (tmp_path / "x.gif").write_bytes(b"GIF89a")
        with pytest.raises(InvalidInputError, match="unsupported type '.gif'"):
            load_probes([tmp_path / "x.gif"], (2, 2))
        with pytest.raises(InvalidInputError, match="does not exist"):
            load_probes([tmp_path / "none.png"], (2, 2))
        with pytest.raises(InvalidInputError, match="no probe files"):
            load_probes([], (2, 2))
        (tmp_path / "broken.png").write_bytes(b"not a png")
        with pytest.raises(InvalidInputError, match="broken.png cannot be read"):
            load_probes([tmp_path / "broken.png"], (2, 2))
        np.save(tmp_path / "nan.npy", np.full((2, 2), np.nan))
        with pytest.raises(InvalidInputError, match="nan.npy holds 4 NaN/inf"):
            load_probes([tmp_path / "nan.npy"], (2, 2))


# ---------------------------------------------------------------- real shared data


@pytest.fixture(scope="module")
def emnist_all():
    directory = SHARED_DATA / "emnist_bymerge"
    if not directory.is_dir():
        pytest.skip(f"shared EMNIST data not found at {directory}")
    return directory, load_dataset(directory, "all")


def test_real_mnist_test_split():
    directory = SHARED_DATA / "mnist"
    if not directory.is_dir():
        pytest.skip(f"shared MNIST data not found at {directory}")
    labels = load_idx(directory / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and labels.dtype == np.uint8 and labels[:3].tolist() == [7, 2, 1]
    ds = load_dataset(directory, "test")
    assert ds.X.shape == (10000, 784) and ds.image_shape == (28, 28)
    assert ds.class_names == tuple("0123456789")
    np.testing.assert_array_equal(ds.y, labels)
    assert 0.0 <= ds.X.min() and ds.X.max() == 1.0


def test_real_emnist_is_upright_with_47_classes(emnist_all):
    directory, ds = emnist_all
    assert ds.X.shape == (116323, 784) and ds.n_classes == 47
    assert ds.class_names[:11] == tuple("0123456789A") and ds.class_names[-1] == "t"
    counts = np.bincount(ds.y, minlength=47)
    assert counts.min() >= 415 and counts.max() <= 6400
    with gzip.open(directory / "emnist-bymerge-test-images-idx3-ubyte.gz") as stream:
        stored = np.frombuffer(stream.read(16 + 784)[16:], dtype=np.uint8).reshape(28, 28)
    first = ds.X[0].reshape(28, 28)
    np.testing.assert_allclose(first, stored.T / 255.0, rtol=1e-6)
    assert not np.allclose(first, stored / 255.0)


def test_class_indices_is_the_one_label_lookup_and_names_the_source() -> None:
    from regentree.data import class_indices

    np.testing.assert_array_equal(class_indices(np.array([3, 7]), np.array(["7", "3", "7"])), [1, 0, 1])
    assert class_indices(["a"], []).dtype == np.int64
    with pytest.raises(InvalidInputError, match=r"^test.npz: labels \['c'\] are not classes of the model \(it knows \['a', 'b'\]\)$"):
        class_indices(["a", "b"], ["a", "c"], where="test.npz")


def test_labels_are_the_class_name_of_every_sample() -> None:
    ds = Dataset(X=np.zeros((3, 4), np.float32), y=np.array([1, 0, 1]), class_names=(5, "b"), image_shape=(2, 2),
                 source="made")
    assert ds.labels.tolist() == ["b", "5", "b"]

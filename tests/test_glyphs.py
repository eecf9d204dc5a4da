"""The glyph-set generator (benchmarks/glyphs.py) is seeded, keeps its promised shapes and splits fonts."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
glyphs = pytest.importorskip("glyphs")
pytestmark = pytest.mark.skipif(not all(Path(f).is_file() for f in glyphs.TRAIN_FONTS + glyphs.TEST_FONTS),
                                reason="needs the CJK fonts listed in benchmarks/glyphs.py")


def test_tiny_generation_is_deterministic_with_the_promised_shapes():
    first, again = glyphs.generate(5, 20, 10, seed=3), glyphs.generate(5, 20, 10, seed=3)
    for split, per_class in (("train", 20), ("test", 10)):
        arrays = first[split]
        assert arrays["x"].shape == (5 * per_class, 28, 28) and arrays["x"].dtype == np.uint8
        assert np.array_equal(np.bincount(arrays["y"]), np.full(5, per_class))
        for key in ("x", "y", "class_names"):
            assert np.array_equal(arrays[key], again[split][key])
    assert list(first["train"]["class_names"]) == list(first["test"]["class_names"])
    assert len(set(first["train"]["class_names"])) == 5
    assert not np.array_equal(first["train"]["x"], glyphs.generate(5, 20, 10, seed=4)["train"]["x"])


def test_test_font_is_not_a_training_font_and_maps_every_class():
    assert not set(glyphs.TEST_FONTS) & set(glyphs.TRAIN_FONTS)
    names = glyphs.generate(5, 1, 1, seed=0)["train"]["class_names"]
    for path in glyphs.TRAIN_FONTS + glyphs.TEST_FONTS:
        assert {ord(c) for c in names} <= glyphs.font_code_points(path)


def test_written_files_load_as_datasets(tmp_path, monkeypatch):
    from regentree.data import load_dataset

    monkeypatch.setattr(sys, "argv", ["glyphs.py", "--classes", "3", "--train-per-class", "2",
                                      "--test-per-class", "1", "--out", str(tmp_path)])
    glyphs.main()
    train, test = load_dataset(tmp_path / "train.npz", "all"), load_dataset(tmp_path / "test.npz", "all")
    assert (len(train), len(test)) == (6, 3) and train.class_names == test.class_names
    assert not list(tmp_path.glob(".*partial"))


def test_more_classes_than_the_fonts_share_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["glyphs.py", "--classes", "100000"])
    with pytest.raises(SystemExit) as exit_info:
        glyphs.main()
    assert "share only" in str(exit_info.value)

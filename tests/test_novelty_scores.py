"""regentree.rejection.novelty_scores: each statistic against hand-computed values, and bad input as one-line errors."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from regentree.errors import ConfigError, InvalidInputError
from regentree.rejection.novelty_scores import NOVELTY_SCORES, code_length_nats, novelty_statistic


def test_raw_is_the_distortion():
    np.testing.assert_allclose(novelty_statistic("raw", [3.0, 5.5]), [3.0, 5.5])


def test_base_ratio_subtracts_the_base_distortion():
    """Winner 120 nats, base 100 nats: 20 nats the class explains worse than the background model."""
    np.testing.assert_allclose(novelty_statistic("base_ratio", [120.0, 40.0], base_distortion=[100.0, 50.0]),
                               [20.0, -10.0])


def test_complexity_subtracts_the_code_length():
    np.testing.assert_allclose(novelty_statistic("complexity", [300.0], code_length=[250.0]), [50.0])


def test_code_length_is_the_png_size_in_nats():
    """A blank 8x8 image: its PNG size in bytes, times 8 ln 2; a noisy one costs more."""
    blank = np.zeros((1, 64), dtype=np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8), mode="L").save(buffer, format="PNG", optimize=True)
    np.testing.assert_allclose(code_length_nats(blank, (8, 8)), [buffer.tell() * 8 * math.log(2)])
    noisy = np.random.default_rng(0).random((1, 64)).astype(np.float32)
    assert code_length_nats(noisy, (8, 8))[0] > code_length_nats(blank, (8, 8))[0]


@pytest.mark.parametrize("score, kwargs, message", [
    ("nope", {}, "novelty score 'nope' is unknown"),
    ("base_ratio", {}, "needs base_distortion"),
    ("complexity", {}, "needs code_length"),
    ("complexity", {"code_length": [1.0, 2.0]}, "code_length has shape (2,), distortion (1,)"),
])
def test_bad_arguments_are_one_line_errors(score, kwargs, message):
    with pytest.raises((ConfigError, InvalidInputError), match=message.replace("(", r"\(").replace(")", r"\)")):
        novelty_statistic(score, [1.0], **kwargs)


def test_code_length_rejects_a_wrong_image_shape():
    with pytest.raises(InvalidInputError, match="for images 8x8"):
        code_length_nats(np.zeros((2, 60), dtype=np.float32), (8, 8))


def test_every_name_is_known():
    assert NOVELTY_SCORES[0] == "raw" and len(set(NOVELTY_SCORES)) == len(NOVELTY_SCORES)

"""Generate a many-class glyph set: CJK ideographs rendered at 28x28 from several fonts, seeded.

    python benchmarks/glyphs.py                                  # 1,000 classes, 20 train + 10 test each
    python benchmarks/glyphs.py --classes 5 --out /tmp/glyphs5   # a tiny set

Classes are CJK Unified Ideographs (U+4E00..U+9FFF) that every font below maps in its cmap, drawn
with `numpy.random.default_rng(seed)` from that common set. Each image draws the character at 48 px on
a 64x64 canvas with a random stroke width (0-1 px), applies a random affine map (rotation +-8 degrees,
scale 0.85-1.05, shear +-0.15, shift +-3 px), shrinks it to 28x28 and adds Gaussian pixel noise
(sigma 0.04). Fonts are split so that the test images come from a font never used in training:

- train: AR PL UKai, AR PL UMing, WenQuanYi Micro Hei, IPAGothic (cycled over a class's images)
- test:  IPAMincho (a Mincho face; training's closest relative is the Ming face UMing)

Writes OUT/train.npz and OUT/test.npz (arrays x uint8 (n, 28, 28), y int64, class_names: the characters),
each readable by `regentree.data.load_dataset` and the CLI. Default OUT is benchmarks/data/glyphs (git-ignored).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
from pathlib import Path

import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "data" / "glyphs"
TRAIN_FONTS = ("/usr/share/fonts/truetype/arphic/ukai.ttc", "/usr/share/fonts/truetype/arphic/uming.ttc",
               "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf")
TEST_FONTS = ("/usr/share/fonts/opentype/ipafont-mincho/ipam.ttf",)
CJK_RANGE = range(0x4E00, 0xA000)
CANVAS, DRAW_SIZE, SIDE = 64, 48, 28


def font_code_points(path: str) -> set[int]:
    """Code points the first face of font file `path` maps to a glyph."""
    font = TTFont(path, fontNumber=0, lazy=True)
    return set(font.getBestCmap() or {})


def common_ideographs(fonts: tuple[str, ...]) -> list[int]:
    """CJK Unified Ideographs present in every font of `fonts`, ascending."""
    common = set(CJK_RANGE)
    for path in fonts:
        common &= font_code_points(path)
    return sorted(common)


def render(char: str, font: ImageFont.FreeTypeFont, rng: np.random.Generator) -> np.ndarray:
    """One 28x28 uint8 rendering of `char` with random stroke width, affine jitter and noise."""
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(canvas).text((CANVAS / 2, CANVAS / 2), char, fill=255, font=font, anchor="mm",
                                stroke_width=int(rng.integers(0, 2)), stroke_fill=255)
    angle, scale = math.radians(rng.uniform(-8, 8)), rng.uniform(0.85, 1.05)
    shear, (dx, dy) = rng.uniform(-0.15, 0.15), rng.uniform(-3, 3, size=2)
    forward = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]) @ \
        np.array([[1.0, shear], [0.0, 1.0]])
    inverse = np.linalg.inv(forward)  # PIL maps output pixels back to input pixels
    centre = np.array([CANVAS / 2, CANVAS / 2])
    offset = centre - inverse @ (centre + np.array([dx, dy]))
    coefficients = (*inverse[0], offset[0], *inverse[1], offset[1])
    moved = canvas.transform(canvas.size, Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR)
    small = np.asarray(moved.resize((SIDE, SIDE), Image.Resampling.BOX), dtype=np.float32) / 255.0
    noisy = np.clip(small + rng.normal(0.0, 0.04, size=small.shape), 0.0, 1.0)
    return np.round(noisy * 255).astype(np.uint8)


def render_split(chars: list[str], fonts: tuple[str, ...], per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` renderings of every character, cycling over `fonts`: x (n, 28, 28) uint8, y (n,)."""
    faces = [ImageFont.truetype(path, DRAW_SIZE, index=0) for path in fonts]
    rng = np.random.default_rng(seed)
    x = np.empty((len(chars) * per_class, SIDE, SIDE), dtype=np.uint8)
    for label, char in enumerate(chars):
        for i in range(per_class):
            x[label * per_class + i] = render(char, faces[i % len(faces)], rng)
    return x, np.repeat(np.arange(len(chars), dtype=np.int64), per_class)


def generate(n_classes: int, per_class_train: int, per_class_test: int, seed: int) -> dict[str, dict]:
    """The glyph set: split name -> arrays x, y, class_names (the same classes in both splits)."""
    pool = common_ideographs(TRAIN_FONTS + TEST_FONTS)
    if n_classes > len(pool):
        raise ValueError(f"--classes {n_classes}: the fonts share only {len(pool)} ideographs")
    picked = np.sort(np.random.default_rng(seed).choice(pool, size=n_classes, replace=False))
    chars = [chr(int(c)) for c in picked]
    names = np.array(chars)
    train = render_split(chars, TRAIN_FONTS, per_class_train, seed + 1)
    test = render_split(chars, TEST_FONTS, per_class_test, seed + 2)
    return {"train": {"x": train[0], "y": train[1], "class_names": names},
            "test": {"x": test[0], "y": test[1], "class_names": names}}


def write_npz_atomic(path: Path, arrays: dict) -> None:
    """Write `arrays` to `path` as .npz through a temporary file in the same folder, then rename."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(buffer.getvalue())
    os.replace(partial, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=1000, help="number of ideograph classes (default 1000)")
    parser.add_argument("--train-per-class", type=int, default=20, help="training images per class (default 20)")
    parser.add_argument("--test-per-class", type=int, default=10, help="test images per class (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for train.npz and test.npz")
    args = parser.parse_args()
    for option, value in (("--classes", args.classes), ("--train-per-class", args.train_per_class),
                          ("--test-per-class", args.test_per_class)):
        if value < 1:
            sys.exit(f"error: {option} must be at least 1, got {value}")
    try:
        splits = generate(args.classes, args.train_per_class, args.test_per_class, args.seed)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, arrays in splits.items():
        write_npz_atomic(args.out / f"{name}.npz", arrays)
        print(f"wrote {args.out / f'{name}.npz'}: {len(arrays['y'])} images of {args.classes} classes")


if __name__ == "__main__":
    main()

"""The synthetic vocabulary: 25 categories (5 shapes x 5 colours), their outlines, and the palette.

Every category is a colour word plus a shape word ("red circle", "orange star"), so a person tells
them apart at a glance and a question reads naturally ("For the image with an orange star, ...").
Angles come from a table of cosines and sines rounded to 9 decimals, so the vertices are the same
on every machine whatever its maths library rounds in the last bit.
"""

import math
from dataclasses import dataclass

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
COLOURS: dict[str, tuple[tuple[int, int, int], ...]] = {
    # three tones per colour (dark, mid, light); hues far apart so they never blur into each other
    "red": ((170, 20, 25), (215, 35, 40), (240, 80, 80)),
    "orange": ((205, 105, 0), (245, 140, 10), (255, 175, 60)),
    "green": ((20, 120, 40), (35, 165, 60), (90, 205, 100)),
    "blue": ((25, 50, 170), (45, 85, 225), (95, 135, 250)),
    "purple": ((110, 30, 140), (150, 50, 190), (190, 100, 225)),
}
TONES_PER_COLOUR = 3

# Background families: low-saturation tones, so clutter never looks like a category's colour.
_BACKGROUND_FAMILIES: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128),  # grey
    (150, 135, 110),  # beige
    (120, 135, 115),  # sage
    (115, 125, 140),  # slate
    (145, 130, 125),  # rose-grey
    (125, 120, 105),  # olive-grey
)
BACKGROUND_LEVELS = 10

ANGLE_STEPS = 120  # 3-degree resolution: multiples of 3 cover the square, triangle, star and 24-gon
_COS = tuple(round(math.cos(2 * math.pi * k / ANGLE_STEPS), 9) for k in range(ANGLE_STEPS))
_SIN = tuple(round(math.sin(2 * math.pi * k / ANGLE_STEPS), 9) for k in range(ANGLE_STEPS))


@dataclass(frozen=True)
class Category:
    """One object category of the synthetic vocabulary."""

    id: int
    name: str
    shape: str
    colour: str


def categories() -> list[Category]:
    """All categories, ids 1..25, ordered colour-major."""
    return [
        Category(id=1 + i * len(SHAPES) + j, name=f"{colour} {shape}", shape=shape, colour=colour)
        for i, colour in enumerate(COLOURS)
        for j, shape in enumerate(SHAPES)
    ]


def palette() -> np.ndarray:
    """The fixed 8-bit palette: object tones first, then background families x brightness levels."""
    entries = [tone for tones in COLOURS.values() for tone in tones]
    for base in _BACKGROUND_FAMILIES:
        for level in range(BACKGROUND_LEVELS):
            scale = 0.55 + 0.1 * level  # 0.55 .. 1.45
            entries.append(tuple(min(255, int(c * scale)) for c in base))
    return np.array(entries, dtype=np.uint8)


def object_colour_index(colour: str, tone: int) -> int:
    """Palette index of one tone of a category colour."""
    return list(COLOURS).index(colour) * TONES_PER_COLOUR + tone


def background_index(family: int, level: int) -> int:
    """Palette index of a background family at a brightness level (clamped to the valid range)."""
    level = min(max(level, 0), BACKGROUND_LEVELS - 1)
    return len(COLOURS) * TONES_PER_COLOUR + family * BACKGROUND_LEVELS + level


NUM_BACKGROUND_FAMILIES = len(_BACKGROUND_FAMILIES)


def _ring(radii: tuple[float, ...], step: int, start: int = 0) -> list[tuple[int, float]]:
    """(angle index, radius) pairs going round the circle; radii repeat cyclically."""
    count = ANGLE_STEPS // step
    return [((start + k * step) % ANGLE_STEPS, radii[k % len(radii)]) for k in range(count)]


# Each outline: (angle index, radius) vertices of a shape of unit size centred on the origin.
_OUTLINES: dict[str, list[tuple[int, float]]] = {
    "circle": _ring((1.0,), 5),  # 24-gon
    "square": _ring((1.0,), 30, start=15),
    "triangle": _ring((1.0,), 40, start=90),
    "star": _ring((1.0, 0.45), 12, start=90),
    "cross": [
        (a % ANGLE_STEPS, r) for arm in range(4) for a, r in ((arm * 30 - 6, 1.0), (arm * 30 + 6, 1.0), (arm * 30 + 15, 0.44))
    ],
}


def outline(shape: str, cx: float, cy: float, radius: float, rotation: int, stretch: float = 1.0) -> list[tuple[float, float]]:
    """Vertices (x, y) of `shape` centred at (cx, cy), rotated by `rotation` table steps.

    `stretch` scales the y axis (1.0 for categories; clutter blobs use other values). Vertices are
    rounded to 2 decimals, which is what the annotation stores and what the rasteriser fills.
    """
    points = []
    for angle, r in _OUTLINES[shape]:
        k = (angle + rotation) % ANGLE_STEPS
        points.append((round(cx + radius * r * _COS[k], 2), round(cy + radius * r * stretch * _SIN[k], 2)))
    return points

"""Polygon filling on a palette canvas with plain IEEE arithmetic (no library rasteriser).

A pixel is inside a polygon when its centre is, by the even-odd rule. Only additions,
multiplications, divisions and comparisons are used, so every machine fills the same pixels.
"""

import numpy as np


def polygon_mask(points: list[tuple[float, float]], height: int, width: int) -> tuple[slice, slice, np.ndarray] | None:
    """Return (rows, cols, mask) for the pixels of the canvas inside the polygon, or None if none are.

    `rows`/`cols` select the polygon's bounding box on the canvas and `mask` is boolean over that box.
    """
    xs = np.array([p[0] for p in points], dtype=np.float64)
    ys = np.array([p[1] for p in points], dtype=np.float64)
    x0, x1 = max(int(np.floor(xs.min())), 0), min(int(np.ceil(xs.max())), width)
    y0, y1 = max(int(np.floor(ys.min())), 0), min(int(np.ceil(ys.max())), height)
    if x0 >= x1 or y0 >= y1:
        return None
    px = (np.arange(x0, x1, dtype=np.float64) + 0.5)[None, None, :]
    py = (np.arange(y0, y1, dtype=np.float64) + 0.5)[None, :, None]
    ax, ay = xs[:, None, None], ys[:, None, None]
    bx, by = np.roll(xs, -1)[:, None, None], np.roll(ys, -1)[:, None, None]
    crosses = (ay > py) != (by > py)
    dy = np.where(by == ay, 1.0, by - ay)  # horizontal edges never cross; avoid dividing by zero
    x_at = ax + (py - ay) * (bx - ax) / dy
    inside = np.logical_xor.reduce(crosses & (px < x_at), axis=0)
    if not inside.any():
        return None
    return slice(y0, y1), slice(x0, x1), inside


def fill_polygon(
    canvas: np.ndarray, points: list[tuple[float, float]], value: int, labels: np.ndarray | None = None, label: int = 0
) -> None:
    """Paint the polygon onto `canvas` with `value` (and onto `labels` with `label`, if given)."""
    found = polygon_mask(points, canvas.shape[0], canvas.shape[1])
    if found is None:
        return
    rows, cols, inside = found
    canvas[rows, cols][inside] = value
    if labels is not None:
        labels[rows, cols][inside] = label

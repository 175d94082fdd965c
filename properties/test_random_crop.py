"""Random crops (backends/augment.py ``random_crop``) drawn by each backend's OWN generator:
the output is x's window at the position drawn, the seed decides the position, and the
positions are uniform on the grid of windows.

Each example draws a configuration of one class (the full height: h = H, top always 0; the
full width; or both axes drawn) from a menu, CONFIGS: x (N, C, H, W) and the crop (h, w),
small and one realistic, of 2 to 16 positions (H - h + 1)(W - w + 1); five of them, as JAX
compiles each shape and dtype once a run (about half a second each). x is 0, 1, 2, ...
(exact in float32), so every value names its place: the position is recovered from
y[0, 0, 0, 0] and y must be exactly x[:, :, top:top + h, left:left + w] (one window for the
whole batch). Calls with the seeds s, s + 1, ..., s + 199 (s drawn) give DRAWS = 200
positions; the seed s again gives the same crop, exactly. One statistical check per example
(properties/stats.py, level ALPHA = 1e-7): Pearson's chi-square test that the counts on the
joint (top, left) grid are uniform (every cell expected >= 12.5), which also catches a top
and a left that are uniform but dependent.

Power per example against the planted bugs (tests/planted_augment.py), computed with scipy:
the exact law of the counts under the bug (scipy.stats.multinomial.pmf over every outcome)
where the bug leaves 3 cells or fewer, the noncentral chi-square (scipy.stats.ncx2) where it
leaves more:
- the upper bound exclusive (the last top and left never drawn): 1 on the grids of 6 positions
  or fewer (no outcome of the 200 draws passes; the weakest, 4 positions along one axis,
  leaves 3 cells: the most even counts give chi-square 66.7 where the test needs 35.4),
  1 - 1e-18 on the 2 x 8 grid, 1 - 7e-8 on the 4 x 4 grid;
- one number for top and left (the diagonal only): 1 (on a grid with one position along an
  axis the crop is always at (0, 0)), 1 - 1e-65 on the 4 x 4 grid;
- a centre crop whatever the seed: every count in one cell, p < 1e-44: 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.augment import call_random_crop
from properties import stats
from properties.checks import unsupported_example
from properties.coverage import stratum
from properties.record import current_record

pytestmark = [pytest.mark.dtypes("float32", "float64")]

#: class -> ((N, C, H, W), (h, w)): H - h + 1 top and W - w + 1 left positions
CONFIGS = {
    "full height": (((1, 2, 4, 6), (4, 3)),),
    "full width": (((2, 1, 5, 3), (4, 3)),),
    "both axes": (((2, 3, 5, 3), (3, 2)), ((1, 1, 3, 9), (2, 2)), ((4, 3, 32, 32), (29, 29))),
}
CLASSES = tuple(CONFIGS)
#: crops per example: 12.5 or more expected in each of the (at most 16) cells
DRAWS = 200


def window_position(x: np.ndarray, y: np.ndarray, size: tuple[int, int], seed: int
                  ) -> tuple[int, int]:
    """(top, left) of the window y of x (x's values distinct): where y[0, 0, 0, 0] is in
    x[0, 0], y asserted to be exactly that window."""
    (height, width), (h, w) = x.shape[2:], size
    found = np.argwhere(x[0, 0] == y[0, 0, 0, 0])
    assert len(found) == 1 and found[0][0] <= height - h and found[0][1] <= width - w, (
        f"random_crop {size} of x {x.shape} with seed {seed}: its corner {y[0, 0, 0, 0]} is "
        f"not the corner of a window (found at {found.tolist()})")
    top, left = (int(v) for v in found[0])
    window = x[:, :, top:top + h, left:left + w]
    differ = np.argwhere(y != window)
    assert differ.size == 0, (f"random_crop {size} of x {x.shape} with seed {seed} is not x's "
                              f"window at ({top}, {left}): {len(differ)} of {y.size} elements "
                              f"differ, first at {differ[:5].tolist()}")
    return top, left


@pytest.mark.component("random_crop")
@given(data=st.data())
def test_random_crop_positions_are_uniform(backend, dtype, data):
    """random_crop(x, (h, w), seed) is x's window at the position drawn (exact), the same
    seed gives the same crop, and DRAWS seeds' positions are uniform on the (top, left) grid
    (one statistical check per example, 20 per backend and dtype under ci; power in the
    module docstring)."""
    current_record().declared = {"axes": CLASSES}
    shape, size = data.draw(st.sampled_from(CONFIGS[stratum(data, "axes", CLASSES)]),
                            label="x shape, crop size")
    seed = data.draw(st.integers(0, 2**31 - 1 - DRAWS), label="seed")
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    with unsupported_example():
        crops = [call_random_crop(backend, x, size, dtype, seed + i) for i in range(DRAWS)]
        again = call_random_crop(backend, x, size, dtype, seed)
    assert np.array_equal(again, crops[0]), (f"random_crop {size} of x {shape}: seed {seed} "
                                             "gave two different crops")
    grid = (shape[2] - size[0] + 1, shape[3] - size[1] + 1)
    counts = np.zeros(grid, dtype=np.int64)
    for i, y in enumerate(crops):
        counts[window_position(x, y, size, seed + i)] += 1
    stats.uniform_counts(f"random_crop {size} of x {shape}, {DRAWS} seeds from {seed}: "
                         f"(top, left) on the {grid[0]} x {grid[1]} grid", counts)

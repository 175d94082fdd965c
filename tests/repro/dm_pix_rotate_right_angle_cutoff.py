"""dm_pix 0.4.5: rotate(order=1, mode='constant') by a nonzero multiple of 90 degrees (pi/2,
pi, 3 pi/2, 2 pi radians) replaces edge pixels by the fill.

rotate (dm_pix/_src/augment.py) builds its matrix from jnp.cos and jnp.sin of the angle,
which are not exact there (sin(pi) = 1.2e-16, sin(2 pi) = -2.4e-16); a sample that should
land exactly on the first or last row or column lands 1e-16 outside, and the constant mode's
linear interpolation (flat_nd_linear_interpolate_constant) fills any sample outside
[0, size - 1] whole. A 2 x 3 image 1..6 rotated by pi keeps 4 of its 6 pixels, by 2 pi 2 of
them, the others the fill.
Nearest (order=0) rounds the 1e-16 away. Run: python tests/repro/dm_pix_rotate_right_angle_cutoff.py
"""

import math

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
image = jnp.asarray(np.arange(1.0, 7.0).reshape(2, 3, 1))
for degrees in (180.0, 360.0):
    y = pix.rotate(image, math.radians(degrees), order=1, mode="constant", cval=-1.0)
    print(f"{degrees:g} degrees:", np.asarray(y)[..., 0].tolist())
print("expected 180:", np.rot90(np.asarray(image)[..., 0], 2).tolist(), "and 360: the image")

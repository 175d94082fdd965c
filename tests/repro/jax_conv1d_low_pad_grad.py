"""jax (XLA CPU) float32/float16/bfloat16 conv1d input gradient is wrong at the last input
element, often garbage up to 1e32 (stale memory), for kernel 2, stride 1, dilation 1 and
padding (2, 0) with 4 or more output channels; float64 and every other configuration of
kernel 1-3, dilation 1-2, padding 0-2 per side and stride 1-3 are right.
Run: python tests/repro/jax_conv1d_low_pad_grad.py"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

jax.config.update("jax_enable_x64", True)
rng = np.random.default_rng(0)
x, w = rng.uniform(-2, 2, (1, 4, 33)), rng.uniform(-1, 1, (8, 4, 2))
g = rng.standard_normal((1, 8, 34))
exact = g[0, :, 33] @ w[:, :, 1]  # dx[:, 32]: only output 33 reaches it, through tap 1


def conv(x, w):
    return lax.conv_general_dilated(x, w, (1,), [(2, 0)], dimension_numbers=("NCH", "OIH", "NCH"))


for dt in (jnp.float64, jnp.float32, jnp.float16, jnp.bfloat16):
    _, vjp = jax.vjp(conv, jnp.asarray(x, dt), jnp.asarray(w, dt))
    dx, _ = vjp(jnp.asarray(g, dt))
    print(dt.__name__, "dx[:, 32] =", np.asarray(dx, np.float64)[0, :, 32], "exact", exact)

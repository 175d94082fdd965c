"""optax.clip_by_global_norm returns NaN for a zero gradient with max_norm = 0 (optax 0.2.8).

Its update keeps the gradients only where g_norm < max_norm and otherwise computes
(g / g_norm) * max_norm: at g_norm = max_norm = 0 that is (0 / 0) * 0. The oracle
(reference/clipping.py) and torch.nn.utils.clip_grad_norm_ (max_norm / (norm + 1e-6)) give
zeros. Upstream: https://github.com/google-deepmind/optax/pull/1752 (open: compare with <=).

    python tests/repro/optax_clip_zero_nan.py
"""

import jax.numpy as jnp
import optax

tx = optax.clip_by_global_norm(0.0)
zero = [jnp.zeros(3)]
print("zero gradient, max_norm 0:", tx.update(zero, tx.init(zero))[0])       # [nan nan nan]
tx = optax.clip_by_global_norm(1.0)
print("zero gradient, max_norm 1:", tx.update(zero, tx.init(zero))[0])       # [0. 0. 0.]
tx = optax.clip_by_global_norm(0.0)
print("unit gradient, max_norm 0:", tx.update([jnp.ones(3)], tx.init(zero))[0])  # [0. 0. 0.]

"""torch 2.13.0 (CPU): torch.optim.Adam's step under torch.compile moves float64 parameters
with float32 accuracy: after 5 steps (lr 1e-3) the parameters are 1.7e-7 (relative) from
the float64 oracle and from eager, which matches it exactly. The step count is a float32
tensor (torch/optim/optimizer.py: capturable and compiled optimizers keep ``step`` float32),
and compiled, the bias corrections 1 - beta ** step stay tensors in its dtype instead of
Python floats from ``step.item()`` (pytorch#88173); keeping step float32 is deliberate
(pytorch#173901's review). Found by the torch-compile backend against the oracle.
Run: python tests/repro/torch_compile_adam_float32_step.py
"""

import numpy as np
import torch

from reference.optimizers import make_optimizer

rng = np.random.default_rng(0)
p0 = rng.standard_normal(5)
grads = [rng.standard_normal(5) for _ in range(5)]

oracle = make_optimizer("adam", lr=1e-3)
q = [p0.copy()]
state = oracle.init(q)
for g in grads:
    q, state = oracle.update([g], state, q)

for compiled in (False, True):
    p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=1e-3)
    step = torch.compile(opt.step) if compiled else opt.step
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        step()
    rel = np.max(np.abs(p.detach().numpy() - q[0]) / np.abs(q[0]))
    print(f"{'compiled' if compiled else 'eager'}: max relative distance to the float64 oracle "
          f"{rel:.2g}; step {opt.state[p]['step'].dtype}")

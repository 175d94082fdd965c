"""torch 2.13.0 (CPU): torch.optim.Adagrad's step under torch.compile moves float64 parameters
by lr rounded to float32. Its step size clr = lr / (1 + (step - 1) * lr_decay) is computed
from the step count, a float32 tensor (torch/optim/adagrad.py); eager reads it with
step.item(), but optimizer.py's _get_value returns the tensor itself while compiling, so clr
becomes a float32 tensor. Expected: compiled distance 4.75e-08 of the change for lr = 1e-3
(float32(1e-3) = 0.0010000000475), 2.95e-07 with lr_decay 0.01; eager 0. The float32 step of
compiled optimizers is pytorch#88173. Found by the torch-compile backend against the oracle.
Run: python tests/repro/torch_compile_adagrad_float32_lr.py
"""

import numpy as np
import torch

from reference.optimizers import make_optimizer

rng = np.random.default_rng(0)
p0 = rng.standard_normal(5)
grads = [rng.standard_normal(5) for _ in range(3)]

for lr_decay in (0.0, 0.01):
    oracle = make_optimizer("adagrad", lr=1e-3, lr_decay=lr_decay, eps=1e-10)
    q = [p0.copy()]
    state = oracle.init(q)
    for g in grads:
        q, state = oracle.update([g], state, q)
    for compiled in (False, True):
        p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adagrad([p], lr=1e-3, lr_decay=lr_decay, eps=1e-10, foreach=False)
        step = torch.compile(opt.step) if compiled else opt.step
        for g in grads:
            p.grad = torch.tensor(g, dtype=torch.float64)
            step()
        rel = np.max(np.abs(p.detach().numpy() - q[0]) / np.abs(p0 - q[0]))
        print(f"lr_decay {lr_decay}, {'compiled' if compiled else 'eager'}: max distance to "
              f"the float64 oracle {rel:.3g} of the change")

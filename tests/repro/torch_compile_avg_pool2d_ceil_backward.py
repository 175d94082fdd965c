"""torch 2.13.0 (CPU): F.avg_pool2d with ceil_mode=True and count_include_pad=True (the
default) under torch.compile: the forward divides a last window that overhangs the input by
the positions it covers (eager, compiled and the oracle agree), but Inductor's backward
divides its gradient by the whole kernel size: for width 5, kernel (1, 3), the last window
covers 2 positions, and the compiled gradient there is 1/3 where eager's is 1/2, in every
dtype. With count_include_pad=False both agree. Found by the torch-compile backend against
the oracle (test_vjp of avg_pool2d, float32, margin 1.0e5: kernel (1, 3), a 5x17 input).
Upstream: pytorch#198119 (open; Inductor's avg_pool2d_backward lowering scales by kH * kW
whenever count_include_pad is set).
Run: python tests/repro/torch_compile_avg_pool2d_ceil_backward.py
"""

import torch
import torch.nn.functional as F

x = torch.randn(1, 1, 1, 5, dtype=torch.float64, requires_grad=True)
g = torch.ones(1, 1, 1, 2, dtype=torch.float64)
for cip in (True, False):
    f = lambda t, cip=cip: F.avg_pool2d(t, (1, 3), ceil_mode=True, count_include_pad=cip)  # noqa: E731
    compiled = torch.compile(f, fullgraph=True, dynamic=False)
    (eager,) = torch.autograd.grad(f(x), x, g)
    (comp,) = torch.autograd.grad(compiled(x), x, g)
    print(f"count_include_pad={cip}: eager {eager.numpy().ravel()}, compiled {comp.numpy().ravel()}")

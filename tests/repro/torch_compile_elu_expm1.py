"""torch 2.13.0 (CPU): F.elu under torch.compile (Inductor's CPU code) computes exp(x) - 1
where eager computes expm1(x), so it loses relative accuracy near 0 from below: float32
relative error 4.1e-7 at x = -0.02, 1.0e-5 at -1e-3, 1.4e-3 at -1e-5, 0.19 at -1e-7 (eager:
below 3.1e-8); float64 4.9e-10 at -1e-7, 2.2e-5 at -1e-12 (eager exact). Found by the torch-compile backend
against the oracle (test_forward of elu, float32, margin 1.19 at x = -0.02). Upstream:
pytorch#189803 (closed), fixed by pytorch#190533 ("Use Sleef expm1 in CPU vec codegen").
Run: python tests/repro/torch_compile_elu_expm1.py
"""

import numpy as np
import torch
import torch.nn.functional as F

compiled = torch.compile(lambda t: F.elu(t), fullgraph=True, dynamic=False)
for dtype, xs in ((torch.float32, [-0.02, -1e-3, -1e-5, -1e-7]),
                  (torch.float64, [-1e-7, -1e-12])):
    x = torch.tensor(xs, dtype=dtype)
    exact = np.expm1(np.array(xs, dtype=np.float64))
    for name, y in (("eager", F.elu(x)), ("compiled", compiled(x))):
        rel = np.abs(y.double().numpy() - exact) / np.abs(exact)
        print(f"{dtype} {name:8s} relative error:", np.array2string(rel, precision=2))

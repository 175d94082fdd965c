"""diffusers' DDIMScheduler.step returns NaN in float32 at eta = 1 where the direction's
coefficient 1 - abar_prev - sigma^2 (exactly (1 - abar_prev)^2 (abar_t / abar_prev) /
(1 - abar_t), here 4.1e-18) rounds below 0 and is raised to the power 0.5
(scheduling_ddim.py 481, 488). Run: python tests/repro/diffusers_ddim_eta1_nan.py"""

import torch
from diffusers import DDIMScheduler

for dtype in (torch.float32, torch.float64):
    s = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                      set_alpha_to_one=False, clip_sample=False)
    s.set_timesteps(1)
    s.alphas_cumprod = s.alphas_cumprod.to(dtype)
    x = torch.ones(2, 2, dtype=dtype)
    out = s.step(torch.zeros_like(x), 999, x, eta=1.0, variance_noise=torch.zeros_like(x))
    print(dtype, "prev_sample:", out.prev_sample.flatten().tolist())

"""Minimal reproduction: torch's bfloat16 conv_transpose2d gradients on CPU are wrong when the
input's width is 1 and the stride along the width is > 1.

Not a pytest module (pytest collects test_*.py only); run it directly:

    python tests/repro/torch_bf16_conv_transpose_input_grad.py

Found by test_vjp[torch-cpu-bfloat16-conv_transpose2d] (dev profile, seed 2), which failed
flakily ("Inconsistent results from replaying a test case"): the input gradient was NaN at
index (0, 0, 4, 0) where the oracle has 1.0108.

Input gradient. The input gradient of a transposed convolution is a plain convolution of the
cotangent, whose output is the input's shape; oneDNN computes it with its forward kernel
brg_conv_fwd:avx10_1_512_amx (on this AMX CPU), which is wrong for an output of width 1 with a
stride > 1 along the width: pytorch#169688 (F.conv2d gives the same wrong numbers, shown
below). x (1, 1, 5, 1) = 1, w (1, 8, 1, 3) = 1, stride 2: every dL/dx is 24 (8 channels times
3 taps); torch returns 0 for rows 2 and 4, in every call, and with other shapes and data
values that follow the process' earlier work (stale memory), NaN among them, so a replayed
example can pass.

Weight gradient. With padding along the width as well, the weight gradient can read stale
memory where the zero padding should be, as in the conv1d/conv2d entries of
backends/divergences/torch.toml (tests/repro/torch_bf16_conv1d_zero_grad.py): x (1, 1, 1, 1) = 0,
w (1, 1, 1, 3) = 0, stride 2, padding (0, 1) gave dL/dw[2] = NaN after earlier bfloat16 work in
some processes and 0 in others (it follows the process' allocations, Python's included), so this
script does not show it; the sweeps met it 14 times, always with width 1 and stride_w > 1.

Only bfloat16 through oneDNN: float32, float16 and bfloat16 with torch.backends.mkldnn disabled
are right, as are the forward, an input of width 2 and a stride of 1 along the width. The
script needs only torch.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore", message="TF32 acceleration")


def input_grad(width: int = 1, stride=2, dtype: torch.dtype = torch.bfloat16,
               x_val: float = 1.0) -> list[float]:
    """dL/dx of conv_transpose2d(x, w, stride) for x (1, 1, 5, width) = x_val, w (1, 8, 1, 3) = 1
    and a cotangent of ones (exact answer: 24 everywhere)."""
    x = torch.full((1, 1, 5, width), x_val, dtype=dtype, requires_grad=True)
    w = torch.ones(1, 8, 1, 3, dtype=dtype, requires_grad=True)
    y = F.conv_transpose2d(x, w, None, stride=stride)
    gx, _ = torch.autograd.grad(y, (x, w), torch.ones_like(y))
    return gx.float()[0, 0, :, 0].tolist()


def forward_ok(dtype: torch.dtype = torch.bfloat16) -> bool:
    """The forward of the same call against float64 (its rows are 1 where reached, else 0)."""
    x = torch.ones(1, 1, 5, 1, dtype=dtype)
    w = torch.ones(1, 8, 1, 3, dtype=dtype)
    y = F.conv_transpose2d(x, w, None, stride=2)
    return torch.equal(y.double(), F.conv_transpose2d(x.double(), w.double(), None, stride=2))


def conv2d_same_numbers() -> list[float]:
    """The convolution behind that input gradient, as F.conv2d: cotangent (1, 8, 9, 3) = 1, the
    weight (1, 8, 1, 3) = 1, stride 2; output (1, 1, 5, 1), exactly 24 (pytorch#169688)."""
    cot = torch.ones(1, 8, 9, 3, dtype=torch.bfloat16)
    w = torch.ones(1, 8, 1, 3, dtype=torch.bfloat16)
    return F.conv2d(cot, w, None, stride=2).float().flatten().tolist()


def dirty() -> None:
    """Some earlier bfloat16 work: a conv_transpose2d forward and backward on nonzero data."""
    x = torch.full((4, 16, 9, 9), 5.0, dtype=torch.bfloat16, requires_grad=True)
    w = torch.full((16, 16, 3, 3), 5.0, dtype=torch.bfloat16, requires_grad=True)
    y = F.conv_transpose2d(x, w, None, stride=2, padding=1)
    torch.autograd.grad(y, (x, w), torch.ones_like(y))


def random_case_nonfinite(calls: int) -> str:
    """A shape Hypothesis-like draws reach (the sweep's x (1, 52, 7, 1), w (52, 64, 3, 3),
    stride 3, dilation (2, 1), padding (0, 1), output_padding (2, 1), random data): calls whose
    input gradient is off by more than 1 from float64, and those with NaN or inf."""
    gen = torch.Generator().manual_seed(0)
    kw = {"stride": 3, "padding": (0, 1), "output_padding": (2, 1), "dilation": (2, 1)}
    x = (torch.rand(1, 52, 7, 1, generator=gen) * 4 - 2).to(torch.bfloat16)
    w = (torch.rand(52, 64, 3, 3, generator=gen) * 2 - 1).to(torch.bfloat16)
    x64 = x.double().requires_grad_()
    y64 = F.conv_transpose2d(x64, w.double(), None, **kw)
    cot = (torch.rand(y64.shape, generator=gen) * 2 - 1).to(torch.bfloat16)
    (exact,) = torch.autograd.grad(y64, x64, cot.double())
    wrong = nonfinite = 0
    for _ in range(calls):
        dirty()
        xs = x.clone().requires_grad_()
        (gx,) = torch.autograd.grad(F.conv_transpose2d(xs, w, None, **kw), xs, cot)
        finite = bool(torch.isfinite(gx).all())
        nonfinite += not finite
        wrong += not finite or (gx.double() - exact).abs().max().item() > 1.0
    return f"{wrong} of {calls} calls wrong, {nonfinite} with NaN or inf"


def onednn_primitive() -> str:
    """The oneDNN implementation that computes the input gradient (ONEDNN_VERBOSE in a child)."""
    out = subprocess.run([sys.executable, __file__, "--once"], capture_output=True, text=True,
                         check=True, env={**os.environ, "ONEDNN_VERBOSE": "1"}).stdout
    lines = [ln.split(",") for ln in out.splitlines() if "backward_data" in ln]
    return f"{lines[-1][6]} ({lines[-1][-2]})" if lines else "none (oneDNN not used)"


def wrong_rows(got: list[float]) -> str:
    bad = [i for i, g in enumerate(got) if not math.isfinite(g) or g != 24.0]
    return f"{got}  wrong rows {bad}" if bad else f"{got}  right"


def main() -> None:
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"mkldnn enabled {torch.backends.mkldnn.enabled}, threads {torch.get_num_threads()}")
    print("conv_transpose2d x (1,1,5,1) = 1, w (1,8,1,3) = 1, stride 2, cotangent 1: "
          "expected dx = 24 in every row")
    print("oneDNN backward-data primitive:", onednn_primitive())
    print("bfloat16 dx:                      ", wrong_rows(input_grad()))
    print("F.conv2d, the same convolution:   ", wrong_rows(conv2d_same_numbers()),
          "(pytorch#169688)")
    print("input width 2:                    ", wrong_rows(input_grad(width=2)))
    print("stride (2, 1):                    ", wrong_rows(input_grad(stride=(2, 1))))
    with torch.backends.mkldnn.flags(enabled=False):
        print("torch.backends.mkldnn disabled:   ", wrong_rows(input_grad()))
    for dt in (torch.float32, torch.float16):
        print(f"{str(dt):<34}", wrong_rows(input_grad(dtype=dt)))
    print("the forward matches float64:      ", forward_ok())
    print("random data, after earlier bf16 work:", random_case_nonfinite(20))

if __name__ == "__main__":
    if "--once" in sys.argv:
        input_grad()
    else:
        main()

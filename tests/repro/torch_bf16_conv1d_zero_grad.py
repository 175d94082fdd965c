"""Minimal reproduction: torch's bfloat16 conv1d weight gradient on CPU reads stale memory.

Not a pytest module (pytest collects test_*.py only); run it directly:

    python tests/repro/torch_bf16_conv1d_zero_grad.py

The case Hypothesis shrank test_vjp[torch-cpu-bfloat16-conv1d] to (dev profile, seed 11):
x (1, 1, 1), w (1, 1, 2), b (1,) all zero, stride 3, padding 1, dilation 1, groups 1; output
length 1. dL/dw = sum_t cot[t] * x_padded[t * stride + j] is exactly 0 when x is 0, whatever
the cotangent. torch 2.13.0 on an AMX CPU (oneDNN picks brgconv_bwd_w:avx10_1_512_amx for the
backward-weights primitive) returns cot * garbage for w[..., 0], the tap that reads the left
padding: 0 in a fresh process, then values from 1e-36 to 1e17 that depend on what the process
did before (the stale contents of a reused buffer), not on the inputs. Only bfloat16 through
oneDNN: float32/float16/float64 and bfloat16 with torch.backends.mkldnn disabled return 0; the
forward and the input gradient are right. Seen with 1 and with 2 threads; whether a block of
calls shows it depends on the process' history, not on the count (a block can show 0 of 100),
so the counts vary from run to run. Sweeps over the shapes the property draws found it only
with stride > 1, symmetric padding > 0 and dilation 1. The script needs only torch.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import torch.nn.functional as F

STRIDE, PADDING = 3, 1


def weight_grad(cot: float = 1.0, dtype: torch.dtype = torch.bfloat16, x_val: float = 0.0,
                w_val: float = 0.0) -> list[float]:
    """dL/dw of conv1d(x, w, b, stride 3, padding 1) for x = x_val, w = w_val, b = 0 and a
    cotangent of cot (exact answer: cot * [0, x_val])."""
    x = torch.full((1, 1, 1), x_val, dtype=dtype, requires_grad=True)
    w = torch.full((1, 1, 2), w_val, dtype=dtype, requires_grad=True)
    b = torch.zeros(1, dtype=dtype, requires_grad=True)
    y = F.conv1d(x, w, b, stride=STRIDE, padding=PADDING)
    _, gw, _ = torch.autograd.grad(y, (x, w, b), torch.full_like(y, cot))
    return gw.float().flatten().tolist()


def dirty() -> None:
    """Some earlier bfloat16 work: a conv1d forward and backward on nonzero data."""
    x = torch.full((4, 8, 64), 5.0, dtype=torch.bfloat16, requires_grad=True)
    w = torch.full((8, 8, 3), 5.0, dtype=torch.bfloat16, requires_grad=True)
    y = F.conv1d(x, w, None, stride=2, padding=1)
    torch.autograd.grad(y, (x, w), torch.ones_like(y))


def tally(calls: int, **kw) -> str:
    got = [weight_grad(**kw)[0] for _ in range(calls)]
    bad = [g for g in got if g != 0.0]
    shown = ", ".join(f"{g:.3g}" for g in sorted(set(bad), key=abs)[:4])
    return f"{len(bad)} of {calls} calls nonzero" + (f" (e.g. {shown})" if bad else "")


def child() -> None:
    """One fresh process: the first call, then 50 calls after some earlier bfloat16 work."""
    first = weight_grad()[0]
    dirty()
    print(f"first call dw[0] = {first:.3g}; after earlier work: {tally(50)}")


def onednn_primitive() -> str:
    """The oneDNN implementation that computes the weight gradient (ONEDNN_VERBOSE in a child)."""
    out = subprocess.run([sys.executable, __file__, "--once"], capture_output=True, text=True,
                         check=True, env={**os.environ, "ONEDNN_VERBOSE": "1"}).stdout
    lines = [ln.split(",") for ln in out.splitlines() if "backward_weights" in ln]
    return lines[-1][6] if lines else "none (oneDNN not used)"


def main() -> None:
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"mkldnn enabled {torch.backends.mkldnn.enabled}, threads {torch.get_num_threads()}")
    print(f"conv1d x (1,1,1) = 0, w (1,1,2) = 0, b = 0, stride {STRIDE}, padding {PADDING}, "
          "cotangent 1: expected dw = [0, 0]")
    print("oneDNN backward-weights primitive:", onednn_primitive())
    print("fresh process, first call:       dw =", weight_grad())
    dirty()
    print("after a bf16 conv1d backward:    dw =", weight_grad())
    print("100 calls in a row:             ", tally(100))
    print("dw scales with the cotangent:    cot 1, 2, 4 ->",
          [f"{weight_grad(cot=c)[0]:.3g}" for c in (1.0, 2.0, 4.0)], "(stale value * cot)")
    for n in (16, 1024, 4096):
        torch.full((n,), 8.0, dtype=torch.bfloat16).add_(1)  # allocate, fill, free
        print(f"after freeing a filled buffer of {n:4d}: dw[0] =", f"{weight_grad()[0]:.3g}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        dirty()
        print(f"torch.set_num_threads({threads}):     ", tally(100))
    dirty()
    with torch.backends.mkldnn.flags(enabled=False):
        print("torch.backends.mkldnn disabled:  ", tally(100))
    for dt in (torch.float32, torch.float16, torch.float64):
        dirty()
        print(f"{str(dt):<32}", tally(100, dtype=dt))
    dirty()
    got = weight_grad(x_val=1.5, w_val=0.5)
    print("nonzero input x = 1.5, w = 0.5:  dw =", got, "expected [0.0, 1.5]")
    print("separate processes (each: its first call, then 50 after earlier bf16 work):")
    for _ in range(3):
        out = subprocess.run([sys.executable, __file__, "--child"], capture_output=True,
                             text=True, check=True).stdout.strip()
        print("  ", out)


if __name__ == "__main__":
    if "--once" in sys.argv:
        weight_grad()
    elif "--child" in sys.argv:
        child()
    else:
        main()

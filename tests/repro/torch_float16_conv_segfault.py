"""Minimal reproduction: torch 2.13.0's float16 conv1d and conv2d on CPU kill the process.

Not a pytest module; run it directly:

    python tests/repro/torch_float16_conv_segfault.py

Found by test_forward[torch-cpu-float16-conv1d] under the dev profile, seed 5 (the
certification reported "crashed: Fatal Python error: Segmentation fault" with the example).
A sweep of zero-input configurations (each in a forked child) crashed only in float16, only
with an axis of input length 1, kernel 1, dilation 2 and (stride 2, padding 1) or (stride 3,
padding 2), whatever the groups and channels (whether a given case crashes can depend on the
process' state): 12 of 3348 conv1d and 4 of 288 conv2d
configurations; bfloat16 and float32 never. The torch adapter refuses that form as
Unsupported (backends/torch_backend.py, _refuse_conv_segfault). Each call runs in a
child process so that the script reports every case.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

CASES = {
    "conv1d float16, L 1, k 1, stride 2, padding 1, dilation 2, groups 2": (
        F.conv1d, torch.float16, (1, 4, 1), (2, 2, 1), 2),
    "conv2d float16, W 1, k 1x1, stride 2, padding 1, dilation 2": (
        F.conv2d, torch.float16, (1, 2, 2, 1), (1, 2, 1, 1), 1),
    "conv1d float32, same arguments": (F.conv1d, torch.float32, (1, 4, 1), (2, 2, 1), 2),
}


def run(conv, dtype: torch.dtype, xs: tuple[int, ...], ws: tuple[int, ...], groups: int) -> str:
    pid = os.fork()
    if pid == 0:
        conv(torch.zeros(xs, dtype=dtype), torch.zeros(ws, dtype=dtype), None, stride=2,
             padding=1, dilation=2, groups=groups)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return "returned"


if __name__ == "__main__":
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for name, case in CASES.items():
        print(f"{name}: {run(*case)}")

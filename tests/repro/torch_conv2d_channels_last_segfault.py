"""Minimal reproduction: torch 2.13.0's float32 conv2d on CPU kills the process for a
channels-last input with an axis of length 1, kernel 1, dilation 2, a bias, and (stride 2,
padding 1) or (stride 3, padding 2) on that axis: a segmentation fault in oneDNN, in eager
with a channels-last input and under torch.compile, whose Inductor code lays conv2d's input
out channels-last. The same call with a contiguous input, or in float64 or bfloat16, or
without the bias, returns. It is the form of tests/repro/torch_float16_conv_segfault.py, and
matches pytorch#195394 (conv2d segfaults on non-contiguous strides of size-1 spatial dims,
oneDNN's BRGEMM convolution). Found by the torch-compile certification:
test_forward[torch-compile-cpu-float32-conv2d] crashed its worker on x (3, 33, 12, 1),
w (13, 33, 1, 1), stride 3, padding (0, 2), dilation 2. The torch-compile adapter refuses
the form as Unsupported (backends/torch_backend.py, _refuse_conv_segfault).

Not a pytest module; each call runs in a forked child so that the script reports every case:

    python tests/repro/torch_conv2d_channels_last_segfault.py
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

CASES = {  # name: (dtype, channels-last input, bias, stride, padding of the length-1 axis)
    "float32, channels-last, bias, stride 3, padding 2": (torch.float32, True, True, 3, 2),
    "float32, channels-last, bias, stride 2, padding 1": (torch.float32, True, True, 2, 1),
    "float32, contiguous, bias, stride 3, padding 2": (torch.float32, False, True, 3, 2),
    "float32, channels-last, no bias, stride 3, padding 2": (torch.float32, True, False, 3, 2),
    "float64, channels-last, bias, stride 3, padding 2": (torch.float64, True, True, 3, 2),
}


def run(dtype: torch.dtype, channels_last: bool, bias: bool, stride: int, pad: int,
        compiled: bool = False) -> str:
    pid = os.fork()
    if pid == 0:
        x = torch.randn(2, 2, 4, 1, dtype=dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        w = torch.randn(1, 2, 1, 1, dtype=dtype)
        b = torch.zeros(1, dtype=dtype) if bias else None
        conv = torch.compile(F.conv2d, fullgraph=True) if compiled else F.conv2d
        conv(x, w, b, stride, (0, pad), 2)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return "returned"


if __name__ == "__main__":
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for name, case in CASES.items():
        print(f"eager {name}: {run(*case)}")
    print("torch.compile, float32, contiguous, bias, stride 3, padding 2: "
          f"{run(torch.float32, False, True, 3, 2, compiled=True)}")

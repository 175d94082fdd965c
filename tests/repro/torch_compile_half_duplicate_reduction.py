"""Minimal reproduction: torch 2.13.0's Inductor (CPU) cannot compile a graph that returns the
same float16 or bfloat16 column reduction twice: its C++ kernel declares the converted
accumulator twice ("error: conflicting declaration 'auto at_Half_tmp_acc0_vec'"), and
torch.compile raises InductorError (CppCompileError). float32 compiles. The LSTM cell's
backward is such a graph: the gradients of its two biases, b_ih and b_hh, are the same sum
of the gates' gradients over the batch. Found by the torch-compile certification:
test_vjp[torch-compile-cpu-float16-lstm_cell] failed on its second example (N 16, I 160,
H 96, zero states) with the adapter's BackendError naming the InductorError.

Not a pytest module; run it directly:

    python tests/repro/torch_compile_half_duplicate_reduction.py
"""

from __future__ import annotations

import torch


def compiles(fn, *args) -> str:
    try:
        torch.compile(fn, fullgraph=True, dynamic=False)(*args)
    except Exception as exc:  # noqa: BLE001 - the compile error is what is shown
        lines = [ln for ln in str(exc).splitlines() if "error:" in ln]
        return f"{type(exc).__name__}: {lines[0].split('error:')[1].strip() if lines else exc}"
    return "compiled"


if __name__ == "__main__":
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        x = torch.randn(16, 16, dtype=dtype)
        print(f"(x.sum(0), x.sum(0) * 1), {dtype}: "
              f"{compiles(lambda x: (x.sum(0), x.sum(0) * 1), x)}")
    torch.manual_seed(0)
    cell = torch.nn.LSTMCell(160, 96, dtype=torch.float16)
    x = torch.randn(16, 160, dtype=torch.float16)
    state = (torch.zeros(16, 96, dtype=torch.float16), torch.zeros(16, 96, dtype=torch.float16))

    forward = torch.compile(lambda x, h, c: cell(x, (h, c)), fullgraph=True, dynamic=False)

    def backward() -> str:  # AOTAutograd compiles the backward on the first backward call
        hy, cy = forward(x, *state)
        try:
            torch.autograd.grad(hy.sum() + cy.sum(), list(cell.parameters()))
        except Exception as exc:  # noqa: BLE001 - the compile error is what is shown
            lines = [ln for ln in str(exc).splitlines() if "error:" in ln]
            return f"{type(exc).__name__}: {lines[0].split('error:')[1].strip() if lines else exc}"
        return "compiled"
    print(f"LSTMCell(160, 96) backward under torch.compile, torch.float16: {backward()}")

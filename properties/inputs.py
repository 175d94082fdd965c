"""What a case draws for one component: primals, keyword inputs, and the reduction length."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st


@dataclass
class Inputs:
    """Differentiable ``primals``, keyword inputs (targets, labels, configuration, running
    statistics) and ``terms``, the length of the longest sum behind one output element."""

    primals: tuple[np.ndarray, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    terms: int = 1


Case = Callable[[st.DataObject, str, bool], Inputs]
"""draw(data, dtype, tail) -> Inputs"""

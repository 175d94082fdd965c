"""Compilation events of the compiled backends (jax-jit, torch-compile): each compilation's
count and seconds go to whoever listens. The property plugin notes them in the running
test's record (the certificate's Compilation section), and the benchmarks add them up
(``track_compile_seconds``). A backend never depends on who listens."""

from __future__ import annotations

from collections.abc import Callable

#: listener(seconds, count): ``count`` compilations (0: more seconds of one already counted)
Listener = Callable[[float, int], None]
_LISTENERS: list[Listener] = []


def listen(listener: Listener) -> Callable[[], None]:
    """Send every later compilation to ``listener``; returns the call that stops it."""
    _LISTENERS.append(listener)
    return lambda: _LISTENERS.remove(listener)


def emit(seconds: float, count: int = 1) -> None:
    """``count`` compilations took ``seconds``: tell every listener."""
    for listener in tuple(_LISTENERS):
        listener(seconds, count)

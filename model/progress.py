"""Progress reporting without printing: library code calls a factory the CLI supplies."""

from __future__ import annotations

from typing import Protocol


class Bar(Protocol):
    def update(self, n: int = 1) -> None: ...
    def close(self) -> None: ...


class BarFactory(Protocol):
    def __call__(self, desc: str, total: int) -> Bar: ...


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def silent(desc: str, total: int) -> Bar:
    """The default: no output (library code prints nothing)."""
    return _Silent()

"""Phase timings: where a step's wall time goes, in seconds, carried by its result.

A step (plan, extract, load, …) owns one :class:`Phases`; it times its parts with
``with phases.timed("copy"):`` and puts :meth:`Phases.to_dict` into its result, which the task writes
to the audit row (``detail.phases``) and the benchmarks read (``make bench-phases``), so no caller
needs to patch a private function to see inside a step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class Phases:
    """Seconds accumulated per phase name (a phase timed twice adds up); wall clock (``perf_counter``)."""

    def __init__(self) -> None:
        """Starts with no phase timed."""
        self._seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Adds the block's wall time (seconds) to phase ``name``, also when the block raises."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        """Adds ``seconds`` to phase ``name`` (e.g. a time measured in another thread)."""
        self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    def timed_iter(self, name: str, items: Iterator[T]) -> Iterator[T]:
        """Yields ``items``, adding the time spent producing each one (not the consumer's) to ``name``."""
        try:
            while True:
                started = time.perf_counter()
                try:
                    item = next(items)
                except StopIteration:
                    self.add(name, time.perf_counter() - started)
                    return
                self.add(name, time.perf_counter() - started)
                yield item
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a consumer that stops early closes the source generator too
                close()

    def seconds(self, name: str) -> float:
        """Seconds accumulated for ``name`` (0.0 when never timed)."""
        return self._seconds.get(name, 0.0)

    def to_dict(self) -> dict[str, float]:
        """``{phase: seconds}`` rounded to milliseconds, in the order the phases were first timed."""
        return {name: round(seconds, 3) for name, seconds in self._seconds.items()}

"""Hybrid logical clocks (HLC), shared by the server and the reference device client.

Text form: ``<wall ms, 15 digits>-<counter, 5 digits>-<node>``, so that string order is clock
order and any phone stack can compare two clocks without parsing them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HLC = re.compile(r"([0-9]{15})-([0-9]{5})-([A-Za-z0-9_.:-]{1,64})")
MAX_COUNTER = 99_999


@dataclass(frozen=True, order=True)
class HLC:
    wall_ms: int
    counter: int
    node: str

    def __str__(self) -> str:
        return f"{self.wall_ms:015d}-{self.counter:05d}-{self.node}"

    @classmethod
    def parse(cls, text: object) -> HLC:
        match = _HLC.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"not a hybrid logical clock: {text!r}")
        return cls(int(match[1]), int(match[2]), match[3])


def tick(last: HLC | None, *, now_ms: int, node: str) -> HLC:
    """The clock for a local event: never behind the wall clock, never behind the last value."""
    if last is None or now_ms > last.wall_ms:
        return HLC(now_ms, 0, node)
    if last.counter >= MAX_COUNTER:
        return HLC(last.wall_ms + 1, 0, node)
    return HLC(last.wall_ms, last.counter + 1, node)


def receive(last: HLC | None, remote: HLC, *, now_ms: int, node: str) -> HLC:
    """The clock after seeing a remote clock (so later local events order after it)."""
    wall = max(now_ms, remote.wall_ms, last.wall_ms if last else 0)
    counters = [c.counter for c in (last, remote) if c is not None and c.wall_ms == wall]
    counter = max(counters) + 1 if counters else 0
    if counter > MAX_COUNTER:
        return HLC(wall + 1, 0, node)
    return HLC(wall, counter, node)


def capped(clock: HLC, *, limit_ms: int) -> HLC:
    """The clock no later than `limit_ms`: the server counts a device's clock as at most its
    own time plus the skew bound, so that a phone whose clock runs far ahead does not win every
    concurrent edit for as long as its clock stays wrong."""
    return clock if clock.wall_ms <= limit_ms else HLC(limit_ms, clock.counter, clock.node)

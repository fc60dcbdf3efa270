"""The traffic light's cycle: green -> yellow -> red, each state lasting a few seeded seconds."""

from __future__ import annotations

import numpy as np

GREEN, YELLOW, RED = "green", "yellow", "red"
LIGHT_STATES = (RED, YELLOW, GREEN)  # top to bottom in the signal head
CYCLE_ORDER = (GREEN, YELLOW, RED)
DURATION_RANGES_S = {GREEN: (3.0, 6.0), YELLOW: (2.0, 3.0), RED: (3.0, 6.0)}


class SignalCycle:
    """State of the light over time; the phase at time 0 is random (stationary over the cycle)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        means = np.array([sum(DURATION_RANGES_S[s]) / 2.0 for s in CYCLE_ORDER])
        index = int(rng.choice(len(CYCLE_ORDER), p=means / means.sum()))
        duration = self._draw(CYCLE_ORDER[index])
        start = -float(rng.uniform(0.0, duration))
        self._changes: list[tuple[float, float, int]] = [(start, start + duration, index)]

    def _draw(self, state: str) -> float:
        low, high = DURATION_RANGES_S[state]
        return float(self._rng.uniform(low, high))

    def _extend_to(self, t: float) -> None:
        while self._changes[-1][1] <= t:
            _, end, index = self._changes[-1]
            nxt = (index + 1) % len(CYCLE_ORDER)
            self._changes.append((end, end + self._draw(CYCLE_ORDER[nxt]), nxt))

    def _interval(self, t: float) -> tuple[float, float, int]:
        self._extend_to(t)
        for interval in reversed(self._changes):
            if interval[0] <= t:
                return interval
        return self._changes[0]

    def state(self, t: float) -> str:
        """The light's state at ``t`` seconds after the clip start (``t >= 0``)."""
        return CYCLE_ORDER[self._interval(t)[2]]

    def remaining(self, t: float) -> float:
        """Seconds until the state at ``t`` changes."""
        return self._interval(t)[1] - t

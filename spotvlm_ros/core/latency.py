"""Cloud delay models for simulation and tests, all seeded, built from one spec string.

A profile spec is ``name:key=value,key=value`` (spaces ignored). Models and their parameters:

=============  ==========================================  ==============================================
name           parameters (seconds unless noted)           delay of a request sent at time t
=============  ==========================================  ==============================================
``constant``   ``delay``                                   ``delay``
``normal``     ``mean``, ``std``                           ``max(0, N(mean, std))``
``lognormal``  ``mean``, ``sigma`` (log-space std)         lognormal with arithmetic mean ``mean``
``uniform``    ``low``, ``high``                           ``U(low, high)``
``gilbert``    ``good``, ``bad``, ``p_gb``, ``p_bg``,      two-state (Gilbert-Elliott) network: each
               ``jitter`` (optional, default 0)            request first moves good->bad with ``p_gb``
                                                           or bad->good with ``p_bg``, then takes that
                                                           state's delay, times a mean-1 lognormal
                                                           factor of log-std ``jitter``
``spikes``     ``base``, ``spike``, ``period``,            ``spike`` while ``(t - phase) mod period <
               ``duration``, ``phase`` (default 0),        duration``, else ``base``; times a mean-1
               ``jitter`` (default 0)                      lognormal factor of log-std ``jitter``
``trace``      ``path`` (CSV ``time_s,delay_s``),          delay of the last trace row at or before t
               ``loop`` (0/1, default 0)                   (first row before the trace starts; with
                                                           ``loop=1`` t wraps around the trace span)
=============  ==========================================  ==============================================

Every model draws from its own ``random.Random(seed)``, so one seed gives one sequence of delays.
"""

from __future__ import annotations

import bisect
import csv
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = [
    "LATENCY_MODELS",
    "ConstantLatency",
    "GilbertElliottLatency",
    "LatencyModel",
    "LognormalLatency",
    "NormalLatency",
    "SpikeLatency",
    "TraceLatency",
    "UniformLatency",
    "load_delay_trace",
    "parse_latency_profile",
    "validate_latency_profile",
]


class LatencyModel(ABC):
    """A delay model: ``sample(send_time_s)`` is the round-trip delay of a request sent then."""

    name: str = ""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    @abstractmethod
    def sample(self, send_time_s: float) -> float:
        """Delay in seconds (>= 0) of a request sent at ``send_time_s``."""

    @property
    @abstractmethod
    def mean_s(self) -> float:
        """Expected delay in seconds (long-run mean for stateful or time-dependent models)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


class ConstantLatency(LatencyModel):
    """The same delay for every request."""

    name = "constant"

    def __init__(self, delay: float, spec: str = "") -> None:
        super().__init__(spec or f"constant:delay={delay:g}")
        self.delay = delay

    def sample(self, send_time_s: float) -> float:
        return self.delay

    @property
    def mean_s(self) -> float:
        return self.delay


class NormalLatency(LatencyModel):
    """Gaussian delay, negative draws clipped to 0."""

    name = "normal"

    def __init__(self, mean: float, std: float, seed: int = 0, spec: str = "") -> None:
        super().__init__(spec or f"normal:mean={mean:g},std={std:g}")
        self.mean, self.std = mean, std
        self._rng = random.Random(seed)

    def sample(self, send_time_s: float) -> float:
        return max(0.0, self._rng.gauss(self.mean, self.std))

    @property
    def mean_s(self) -> float:
        if self.std == 0:
            return max(0.0, self.mean)
        z = self.mean / self.std
        cdf = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
        pdf = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        return self.mean * cdf + self.std * pdf  # mean of max(0, X)


class LognormalLatency(LatencyModel):
    """Lognormal delay parameterised by its arithmetic mean and its log-space std ``sigma``."""

    name = "lognormal"

    def __init__(self, mean: float, sigma: float, seed: int = 0, spec: str = "") -> None:
        super().__init__(spec or f"lognormal:mean={mean:g},sigma={sigma:g}")
        self.mean, self.sigma = mean, sigma
        self.mu = math.log(mean) - sigma * sigma / 2.0
        self._rng = random.Random(seed)

    def sample(self, send_time_s: float) -> float:
        return self._rng.lognormvariate(self.mu, self.sigma)

    @property
    def mean_s(self) -> float:
        return self.mean


class UniformLatency(LatencyModel):
    """Delay uniform in [low, high]."""

    name = "uniform"

    def __init__(self, low: float, high: float, seed: int = 0, spec: str = "") -> None:
        super().__init__(spec or f"uniform:low={low:g},high={high:g}")
        self.low, self.high = low, high
        self._rng = random.Random(seed)

    def sample(self, send_time_s: float) -> float:
        return self._rng.uniform(self.low, self.high)

    @property
    def mean_s(self) -> float:
        return (self.low + self.high) / 2.0


def _unit_lognormal(rng: random.Random, sigma: float) -> float:
    """A lognormal factor with mean 1 (1.0 exactly when ``sigma`` is 0)."""
    return rng.lognormvariate(-sigma * sigma / 2.0, sigma) if sigma > 0 else 1.0


class GilbertElliottLatency(LatencyModel):
    """Two-state good/bad network; the state moves once per request (Gilbert-Elliott channel)."""

    name = "gilbert"

    def __init__(
        self,
        good: float,
        bad: float,
        p_gb: float,
        p_bg: float,
        jitter: float = 0.0,
        seed: int = 0,
        spec: str = "",
    ) -> None:
        super().__init__(spec or f"gilbert:good={good:g},bad={bad:g},p_gb={p_gb:g},p_bg={p_bg:g}")
        self.good, self.bad, self.p_gb, self.p_bg, self.jitter = good, bad, p_gb, p_bg, jitter
        self.bad_state = False
        self._rng = random.Random(seed)

    def sample(self, send_time_s: float) -> float:
        flip = self._rng.random()
        if self.bad_state:
            self.bad_state = flip >= self.p_bg
        else:
            self.bad_state = flip < self.p_gb
        base = self.bad if self.bad_state else self.good
        return base * _unit_lognormal(self._rng, self.jitter)

    @property
    def bad_fraction(self) -> float:
        """Long-run fraction of requests in the bad state."""
        total = self.p_gb + self.p_bg
        return self.p_gb / total if total > 0 else 0.0

    @property
    def mean_s(self) -> float:
        return self.good + (self.bad - self.good) * self.bad_fraction


class SpikeLatency(LatencyModel):
    """A base delay with periodic spikes of a fixed duration."""

    name = "spikes"

    def __init__(
        self,
        base: float,
        spike: float,
        period: float,
        duration: float,
        phase: float = 0.0,
        jitter: float = 0.0,
        seed: int = 0,
        spec: str = "",
    ) -> None:
        super().__init__(
            spec or f"spikes:base={base:g},spike={spike:g},period={period:g},duration={duration:g}"
        )
        self.base, self.spike, self.period, self.duration = base, spike, period, duration
        self.phase, self.jitter = phase, jitter
        self._rng = random.Random(seed)

    def in_spike(self, send_time_s: float) -> bool:
        """True when a request sent at ``send_time_s`` falls inside a spike."""
        return (send_time_s - self.phase) % self.period < self.duration

    def sample(self, send_time_s: float) -> float:
        base = self.spike if self.in_spike(send_time_s) else self.base
        return base * _unit_lognormal(self._rng, self.jitter)

    @property
    def mean_s(self) -> float:
        return self.base + (self.spike - self.base) * self.duration / self.period


def load_delay_trace(path: str | Path) -> tuple[list[float], list[float]]:
    """Read a ``time_s,delay_s`` CSV (optional header row, ``#`` comments); sorted by time."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"latency trace {path}: cannot read ({err.strerror})") from None
    rows: list[tuple[float, float]] = []
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 2:
            raise ValueError(f"latency trace {path}:{line_no}: expected 'time_s,delay_s', got {row!r}")
        try:
            time_s, delay_s = float(row[0]), float(row[1])
        except ValueError:
            if not rows and line_no == 1:
                continue  # header row
            raise ValueError(f"latency trace {path}:{line_no}: not numbers: {row[:2]!r}") from None
        if not (math.isfinite(time_s) and math.isfinite(delay_s)) or delay_s < 0:
            raise ValueError(
                f"latency trace {path}:{line_no}: need finite time and delay >= 0, got {row[:2]!r}"
            )
        rows.append((time_s, delay_s))
    if not rows:
        raise ValueError(f"latency trace {path}: no rows")
    rows.sort(key=lambda r: r[0])
    return [r[0] for r in rows], [r[1] for r in rows]


class TraceLatency(LatencyModel):
    """Replays a recorded delay trace (step-hold on send time, optionally looped)."""

    name = "trace"

    def __init__(self, times: list[float], delays: list[float], loop: bool = False, spec: str = "") -> None:
        super().__init__(spec or "trace")
        if not times or len(times) != len(delays):
            raise ValueError("latency trace: need as many delays as times, at least one")
        self.times, self.delays, self.loop = list(times), list(delays), loop
        self.span = self.times[-1] - self.times[0]

    @classmethod
    def from_csv(cls, path: str | Path, loop: bool = False, spec: str = "") -> TraceLatency:
        times, delays = load_delay_trace(path)
        return cls(times, delays, loop=loop, spec=spec or f"trace:path={path}")

    def sample(self, send_time_s: float) -> float:
        t = send_time_s
        if self.loop and self.span > 0 and t > self.times[-1]:
            t = self.times[0] + (t - self.times[0]) % self.span
        index = bisect.bisect_right(self.times, t) - 1
        return self.delays[max(index, 0)]

    @property
    def mean_s(self) -> float:
        return sum(self.delays) / len(self.delays)


_REQUIRED = object()
_Check = Callable[[Mapping[str, float]], str]


def _nonneg(*keys: str) -> _Check:
    def check(p: Mapping[str, float]) -> str:
        bad = [k for k in keys if p[k] < 0]
        return f"{bad[0]} must be >= 0, got {p[bad[0]]:g}" if bad else ""

    return check


def _positive(*keys: str) -> _Check:
    def check(p: Mapping[str, float]) -> str:
        bad = [k for k in keys if p[k] <= 0]
        return f"{bad[0]} must be > 0, got {p[bad[0]]:g}" if bad else ""

    return check


def _probability(*keys: str) -> _Check:
    def check(p: Mapping[str, float]) -> str:
        bad = [k for k in keys if not 0 <= p[k] <= 1]
        return f"{bad[0]} must be in [0, 1], got {p[bad[0]]:g}" if bad else ""

    return check


def _ordered(low: str, high: str) -> _Check:
    def check(p: Mapping[str, float]) -> str:
        return f"{low} must be <= {high}, got {p[low]:g} > {p[high]:g}" if p[low] > p[high] else ""

    return check


def _loop_flag(p: Mapping[str, float]) -> str:
    return "" if p["loop"] in (0, 1) else f"loop must be 0 or 1, got {p['loop']:g}"


# name -> (parameter -> default or _REQUIRED, checks of the parsed values)
LATENCY_MODELS: dict[str, tuple[dict[str, object], tuple[_Check, ...]]] = {
    "constant": ({"delay": _REQUIRED}, (_nonneg("delay"),)),
    "normal": ({"mean": _REQUIRED, "std": _REQUIRED}, (_nonneg("mean", "std"),)),
    "lognormal": ({"mean": _REQUIRED, "sigma": _REQUIRED}, (_positive("mean"), _nonneg("sigma"))),
    "uniform": ({"low": _REQUIRED, "high": _REQUIRED}, (_nonneg("low", "high"), _ordered("low", "high"))),
    "gilbert": (
        {"good": _REQUIRED, "bad": _REQUIRED, "p_gb": _REQUIRED, "p_bg": _REQUIRED, "jitter": 0.0},
        (_nonneg("good", "bad", "jitter"), _probability("p_gb", "p_bg")),
    ),
    "spikes": (
        {
            "base": _REQUIRED,
            "spike": _REQUIRED,
            "period": _REQUIRED,
            "duration": _REQUIRED,
            "phase": 0.0,
            "jitter": 0.0,
        },
        (_nonneg("base", "spike", "duration", "jitter"), _positive("period"), _ordered("duration", "period")),
    ),
    "trace": ({"path": _REQUIRED, "loop": 0.0}, (_loop_flag,)),
}


def _parse(spec: str) -> tuple[str, dict[str, object]]:
    """Split and check a spec; returns the model name and its parameters with defaults filled in."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"latency profile {spec!r}: empty; expected name:key=value,...")
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if name not in LATENCY_MODELS:
        raise ValueError(
            f"latency profile {spec!r}: unknown model {name!r} (known: {', '.join(LATENCY_MODELS)})"
        )
    defaults, checks = LATENCY_MODELS[name]
    params: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not key or not value:
            raise ValueError(f"latency profile {spec!r}: {part!r} is not key=value")
        if key not in defaults:
            raise ValueError(
                f"latency profile {spec!r}: unknown parameter {key!r} for {name} "
                f"(known: {', '.join(defaults)})"
            )
        if key in params:
            raise ValueError(f"latency profile {spec!r}: parameter {key!r} given twice")
        if key == "path":
            params[key] = value
            continue
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"latency profile {spec!r}: {key}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"latency profile {spec!r}: {key}={value!r} is not finite")
        params[key] = number
    missing = [k for k, d in defaults.items() if d is _REQUIRED and k not in params]
    if missing:
        raise ValueError(f"latency profile {spec!r}: missing parameter {missing[0]!r} for {name}")
    filled = {k: params.get(k, d) for k, d in defaults.items()}
    numeric = {k: v for k, v in filled.items() if isinstance(v, float)}
    for check in checks:
        problem = check(numeric)
        if problem:
            raise ValueError(f"latency profile {spec!r}: {problem}")
    return name, filled


def validate_latency_profile(spec: str) -> str:
    """Check a spec's grammar and values (without reading trace files); returns it stripped."""
    _parse(spec)
    return spec.strip()


def parse_latency_profile(spec: str, seed: int = 0) -> LatencyModel:
    """Build the delay model a spec names; ``ValueError`` names the bad part of a bad spec."""
    name, p = _parse(spec)
    spec = spec.strip()
    if name == "constant":
        return ConstantLatency(p["delay"], spec=spec)
    if name == "normal":
        return NormalLatency(p["mean"], p["std"], seed=seed, spec=spec)
    if name == "lognormal":
        return LognormalLatency(p["mean"], p["sigma"], seed=seed, spec=spec)
    if name == "uniform":
        return UniformLatency(p["low"], p["high"], seed=seed, spec=spec)
    if name == "gilbert":
        return GilbertElliottLatency(
            p["good"], p["bad"], p["p_gb"], p["p_bg"], p["jitter"], seed=seed, spec=spec
        )
    if name == "spikes":
        return SpikeLatency(
            p["base"], p["spike"], p["period"], p["duration"], p["phase"], p["jitter"], seed=seed, spec=spec
        )
    return TraceLatency.from_csv(str(p["path"]), loop=p["loop"] == 1.0, spec=spec)

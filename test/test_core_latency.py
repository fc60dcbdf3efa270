"""Latency models: spec grammar, seeding, the documented distributions, traces and clear errors."""

from __future__ import annotations

import statistics

import pytest

from spotvlm_ros.core.config import ConfigError, config_from_dict
from spotvlm_ros.core.latency import (
    ConstantLatency,
    GilbertElliottLatency,
    LognormalLatency,
    NormalLatency,
    SpikeLatency,
    TraceLatency,
    UniformLatency,
    parse_latency_profile,
    validate_latency_profile,
)

N = 20_000


def draws(spec: str, seed: int = 0, n: int = N, dt: float = 0.1) -> list[float]:
    model = parse_latency_profile(spec, seed=seed)
    return [model.sample(i * dt) for i in range(n)]


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ("constant:delay=0.5", ConstantLatency),
        ("normal:mean=1,std=0.3", NormalLatency),
        ("lognormal:mean=1.5,sigma=0.8", LognormalLatency),
        ("uniform:low=0.2,high=3", UniformLatency),
        ("gilbert:good=0.3,bad=4.0,p_gb=0.05,p_bg=0.3", GilbertElliottLatency),
        ("spikes:base=0.3,spike=6,period=20,duration=2", SpikeLatency),
    ],
)
def test_every_documented_model_parses_and_matches_its_mean(spec, cls):
    model = parse_latency_profile(spec, seed=3)
    assert isinstance(model, cls) and model.name == spec.split(":")[0] and model.spec == spec
    values = draws(spec, seed=3)
    assert min(values) >= 0.0
    assert statistics.fmean(values) == pytest.approx(model.mean_s, rel=0.06)


@pytest.mark.parametrize(
    "spec",
    [
        "normal:mean=1,std=0.3",
        "lognormal:mean=1.5,sigma=0.8",
        "uniform:low=0.2,high=3",
        "gilbert:good=0.3,bad=4.0,p_gb=0.05,p_bg=0.3,jitter=0.2",
        "spikes:base=0.3,spike=6,period=20,duration=2,jitter=0.1",
    ],
)
def test_same_seed_same_delays_other_seed_other_delays(spec):
    assert draws(spec, seed=7, n=200) == draws(spec, seed=7, n=200)
    assert draws(spec, seed=7, n=200) != draws(spec, seed=8, n=200)


def test_lognormal_mean_is_the_arithmetic_mean_and_spread_follows_sigma():
    narrow = draws("lognormal:mean=2,sigma=0.1")
    wide = draws("lognormal:mean=2,sigma=1.0")
    assert statistics.fmean(narrow) == pytest.approx(2.0, rel=0.02)
    assert statistics.pstdev(wide) > 5 * statistics.pstdev(narrow)
    assert statistics.median(wide) < statistics.fmean(wide)  # right skew


def test_normal_clips_negative_draws_and_reports_the_clipped_mean():
    model = parse_latency_profile("normal:mean=0.1,std=1", seed=1)
    values = [model.sample(0.0) for _ in range(N)]
    assert min(values) == 0.0 and values.count(0.0) > N // 3
    assert statistics.fmean(values) == pytest.approx(model.mean_s, rel=0.05)
    assert model.mean_s > 0.1


def test_uniform_stays_in_its_bounds():
    values = draws("uniform:low=0.2,high=3")
    assert 0.2 <= min(values) < 0.3 and 2.9 < max(values) <= 3.0


def test_gilbert_elliott_alternates_runs_of_good_and_bad():
    model = parse_latency_profile("gilbert:good=0.3,bad=4.0,p_gb=0.05,p_bg=0.3", seed=2)
    values = [model.sample(float(i)) for i in range(N)]
    assert set(values) == {0.3, 4.0}
    bad = [v == 4.0 for v in values]
    assert statistics.fmean(bad) == pytest.approx(model.bad_fraction, abs=0.02)
    # bad runs last 1/p_bg requests on average (a burst channel, not independent draws)
    runs, length = [], 0
    for b in bad:
        if b:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    assert statistics.fmean(runs) == pytest.approx(1 / 0.3, rel=0.15)


def test_spikes_follow_the_period_and_phase():
    model = parse_latency_profile("spikes:base=0.3,spike=6,period=20,duration=2,phase=5")
    assert model.sample(4.9) == 0.3
    assert model.sample(5.0) == 6.0 and model.sample(6.99) == 6.0
    assert model.sample(7.0) == 0.3
    assert model.sample(25.5) == 6.0 and model.sample(45.0) == 6.0
    assert model.mean_s == pytest.approx(0.3 + 5.7 * 2 / 20)


def test_trace_replays_step_hold_and_loops(tmp_path):
    path = tmp_path / "delays.csv"
    path.write_text("time_s,delay_s\n# recorded on wifi\n0.0,0.5\n10.0,2.0\n5.0,1.0\n")
    model = parse_latency_profile(f"trace:path={path}")
    assert isinstance(model, TraceLatency)
    assert [model.sample(t) for t in (-1.0, 0.0, 4.9, 5.0, 9.9, 10.0, 50.0)] == [
        0.5,
        0.5,
        0.5,
        1.0,
        1.0,
        2.0,
        2.0,
    ]
    looped = parse_latency_profile(f"trace:path={path},loop=1")
    assert looped.sample(12.0) == 0.5 and looped.sample(16.0) == 1.0
    assert model.mean_s == pytest.approx(3.5 / 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no rows"),
        ("time_s,delay_s\n", "no rows"),
        ("0.0,0.5\n1.0,abc\n", ":2: not numbers"),
        ("0.0,-1\n", "delay >= 0"),
        ("0.0\n", "expected 'time_s,delay_s'"),
    ],
)
def test_bad_trace_files_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        parse_latency_profile(f"trace:path={path}")


def test_missing_trace_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        parse_latency_profile(f"trace:path={tmp_path / 'nope.csv'}")
    assert validate_latency_profile(f" trace:path={tmp_path / 'nope.csv'} ").startswith("trace:")


@pytest.mark.parametrize(
    ("spec", "part"),
    [
        ("", "empty"),
        ("warp:delay=1", "unknown model 'warp'"),
        ("constant", "missing parameter 'delay'"),
        ("constant:delay", "'delay' is not key=value"),
        ("constant:delay=fast", "delay='fast' is not a number"),
        ("constant:delay=inf", "not finite"),
        ("constant:delay=1,delay=2", "given twice"),
        ("lognormal:mean=1,sigma=0.5,mu=3", "unknown parameter 'mu'"),
        ("lognormal:mean=0,sigma=0.5", "mean must be > 0"),
        ("normal:mean=1,std=-0.1", "std must be >= 0"),
        ("uniform:low=3,high=1", "low must be <= high"),
        ("gilbert:good=0.3,bad=4,p_gb=1.5,p_bg=0.3", "p_gb must be in [0, 1]"),
        ("spikes:base=0.3,spike=6,period=0,duration=0", "period must be > 0"),
        ("spikes:base=0.3,spike=6,period=2,duration=3", "duration must be <= period"),
        ("trace:path=x.csv,loop=2", "loop must be 0 or 1"),
    ],
)
def test_bad_specs_name_the_bad_part(spec, part):
    with pytest.raises(ValueError) as info:
        parse_latency_profile(spec)
    assert part in str(info.value)


def test_spaces_are_ignored_and_config_validates_profiles():
    model = parse_latency_profile(" uniform : low = 1 , high = 2 ")
    assert isinstance(model, UniformLatency) and (model.low, model.high) == (1.0, 2.0)
    config = config_from_dict(
        {"latency": {"profile": "constant:delay=0.2", "profiles": ["uniform:low=0,high=1"]}}
    )
    assert config.latency.profile == "constant:delay=0.2"
    with pytest.raises(ConfigError, match=r"latency\.profiles.*missing parameter 'std'"):
        config_from_dict({"latency": {"profiles": ["normal:mean=1"]}})

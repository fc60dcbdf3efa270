import threading
import time

import pytest
from time_scale import scaled

from spotvlm_ros.runtime.clock import SimulatedClock, WallClock


def test_simulated_clock_runs_events_in_time_then_schedule_order():
    clock = SimulatedClock(start_ns=100)
    seen = []
    clock.call_at(300, lambda: seen.append("b"))
    clock.call_at(200, lambda: seen.append("a"))
    clock.call_at(300, lambda: seen.append("c"))  # same time as "b": runs after it
    cancelled = clock.call_at(250, lambda: seen.append("never"))
    cancelled.cancel()
    clock.advance_to(299)
    assert seen == ["a"] and clock.now_ns() == 299
    clock.advance_to(300)
    assert seen == ["a", "b", "c"] and clock.pending == 0


def test_simulated_clock_callbacks_may_schedule_more_and_time_never_goes_back():
    clock = SimulatedClock()
    times = []

    def tick():
        times.append(clock.now_ns())
        if len(times) < 3:
            clock.call_later(0.5, tick)

    clock.call_at(0, tick)
    clock.run_until_idle()
    assert times == [0, 500_000_000, 1_000_000_000]
    clock.call_at(10, lambda: times.append(clock.now_ns()))  # in the past: runs "now"
    clock.advance_to(5)
    assert times[-1] == 1_000_000_000 and clock.now_ns() == 1_000_000_000


def test_wall_clock_maps_stream_time_and_fires_callbacks():
    clock = WallClock(rate=2.0)
    assert clock.now_ns() == 0 and not clock.started
    clock.start(origin_ns=1_000_000_000)
    fired = threading.Event()
    at = []
    clock.call_at(1_000_000_000 + 200_000_000, lambda: (at.append(clock.now_ns()), fired.set()))
    begin = time.monotonic()
    assert fired.wait(scaled(10.0))
    elapsed = time.monotonic() - begin
    assert 0.05 <= elapsed < scaled(1.0)  # 0.2 s of stream time at rate 2 = 0.1 s of wall time
    assert at[0] >= 1_200_000_000
    assert clock.sleep_until(clock.now_ns() - 1)  # in the past: returns at once
    clock.close()
    late = clock.call_at(0, lambda: at.append(-1))
    assert late.cancelled and at[-1] != -1


def test_wall_clock_rejects_bad_rate():
    with pytest.raises(ValueError):
        WallClock(rate=0)

"""Context store: newest per task, out-of-order and duplicate arrivals, age rule, threads."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotvlm_ros.core.config import ContextConfig
from spotvlm_ros.core.context_store import ContextStore
from spotvlm_ros.core.types import (
    CONTEXT_DISABLED,
    CONTEXT_NONE,
    CONTEXT_TOO_OLD,
    CONTEXT_USED,
    LvlmResult,
    s_to_ns,
)


def result(stamp_s: float, task: str = "vqa", text: str = "", request_id: str = "") -> LvlmResult:
    stamp = s_to_ns(stamp_s)
    return LvlmResult(
        request_id=request_id or f"r{stamp}",
        stamp_ns=stamp,
        task=task,
        prompt="q?",
        text=text or f"answer at {stamp_s}",
    )


def test_newest_result_is_used_with_its_age():
    store = ContextStore(history_length=4, max_context_age_s=10.0)
    assert store.add(result(1.0))
    assert store.add(result(2.0))
    lookup = store.lookup("vqa", s_to_ns(4.5))
    assert lookup.status == CONTEXT_USED and lookup.used
    assert lookup.result.stamp_ns == s_to_ns(2.0)
    assert lookup.age_s == pytest.approx(2.5)


def test_out_of_order_result_never_replaces_newer_but_fills_history():
    store = ContextStore(history_length=4)
    assert store.add(result(3.0))
    assert not store.add(result(2.0))  # arrived late: older than the newest held
    assert store.lookup("vqa", s_to_ns(3.5)).result.stamp_ns == s_to_ns(3.0)
    assert [r.stamp_ns for r in store.history("vqa")] == [s_to_ns(2.0), s_to_ns(3.0)]
    assert store.get("vqa", s_to_ns(2.0)).stamp_ns == s_to_ns(2.0)
    assert store.rejected_old == 1


def test_duplicates_are_ignored():
    store = ContextStore()
    assert store.add(result(1.0, text="first"))
    assert not store.add(result(1.0, text="second copy"))
    assert store.get("vqa", s_to_ns(1.0)).text == "first"
    assert len(store.history("vqa")) == 1
    assert store.rejected_duplicate == 1


def test_history_is_bounded_and_drops_results_older_than_the_window():
    store = ContextStore(history_length=2)
    for t in (1.0, 2.0, 3.0):
        store.add(result(t))
    assert [r.stamp_ns for r in store.history("vqa")] == [s_to_ns(2.0), s_to_ns(3.0)]
    assert not store.add(result(0.5))  # older than the whole window: not kept
    assert store.get("vqa", s_to_ns(0.5)) is None


def test_too_old_context_is_not_used_and_says_so():
    store = ContextStore(max_context_age_s=2.0)
    store.add(result(1.0))
    assert store.lookup("vqa", s_to_ns(3.0)).status == CONTEXT_USED  # exactly at the limit
    lookup = store.lookup("vqa", s_to_ns(3.5))
    assert lookup.status == CONTEXT_TOO_OLD and lookup.result is None
    assert lookup.age_s == pytest.approx(2.5)


def test_no_context_disabled_and_tasks_are_separate():
    store = ContextStore()
    assert store.lookup("vqa", 10).status == CONTEXT_NONE
    assert store.lookup("vqa", 10).age_s == -1.0
    store.add(result(1.0, task="caption"))
    assert store.lookup("vqa", s_to_ns(2.0)).status == CONTEXT_NONE
    assert store.lookup("caption", s_to_ns(2.0)).used
    disabled = ContextStore.from_config(ContextConfig(enabled=False))
    disabled.add(result(1.0))
    assert disabled.lookup("vqa", s_to_ns(1.5)).status == CONTEXT_DISABLED


def test_lookup_ignores_results_about_frames_newer_than_the_current_one():
    store = ContextStore()
    store.add(result(1.0))
    store.add(result(5.0))
    lookup = store.lookup("vqa", s_to_ns(3.0))  # replaying an older frame
    assert lookup.result.stamp_ns == s_to_ns(1.0) and lookup.age_s == pytest.approx(2.0)
    assert store.lookup("vqa", s_to_ns(0.5)).status == CONTEXT_NONE


def test_revision_changes_only_when_results_change():
    store = ContextStore()
    r0 = store.revision("vqa")
    store.add(result(1.0))
    r1 = store.revision("vqa")
    store.add(result(1.0))  # duplicate
    assert store.revision("vqa") == r1 != r0
    store.clear()
    store.add(result(2.0))
    assert store.revision("vqa") not in (r0, r1)


def test_history_length_zero_keeps_the_newest_for_lookup_only():
    store = ContextStore(history_length=0)
    store.add(result(1.0))
    store.add(result(2.0))
    assert store.history("vqa") == []
    assert store.lookup("vqa", s_to_ns(2.0)).result.stamp_ns == s_to_ns(2.0)


@pytest.mark.parametrize(("length", "age"), [(-1, 1.0), (1, 0.0), (1, -2.0)])
def test_bad_arguments_are_rejected(length, age):
    with pytest.raises(ValueError):
        ContextStore(history_length=length, max_context_age_s=age)


def test_concurrent_adds_and_lookups_stay_consistent():
    store = ContextStore(history_length=8, max_context_age_s=1e6)
    errors: list[str] = []

    def writer(offset: int) -> None:
        for i in range(300):
            store.add(result(i * 4 + offset))

    def reader() -> None:
        last = -1
        for _ in range(2000):
            found = store.lookup("vqa", s_to_ns(1e5)).result
            if found is not None:
                if found.stamp_ns < last:
                    errors.append("newest went backwards")
                last = found.stamp_ns
            stamps = [r.stamp_ns for r in store.history("vqa")]
            if stamps != sorted(set(stamps)) or len(stamps) > 8:
                errors.append(f"bad history {stamps}")

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.newest("vqa").stamp_ns == s_to_ns(299 * 4 + 3)


@settings(max_examples=150, deadline=None)
@given(
    stamps=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=40),
    length=st.integers(min_value=1, max_value=6),
)
def test_property_newest_never_goes_back_history_sorted_unique_bounded(stamps, length):
    store = ContextStore(history_length=length, max_context_age_s=1e6)
    seen: set[int] = set()
    newest = -1
    for s in stamps:
        accepted = store.add(result(float(s)))
        assert accepted == (s > newest), (s, newest)
        newest = max(newest, s)
        seen.add(s)
        held = [r.stamp_ns for r in store.history("vqa")]
        assert held == sorted(set(held))
        assert len(held) <= length
        assert held[-1] == s_to_ns(newest)
        assert store.lookup("vqa", s_to_ns(1e5)).result.stamp_ns == s_to_ns(newest)
    # the window holds the newest ``length`` distinct stamps that were not evicted at arrival
    assert set(held) <= {s_to_ns(s) for s in seen}


def test_changes_history_keeps_one_result_per_run_of_equal_answers():
    store = ContextStore(history_length=3, max_context_age_s=10.0, history_keeps="changes")
    for stamp, text in [(1, "30"), (2, "none"), (3, "None."), (4, "50\n[{}]"), (5, "none"), (6, "none")]:
        store.add(result(float(stamp), text=text))
    held = [(r.stamp_ns, r.text) for r in store.history("vqa")]
    # the runs none(2,3), 50(4), none(5,6): each run's newest; 30 left as the fourth run
    assert held == [(s_to_ns(3), "None."), (s_to_ns(4), "50\n[{}]"), (s_to_ns(6), "none")]
    assert store.lookup("vqa", s_to_ns(6.5)).result.stamp_ns == s_to_ns(6)


def test_changes_history_places_late_results_in_their_run():
    store = ContextStore(history_length=4, max_context_age_s=10.0, history_keeps="changes")
    for stamp, text in [(1, "red"), (3, "green"), (5, "green")]:
        store.add(result(float(stamp), text=text))
    assert not store.add(result(4.0, text="green"))  # late, inside the green run: the run keeps its newest
    assert not store.add(result(2.0, text="red"))  # late, ends the red run
    assert not store.add(result(2.5, text="yellow"))  # late, a run of its own between them
    held = [(r.stamp_ns, r.text) for r in store.history("vqa")]
    assert held == [(s_to_ns(2), "red"), (s_to_ns(2.5), "yellow"), (s_to_ns(5), "green")]


def test_recent_history_keeps_repeats_and_bad_mode_is_rejected():
    store = ContextStore(history_length=3, max_context_age_s=10.0)
    for stamp in (1, 2, 3):
        store.add(result(float(stamp), text="none"))
    assert len(store.history("vqa")) == 3
    assert ContextStore.from_config(ContextConfig(history_keeps="changes")).keeps_changes
    with pytest.raises(ValueError, match="history_keeps"):
        ContextStore(history_keeps="all")


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.integers(min_value=0, max_value=60), st.sampled_from(["30", "50", "none"])),
        min_size=1,
        max_size=40,
    ),
    length=st.integers(min_value=1, max_value=6),
)
def test_property_changes_history_has_no_equal_neighbours_and_the_newest_always_wins(events, length):
    store = ContextStore(history_length=length, max_context_age_s=1e6, history_keeps="changes")
    newest = -1
    for stamp, text in events:
        assert store.add(result(float(stamp), text=text)) == (stamp > newest)
        if stamp > newest:
            newest, newest_text = stamp, text
        held = store.history("vqa")
        stamps = [r.stamp_ns for r in held]
        assert stamps == sorted(set(stamps)) and len(held) <= length
        assert all(a.text != b.text for a, b in zip(held, held[1:], strict=False))
        assert held[-1].stamp_ns == s_to_ns(newest) and held[-1].text == newest_text

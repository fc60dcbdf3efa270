"""Figures computed from per-frame records: the switch oracle, where SpotVLM wins and loses, cold starts.

- **switch oracle**: per frame, right when either the SVLM alone (``svlm``) or the newest arrived LVLM
  answer (``lvlm``) was right: the ceiling of any policy that switches between those two sources.
  ``oracle_share`` is SpotVLM's share of the oracle's gain over the SVLM, (spotvlm - svlm) /
  (oracle - svlm); null when the oracle gains nothing.
- **wins / losses**: frames where SpotVLM is right and the SVLM alone was wrong, and the reverse.
- **cold start**: the share of scored frames before a drive's first context (SpotVLM has no LVLM answer
  yet), per latency profile.

Scores are means over a run's frames, then over delay sequences (and over items for ``all``), the way
the evaluation's summary averages runs; frame counts are summed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

ALL = "all"
Key = tuple[str, int, str, int]  # profile, draw, item, stamp_ns


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _correct_by_frame(table: pa.Table, mode: str) -> dict[Key, float]:
    rows = table.filter(pc.equal(table["mode"].cast(pa.string()), mode))
    cols = rows.select(["profile", "draw", "item", "stamp_ns", "correct"]).to_pydict()
    return {
        (p, d, i, s): c
        for p, d, i, s, c in zip(
            cols["profile"], cols["draw"], cols["item"], cols["stamp_ns"], cols["correct"], strict=True
        )
        if c is not None and not math.isnan(c)
    }


def _profile_means(table: pa.Table) -> dict[str, float]:
    cols = table.select(["profile", "profile_mean_s"]).to_pydict()
    return dict(zip(cols["profile"], cols["profile_mean_s"], strict=True))


def _round(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def switch_oracle(
    table: pa.Table, mode: str = "spotvlm", edge: str = "svlm", cloud: str = "lvlm"
) -> list[dict[str, Any]]:
    """Per (profile, item) and per profile over all items: the oracle, its share, wins and losses.

    Needs the ``edge``, ``cloud`` and ``mode`` runs in ``table``; returns [] when one is missing.
    """
    by_mode = {m: _correct_by_frame(table, m) for m in (edge, cloud, mode)}
    if not all(by_mode.values()):
        return []
    frames: dict[tuple[str, int, str], list[tuple[float, float, float, float]]] = defaultdict(list)
    for key, svlm in by_mode[edge].items():
        lvlm, spot = by_mode[cloud].get(key), by_mode[mode].get(key)
        if lvlm is None or spot is None:
            continue
        profile, draw, item, _ = key
        oracle = 1.0 if svlm >= 1.0 or lvlm >= 1.0 else 0.0
        frames[(profile, draw, item)].append((svlm, lvlm, oracle, spot))
    means = _profile_means(table)
    rows = []
    for profile in sorted({k[0] for k in frames}, key=lambda p: (means[p], p)):
        items = sorted({k[2] for k in frames if k[0] == profile})
        for item in [*items, ALL]:
            runs = [v for k, v in frames.items() if k[0] == profile and (item == ALL or k[2] == item)]
            rows.append(_oracle_row(profile, means[profile], item, runs, mode))
    return rows


def _oracle_row(
    profile: str, mean_s: float, item: str, runs: list[list[tuple[float, float, float, float]]], mode: str
) -> dict[str, Any]:
    run_means = [[_mean([f[i] for f in run]) for i in range(4)] for run in runs]
    svlm, lvlm, oracle, spot = (_mean([r[i] for r in run_means]) for i in range(4))
    gain = oracle - svlm
    share = (spot - svlm) / gain if gain > 0 else math.nan
    return {
        "profile": profile,
        "profile_mean_s": mean_s,
        "item": item,
        "mode": mode,
        "frames": sum(len(run) for run in runs),
        "svlm": _round(svlm),
        "lvlm": _round(lvlm),
        "switch_oracle": _round(oracle),
        mode: _round(spot),
        "oracle_gain": _round(gain),
        "oracle_share": _round(share),
        "right_where_svlm_wrong": sum(1 for run in runs for f in run if f[3] >= 1.0 > f[0]),
        "wrong_where_svlm_right": sum(1 for run in runs for f in run if f[0] >= 1.0 > f[3]),
    }


def cold_start_share(table: pa.Table, mode: str = "spotvlm") -> dict[str, float]:
    """Per profile: the share of ``mode``'s scored frames before their drive's first context."""
    rows = table.filter(pc.equal(table["mode"].cast(pa.string()), mode))
    cols = rows.select(["profile", "draw", "item", "sequence", "stamp_ns", "context_id"]).to_pydict()
    first: dict[tuple[str, int, str, str], int] = {}
    for p, d, i, q, s, c in zip(*(cols[k] for k in cols), strict=True):
        if c and s < first.get((p, d, i, q), s + 1):
            first[(p, d, i, q)] = s
    before: dict[str, list[bool]] = defaultdict(list)
    for p, d, i, q, s, _ in zip(*(cols[k] for k in cols), strict=True):
        start = first.get((p, d, i, q))
        before[p].append(start is None or s < start)
    return {p: sum(flags) / len(flags) for p, flags in before.items()}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def oracle_markdown(rows: Sequence[dict[str, Any]], cold: dict[str, float] | None = None) -> str:
    """The switch-oracle figures as a markdown section (one table, a row per profile and item)."""
    if not rows:
        return ""
    mode = rows[0]["mode"]
    lines = [
        "## Switch oracle (from the per-frame records)",
        "",
        "Per frame the oracle is right when the SVLM alone or the newest arrived LVLM answer was right; "
        f"share = ({mode} - svlm) / (oracle - svlm). Wins: {mode} right where the SVLM alone was wrong; "
        "losses: the reverse (frames, summed over delay sequences).",
        "",
        f"| mean delay s | item | frames | svlm | lvlm | oracle | {mode} | share | wins | losses |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            f"{r['profile_mean_s']:.2f}",
            r["item"],
            r["frames"],
            r["svlm"],
            r["lvlm"],
            r["switch_oracle"],
            r[mode],
            r["oracle_share"],
            r["right_where_svlm_wrong"],
            r["wrong_where_svlm_right"],
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if cold:
        lines += [
            "",
            "Share of scored frames before a drive's first context: "
            + ", ".join(f"`{p}` {v:.3f}" for p, v in cold.items()),
        ]
    return "\n".join(lines) + "\n"


AGE_BUCKETS = ((0.0, 1.0, "<1 s"), (1.0, 3.0, "1-3 s"), (3.0, 10.0, "3-10 s"), (10.0, math.inf, ">=10 s"))
NO_CONTEXT = "none"


def _age_bucket(age: float | None) -> str:
    if age is None or math.isnan(age):
        return NO_CONTEXT
    return next(label for low, high, label in AGE_BUCKETS if low <= age < high)


def context_breakdown(table: pa.Table, mode: str = "spotvlm", edge: str = "svlm") -> list[dict[str, Any]]:
    """Per (profile, item, age of the context ``mode`` used): frames, ``mode``'s and the SVLM's accuracy.

    Shows where context helps and where it stops helping (a stale light state is right no more often
    than the SVLM alone; a remembered speed limit is).
    """
    alone = _correct_by_frame(table, edge)
    rows = table.filter(pc.equal(table["mode"].cast(pa.string()), mode))
    cols = rows.select(["profile", "draw", "item", "stamp_ns", "correct", "context_age_s"]).to_pydict()
    groups: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for p, d, i, s, c, age in zip(*(cols[k] for k in cols), strict=True):
        base = alone.get((p, d, i, s))
        if c is None or base is None:
            continue
        groups[(p, i, _age_bucket(age))].append((c, base))
    means = _profile_means(table)
    order = [NO_CONTEXT, *(label for _, _, label in AGE_BUCKETS)]
    out = []
    for (profile, item, bucket), values in sorted(
        groups.items(), key=lambda kv: (means[kv[0][0]], kv[0][1], order.index(kv[0][2]))
    ):
        out.append(
            {
                "profile": profile,
                "profile_mean_s": means[profile],
                "item": item,
                "context_age": bucket,
                "frames": len(values),
                mode: _round(_mean([v[0] for v in values])),
                edge: _round(_mean([v[1] for v in values])),
            }
        )
    return out


def breakdown_markdown(rows: Sequence[dict[str, Any]], mode: str = "spotvlm", edge: str = "svlm") -> str:
    """The context-age breakdown as a markdown section."""
    if not rows:
        return ""
    lines = [
        f"## {mode} by the age of the context it used (from the per-frame records)",
        "",
        f"| mean delay s | item | context age | frames | {mode} | {edge} on the same frames |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r['profile_mean_s']:.2f}", r["item"], r["context_age"], r["frames"], r[mode], r[edge]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"

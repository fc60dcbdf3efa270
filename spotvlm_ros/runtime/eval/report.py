"""Evaluation output: per-profile summary rows, a rich terminal table, a markdown report and JSON.

Rows aggregate one (latency profile, mode) over the task items: each task's headline score is the mean
over its items (VQA exact match, caption ROUGE-L and BLEU, grounding acc@IoU0.5 and mean IoU); latency
and context age are pooled over the answered frames of all items; cloud requests and bytes are summed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ...core.metrics import age_stats, latency_stats, mean
from .modes import MODES
from .runner import EvalResults, RunResult

TASK_COLUMNS = {
    "vqa": [("vqa EM", "exact_match")],
    "caption": [("caption ROUGE-L", "rouge_l"), ("BLEU", "bleu")],
    "grounding": [("grounding acc@0.5", "acc_iou50"), ("mIoU", "mean_iou")],
}
NOTES = (
    "A frame skipped while the edge was busy (latest frame wins) is scored with the answer the user held "
    "at its capture time: the newest answer available by then, or none.",
    "`lvlm_blocking` answers every frame with a fresh LVLM answer and charges that request's delay as the "
    "frame's latency: the accuracy ceiling of the cloud model at the cloud's latency.",
    "`lvlm` answers at once with the newest LVLM answer that has arrived (its latency is 0, its staleness is "
    "the context age); `offload` sends a frame to the cloud (waiting) when the predicted delay fits the "
    "deadline, else answers with the SVLM.",
    "Latency of the edge modes = wait for the busy edge + SVLM step time (`edge.step_time_s`, or measured).",
)


@dataclass(frozen=True)
class SummaryRow:
    """One (profile, mode) line of the report."""

    profile: str
    profile_mean_s: float
    mode: str
    scores: dict[str, float]
    latency: dict[str, Any]
    age: dict[str, Any]
    requests: int
    bytes_sent: int
    answered: int
    skipped: int
    unreadable: int

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def summary_rows(results: EvalResults) -> list[SummaryRow]:
    """One row per (profile, mode), in the order they were run."""
    rows = []
    for profile in results.profiles:
        for mode in results.modes:
            runs = [r for r in results.runs if r.profile == profile and r.mode == mode]
            if runs:
                rows.append(_row(profile, mode, runs, results.deadline_s))
    return rows


def _row(profile: str, mode: str, runs: list[RunResult], deadline_s: float) -> SummaryRow:
    scores: dict[str, float] = {}
    for task, columns in TASK_COLUMNS.items():
        task_runs = [r for r in runs if r.item.task == task]
        for _, metric in columns if task_runs else ():
            values = [float(r.metrics[metric]) for r in task_runs if not math.isnan(r.metrics[metric])]
            scores[metric] = mean(values)
    latencies = [v for r in runs for v in r.latencies_s]
    ages = [a for r in runs for _, a in r.age_timeline]
    return SummaryRow(
        profile=profile,
        profile_mean_s=runs[0].profile_mean_s,
        mode=mode,
        scores=scores,
        latency=latency_stats(latencies, deadline_s).to_json(),
        age=age_stats(ages).to_json(),
        requests=sum(int(r.cloud.get("requests", 0)) for r in runs),
        bytes_sent=sum(int(r.cloud.get("bytes_sent", 0)) for r in runs),
        answered=sum(r.counts["answered"] for r in runs),
        skipped=sum(r.counts["skipped_latest_wins"] for r in runs),
        unreadable=sum(r.counts["unreadable"] for r in runs),
    )


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _columns(rows: Sequence[SummaryRow]) -> list[tuple[str, str]]:
    present = {m for row in rows for m in row.scores}
    return [(title, m) for cols in TASK_COLUMNS.values() for title, m in cols if m in present]


def _cells(row: SummaryRow, columns: list[tuple[str, str]]) -> list[str]:
    lat, age = row.latency, row.age
    return [
        row.mode,
        *[_fmt(row.scores[m], 1 if m == "bleu" else 3) for _, m in columns],
        _fmt(lat["p50_s"] * 1000, 0),
        _fmt(lat["p95_s"] * 1000, 0),
        _fmt(lat["deadline_miss_rate"] * 100, 1),
        _fmt(age["mean_s"], 2),
        _fmt(age["coverage"], 2),
        str(row.requests),
        _fmt(row.bytes_sent / 1e6, 2),
    ]


MIN_LOG_WIDTH = 160
HEADERS_AFTER = ["p50 ms", "p95 ms", "miss %", "ctx age s", "ctx cover", "LVLM req", "MB sent"]


def rich_tables(results: EvalResults, rows: Sequence[SummaryRow]) -> list[Table]:
    """One table per latency profile."""
    tables = []
    for profile in results.profiles:
        profile_rows = [r for r in rows if r.profile == profile]
        if not profile_rows:
            continue
        columns = _columns(profile_rows)
        table = Table(title=f"latency profile {profile} (mean {profile_rows[0].profile_mean_s:.2f} s)")
        table.add_column("mode", style="bold", no_wrap=True)
        for title in [t for t, _ in columns] + HEADERS_AFTER:
            table.add_column(title, justify="right")
        for row in profile_rows:
            table.add_row(*_cells(row, columns))
        tables.append(table)
    return tables


def print_tables(results: EvalResults, rows: Sequence[SummaryRow], console: Console | None = None) -> None:
    """Print the tables; output that is not a terminal (logs, pipes) gets lines wide enough for them."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=max(console.width, MIN_LOG_WIDTH))
    for table in rich_tables(results, rows):
        console.print(table)


def markdown_report(
    results: EvalResults, rows: Sequence[SummaryRow], header: Sequence[str] = (), plots: Sequence[str] = ()
) -> str:
    """The report as markdown: what ran, one table per profile, notes and plots."""
    lines = ["# SpotVLM evaluation", "", *header]
    if header:
        lines.append("")
    sequences = max((r.counts.get("sequences", 1) for r in results.runs), default=1)
    lines += [
        f"- bag: `{results.bag}`, {results.frames} camera messages per run in {sequences} recording(s), "
        f"each run as its own drive, seed {results.seed}",
        f"- deadline: {results.deadline_s} s",
        f"- modes: {', '.join(f'`{m}` ({MODES[m].description})' for m in results.modes)}",
        f"- task items: {', '.join(f'`{i.key}` ({i.prompt!r})' for i in results.items)}",
        f"- model calls: {json.dumps(results.model_calls)} (identical calls are answered from a cache)",
        "",
    ]
    for profile in results.profiles:
        profile_rows = [r for r in rows if r.profile == profile]
        if not profile_rows:
            continue
        columns = _columns(profile_rows)
        headers = ["mode", *[t for t, _ in columns], *HEADERS_AFTER]
        lines += [f"## Latency profile `{profile}` (mean {profile_rows[0].profile_mean_s:.2f} s)", ""]
        lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(_cells(row, columns)) + " |" for row in profile_rows]
        lines.append("")
    lines += ["## How to read it", ""] + [f"- {note}" for note in NOTES] + [""]
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots] + [""]
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """NaN -> None so the JSON is standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def results_json(
    results: EvalResults, rows: Sequence[SummaryRow], extra: dict[str, Any] | None = None
) -> str:
    """Every number of the evaluation as JSON (NaN written as null)."""
    data = {**(extra or {}), "summary": [r.to_json() for r in rows], **results.to_json()}
    return json.dumps(_clean(data), indent=1, sort_keys=True)

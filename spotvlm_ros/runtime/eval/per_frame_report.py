"""Write an evaluation's per-frame records and the figures computed from them beside its report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .frames import FRAMES_FILE, write_frames
from .oracle import breakdown_markdown, cold_start_share, context_breakdown, oracle_markdown, switch_oracle
from .runner import EvalResults


def write_per_frame(results: EvalResults, out: Path, mode: str = "spotvlm") -> dict[str, Any]:
    """Write ``frames.parquet``; append the switch oracle and the context-age breakdown to ``report.md``.

    Returns the figures for ``results.json``: ``switch_oracle`` rows, ``cold_start_share`` per profile,
    ``context_breakdown`` rows, the records' file name and row count.
    """
    table = results.frames_table()
    write_frames(table, out)
    rows = switch_oracle(table, mode=mode)
    cold = cold_start_share(table, mode=mode) if mode in results.modes else {}
    ages = context_breakdown(table, mode=mode) if {mode, "svlm"} <= set(results.modes) else []
    section = "\n".join(
        part for part in (oracle_markdown(rows, cold), breakdown_markdown(ages, mode)) if part
    )
    report = Path(out) / "report.md"
    if section and report.is_file():
        report.write_text(report.read_text().rstrip("\n") + "\n\n" + section)
    return {
        "per_frame": {"file": FRAMES_FILE, "rows": table.num_rows},
        "switch_oracle": rows,
        "cold_start_share": cold,
        "context_breakdown": ages,
    }

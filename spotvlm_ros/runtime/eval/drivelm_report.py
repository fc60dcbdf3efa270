"""Tables and files of a DriveLM evaluation: a text table per profile, ``report.md`` and ``results.json``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...core.drivelm_metrics import GPT_NOT_COMPUTED
from .drivelm import GROUPS, DriveLmResults

COLUMNS = (
    "mode",
    "group",
    "questions",
    "answered",
    "skipped",
    "accuracy",
    "bleu",
    "rouge_l",
    "match_f1",
    "gpt_n",
)
CIDER_NOTE = "CIDEr is not computed: no maintained Python library gives it (pycocoevalcap: 2020, Java)"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def rows(results: DriveLmResults, profile: str) -> list[list[str]]:
    """One row per mode and group (``all`` last) of a profile."""
    table = results.table()[profile]
    return [
        [mode, group, *(_cell(table[mode][group][c]) for c in COLUMNS[2:])]
        for mode in results.modes
        for group in (*GROUPS, "all")
    ]


def text_table(results: DriveLmResults) -> str:
    """The metric tables, one per profile, with the notes on what is not computed."""
    lines = [
        f"DriveLM evaluation of {results.bag} on {', '.join(results.topics)}: "
        f"{len(results.questions)} questions in {results.drives} drive(s)",
        f"NOTE: {GPT_NOT_COMPUTED}. {CIDER_NOTE}.",
    ]
    widths = [max(len(c), 10) for c in COLUMNS]
    widths[0] = max(len(m) for m in [*results.modes, "mode"])
    for profile in results.profiles:
        lines.append(f"profile {profile}")
        lines.append("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
        for row in rows(results, profile):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def markdown(results: DriveLmResults, header: Sequence[str] = ()) -> str:
    """``report.md``: the same tables in markdown, with the metric definitions' short form."""
    parts = [
        "# DriveLM evaluation",
        "",
        *header,
        f"- bag: `{results.bag}`, camera topics {', '.join(f'`{t}`' for t in results.topics)}",
        f"- questions: {len(results.questions)} in {results.drives} drive(s)",
        f"- modes: {', '.join(results.modes)}",
        "- accuracy: multiple-choice letter (or normalized exact match);"
        " bleu: sacrebleu corpus BLEU-4 (0-100); rouge_l: ROUGE-L F (0-1);"
        " match_f1: c tags of the answer vs the truth's, same camera, L1 < 16 px",
        f"- {GPT_NOT_COMPUTED}; {CIDER_NOTE}",
        "",
    ]
    for profile in results.profiles:
        parts += [f"## profile `{profile}`", "", "| " + " | ".join(COLUMNS) + " |"]
        parts.append("|" + "---|" * len(COLUMNS))
        parts += ["| " + " | ".join(row) + " |" for row in rows(results, profile)]
        parts.append("")
    return "\n".join(parts)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_outputs(results: DriveLmResults, out: Path, extra: dict[str, Any]) -> dict[str, Path]:
    """``report.md`` and ``results.json`` (NaN written as null) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    header = [f"- {k}: {v}" for k, v in extra.items()]
    (out / "report.md").write_text(markdown(results, header))
    payload = _finite(results.to_json() | {"cider": CIDER_NOTE} | extra)
    (out / "results.json").write_text(json.dumps(payload, indent=1, sort_keys=True))
    return {"report": out / "report.md", "results": out / "results.json"}

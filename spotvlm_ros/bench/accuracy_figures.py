"""Per-question figures of ``spotvlm bench accuracy``, from its runs and per-frame records.

For each VQA question at each headline mean delay (averaged over delay sequences): the gap SpotVLM closes,
both ablation deltas and the switch oracle's figures (see :mod:`spotvlm_ros.runtime.eval.oracle`); and
the share of scored frames before a drive's first context. Names put the question before the delay:
``gap_closed_speed_limit_mean5s``, ``ablation_delta_no_replacement_light_mean1p5s``,
``oracle_share_mean1p5s`` (all questions) and ``oracle_share_cars_mean1p5s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

ABLATIONS = ("spotvlm_no_focus", "spotvlm_no_replacement")
BASES = ("svlm", "lvlm_blocking", "spotvlm", *ABLATIONS)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _rounded(value: float | None) -> float | None:
    return round(value, 4) if value is not None and math.isfinite(value) else None


def item_scores(runs: Sequence[Any], mean_s: float, item_key: str) -> dict[str, float]:
    """Exact match of each mode on one VQA item at ``mean_s``, averaged over delay sequences."""
    scores = {}
    for mode in BASES:
        values = [
            float(r.metrics["exact_match"])
            for r in runs
            if r.mode == mode and r.item.key == item_key and _close(r.profile_mean_s, mean_s)
        ]
        scores[mode] = math.fsum(values) / len(values) if values else math.nan
    return scores


def per_question_figures(
    runs: Sequence[Any],
    oracle_rows: Sequence[Mapping[str, Any]],
    cold_start: Mapping[str, float],
    headline: Mapping[str, float],
) -> dict[str, Any]:
    """Gap closed, ablation deltas and oracle figures per question, and the cold-start shares."""
    from .accuracy import gap_closed

    figures: dict[str, Any] = {}
    items = sorted({r.item.key for r in runs if r.item.task == "vqa"})
    for name, mean_s in headline.items():
        label = name.removeprefix("gap_closed_")
        for key in items:
            item = key.removeprefix("vqa:")
            scores = item_scores(runs, mean_s, key)
            closed = gap_closed(scores["svlm"], scores["lvlm_blocking"], scores["spotvlm"])
            figures[f"gap_closed_{item}_{label}"] = _rounded(closed)
            for ablation in ABLATIONS:
                delta = scores["spotvlm"] - scores[ablation]
                figures[f"ablation_delta_{ablation.removeprefix('spotvlm_')}_{item}_{label}"] = _rounded(
                    delta
                )
        for row in oracle_rows:
            if not _close(row["profile_mean_s"], mean_s):
                continue
            item = "" if row["item"] == "all" else f"_{row['item'].removeprefix('vqa:')}"
            figures[f"switch_oracle{item}_{label}"] = row["switch_oracle"]
            figures[f"oracle_share{item}_{label}"] = row["oracle_share"]
    means = {profile: mean for profile, mean in _profile_means(runs).items()}
    for name, mean_s in headline.items():
        shares = [cold_start[p] for p, m in means.items() if _close(m, mean_s) and p in cold_start]
        if shares:
            figures[f"cold_start_share_{name.removeprefix('gap_closed_')}"] = _rounded(shares[0])
    return figures


def _profile_means(runs: Sequence[Any]) -> dict[str, float]:
    return {r.profile: r.profile_mean_s for r in runs}

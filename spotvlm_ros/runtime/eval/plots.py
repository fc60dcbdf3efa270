"""PNG plots of an evaluation (matplotlib, Agg backend: no display needed).

- ``accuracy_vs_delay.png``: each task's headline score against the latency profile's mean delay, a line
  per mode.
- ``latency_cdf.png``: the per-frame latency CDF of every mode, one panel per profile.
- ``context_age.png``: the context age of each answered frame over the run, for the modes that use LVLM
  answers, one panel per profile (first task item).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from .report import TASK_COLUMNS, SummaryRow
from .runner import EvalResults

AGE_MODES = ("spotvlm", "spotvlm_no_focus", "spotvlm_no_replacement", "lvlm")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(results: EvalResults, rows: Sequence[SummaryRow], out_dir: Path) -> list[Path]:
    """Write the three plots into ``out_dir``; returns their paths."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        _accuracy_vs_delay(plt, results, rows, out_dir / "accuracy_vs_delay.png"),
        _latency_cdf(plt, results, out_dir / "latency_cdf.png"),
        _context_age(plt, results, out_dir / "context_age.png"),
    ]
    return [p for p in paths if p is not None]


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _accuracy_vs_delay(plt, results: EvalResults, rows: Sequence[SummaryRow], path: Path) -> Path | None:
    tasks = [t for t in TASK_COLUMNS if any(i.task == t for i in results.items)]
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        title, metric = TASK_COLUMNS[task][0]
        for mode in results.modes:
            points = sorted(
                (r.profile_mean_s, r.scores[metric])
                for r in rows
                if r.mode == mode and metric in r.scores and not math.isnan(r.scores[metric])
            )
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=mode)
        ax.set_xlabel("mean cloud delay of the profile (s)")
        ax.set_ylabel(title)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    _legend(axes[0][-1])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _latency_cdf(plt, results: EvalResults, path: Path) -> Path:
    panels = len(results.profiles)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    for ax, profile in zip(axes[0], results.profiles, strict=True):
        for mode in results.modes:
            values = sorted(
                v for r in results.runs if r.profile == profile and r.mode == mode for v in r.latencies_s
            )
            if values:
                ax.step(values, [(i + 1) / len(values) for i in range(len(values))], where="post", label=mode)
        ax.axvline(results.deadline_s, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xlabel("per-frame latency (s)")
        ax.set_ylabel("fraction of answered frames")
        ax.set_title(profile, fontsize="small")
        ax.grid(alpha=0.3)
    _legend(axes[0][-1])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _context_age(plt, results: EvalResults, path: Path) -> Path | None:
    modes = [m for m in AGE_MODES if m in results.modes]
    if not modes or not results.items:
        return None
    item = results.items[0]
    panels = len(results.profiles)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    for ax, profile in zip(axes[0], results.profiles, strict=True):
        for mode in modes:
            run = results.run(profile, item, mode)
            points = [(t, a) for t, a in run.age_timeline if a >= 0]
            if points:
                ax.plot(*zip(*points, strict=True), marker=".", linewidth=1, label=mode)
        ax.set_xlabel("time in the run (s)")
        ax.set_ylabel("context age (s)")
        ax.set_title(f"{profile}\n{item.key}", fontsize="small")
        ax.grid(alpha=0.3)
    _legend(axes[0][-1])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

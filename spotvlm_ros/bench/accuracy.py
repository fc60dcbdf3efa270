"""``spotvlm bench accuracy``: how much of the SVLM -> LVLM accuracy gap SpotVLM closes, and at what cost.

The ``spotvlm eval`` machinery (simulated clock, memoized model calls) runs every mode on an annotated
bag for the VQA questions under lognormal cloud delays (sigma 0.8) whose mean sweeps 0.2 s .. 9 s; the
accuracy-vs-delay plot shows every mode. By default it generates a held-out bag of long drives: three
60 s drives with speed-limit signs (clip seeds from ``HELDOUT_BAG_SEED``, which no training recipe uses),
each run as its own drive (their ground truth names each drive as a ``sequence``), so at a 5 s mean delay
the start of a drive, before its first LVLM answer arrives, is a small share of the scored frames
(``cold_start_share_*``). The questions: the light, the cars, the pedestrian and the speed limit, whose
answer outlives the sign that posted it. ``--demo-bag`` reads the shipped demo bag instead (six 10 s
drives, no signs). Figures (DESIGN.md):

- ``gap_closed_mean1p5s`` / ``gap_closed_mean5s``: (spotvlm - svlm) / (lvlm_blocking - svlm) of the VQA
  exact match at mean delay 1.5 s / 5 s (targets >= 0.6 / >= 0.5); null when the LVLM is not better;
- ``latency_vs_svlm_ratio``: SVLM compute per frame with SpotVLM's prompts (context turns, focus crops)
  over SVLM alone, timed side by side on the same frames with a backend per mode (target <= 1.15);
- ``ablation_delta_*``: accuracy spotvlm minus each ablation (positive = the ablated part helps);
- per question (:mod:`.accuracy_figures`): ``gap_closed_<q>_*``, ``ablation_delta_*_<q>_*``, and from the
  per-frame records (``frames.parquet``, always written) the switch oracle and SpotVLM's share of its gain,
  ``switch_oracle[_<q>]_*`` and ``oracle_share[_<q>]_*``.

The headline mean delays (1.5 s, 5 s) are run under ``--draws`` delay sequences (3) and the figures average
them (``gap_closed_*_by_draw`` lists each sequence's figure); the other points of the sweep under
``--sweep-draws`` (1).

The cloud-answered modes (``lvlm``, ``lvlm_blocking``, ``offload``) run with ``focus.mode = off``: with
focus on, the cloud is asked for regions and writes box JSON after its VQA answer, which then does not
exact-match although the regions add nothing to the answer (see :func:`evaluate_modes`).

Models: the shipped demo models (``spotvlm_ros/demo_models/{lvlm,svlm}``) when present, else the tiny
random stand-ins, in which case the figures exercise the pipeline and say nothing about accuracy.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.config import SpotVlmConfig
from . import bench_line
from .accuracy_figures import per_question_figures

DEMO_BAG = Path(__file__).resolve().parent.parent.parent / "rosbags" / "demo"
MODES = (
    "svlm",
    "lvlm",
    "lvlm_blocking",
    "offload",
    "spotvlm",
    "spotvlm_no_focus",
    "spotvlm_no_replacement",
)
CLOUD_MODES = ("lvlm", "lvlm_blocking", "offload")  # evaluated with focus off (see evaluate_modes)
EDGE_MODES = tuple(m for m in MODES if m not in CLOUD_MODES)
SWEEP = (0.2, 0.5, 1.0, 1.5, 3.0, 5.0, 9.0)
QUICK_SWEEP = (1.5, 5.0)
HEADLINE = {"gap_closed_mean1p5s": 1.5, "gap_closed_mean5s": 5.0}
ABLATIONS = ("spotvlm_no_focus", "spotvlm_no_replacement")
HELDOUT_BAG_SEED = 900_001  # a generated bag's clip seeds (this, +1, ...) are not training clips' seeds
DRIVES = 3  # drives of the generated held-out bag
DRIVE_FRAMES = 600  # 60 s at 10 Hz: at 5 s mean delay the cold start is under a tenth of a drive
QUESTIONS = "light,cars,pedestrian,speed_limit"
RANDOM_NOTE = (
    "NOTE: the demo models are not shipped yet (spotvlm_ros/demo_models/{lvlm,svlm}); these figures come "
    "from tiny RANDOMLY INITIALISED stand-ins: they exercise the pipeline and say nothing about accuracy."
)


def profile_spec(mean_s: float) -> str:
    return f"lognormal:mean={mean_s:g},sigma=0.8"


def gap_closed(svlm: float, lvlm: float, spot: float) -> float | None:
    """Fraction of the svlm -> lvlm gap spotvlm closes; None when the LVLM is not more accurate."""
    gap = lvlm - svlm
    if not (math.isfinite(gap) and math.isfinite(spot)) or gap <= 0:
        return None
    return (spot - svlm) / gap


def model_settings(lvlm: Path | None, svlm: Path | None) -> tuple[dict[str, Any], bool]:
    """Config overrides naming the models, and whether they are trained (shipped or given)."""
    from ..training.scenario import trained_model_settings

    trained = trained_model_settings(lvlm, svlm)
    if trained is not None:
        return trained, True
    return {"cloud.backend": "tiny", "edge.backend": "tiny"}, False


def _vqa_score(rows: Sequence[Any], mean_s: float, mode: str) -> float:
    for row in rows:
        if row.mode == mode and math.isclose(row.profile_mean_s, mean_s, rel_tol=1e-6, abs_tol=1e-9):
            return float(row.scores.get("exact_match", math.nan))
    return math.nan


def accuracy_figures(rows: Sequence[Any], means: Sequence[float]) -> dict[str, Any]:
    """Gap closed at the headline delays, ablation deltas and the per-mode curve."""
    figures: dict[str, Any] = {}
    for name, mean_s in HEADLINE.items():
        scores = {m: _vqa_score(rows, mean_s, m) for m in ("svlm", "lvlm_blocking", "spotvlm")}
        closed = gap_closed(scores["svlm"], scores["lvlm_blocking"], scores["spotvlm"])
        figures[name] = None if closed is None else round(closed, 4)
        label = name.removeprefix("gap_closed_")
        for ablation in ABLATIONS:
            delta = scores["spotvlm"] - _vqa_score(rows, mean_s, ablation)
            figures[f"ablation_delta_{ablation.removeprefix('spotvlm_')}_{label}"] = (
                round(delta, 4) if math.isfinite(delta) else None
            )
    figures["vqa_curve"] = {
        mode: {f"{m:g}": _rounded(_vqa_score(rows, m, mode)) for m in means} for mode in MODES
    }
    return figures


def gap_closed_by_draw(runs: Sequence[Any], mean_s: float) -> list[float | None]:
    """The gap closed at ``mean_s`` under each delay sequence (VQA exact match averaged over items)."""
    draws = sorted({r.draw for r in runs})
    out = []
    for draw in draws:
        scores = {}
        for mode in ("svlm", "lvlm_blocking", "spotvlm"):
            values = [
                float(r.metrics["exact_match"])
                for r in runs
                if r.draw == draw
                and r.mode == mode
                and r.item.task == "vqa"
                and math.isclose(r.profile_mean_s, mean_s, rel_tol=1e-6, abs_tol=1e-9)
            ]
            scores[mode] = sum(values) / len(values) if values else math.nan
        closed = gap_closed(scores["svlm"], scores["lvlm_blocking"], scores["spotvlm"])
        out.append(None if closed is None else round(closed, 4))
    return out


def _rounded(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def svlm_step_seconds(config: SpotVlmConfig, bag: Path, frames: int, question: str) -> dict[str, float]:
    """Mean SVLM compute per frame with the prompts of svlm and of spotvlm, timed side by side."""
    from ..models.factory import create_backend
    from ..runtime.eval.runner import EvalPlan, prepare_eval, run_eval
    from .accuracy_timing import RecordingBackend, time_calls

    recorded: dict[str, list] = {}
    cloud = create_backend(config.cloud, "cloud")
    try:
        for mode in ("svlm", "spotvlm"):
            recorder = RecordingBackend(create_backend(config.edge, "edge"))
            setup = prepare_eval(
                bag,
                config,
                EvalPlan(
                    modes=[mode],
                    tasks=["vqa"],
                    profiles=[profile_spec(1.5)],
                    questions=[question],
                    max_frames=frames,
                ),
            )
            run_eval(setup, recorder, cloud)
            recorded[mode] = recorder.calls
            recorder.close()
    finally:
        cloud.close()
    return time_calls(config, recorded)


def evaluate_modes(config: SpotVlmConfig, bag: Path, plan_args: dict[str, Any], edge: Any, cloud: Any) -> Any:
    """Every mode on ``bag``; the cloud-answered modes with ``focus.mode = off``.

    With Visual Focus on, the cloud is asked for regions and writes them after its answer, which a
    small LVLM answers differently. The LVLM's own VQA accuracy (``lvlm``, ``lvlm_blocking``, the cloud
    frames of ``offload``) is measured as it is asked without regions; SpotVLM's modes keep them (its
    focus crops come from them).
    """
    from ..runtime.eval.runner import EvalPlan, EvalResults, prepare_eval, run_eval

    cloud_config = config.model_copy(update={"focus": config.focus.model_copy(update={"mode": "off"})})
    parts = []
    for modes, part_config in ((EDGE_MODES, config), (CLOUD_MODES, cloud_config)):
        setup = prepare_eval(bag, part_config, EvalPlan(modes=list(modes), **plan_args))
        parts.append(run_eval(setup, edge, cloud))
    first, second = parts
    calls = {
        role: {k: first.model_calls[role][k] + second.model_calls[role][k] for k in first.model_calls[role]}
        for role in first.model_calls
    }
    return EvalResults(
        first.bag,
        first.frames,
        first.seed,
        first.deadline_s,
        list(MODES),
        first.profiles,
        first.items,
        runs=first.runs + second.runs,
        model_calls=calls,
    )


def write_outputs(results: Any, out: Path, header: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """Print the tables; write report.md, results.json, the plots and the per-frame records into ``out``."""
    from ..runtime.eval.per_frame_report import write_per_frame
    from ..runtime.eval.plots import write_plots
    from ..runtime.eval.report import markdown_report, print_tables, results_json, summary_rows

    rows = summary_rows(results)
    print_tables(results, rows)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(results, rows, out)
    (out / "report.md").write_text(markdown_report(results, rows, header, [str(p) for p in plots]))
    extra = extra | write_per_frame(results, out)
    (out / "results.json").write_text(results_json(results, rows, extra))
    return {
        "rows": rows,
        "plots": plots,
        "report": out / "report.md",
        "oracle": extra["switch_oracle"],
        "cold_start": extra["cold_start_share"],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotvlm bench accuracy", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bag",
        type=Path,
        default=None,
        help="annotated bag (default: a generated held-out bag of long drives)",
    )
    parser.add_argument("--demo-bag", action="store_true", help="the shipped demo bag (six 10 s drives)")
    parser.add_argument("--drives", type=int, default=DRIVES, help=f"drives of the generated bag ({DRIVES})")
    parser.add_argument(
        "--drive-frames",
        type=int,
        default=DRIVE_FRAMES,
        help=f"frames per generated drive ({DRIVE_FRAMES}: 60 s)",
    )
    parser.add_argument("--frames", type=int, default=0, help="frames of the bag per run (0: all)")
    parser.add_argument("--questions", default=QUESTIONS, help=f"VQA ids ({QUESTIONS}; absent ones skipped)")
    parser.add_argument("--sweep", default=",".join(f"{m:g}" for m in SWEEP), help="mean delays in s")
    parser.add_argument("--draws", type=int, default=3, help="delay sequences per headline delay (3)")
    parser.add_argument("--sweep-draws", type=int, default=1, help="delay sequences per other delay (1)")
    parser.add_argument("--timing-frames", type=int, default=40, help="frames timed per mode (40)")
    parser.add_argument(
        "--lvlm", type=Path, default=None, help="LVLM model dir (default: shipped demo model)"
    )
    parser.add_argument(
        "--svlm", type=Path, default=None, help="SVLM model dir (default: shipped demo model)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/bench/accuracy"), help="outputs (out/bench/accuracy)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a runtime setting over the scenario's, e.g. context.history_length=4 (repeatable)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a fast plumbing run: one 20-frame drive, light, 1.5 s and 5 s"
    )
    return parser


def _bag(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    if args.bag is not None:
        return args.bag, f"bag {args.bag}"
    if args.demo_bag:
        return DEMO_BAG, f"demo bag {DEMO_BAG} (six 10 s drives)"
    if args.drives < 1 or args.drive_frames < 1:
        raise SystemExit("spotvlm bench accuracy: --drives and --drive-frames must be >= 1")
    from ..runtime.make_bag import make_synthetic_bag
    from ..training.recipe import FRAME_SIZE

    bag = tmp / "heldout_bag"
    make_synthetic_bag(
        bag,
        frames=args.drive_frames,
        clips=args.drives,
        seed=HELDOUT_BAG_SEED,
        width=FRAME_SIZE[0],
        height=FRAME_SIZE[1],
        transport="compressed",
        signs=True,
    )
    seconds = args.drive_frames / 10.0
    return bag, (
        f"generated held-out bag: {args.drives} drives of {seconds:g} s with speed-limit signs "
        f"(clip seeds {HELDOUT_BAG_SEED}..{HELDOUT_BAG_SEED + args.drives - 1})"
    )


def evaluate_sweep(
    config: SpotVlmConfig,
    bag: Path,
    plan_args: dict[str, Any],
    groups: Sequence[tuple[list[str], int]],
    edge: Any,
    cloud: Any,
) -> Any:
    """:func:`evaluate_modes` for each (profiles, draws) group, merged into one result."""
    from ..runtime.eval.runner import EvalResults

    parts = [
        evaluate_modes(config, bag, {**plan_args, "profiles": profiles, "draws": draws}, edge, cloud)
        for profiles, draws in groups
        if profiles
    ]
    first = parts[0]
    calls = {
        role: {k: sum(p.model_calls[role][k] for p in parts) for k in first.model_calls[role]}
        for role in first.model_calls
    }
    means = {r.profile: r.profile_mean_s for part in parts for r in part.runs}
    profiles = sorted((p for part in parts for p in part.profiles), key=lambda spec: means.get(spec, 0.0))
    runs = [r for part in parts for r in part.runs]
    return EvalResults(
        first.bag, first.frames, first.seed, first.deadline_s, list(MODES), profiles, first.items, runs, calls
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import torch
    from transformers.utils import logging as hf_logging

    from ..models.factory import create_backend
    from ..runtime.eval.memo import MemoBackend
    from ..runtime.eval.runner import EvalPlan, prepare_eval
    from ..training.scenario import scenario_config

    torch.set_num_threads(max(1, args.threads))
    hf_logging.disable_progress_bar()
    if args.quick:
        args.drives, args.drive_frames, args.questions, args.timing_frames = 1, 20, "light", 4
        args.draws = args.sweep_draws = 1
        args.sweep = ",".join(f"{m:g}" for m in QUICK_SWEEP)
    means = sorted({float(m) for m in args.sweep.split(",") if m.strip()} | set(HEADLINE.values()))
    from ..cli_run import parse_overrides

    settings, trained = model_settings(args.lvlm, args.svlm)
    if not trained:  # random stand-ins never stop early: keep their answers short
        settings = {**settings, "edge.max_new_tokens": 4, "cloud.max_new_tokens": 8}
    config = scenario_config({**settings, **parse_overrides(args.set)})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spotvlm-bench-acc-") as tmp:
        bag, origin = _bag(args, Path(tmp))
        plan_args = {
            "tasks": ["vqa"],
            "profiles": [profile_spec(m) for m in means],
            "questions": [q.strip() for q in args.questions.split(",") if q.strip()],
            "max_frames": args.frames,
            "draws": args.draws,
            "per_frame": True,
        }
        headline = [profile_spec(m) for m in means if m in HEADLINE.values()]
        others = [profile_spec(m) for m in means if m not in HEADLINE.values()]
        setup = prepare_eval(bag, config, EvalPlan(modes=list(MODES), **plan_args))
        header = [
            f"SpotVLM accuracy benchmark on the {origin}: first {setup.frames} frames, VQA "
            f"{', '.join(i.key for i in setup.items)}; lognormal cloud delay (sigma 0.8), mean "
            f"{', '.join(f'{m:g}' for m in means)} s; {args.draws} delay sequence(s) at "
            f"{', '.join(f'{m:g}' for m in HEADLINE.values())} s, {args.sweep_draws} at the others, "
            "averaged; "
            f"SVLM step {config.edge.step_time_s} s (simulated)",
            f"- models: edge {config.edge.model or 'tiny'}, cloud {config.cloud.model or 'tiny'}",
            f"- {', '.join(CLOUD_MODES)} run with focus.mode = off (the LVLM is not asked for regions "
            "its VQA answer does not need)",
            f"- context.history_length {config.context.history_length} "
            f"(history_keeps {config.context.history_keeps}), max_context_age_s "
            f"{config.context.max_context_age_s}, keyframes.max_in_flight {config.keyframes.max_in_flight}"
            + (f"; --set {' '.join(args.set)}" if args.set else ""),
        ]
        if not trained:
            header.append(f"- {RANDOM_NOTE}")
        print("\n".join(header), flush=True)
        edge = MemoBackend(create_backend(config.edge, "edge"))
        cloud = MemoBackend(create_backend(config.cloud, "cloud"))
        try:
            groups = [(headline, args.draws), (others, args.sweep_draws)]
            results = evaluate_sweep(config, bag, plan_args, groups, edge, cloud)
        finally:
            edge.close()
            cloud.close()
        extra = {"edge_model": edge.name, "cloud_model": cloud.name, "notes": header}
        outputs = write_outputs(results, args.out, header, extra)
        question = setup.items[0].item_id
        timing = svlm_step_seconds(config, bag, max(2, args.timing_frames), question)
    figures = accuracy_figures(outputs["rows"], means)
    for name, mean_s in HEADLINE.items():
        figures[f"{name}_by_draw"] = gap_closed_by_draw(results.runs, mean_s)
    figures |= per_question_figures(results.runs, outputs["oracle"], outputs["cold_start"], HEADLINE)
    ratio = timing["spotvlm"] / timing["svlm"] if timing["svlm"] > 0 else math.nan
    figures["latency_vs_svlm_ratio"] = _rounded(ratio)
    figures["svlm_step_ms"] = round(1000 * timing["svlm"], 2)
    figures["spotvlm_step_ms"] = round(1000 * timing["spotvlm"], 2)
    figures["trained_models"] = trained
    figures["frames"] = setup.frames
    _report(figures, outputs, trained, time.perf_counter() - started, args.out)
    curve = figures.pop("vqa_curve")
    print(bench_line("accuracy", figures))
    (args.out / "accuracy_curve.json").write_text(json.dumps(curve, indent=1))
    return 0


def _report(
    figures: dict[str, Any], outputs: dict[str, Any], trained: bool, seconds: float, out: Path
) -> None:
    print("VQA exact match by mean cloud delay (s):")
    curve = figures["vqa_curve"]
    means = list(next(iter(curve.values())))
    print("  " + "mode".ljust(24) + "".join(m.rjust(8) for m in means))
    for mode, points in curve.items():
        cells = "".join(("-" if v is None else f"{v:.3f}").rjust(8) for v in points.values())
        print("  " + mode.ljust(24) + cells)
    for name in HEADLINE:
        value = figures[name]
        target = ">= 0.6" if name.endswith("1p5s") else ">= 0.5"
        shown = "n/a (the LVLM is not more accurate than the SVLM here)" if value is None else f"{value:.3f}"
        print(f"{name}: {shown} (target {target}; per delay sequence {figures[f'{name}_by_draw']})")
    for key, value in figures.items():
        if key.startswith("ablation_delta_"):
            verdict = (
                ""
                if value is None
                else ("ablation loses accuracy" if value > 0 else "ablation does NOT lose")
            )
            print(f"{key}: {value} {verdict}".rstrip())
    print(
        f"SVLM step: svlm {figures['svlm_step_ms']} ms, spotvlm {figures['spotvlm_step_ms']} ms, "
        f"latency_vs_svlm_ratio {figures['latency_vs_svlm_ratio']} (target <= 1.15)"
    )
    for path in outputs["plots"]:
        print(f"plot: {path}")
    print(f"report: {outputs['report']} ({seconds:.0f} s)")
    if not trained:
        print(RANDOM_NOTE)

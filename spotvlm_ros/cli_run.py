"""The ``replay``, ``eval`` and ``demo`` subcommands of ``spotvlm`` (registered by :mod:`spotvlm_ros.cli`).

Exit codes: 0 success, 1 runtime failure (unreadable bag, model or server failure), 2 usage or
configuration error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from .core.config import EVAL_MODES, ConfigError, SpotVlmConfig, load_config

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_BAG = REPO_ROOT / "rosbags" / "demo"
DEMO_PROFILE = "gilbert:good=0.4,bad=3.0,p_gb=0.15,p_bg=0.35,jitter=0.3"
DEMO_THREADS = 1  # the tiny trained models run fastest on one torch thread
DEMO_SETTINGS: dict[str, Any] = {
    "edge.step_time_s": 0.15,  # fixed SVLM step (virtual clock): reproducible; slower than the 10 Hz camera
    "edge.max_new_tokens": 12,  # short answers and small images keep the CPU demo well under 5 minutes
    "edge.image_max_side": 224,
    "cloud.max_new_tokens": 24,
    "cloud.image_max_side": 448,
    "latency.profile": DEMO_PROFILE,
    "latency.profiles": [DEMO_PROFILE],
    "eval.max_frames": 30,
    "eval.tasks": ["vqa", "caption", "grounding"],
}
DEMO_QUESTIONS = ("light",)
# with the trained demo models shipped (spotvlm_ros/demo_models): the settings they were trained under
TRAINED_DEMO_SETTINGS: dict[str, Any] = {
    "latency.profile": DEMO_PROFILE,
    "latency.profiles": [DEMO_PROFILE],
    "eval.max_frames": 600,  # the frames `spotvlm bench accuracy` uses (the whole demo bag: six clips)
    "eval.tasks": ["vqa"],
}
TRAINED_DEMO_QUESTIONS = ("light", "cars", "pedestrian")
RANDOM_WEIGHTS_NOTE = (
    "The models are tiny, randomly initialised stand-ins (the trained demo models in "
    "spotvlm_ros/demo_models are missing or not selected): their answers are noise, so the scores below "
    "exercise the whole pipeline but say nothing about accuracy."
)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings to dotted config overrides (values parsed as YAML: 0.1, true, [a, b])."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {pair!r}: value is not valid YAML: {err}") from None
    return out


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _config(args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> SpotVlmConfig:
    config = load_config(args.config, overrides={**(defaults or {}), **parse_overrides(args.set)})
    _one_thread_for_tiny_models(config)
    return config


def _one_thread_for_tiny_models(config: SpotVlmConfig) -> None:
    """Tiny CPU models run fastest on one torch thread (more only contend: ~10x slower on a busy box)."""
    backends = {config.edge.backend, config.cloud.backend}
    if "tiny" in backends and backends <= {"tiny", "zero"}:
        import torch

        torch.set_num_threads(1)


class RunLines:
    """One line on stderr per finished evaluation run (mode, profile, task item), for logs and CI."""

    def __init__(self, description: str, runs: int, draws: int):
        self.description, self.runs, self.draws = description, runs, draws
        self.done = 0
        self.started = time.monotonic()

    def __call__(self, run: Any) -> None:
        self.done += 1
        draw = f" draw {run.draw + 1}/{self.draws}" if self.draws > 1 else ""
        print(
            f"{self.description}: run {self.done}/{self.runs} done: mode {run.mode}, profile {run.profile}"
            f"{draw}, {run.item.key}: score {run.score:.3f} ({time.monotonic() - self.started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )


@contextmanager
def _progress(
    description: str, total: int, enabled: bool, runs: int = 0, draws: int = 1
) -> Iterator[tuple[Callable[[int], None] | None, Callable[[Any], None] | None]]:
    """Progress on stderr; yields ``(advance(n), on_run(run))``, either may be None.

    A terminal gets a rich bar advanced per camera message; anything else (a pipe, a file, CI) gets one
    line per finished run, where a bar would print nothing until the end.
    """
    if not enabled:
        yield None, None
        return
    if not sys.stderr.isatty():
        yield None, RunLines(description, runs, draws)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield (lambda n: progress.advance(task, n)), None


def _failure(command: str, err: BaseException) -> int:
    print(f"spotvlm {command}: {err}", file=sys.stderr)
    return EXIT_FAILURE


def _runtime_errors() -> tuple[type[BaseException], ...]:
    from .models.base import BackendError
    from .runtime.bag_reader import BagError

    return (BagError, BackendError, OSError, RuntimeError)


def cmd_replay(args: argparse.Namespace) -> int:
    config = _config(args)
    from .runtime.replay import replay_bag

    if args.rate <= 0:
        raise ConfigError(f"--rate must be > 0, got {args.rate}")
    try:
        summary = replay_bag(
            args.bag,
            config,
            clock=args.clock,
            out_dir=None if args.no_output else args.out,
            max_frames=args.max_frames,
            rate=args.rate,
        )
    except _runtime_errors() as err:
        return _failure("replay", err)
    print("\n".join(summary.lines()))
    for name, path in summary.outputs.items():
        print(f"  {name}: {path}")
    return EXIT_OK


def _eval_plan(args: argparse.Namespace, questions: Sequence[str] = ()) -> Any:
    from .runtime.eval.runner import EvalPlan

    return EvalPlan(
        modes=_csv(args.modes) if getattr(args, "modes", "") else (),
        tasks=_csv(args.tasks) if getattr(args, "tasks", "") else (),
        profiles=list(getattr(args, "profile", None) or ()),
        questions=_csv(args.questions) if getattr(args, "questions", "") else list(questions),
        max_frames=getattr(args, "max_frames", 0) or 0,
        draws=getattr(args, "draws", 1),
        per_frame=getattr(args, "per_frame", False),
    )


def run_evaluation(
    setup: Any,
    edge: Any,
    cloud: Any,
    out: Path,
    *,
    plots: bool,
    progress: bool,
    header: Sequence[str] = (),
    jobs: int = 1,
) -> dict[str, Any]:
    """Run a prepared evaluation, print the tables, write report.md, results.json and the plots."""
    from .runtime.eval.plots import write_plots
    from .runtime.eval.report import markdown_report, print_tables, results_json, summary_rows
    from .runtime.eval.runner import run_eval

    total = setup.frames * setup.runs
    reporting = _progress(f"eval {setup.bag.name}", total, progress, setup.runs, setup.plan.draws)
    with reporting as (advance, on_run):
        if jobs > 1 and progress and on_run is None:  # workers advance no bar: a line per run instead
            on_run = RunLines(f"eval {setup.bag.name}", setup.runs, setup.plan.draws)
        results = run_eval(setup, edge, cloud, advance=advance, on_run=on_run, jobs=jobs)
    rows = summary_rows(results)
    print_tables(results, rows)
    out.mkdir(parents=True, exist_ok=True)
    written = write_plots(results, rows, out) if plots else []
    models = [f"- models: edge `{edge.name}`, cloud `{cloud.name}`"]
    (out / "report.md").write_text(
        markdown_report(results, rows, [*header, *models], [str(p) for p in written])
    )
    extra = {"edge_model": edge.name, "cloud_model": cloud.name, "notes": list(header)}
    outputs = {"report": out / "report.md", "results": out / "results.json", "plots": written, "rows": rows}
    if setup.plan.per_frame:
        from .runtime.eval.per_frame_report import write_per_frame

        extra |= write_per_frame(results, out)
        outputs["frames"] = out / "frames.parquet"
    (out / "results.json").write_text(results_json(results, rows, extra))
    return outputs


@contextmanager
def _backends(config: SpotVlmConfig) -> Iterator[tuple[Any, Any]]:
    """The configured edge and cloud backends, memoized (identical calls answered once), closed after."""
    from .models.factory import create_backend
    from .runtime.eval.memo import MemoBackend

    edge = MemoBackend(create_backend(config.edge, "edge"))
    try:
        cloud = MemoBackend(create_backend(config.cloud, "cloud"))
        try:
            yield edge, cloud
        finally:
            cloud.close()
    finally:
        edge.close()


def cmd_eval(args: argparse.Namespace) -> int:
    config = _config(args)
    from .cli_drivelm import cmd_eval_drivelm, wants_drivelm

    if wants_drivelm(args):
        return cmd_eval_drivelm(args, config, _backends, _runtime_errors)
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    from .runtime.eval.runner import EvalError, prepare_eval

    try:
        setup = prepare_eval(args.bag, config, _eval_plan(args))
        with _backends(config) as (edge, cloud):
            outputs = run_evaluation(
                setup, edge, cloud, args.out, plots=not args.no_plots, progress=not args.quiet, jobs=args.jobs
            )
    except (EvalError, ValueError) as err:
        print(f"spotvlm eval: {err}", file=sys.stderr)
        return EXIT_USAGE
    except _runtime_errors() as err:
        return _failure("eval", err)
    print(f"report: {outputs['report']}\nnumbers: {outputs['results']}")
    if "frames" in outputs:
        print(f"per-frame records: {outputs['frames']}")
    for path in outputs["plots"]:
        print(f"plot: {path}")
    return EXIT_OK


def _demo_bag(out: Path, frames: int) -> tuple[Path, str]:
    """The shipped demo bag, or a synthetic bag generated into ``out`` when it is missing."""
    if (DEMO_BAG / "metadata.yaml").is_file():
        return DEMO_BAG, f"shipped demo bag {DEMO_BAG}"
    from .runtime.make_bag import make_synthetic_bag

    bag = out / "synthetic_bag"
    if not (bag / "metadata.yaml").is_file():
        make_synthetic_bag(bag, frames=frames, seed=0)
    return bag, f"{DEMO_BAG} not found: generated a synthetic bag of {frames} frames at {bag}"


def demo_settings() -> tuple[dict[str, Any], tuple[str, ...], bool]:
    """The demo's config overrides and VQA questions, and whether the trained demo models run.

    With the trained models shipped: their training scenario (SVLM step, answer lengths, history, requests
    in flight) and every VQA question; else the tiny random stand-ins on the light question only.
    """
    from .training.scenario import SCENARIO_SETTINGS, trained_model_settings

    models = trained_model_settings()
    if models is None:
        return DEMO_SETTINGS, DEMO_QUESTIONS, False
    return {**SCENARIO_SETTINGS, **TRAINED_DEMO_SETTINGS, **models}, TRAINED_DEMO_QUESTIONS, True


def cmd_demo(args: argparse.Namespace) -> int:
    settings, questions, trained = demo_settings()
    config = _config(args, settings)
    if trained:
        import torch

        torch.set_num_threads(DEMO_THREADS)
    from .runtime.eval.runner import EvalError, prepare_eval
    from .runtime.replay import replay_bag

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        bag, origin = _demo_bag(out, max(config.eval.max_frames, 1))
        setup = prepare_eval(bag, config, _eval_plan(args, questions))
        frames = setup.frames
        header = [
            "SpotVLM demo: no ROS, no GPU, no network; simulated clock (same seed, same numbers).",
            f"- bag: {origin}; first {frames} frames",
            f"- cloud delay profile: {', '.join(setup.plan.profiles)}; "
            f"SVLM step {config.edge.step_time_s} s; deadline {config.eval.deadline_s} s",
            f"- modes: {', '.join(setup.plan.modes)}",
            f"- task items: {', '.join(item.key for item in setup.items)}",
        ]
        if "tiny" in (config.edge.backend, config.cloud.backend):
            header.append(f"- NOTE: {RANDOM_WEIGHTS_NOTE}")
        elif trained:
            header.append(f"- models: trained demo SVLM {config.edge.model}, LVLM {config.cloud.model}")
        print("\n".join(header), flush=True)
        first = setup.items[0]  # the replay asks the first item, so the evaluation reuses its answers
        replay_config = config.model_copy(update={"task": first.task, "prompt": first.prompt})
        with _backends(config) as (edge, cloud):
            summary = replay_bag(
                bag,
                replay_config,
                out_dir=out / "replay",
                max_frames=frames,
                edge_backend=edge,
                cloud_backend=cloud,
            )
            print("\n".join(summary.lines()[:-1]), flush=True)
            outputs = run_evaluation(
                setup, edge, cloud, out, plots=True, progress=not args.quiet, header=header
            )
    except (EvalError, ValueError) as err:
        print(f"spotvlm demo: {err}", file=sys.stderr)
        return EXIT_USAGE
    except _runtime_errors() as err:
        return _failure("demo", err)
    print(f"wrote {out}/: report.md, results.json, {', '.join(p.name for p in outputs['plots'])}")
    print(f"output bag: {summary.outputs['bag']} (records: {summary.outputs['records']})")
    return EXIT_OK


_SET_HELP = "override a config key, e.g. --set edge.step_time_s=0.1 (repeatable; value parsed as YAML)"
_FORMAT = argparse.RawDescriptionHelpFormatter
EXIT_CODES = "exit codes: 0 success, 1 runtime failure (bag, model, server), 2 usage or config error"


def add_run_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``replay``, ``eval`` and ``demo`` on the ``spotvlm`` parser."""
    replay = sub.add_parser(
        "replay",
        help="run the SpotVLM loop on a bag (no ROS needed); writes an output bag",
        formatter_class=_FORMAT,
        description="Replay a rosbag2 bag (MCAP or sqlite3) through the SpotVLM loop: the edge SVLM answers\n"
        "the newest frame (latest wins) with context from late LVLM answers to keyframes.\n"
        "simulated clock: cloud delays drawn from latency.profile under seed, SVLM step =\n"
        "edge.step_time_s (or measured); deterministic. realtime clock: wall clock, real latencies.\n"
        "Writes OUT/bag (answers, contexts, detections, markers, focus images beside the input\n"
        "frames), OUT/records.jsonl and OUT/summary.json.",
        epilog="example: spotvlm replay rosbags/demo --set edge.backend=zero --set cloud.backend=zero\n"
        + EXIT_CODES,
    )
    replay.add_argument("bag", type=Path, metavar="BAG", help="bag directory (or a single .mcap/.db3 file)")
    replay.add_argument("--config", type=Path, default=None, help="YAML config (default: built-in defaults)")
    replay.add_argument("--clock", choices=("simulated", "realtime"), default="simulated", help="(simulated)")
    replay.add_argument("--out", type=Path, default=Path("out/replay"), help="output folder (out/replay)")
    replay.add_argument("--no-output", action="store_true", help="write nothing, print the summary only")
    replay.add_argument("--max-frames", type=int, default=0, help="stop after N camera messages (0 = all)")
    replay.add_argument("--rate", type=float, default=1.0, help="realtime playback speed factor (1.0)")
    replay.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=_SET_HELP)
    replay.set_defaults(func=cmd_replay)

    ev = sub.add_parser(
        "eval",
        help="compare SpotVLM with its baselines on an annotated bag",
        formatter_class=_FORMAT,
        description="Evaluate modes x latency profiles x tasks on a bag with ground truth\n"
        "(BAG/annotations.jsonl), on the simulated clock. Modes:\n  " + ", ".join(EVAL_MODES) + ".\n"
        "Metrics: VQA normalized exact match, caption ROUGE-L and BLEU, grounding acc@IoU0.5 and\n"
        "mean IoU, per-frame latency p50/p95/p99 and deadline misses, context age, LVLM requests\n"
        "and bytes. Prints a table per profile; writes OUT/report.md, OUT/results.json and PNG plots.\n"
        "A bag with DriveLM ground truth (spotvlm import-drivelm) is scored per question group with\n"
        "DriveLM's metric families; see docs/drivelm.md. --jobs N: runs (DriveLM: drives) in N\n"
        "worker processes, same numbers.",
        epilog="example: spotvlm eval rosbags/demo --modes svlm,spotvlm --tasks vqa "
        "--profile constant:delay=0.5 --max-frames 50\n" + EXIT_CODES,
    )
    ev.add_argument("bag", type=Path, metavar="BAG", help="bag directory with annotations.jsonl")
    ev.add_argument("--config", type=Path, default=None, help="YAML config (default: built-in defaults)")
    ev.add_argument("--out", type=Path, default=Path("out/eval"), help="output folder (out/eval)")
    ev.add_argument("--modes", default="", help="comma-separated modes (default: eval.modes)")
    ev.add_argument(
        "--tasks", default="", help="comma-separated tasks: vqa,caption,grounding (eval.tasks), or drivelm"
    )
    ev.add_argument(
        "--profile", action="append", metavar="SPEC", help="latency profile (repeatable; latency.profiles)"
    )
    ev.add_argument(
        "--questions", default="", help="VQA/grounding ids to ask, e.g. light,cars (default: all)"
    )
    ev.add_argument("--max-frames", type=int, default=0, help="camera messages per run (eval.max_frames)")
    ev.add_argument(
        "--draws", type=int, default=1, help="delay sequences per profile, averaged in the summary (1)"
    )
    ev.add_argument(
        "--per-frame",
        action="store_true",
        help="also write OUT/frames.parquet (every scored frame's answer, correctness, context, focus) "
        "and the switch oracle",
    )
    ev.add_argument(
        "--jobs", type=int, default=1, help="runs (DriveLM: drives) in parallel worker processes (1)"
    )
    ev.add_argument("--groups", default="", help="DriveLM: comma-separated question groups (default: all)")
    ev.add_argument(
        "--per-group", type=int, default=0, help="DriveLM: first N questions per group and frame (0 = all)"
    )
    ev.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ev.add_argument("--quiet", action="store_true", help="no progress bar or per-run lines")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=_SET_HELP)
    ev.set_defaults(func=cmd_eval)

    demo = sub.add_parser(
        "demo",
        help="the embedded demo: replay + evaluation on the demo bag (no ROS, no GPU, no network)",
        formatter_class=_FORMAT,
        description="Replay the demo bag (rosbags/demo, or a synthetic bag generated when it is missing) on\n"
        "the simulated clock with a fluctuating two-state cloud delay, then evaluate every mode on it.\n"
        "Prints the table of modes; writes OUT/report.md, OUT/results.json, plots and OUT/replay/\n"
        "(output bag, records, summary).\n\nWith the trained demo models present\n"
        "(spotvlm_ros/demo_models/{lvlm,svlm}), it runs them on the VQA questions light, cars and\n"
        "pedestrian under their training scenario:\n"
        + "\n".join(f"  {key}: {value}" for key, value in TRAINED_DEMO_SETTINGS.items())
        + "\nwithout them, tiny random stand-ins (change any setting with --set KEY=VALUE):\n"
        + "\n".join(f"  {key}: {value}" for key, value in DEMO_SETTINGS.items()),
        epilog="example: spotvlm demo --set eval.max_frames=80\n" + EXIT_CODES,
    )
    demo.add_argument("--config", type=Path, default=None, help="YAML config (default: built-in defaults)")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (out/demo)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar or per-run lines")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=_SET_HELP)
    demo.set_defaults(func=cmd_demo)

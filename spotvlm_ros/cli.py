"""The ``spotvlm`` command line: replay, eval, bench, demo and tools around them.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .bench import BENCHMARKS
from .cli_import import add_import_command
from .cli_run import add_run_commands
from .core.config import ConfigError, load_config, to_ros_params
from .doctor import add_doctor_command
from .training.command import add_train_command

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _cmd_config(args: argparse.Namespace) -> int:
    if args.markdown:
        if args.config is not None:
            print("spotvlm config: --markdown documents the schema; give no FILE with it", file=sys.stderr)
            return EXIT_USAGE
        from .core.config_doc import config_markdown

        sys.stdout.write(config_markdown())
        return EXIT_OK
    config = load_config(args.config)
    for name, value in to_ros_params(config).items():
        print(f"{name}: {value!r}")
    return EXIT_OK


def _cmd_make_bag(args: argparse.Namespace) -> int:
    from .runtime import make_bag  # imports OpenCV and rosbags: only for this command

    if args.out.exists():
        print(f"spotvlm make-bag: {args.out} exists already; choose a new path", file=sys.stderr)
        return EXIT_USAGE
    try:
        summary = make_bag.make_synthetic_bag(
            args.out,
            frames=args.frames,
            clips=args.clips,
            seed=args.seed,
            fps=args.fps,
            width=args.width,
            height=args.height,
            storage=args.storage,
            transport=args.transport,
            topic=args.topic,
            jpeg_quality=args.jpeg_quality,
            signs=args.signs,
        )
    except ValueError as err:  # arguments the synthetic world or the writer refuse
        shutil.rmtree(args.out, ignore_errors=True)
        print(f"spotvlm make-bag: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        shutil.rmtree(args.out, ignore_errors=True)  # it did not exist before: leave nothing half-written
        print(f"spotvlm make-bag: failed to write {args.out}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    print(make_bag.describe(summary))
    return EXIT_OK


def _bounded(kind: type, low: float, high: float):
    """An argparse type: ``kind`` values in [low, high] (exit 2 with a clear message otherwise)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside [{low:g}, {high:g}]")
        return value

    return parse


def _add_make_bag(sub: argparse._SubParsersAction) -> None:
    make = sub.add_parser(
        "make-bag",
        help="write a synthetic test bag (camera + ground truth)",
        description="Write a rosbag2 bag of the synthetic world: camera frames (header stamps =\n"
        "capture stamps) and their ground truth (VQA answers, captions, boxes) in\n"
        "OUT/annotations.jsonl. Clips (seeds SEED, SEED+1, ...) follow each other with\n"
        "continuous stamps. Replay it with `spotvlm replay OUT` or `ros2 bag play OUT`.",
        epilog="example: spotvlm make-bag out/test_bag --clips 3 --frames 200 --transport compressed\n"
        "exit codes: 0 written, 1 writing failed, 2 bad arguments or OUT exists",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    make.add_argument("out", type=Path, metavar="OUT", help="bag directory to create (must not exist)")
    make.add_argument("--frames", type=_bounded(int, 1, 1_000_000), default=100, help="frames per clip (100)")
    make.add_argument("--clips", type=_bounded(int, 1, 10_000), default=1, help="clips in a row (1)")
    make.add_argument("--seed", type=_bounded(int, 0, 2**31), default=0, help="seed of the first clip (0)")
    make.add_argument("--fps", type=_bounded(float, 0.1, 1000), default=10.0, help="frame rate in Hz (10)")
    make.add_argument("--width", type=_bounded(int, 16, 8192), default=640, help="image width (640)")
    make.add_argument("--height", type=_bounded(int, 16, 8192), default=480, help="image height (480)")
    make.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage (mcap)")
    make.add_argument(
        "--transport",
        choices=("raw", "compressed"),
        default="raw",
        help="raw: sensor_msgs/Image rgb8; compressed: CompressedImage JPEG, ~15x smaller (raw)",
    )
    make.add_argument(
        "--topic",
        default="",
        help="image topic (default /camera/image_raw, or /camera/image_raw/compressed when compressed)",
    )
    make.add_argument(
        "--jpeg-quality", type=_bounded(int, 10, 100), default=90, help="JPEG quality when compressed (90)"
    )
    make.add_argument(
        "--signs", action="store_true", help="speed-limit signs along the road (and the speed-limit question)"
    )
    make.set_defaults(func=_cmd_make_bag)


def _cmd_bench(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"spotvlm_ros.bench.{args.name}")
    return int(module.main(args.bench_args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spotvlm",
        description="SpotVLM: Context Transfer for cloud-edge vision-language models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_run_commands(sub)  # replay, eval, demo
    add_train_command(sub)  # train-demo

    bench = sub.add_parser("bench", help="run a benchmark; prints a BENCH line last")
    bench.add_argument(
        "name", choices=(*BENCHMARKS, "all"), help="which benchmark (all: every one + summary)"
    )
    bench.add_argument(
        "bench_args", nargs=argparse.REMAINDER, help="options of that benchmark (see its --help)"
    )
    bench.set_defaults(func=_cmd_bench)

    _add_make_bag(sub)
    add_import_command(sub)  # import-drivelm
    add_doctor_command(sub)  # doctor

    show = sub.add_parser("config", help="validate a config file and print every parameter")
    show.add_argument("config", type=Path, nargs="?", default=None, help="YAML config to validate")
    show.add_argument(
        "--markdown",
        action="store_true",
        help="print the reference of every key (type, default, range, meaning) as Markdown",
    )
    show.set_defaults(func=_cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # model loading progress bars (transformers 5) would drown the command's own output
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as err:
        print(f"spotvlm: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

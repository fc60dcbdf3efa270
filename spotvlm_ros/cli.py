"""The ``spotvlm`` command line: replay, eval, bench, demo and tools around them.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from .bench import BENCHMARKS
from .core.config import ConfigError, load_config, to_ros_params

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _cmd_demo(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    params = to_ros_params(config)
    print(f"SpotVLM demo: loaded and validated the configuration ({len(params)} parameters).")
    print(f"  task={config.task} edge={config.edge.backend} cloud={config.cloud.backend}")
    print("Not there yet: the replay + evaluation run (runtime issue) and the trained demo models.")
    return EXIT_OK


def _cmd_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    for name, value in to_ros_params(config).items():
        print(f"{name}: {value!r}")
    return EXIT_OK


def _cmd_bench(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"spotvlm_ros.bench.{args.name}")
    return int(module.main(args.bench_args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spotvlm",
        description="SpotVLM: Context Transfer for cloud-edge vision-language models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the embedded demo (no ROS, no GPU, no network)")
    demo.add_argument("--config", type=Path, default=None, help="YAML config (default: built-in defaults)")
    demo.set_defaults(func=_cmd_demo)

    bench = sub.add_parser("bench", help="run a benchmark; prints a BENCH line last")
    bench.add_argument("name", choices=BENCHMARKS, help="which benchmark")
    bench.add_argument(
        "bench_args", nargs=argparse.REMAINDER, help="options of that benchmark (see its --help)"
    )
    bench.set_defaults(func=_cmd_bench)

    show = sub.add_parser("config", help="validate a config file and print every parameter")
    show.add_argument("config", type=Path, nargs="?", default=None, help="YAML config to validate")
    show.set_defaults(func=_cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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

"""The ``import-drivelm`` subcommand of ``spotvlm`` (registered by :mod:`spotvlm_ros.cli`).

Exit codes as ``make-bag``: 0 written, 1 writing failed, 2 bad arguments or input, or OUT exists.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def cmd_import_drivelm(args: argparse.Namespace) -> int:
    from .datasets.drivelm import DriveLmError
    from .runtime import import_drivelm  # imports rosbags: only for this command

    if args.out.exists():
        print(f"spotvlm import-drivelm: {args.out} exists already; choose a new path", file=sys.stderr)
        return EXIT_USAGE
    cameras = [c.strip() for c in args.cameras.split(",") if c.strip()]
    scenes = [t.strip() for t in args.scenes.split(",") if t.strip()]
    try:
        summary = import_drivelm.import_drivelm(
            args.qa_json,
            args.images,
            args.out,
            cameras=cameras,
            storage=args.storage,
            nuscenes=args.nuscenes,
            scenes=scenes,
        )
    except DriveLmError as err:
        print(f"spotvlm import-drivelm: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        print(f"spotvlm import-drivelm: failed to write {args.out}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    print(import_drivelm.describe(summary))
    return EXIT_OK


def add_import_command(sub: argparse._SubParsersAction) -> None:
    """Register ``import-drivelm`` on the ``spotvlm`` parser."""
    cmd = sub.add_parser(
        "import-drivelm",
        help="turn DriveLM-nuScenes QA + nuScenes images into a bag with ground truth",
        description="Write a rosbag2 bag of DriveLM key frames: one sensor_msgs/CompressedImage topic per\n"
        "camera (/CAM_FRONT/image_raw/compressed, ...; frame_id = the camera, stamp = the nuScenes\n"
        "timestamp, JPEG bytes copied), and the DriveLM questions, answers, objects, boxes and scene\n"
        "description in OUT/annotations.jsonl. With --nuscenes, the 12 Hz sweeps between key frames too.",
        epilog="example: spotvlm import-drivelm v1_1_train_nus.json --images data/ --out out/drivelm "
        "--nuscenes data/nuscenes\n"
        "exit codes: 0 written, 1 writing failed, 2 bad arguments or input, or OUT exists",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument(
        "qa_json", type=Path, metavar="QA_JSON", help="DriveLM QA file (train or test_eval form)"
    )
    cmd.add_argument(
        "--images",
        type=Path,
        required=True,
        metavar="ROOT",
        help="folder the JSON's image_paths ('../nuscenes/samples/...') resolve against, '../' dropped",
    )
    cmd.add_argument("--out", type=Path, required=True, metavar="BAG", help="bag directory to create")
    cmd.add_argument("--cameras", default="", help="comma-separated cameras (default: all six)")
    cmd.add_argument("--scenes", default="", help="comma-separated scene tokens to import (default: all)")
    cmd.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage (mcap)")
    cmd.add_argument(
        "--nuscenes",
        type=Path,
        default=None,
        metavar="DATAROOT",
        help="nuScenes data root (v1.0-*/sample_data.json, sweeps/): add the sweeps between key frames",
    )
    cmd.set_defaults(func=cmd_import_drivelm)

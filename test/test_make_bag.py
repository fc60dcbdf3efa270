"""`spotvlm make-bag`: synthetic bags with ground truth, exit codes, and the shipped demo bag."""

from __future__ import annotations

import subprocess
import sys

import pytest
from time_scale import scaled

from spotvlm_ros.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from spotvlm_ros.core.annotations import load_annotations
from spotvlm_ros.runtime.bag_reader import open_camera_bag
from spotvlm_ros.runtime.make_bag import DEFAULT_START_NS, make_synthetic_bag

PERIOD_10HZ = 100_000_000


@pytest.mark.parametrize(("storage", "transport"), [("mcap", "compressed"), ("sqlite3", "raw")])
def test_clips_follow_each_other_with_ground_truth(tmp_path, storage, transport):
    summary = make_synthetic_bag(
        tmp_path / "bag",
        frames=4,
        clips=2,
        seed=3,
        width=160,
        height=120,
        storage=storage,
        transport=transport,
    )
    assert summary.frames == 8 and summary.annotated == 8
    with open_camera_bag(tmp_path / "bag") as bag:
        items = list(bag)
        annotations = bag.annotations
    assert bag.topic == ("/camera/image_raw/compressed" if transport == "compressed" else "/camera/image_raw")
    assert bag.stats.skipped_total == 0 and len(items) == 8
    stamps = [it.stamp_ns for it in items]
    assert stamps == [DEFAULT_START_NS + i * PERIOD_10HZ for i in range(8)]
    assert all(it.frame.image.shape == (120, 160, 3) for it in items)
    assert annotations is not None and sorted(annotations.items) == stamps
    assert all(annotations.get(s).vqa or annotations.get(s).caption for s in stamps)
    assert items[0].log_ns == items[0].stamp_ns  # received at capture time
    assert [annotations.get(s).sequence for s in stamps] == ["clip-3"] * 4 + ["clip-4"] * 4


def test_same_seed_same_bag(tmp_path):
    a = make_synthetic_bag(tmp_path / "a", frames=3, width=96, height=64, transport="compressed")
    b = make_synthetic_bag(tmp_path / "b", frames=3, width=96, height=64, transport="compressed")
    assert (a.path / "annotations.jsonl").read_text() == (b.path / "annotations.jsonl").read_text()
    with open_camera_bag(a.path) as bag_a, open_camera_bag(b.path) as bag_b:
        assert [bytes(x.raw) for x in bag_a] == [bytes(y.raw) for y in bag_b]


def test_cli_writes_and_reports(tmp_path, capsys):
    out = tmp_path / "cli_bag"
    code = main(["make-bag", str(out), "--frames", "3", "--clips", "2", "--width", "128", "--height", "96",
                 "--transport", "compressed", "--storage", "sqlite3", "--fps", "5"])  # fmt: skip
    assert code == EXIT_OK
    printed = capsys.readouterr().out
    assert f"wrote {out}: 6 frames" in printed and "annotations.jsonl (6 frames)" in printed
    assert "/camera/image_raw/compressed" in printed
    assert len(load_annotations(out)) == 6
    with open_camera_bag(out) as bag:
        assert [it.stamp_ns - DEFAULT_START_NS for it in bag] == [i * 200_000_000 for i in range(6)]


def test_cli_exit_codes(tmp_path, capsys):
    existing = tmp_path / "exists"
    existing.mkdir()
    assert main(["make-bag", str(existing)]) == EXIT_USAGE
    assert "exists already" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["make-bag", str(tmp_path / "x"), "--frames", "0"])
    assert info.value.code == EXIT_USAGE
    assert "outside [1, 1e+06]" in capsys.readouterr().err
    assert main(["make-bag", str(tmp_path / "tiny"), "--width", "16", "--height", "16"]) == EXIT_USAGE
    assert "image size" in capsys.readouterr().err and not (tmp_path / "tiny").exists()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["make-bag", str(blocker / "bag"), "--frames", "1", "--width", "32", "--height", "32"]) == (
        EXIT_FAILURE
    )
    assert "failed to write" in capsys.readouterr().err
    assert not (blocker / "bag").exists()


def test_help_is_followable():
    proc = subprocess.run(
        [sys.executable, "-m", "spotvlm_ros.cli", "make-bag", "--help"],
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert proc.returncode == 0
    for words in ("annotations.jsonl", "--transport", "--clips", "exit codes", "example: spotvlm make-bag"):
        assert words in proc.stdout


def test_shipped_demo_bag(repo_root):
    demo = repo_root / "rosbags" / "demo"
    size = sum(p.stat().st_size for p in demo.iterdir())
    assert size <= 8 * 1024 * 1024
    with open_camera_bag(demo) as bag:
        assert bag.msgtype == "sensor_msgs/msg/CompressedImage" and bag.storage == "mcap"
        stamps = [it.stamp_ns for it in bag if it.ok]
        assert bag.stats.skipped_total == 0
        assert bag.annotations is not None and len(bag.annotations) == len(stamps)
    assert len(stamps) >= 590
    assert 59.0 <= (stamps[-1] - stamps[0]) / 1e9 <= 61.0
    assert all(b - a == PERIOD_10HZ for a, b in zip(stamps, stamps[1:], strict=False))
    sequences = [bag.annotations.get(s).sequence for s in stamps]
    assert sequences == [f"clip-{i // 100}" for i in range(len(stamps))]  # six clips, each its own drive

"""Frames of several cameras grouped by stamp (the replay's ApproximateTimeSynchronizer), camera config."""

from __future__ import annotations

import numpy as np
import pytest

from spotvlm_ros.core.camera_groups import CameraGrouper, camera_names, group_frame
from spotvlm_ros.core.config import ConfigError, config_from_dict
from spotvlm_ros.core.types import NS_PER_S, Frame

MS = 1_000_000


def feed(grouper: CameraGrouper, arrivals: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Offer (camera, stamp) in order; returns the groups formed, each as (camera, stamp) items."""
    groups = []
    for camera, stamp in arrivals:
        group = grouper.add(camera, stamp, (camera, stamp))
        if group is not None:
            groups.append(group)
    return groups


def test_jittered_cameras_group_per_instant_in_camera_order():
    grouper = CameraGrouper(["front", "left", "right"], slop_s=0.05)
    arrivals = []
    for k in range(5):
        base = k * 100 * MS
        arrivals += [(1, base - 7 * MS), (2, base + 12 * MS), (0, base)]  # arrival order varies
    groups = feed(grouper, arrivals)
    assert [[c for c, _ in g] for g in groups] == [[0, 1, 2]] * 5
    assert [g[0][1] for g in groups] == [k * 100 * MS for k in range(5)]
    assert all(max(s for _, s in g) - min(s for _, s in g) < 50 * MS for g in groups)
    assert grouper.groups == 5 and sum(grouper.dropped.values()) == 0


def test_slop_exceeded_forms_no_group_and_counts_every_frame():
    grouper = CameraGrouper(["a", "b"], slop_s=0.02)
    groups = feed(
        grouper, [(0, k * 100 * MS) for k in range(3)] + [(1, k * 100 * MS + 30 * MS) for k in range(3)]
    )
    assert groups == []
    assert grouper.waiting() == {"a": 3, "b": 3}
    assert grouper.flush() == 6 and grouper.dropped == {"a": 3, "b": 3}


def test_a_camera_that_stops_stops_the_groups_and_its_partners_are_dropped():
    grouper = CameraGrouper(["a", "b"], slop_s=0.05, queue_size=4)
    arrivals = []
    for k in range(10):
        arrivals.append((0, k * 100 * MS))
        if k < 3:  # camera b stops after three frames
            arrivals.append((1, k * 100 * MS + 5 * MS))
    groups = feed(grouper, arrivals)
    assert len(groups) == 3
    assert grouper.waiting() == {"a": 4, "b": 0}  # bounded: the queue keeps the newest frames only
    assert grouper.dropped["a"] == 3


def test_latest_wins_frames_older_than_a_group_are_dropped():
    grouper = CameraGrouper(["a", "b"], slop_s=0.05)
    # b's frame of instant 0 is lost; a's waits, then the group of instant 1 makes it stale
    groups = feed(grouper, [(0, 0), (0, 100 * MS), (1, 101 * MS)])
    assert [[s for _, s in g] for g in groups] == [[100 * MS, 101 * MS]]
    assert grouper.dropped == {"a": 1} and grouper.waiting() == {"a": 0, "b": 0}


def test_nearest_stamp_wins_within_the_slop():
    grouper = CameraGrouper(["a", "b"], slop_s=0.05)
    grouper.add(1, 60 * MS, "b-far")
    grouper.add(1, 105 * MS, "b-near")
    assert grouper.add(0, 100 * MS, "a") == ["a", "b-near"]


def test_group_frame_keeps_the_reference_camera_and_lists_every_camera():
    image = np.zeros((4, 6, 3), np.uint8)
    a, b = Frame(10, image, "front", 3), Frame(12, image + 1, "back", 3)
    group = group_frame([a, b], seq=7)
    assert (group.stamp_ns, group.frame_id, group.seq) == (10, "front", 7)
    assert group.image is a.image and group.cameras == (a, b) and group.views == (a, b)
    assert group_frame([a]) is a and a.views == (a,)
    with pytest.raises(ValueError, match="own frame_id"):
        group_frame([a, Frame(11, image, "front")])


def test_camera_names_are_short_valid_and_unique():
    topics = ["/CAM_FRONT/image_raw/compressed", "/CAM_BACK/image_raw", "/robot/left/image", "/x/image", "x"]
    assert camera_names(topics) == ["CAM_FRONT", "CAM_BACK", "robot_left", "x_3", "x_4"]
    assert camera_names(["/2d/image"]) == ["camera_2d"]


def test_camera_topics_config_and_its_errors():
    config = config_from_dict({"camera": {"topics": ["/a/image", "/b/image"], "sync_slop_s": 0.02}})
    assert config.camera.camera_topics == ["/a/image", "/b/image"] and config.camera.sync_slop_s == 0.02
    assert config_from_dict({"camera": {"topic": "/a"}}).camera.camera_topics == ["/a"]
    assert config_from_dict({"camera": {"topic": "/a", "topics": ["/a"]}}).camera.camera_topics == ["/a"]
    assert config_from_dict({}).camera.camera_topics == [""]  # auto-detect in a bag
    cases = {
        "listed twice: /a": {"topics": ["/a", "/a"]},
        "entry 1 is empty": {"topics": ["/a", " "]},
        "disagree: list every camera in camera.topics": {"topic": "/x", "topics": ["/a", "/b"]},
        "camera.sync_slop_s = 0.0: Input should be greater than 0": {"sync_slop_s": 0.0},
        "at most 16 cameras": {"topics": [f"/c{i}" for i in range(17)]},
    }
    for message, camera in cases.items():
        with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
            config_from_dict({"camera": camera})


def test_grouper_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least one camera"):
        CameraGrouper([], 0.05)
    with pytest.raises(ValueError, match="slop"):
        CameraGrouper(["a"], 0.0)
    assert NS_PER_S == 1000 * MS

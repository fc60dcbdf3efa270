"""``spotvlm import-drivelm`` on bad input: a clear error naming the entry, exit 2, nothing written.

Corrupt copies of the sample's JSON and images are built in the test's tmp folder; the shared sample is
never modified.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from drivelm_support import copy_images, load, sample_dir, write_json

from spotvlm_ros.cli import main

SCENE = "54cdaaae372d421fa4734d66f51a8c48"
FRAME = "542eaf1fc9b34895a9e55fab57cb4cf4"


def _run(qa: Path, images: Path, out: Path, capsys, *extra: str) -> tuple[int, str]:
    rc = main(["import-drivelm", str(qa), "--images", str(images), "--out", str(out), *extra])
    return rc, capsys.readouterr().err


def _frame(data: dict[str, Any]) -> dict[str, Any]:
    return data[SCENE]["key_frames"][FRAME]


def _missing_image(data: dict[str, Any]) -> None:
    _frame(data)["image_paths"]["CAM_BACK"] = (
        "../nuscenes/samples/CAM_BACK/nope__CAM_BACK__1533280039187525.jpg"
    )


def _unknown_camera_path(data: dict[str, Any]) -> None:
    _frame(data)["image_paths"]["CAM_TOP"] = _frame(data)["image_paths"]["CAM_FRONT"]


def _unknown_camera_tag(data: dict[str, Any]) -> None:
    _frame(data)["QA"]["planning"][0]["A"] = "Watch <c1,CAM_TOP,714.3,503.6>."


def _tag_without_object(data: dict[str, Any]) -> None:
    _frame(data)["QA"]["prediction"][2]["A"] = "Yes, <c9,CAM_FRONT,10.0,20.0> is."


def _qa_without_answer(data: dict[str, Any]) -> None:
    del _frame(data)["QA"]["perception"][3]["A"]


def _qa_not_a_list(data: dict[str, Any]) -> None:
    _frame(data)["QA"]["behavior"] = "go"


def _bad_box(data: dict[str, Any]) -> None:
    infos = _frame(data)["key_object_infos"]
    infos[next(iter(infos))]["2d_bbox"] = [10.0, 10.0, 5.0]


def _unknown_group(data: dict[str, Any]) -> None:
    _frame(data)["QA"]["parking"] = []


def _choice_not_a_letter(data: dict[str, Any]) -> None:
    qa = _frame(data)["QA"]["perception"][0]
    qa["Q"] += " Please select the correct answer from the following options: A. Yes. B. No."
    qa["A"] = "E"


CASES: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    ("missing image", _missing_image, [FRAME, "CAM_BACK", "image not found"]),
    ("unknown camera in image_paths", _unknown_camera_path, [FRAME, "unknown camera 'CAM_TOP'"]),
    ("unknown camera in a c tag", _unknown_camera_tag, [FRAME, "planning[0]", "unknown camera 'CAM_TOP'"]),
    ("c tag without an object", _tag_without_object, [FRAME, "prediction[2]", "<c9,CAM_FRONT,10.0,20.0>"]),
    ("QA item without A", _qa_without_answer, [FRAME, "perception[3]", "'Q' and 'A'"]),
    ("QA group not a list", _qa_not_a_list, [FRAME, "behavior must be a list"]),
    ("bad 2d_bbox", _bad_box, [FRAME, "2d_bbox"]),
    ("unknown QA group", _unknown_group, [FRAME, "parking"]),
    ("choice answer not a letter", _choice_not_a_letter, [FRAME, "perception[0]", "'E'"]),
]


@pytest.mark.parametrize(("name", "corrupt", "expected"), CASES, ids=[c[0] for c in CASES])
def test_malformed_json_entry_is_named_and_nothing_written(tmp_path, capsys, name, corrupt, expected) -> None:
    data = copy.deepcopy(load())
    corrupt(data)
    qa = write_json(tmp_path / "qa.json", data)
    out = tmp_path / "out" / "bag"
    rc, err = _run(qa, sample_dir(), out, capsys)
    assert rc == 2, err
    for part in expected:
        assert part in err, (name, err)
    assert not out.exists()
    assert not list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else True


@pytest.mark.parametrize("damage", ["header only", "cut short", "not a jpeg", "unreadable"])
def test_broken_image_is_named(tmp_path, capsys, damage) -> None:
    images = copy_images(tmp_path / "images")
    target = next((images / "nuscenes" / "samples" / "CAM_FRONT_RIGHT").glob("*1533280042620339.jpg"))
    if damage == "header only":
        target.write_bytes(target.read_bytes()[:100])
        expected = "truncated or corrupt"
    elif damage == "cut short":
        data = target.read_bytes()
        target.write_bytes(data[: len(data) * 2 // 3])
        expected = "no end-of-image marker"
    elif damage == "not a jpeg":
        target.write_bytes(b"GIF89a" + bytes(200))
        expected = "not a JPEG"
    elif os.geteuid() == 0:  # root reads any file: a folder in its place cannot be read either
        target.unlink()
        target.mkdir()
        expected = "image not found"
    else:
        target.chmod(0)
        expected = "cannot read image"
    out = tmp_path / "bag"
    rc, err = _run(sample_dir() / "train_sample.json", images, out, capsys)
    assert rc == 2, err
    assert "CAM_FRONT_RIGHT" in err and "scene " + SCENE in err and expected in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_invalid_json_and_wrong_shape(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    rc, err = _run(bad, sample_dir(), tmp_path / "bag", capsys)
    assert rc == 2 and "bad.json" in err and "not valid JSON" in err
    rc, err = _run(write_json(tmp_path / "list.json", [1, 2]), sample_dir(), tmp_path / "bag", capsys)
    assert rc == 2 and "JSON object of scenes" in err
    rc, err = _run(
        write_json(tmp_path / "s.json", {SCENE: {"frames": {}}}), sample_dir(), tmp_path / "bag", capsys
    )
    assert rc == 2 and f"scene {SCENE}" in err and "key_frames" in err
    assert not (tmp_path / "bag").exists()


def test_unknown_camera_option(tmp_path, capsys) -> None:
    rc, err = _run(
        sample_dir() / "train_sample.json", sample_dir(), tmp_path / "bag", capsys, "--cameras", "CAM_X"
    )
    assert rc == 2 and "CAM_X" in err and "CAM_FRONT" in err and not (tmp_path / "bag").exists()


def test_existing_out_is_refused_and_kept(tmp_path, capsys) -> None:
    out = tmp_path / "bag"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc, err = _run(sample_dir() / "train_sample.json", sample_dir(), out, capsys)
    assert rc == 2 and "exists already" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_failure_while_writing_exits_1(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder's parent should be")
    rc, err = _run(sample_dir() / "train_sample.json", sample_dir(), blocker / "bag", capsys)
    assert rc == 1 and "failed to write" in err

"""``spotvlm doctor`` on tiny families and on failures: report structure and exit codes (IoU of random
models is ~0, so only its presence is checked)."""

from __future__ import annotations

import os
import re

import pytest
import torch

from spotvlm_ros.cli import main
from spotvlm_ros.testing.fault_server import FaultyOpenAiServer, Reply

torch.set_num_threads(1)

KEYS = (
    "family",
    "boxes",
    "visual tokens 640x480",
    "visual tokens focus",
    "prefix reuse",
    "answer",
    "grounding IoU",
)


@pytest.fixture(autouse=True)
def tiny_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPOTVLM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "doctor-cache"))


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(["doctor", "--max-new-tokens", "4", "--timeout", "5", *argv])
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    ("family", "title", "boxes", "reuse"),
    [
        ("qwen3_vl", "Qwen3-VL", "qwen2_1000", "on .exact.$"),
        ("qwen3_5", "Qwen3.5", "qwen2_1000", "on .exact, snapshot"),
        ("gemma4", "Gemma 4", "gemini_yxyx_1000", "on .exact, snapshot"),
        ("internvl", "InternVL", "qwen2_1000", "on"),
        ("smolvlm", "SmolVLM2", "auto", "on"),
        ("qwen2_5_vl", "Qwen2.5-VL", "qwen25_abs", "on"),
    ],
)
def test_doctor_reports_each_tiny_family(capsys, family, title, boxes, reuse) -> None:
    code, out = run(capsys, "--edge-model", f"tiny:{family}")
    assert code == 0, out
    for key in KEYS:
        assert re.search(rf"^  {re.escape(key)}\s+\S", out, re.MULTILINE), (key, out)
    assert title in out and f"boxes                  {boxes}" in out
    assert re.search(rf"prefix reuse\s+{reuse}", out, re.MULTILINE), out
    assert re.search(r"visual tokens 640x480\s+[1-9]\d*", out)
    assert re.search(r"grounding IoU\s+\d\.\d\d", out)
    assert out.rstrip().endswith("doctor: ok")


def test_doctor_with_a_served_cloud_model_and_min_iou(capsys) -> None:
    answer = '[{"bbox_2d": [0, 0, 1000, 1000], "label": "car"}]'
    with FaultyOpenAiServer(default=Reply.ok(answer)) as server:
        code, out = run(capsys, "--cloud-model", f"{server.base_url}#Qwen/Qwen3-VL-235B-A22B-Instruct")
        assert code == 0, out
        assert "Qwen3-VL [qwen3_vl]" in out and "visual tokens 640x480  300" in out
        assert re.search(r"grounding IoU\s+0\.0[1-9]", out)  # the whole frame around a small car
        code, out = run(capsys, "--cloud-model", f"{server.base_url}#Qwen/Qwen3-VL-2B", "--min-iou", "0.5")
    assert code == 1
    assert re.search(r"^FAIL cloud: grounding: IoU 0\.\d\d below --min-iou 0\.50$", out, re.MULTILINE)


def test_each_failure_is_one_line_and_exits_non_zero(capsys, tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    code, out = run(capsys, "--edge-model", str(missing), "--cloud-model", "http://127.0.0.1:9/v1")
    assert code == 1
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2, out
    assert fails[0].startswith("FAIL edge: cannot load: no model directory at") and str(missing) in fails[0]
    assert fails[1].startswith(
        "FAIL cloud: cannot load: endpoint http://127.0.0.1:9/v1/models does not answer"
    )
    assert out.rstrip().endswith("doctor: 2 failure(s)")


def test_dead_endpoint_with_a_named_model_fails_at_the_answer(capsys) -> None:
    code, out = run(capsys, "--cloud-model", "http://127.0.0.1:9/v1#Qwen/Qwen3-VL-2B-Instruct")
    assert code == 1
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and fails[0].startswith("FAIL cloud: answer: cannot connect"), out


def test_no_model_named_is_a_failure(capsys) -> None:
    code, out = run(capsys)
    assert code == 1 and out.startswith("FAIL doctor:")
    assert os.environ.get("SPOTVLM_CACHE_DIR")

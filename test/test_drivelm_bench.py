"""``spotvlm bench importer`` runs end to end and prints its figures (speed targets live in the benchmark)."""

from __future__ import annotations

import pytest

from spotvlm_ros.bench import parse_bench_line
from spotvlm_ros.cli import main


def test_importer_bench_on_a_stand_in(capsys) -> None:
    assert main(["bench", "importer", "--stand-in", "2", "--repeat", "1"]) == 0
    name, figures = parse_bench_line(capsys.readouterr().out)
    assert name == "importer" and figures["images"] == 12
    assert figures["import_images_per_s"] > 0 and figures["copy_images_per_s"] > 0
    ratio = figures["import_images_per_s"] / figures["copy_images_per_s"]
    assert figures["import_vs_copy_ratio"] == pytest.approx(ratio, rel=0.02, abs=0.001)  # 3 decimals

"""The configuration reference (docs/configuration.md) is generated from the schema and kept in step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from time_scale import scaled

from spotvlm_ros.core.config import SpotVlmConfig, parameter_specs, to_ros_params
from spotvlm_ros.core.config_doc import REGENERATE, config_markdown, key_docs

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "configuration.md"


def _markdown_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spotvlm_ros.cli", "config", "--markdown", *args],
        capture_output=True,
        text=True,
        timeout=scaled(120),
        cwd=REPO,
    )


def _row(markdown: str, key: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith("| ") and f"`{key}`" in line)
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_docs_page_is_what_the_command_prints():
    proc = _markdown_command()
    assert proc.returncode == 0, proc.stderr
    assert PAGE.read_text() == proc.stdout, (
        f"{PAGE.relative_to(REPO)} is out of date with the schema in spotvlm_ros/core/config.py; "
        f"regenerate it with: {REGENERATE}"
    )


def test_every_key_of_the_schema_is_documented_with_its_description():
    markdown = config_markdown()
    specs = {spec.name: spec for spec in parameter_specs()}
    assert set(specs) == set(to_ros_params(SpotVlmConfig()))
    for name, spec in specs.items():
        assert spec.description, name
        row = _row(markdown, name)
        assert spec.description.replace("|", "\\|") in row, (name, row)
    assert [doc.name for doc in key_docs()] == list(specs)


def test_types_defaults_and_ranges_come_from_the_schema():
    markdown = config_markdown()
    assert _row(markdown, "camera.depth")[1:4] == ["`int`", "`1`", "1 to 100"]
    assert _row(markdown, "context.max_context_age_s")[1:4] == ["`float`", "`10.0`", "> 0, <= 3600"]
    assert _row(markdown, "focus.mode")[3] == "crop, mark, mask, off"
    assert _row(markdown, "eval.tasks")[1] == "`list[str]`"
    # edge and cloud share one model, so one row with a default per section: the cloud's own defaults
    tokens = _row(markdown, "edge.max_new_tokens")
    assert "`cloud.max_new_tokens`" in tokens[0] and tokens[2:4] == ["`32`", "`128`"]


def test_defaults_follow_the_config_given():
    custom = SpotVlmConfig().model_copy(update={"seed": 7})
    assert _row(config_markdown(custom), "seed")[2] == "`7`"


def test_markdown_with_a_file_is_a_usage_error():
    proc = _markdown_command("config/spotvlm.yaml")
    assert proc.returncode == 2 and "--markdown" in proc.stderr and proc.stdout == ""

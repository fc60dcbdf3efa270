"""The phases of a demo model's training as a record: one summary per phase and one combined log.

A model trained in phases (``--init-from`` an earlier export) carries in ``training_info.json`` a
``phases`` list, oldest first (:func:`phase_summary`), and beside it one ``train_log.csv`` whose
``phase`` column says which phase each row belongs to (:func:`combined_log`). Paths in recorded
commands are written relative to the working directory, or to ``~``, so no machine's folders are
recorded (:func:`portable_command`).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PHASE_COLUMN = "phase"
_LEGACY_LOG = re.compile(r"phase(\d+)_train_log\.csv$")


def portable_path(path: str | None, cwd: Path | None = None, home: Path | None = None) -> str | None:
    """An absolute path made relative: to ``~`` under the home directory, else to ``cwd``."""
    if path is None or not path.startswith("/"):
        return path
    cwd = Path(cwd or os.getcwd()).resolve()
    home = Path(home or Path.home()).resolve()
    if not Path(path).is_relative_to(cwd) and home != Path("/") and Path(path).is_relative_to(home):
        return "~/" + os.path.relpath(path, home)
    return os.path.relpath(path, cwd)


def portable_command(command: str | None, cwd: Path | None = None, home: Path | None = None) -> str | None:
    """A recorded command line with every absolute path in it made relative (:func:`portable_path`)."""
    if command is None:
        return None
    words = [portable_path(word, cwd, home) or "" for word in shlex.split(command)]
    return " ".join(
        word if word.startswith("~/") and shlex.quote(word[2:]) == word[2:] else shlex.quote(word)
        for word in words
    )


def phase_summary(info: dict[str, Any], number: int) -> dict[str, Any]:
    """The facts of one phase, from its ``training_info.json`` content."""
    data = info.get("recipe", {}).get("data", {})
    return {
        "phase": number,
        "curriculum": info.get("curriculum"),
        "command": portable_command(info.get("command")),
        "init_from": portable_path(info.get("init_from")),
        "steps": info.get("steps"),
        "training_minutes": info.get("training_minutes"),
        "threads": info.get("threads"),
        "device": info.get("device"),
        "lr": info.get("recipe", {}).get("lr"),
        "train_clips": data.get("train_clips"),
        "frames_per_clip": data.get("frames_per_clip"),
        "heldout_accuracy": info.get("heldout_accuracy"),
        "created": info.get("created"),
    }


def phase_summaries(earlier: Sequence[dict[str, Any]], current: dict[str, Any]) -> list[dict[str, Any]]:
    """One summary per phase, oldest first: the earlier phases' infos, then this one's."""
    return [phase_summary(info, n) for n, info in enumerate([*earlier, current], start=1)]


def _rows(text: str, phase: int | None) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    fields = list(reader.fieldnames or [])
    if PHASE_COLUMN not in fields:
        fields.insert(0, PHASE_COLUMN)
        for row in rows:
            row[PHASE_COLUMN] = str(phase)
    return fields, rows


def combined_log(earlier_dir: Path | None, earlier_phases: int, current_csv: str) -> str:
    """One CSV of every phase's log rows with a ``phase`` column, this run's rows last.

    ``earlier_dir`` is the export this run started from (``--init-from``): its ``train_log.csv`` is
    already combined, or (older exports) holds its own phase only, beside ``phaseN_train_log.csv``
    files of the phases before it.
    """
    parts: list[tuple[list[str], list[dict[str, str]]]] = []
    if earlier_dir is not None:
        legacy = sorted(
            (int(m.group(1)), path)
            for path in Path(earlier_dir).glob("phase*_train_log.csv")
            if (m := _LEGACY_LOG.search(path.name))
        )
        parts += [_rows(path.read_text(), number) for number, path in legacy]
        own = Path(earlier_dir) / "train_log.csv"
        if own.is_file():
            parts.append(_rows(own.read_text(), earlier_phases))
    parts.append(_rows(current_csv, earlier_phases + 1))
    fields = [PHASE_COLUMN]
    for part_fields, _ in parts:
        fields += [f for f in part_fields if f not in fields]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for _, rows in parts:
        writer.writerows({f: row.get(f, "") for f in fields} for row in rows)
    return out.getvalue()

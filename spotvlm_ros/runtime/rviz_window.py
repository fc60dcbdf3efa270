"""The ``QMainWindow State`` of an rviz2 config: where the docks sit and how large they are.

rviz2 restores its window with ``QMainWindow::restoreState`` from this hex string; without it every
image display docks as a small panel beside a large, empty 3D view. :func:`window_state` writes the
format Qt's ``QMainWindow::saveState`` writes (``QDataStream``, big-endian): a version marker, then the
dock areas, each a sequence of dock widgets (named by their ``objectName``, which rviz2 sets to the
panel's or display's name) or of nested sequences with positions and sizes, then the central widget's
size and the four corners. The image docks fill the left dock area in rows (the given grid), the
listed panels the right one, and the 3D view keeps a narrow strip between them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

VERSION_MARKER = 0xFF
DOCK_STATE_MARKER = 0xFD
SEQUENCE_MARKER = 0xFC
WIDGET_MARKER = 0xFB
HORIZONTAL, VERTICAL = 1, 2  # Qt::Orientation
LEFT_DOCK, RIGHT_DOCK = 0, 1  # QInternal::DockPosition
CORNERS = (4, 4, 8, 8)  # top-left and top-right to the top area, the bottom ones to the bottom (Qt's default)
QWIDGETSIZE_MAX = 0xFFFFFF
SEPARATOR = 6  # px between docks (the style's separator is about this wide)
CHROME_HEIGHT = 110  # menu bar, tool bar and status bar of the rviz2 window


def _int(*values: int) -> bytes:
    return struct.pack(f">{len(values)}i", *values)


def _qstring(text: str) -> bytes:
    data = text.encode("utf-16-be")
    return struct.pack(">I", len(data)) + data


def _widget(name: str, pos: int, size: int, visible: bool = True) -> bytes:
    return (
        bytes([WIDGET_MARKER])
        + _qstring(name)
        + bytes([1 if visible else 0])
        + _int(pos, size, 0, QWIDGETSIZE_MAX)
    )


def _sequence(orientation: int, items: Sequence[bytes]) -> bytes:
    return bytes([SEQUENCE_MARKER, orientation]) + _int(len(items)) + b"".join(items)


def _split(total: int, shares: Sequence[float]) -> list[tuple[int, int]]:
    """(position, size) of items sharing ``total`` px in proportion to ``shares``, separators between."""
    room = total - SEPARATOR * (len(shares) - 1)
    sizes = [int(room * share / sum(shares)) for share in shares]
    positions, pos = [], 0
    for size in sizes:
        positions.append((pos, size))
        pos += size + SEPARATOR
    return positions


def window_state(
    rows: Sequence[tuple[Sequence[str], float]],
    right: Sequence[str] = (),
    size: tuple[int, int] = (1920, 1080),
    central_width: int = 160,
    right_width: int = 280,
) -> str:
    """The hex ``QMainWindow State`` of a window of ``size`` with these docks.

    ``rows`` are the left dock area's rows, top to bottom: the dock names side by side in each, and the
    row's share of the height. ``right`` are the docks stacked in the right area.
    """
    width, height = size
    dock_height = height - CHROME_HEIGHT
    right_width = right_width if right else 0
    left_width = width - central_width - right_width - SEPARATOR * (2 if right else 1)
    row_items = []
    for (names, _), (pos, row_height) in zip(
        rows, _split(dock_height, [share for _, share in rows]), strict=True
    ):
        cells = [
            _widget(name, x, w)
            for name, (x, w) in zip(names, _split(left_width, [1.0] * len(names)), strict=True)
        ]
        if len(cells) == 1:
            row_items.append(_widget(names[0], pos, row_height))
        else:
            nested = bytes([SEQUENCE_MARKER]) + _int(pos, row_height, 0, QWIDGETSIZE_MAX)
            row_items.append(nested + _sequence(HORIZONTAL, cells))
    docks = [(LEFT_DOCK, left_width, _sequence(VERTICAL, row_items))]
    if right:
        stacked = [
            _widget(name, pos, h)
            for name, (pos, h) in zip(right, _split(dock_height, [1.0] * len(right)), strict=True)
        ]
        docks.append((RIGHT_DOCK, right_width, _sequence(VERTICAL, stacked)))
    state = _int(VERSION_MARKER, 0) + bytes([DOCK_STATE_MARKER]) + _int(len(docks))
    for position, dock_width, body in docks:
        state += _int(position, dock_width, dock_height) + body
    state += _int(central_width, dock_height) + _int(*CORNERS)
    return state.hex()

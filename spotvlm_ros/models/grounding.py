"""Parse grounded regions out of VLM text, whatever box dialect the model speaks.

Understood syntaxes (searched in this order; the first that yields box candidates wins):

- Qwen2-VL points: ``<|object_ref_start|>car<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``
  on the 0-1000 grid (the special tokens may be missing when decoded with ``skip_special_tokens``).
- Florence-2: ``car<loc_x1><loc_y1><loc_x2><loc_y2>``, bins 0-999 (bin centre is used).
- PaliGemma: ``<locY1><locX1><locY2><locX2> car ; ...`` with four-digit tokens on the 0-1023 grid.
- JSON regions, Qwen2.5-VL style ``[{"bbox_2d": [x1, y1, x2, y2], "label": "car"}]``, also inside
  Markdown fences, followed by prose, or slightly malformed (single quotes, trailing commas, missing
  brackets): then every ``"bbox_2d": [...]`` is read on its own.
- Plain lists ``[x1, y1, x2, y2]``, the label being the words before the list on its line.

Location tokens carry their own grid. JSON and plain-list numbers do not; ``coord_format`` says how to
read them (``"auto"``: all four in [0, 1] means normalized, else pixels of the model input image), and
it overrides the 0-1000 grid of Qwen2-VL points too. ``"qwen25_abs"`` and ``"absolute"`` both mean
pixels of the model input image, ``"qwen2_1000"`` a 0-1000 grid relative to the image (Qwen2-VL,
Qwen3-VL, Qwen3.5, InternVL), ``"gemini_yxyx_1000"`` y1, x1, y2, x2 on that grid (Gemma 4 ``box_2d``),
``"paligemma_1024"`` reads y1, x1, y2, x2. Every box is
mapped to pixels of the original image (``model_input_size`` is the size the model saw, for absolute
coordinates), corners are ordered, the box is clipped to the image, and non-finite or degenerate
(< 1 px) boxes are dropped. :func:`parse_regions` never raises: on garbage it returns no regions and
a reason.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, get_args

from ..core.config import CoordFormat
from ..core.types import Box, Region

COORD_FORMATS = get_args(CoordFormat)
MAX_TEXT_CHARS = 200_000  # longer outputs are parsed up to this many characters
MAX_REGIONS = 100  # regions kept at most (a runaway answer cannot flood the pipeline)
MAX_LABEL_CHARS = 120
MIN_BOX_SIDE_PX = 1.0
_MAX_JSON_ATTEMPTS = 256  # bracket positions tried with the JSON decoder at most

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_QWEN2_BOX = re.compile(
    r"(?:<\|object_ref_start\|>(?P<ref>.*?)<\|object_ref_end\|>\s*)?"
    r"(?:<\|box_start\|>)?\s*\(\s*(?P<x1>" + _NUM + r")\s*,\s*(?P<y1>" + _NUM + r")\s*\)\s*,\s*"
    r"\(\s*(?P<x2>" + _NUM + r")\s*,\s*(?P<y2>" + _NUM + r")\s*\)\s*(?:<\|box_end\|>)?",
    re.DOTALL,
)
_FLORENCE_BOX = re.compile(r"<loc_(\d{1,6})>\s*<loc_(\d{1,6})>\s*<loc_(\d{1,6})>\s*<loc_(\d{1,6})>")
_PALIGEMMA_BOX = re.compile(r"<loc(\d{4})>\s*<loc(\d{4})>\s*<loc(\d{4})>\s*<loc(\d{4})>")
_PLAIN_LIST = re.compile(
    r"\[\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*\]"
)
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)
_BOX_KEYS = ("bbox_2d", "bbox", "box_2d", "box")
_LABEL_KEYS = ("label", "name", "category", "class", "text")
_SCORE_KEYS = ("score", "confidence", "conf", "prob")
_LOOSE_BOX = re.compile(
    r"""["']?(?:bbox_2d|bbox|box_2d|box)["']?\s*:\s*\[\s*(""" + _NUM + r""")\s*,\s*(""" + _NUM + r""")\s*,"""
    r"""\s*(""" + _NUM + r""")\s*,\s*(""" + _NUM + r""")\s*\]?"""
)
_LOOSE_LABEL = re.compile(r"""["']?(?:label|name|category|class)["']?\s*:\s*(["'])(.*?)\1""", re.DOTALL)
_LOOSE_SCORE = re.compile(r"""["']?(?:score|confidence|conf|prob)["']?\s*:\s*(""" + _NUM + r")")
_SPECIAL_TOKEN = re.compile(r"<\|[^|>]*\|>|<loc_?\d+>|</?s>|<pad>")
_LABEL_JUNK = " \t\r\n;:,.-=*#>`'\"()[]{}"


@dataclass(frozen=True, slots=True)
class RegionParse:
    """Regions parsed from one answer; ``reason`` says why there are none ("" when some were found)."""

    regions: tuple[Region, ...] = ()
    reason: str = ""
    syntax: str = ""  # which syntax matched: qwen2_points, florence, paligemma, json, plain_list
    dropped: int = 0  # candidate boxes dropped as non-finite or degenerate


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A box as written by the model, before mapping: four numbers in ``grid`` units."""

    coords: tuple[float, float, float, float]
    grid: str  # one of the coord formats except "auto"
    label: str = ""
    score: float = 1.0


_INSTRUCTION_FORMS = {
    "qwen2_1000": ('"bbox_2d": [x1, y1, x2, y2]', "with coordinates on a 0-1000 grid relative to the image"),
    "gemini_yxyx_1000": ('"box_2d": [y1, x1, y2, x2]', "with coordinates normalized to 0-1000"),
}


def grounding_instruction(label_hint: str = "", coord_format: str = "auto") -> str:
    """Text appended to the last user turn when regions are wanted, in the family's own box convention.

    Families with a 0-1000 grid are asked for it (they were trained on it); all others get the Qwen2.5-VL
    form, pixel coordinates of the image.
    """
    target = label_hint.strip() or "each object relevant to the question"
    box, unit = _INSTRUCTION_FORMS.get(
        coord_format, ('"bbox_2d": [x1, y1, x2, y2]', "with pixel coordinates of the image")
    )
    regions = f'[{{{box}, "label": "<name>"}}]'
    return f"Also locate {target} in the image. Output the regions as JSON: {regions} {unit}."


def parse_regions(
    text: str,
    image_size: tuple[int, int],
    model_input_size: tuple[int, int] | None = None,
    coord_format: str = "auto",
) -> RegionParse:
    """Regions in pixels of an ``image_size`` (width, height) image; never raises."""
    size = _valid_size(image_size)
    if size is None:
        return RegionParse(reason=f"invalid image_size {image_size!r}")
    input_size = size if model_input_size is None else _valid_size(model_input_size)
    if input_size is None:
        return RegionParse(reason=f"invalid model_input_size {model_input_size!r}")
    if coord_format not in COORD_FORMATS:
        return RegionParse(reason=f"unknown coord_format {coord_format!r}; expected one of {COORD_FORMATS}")
    if not isinstance(text, str):
        return RegionParse(reason=f"expected text, got {type(text).__name__}")
    text = text[:MAX_TEXT_CHARS]
    if not text.strip():
        return RegionParse(reason="empty output")
    for syntax, finder in _FINDERS:
        candidates = list(_take(finder(text, coord_format), MAX_REGIONS))
        if candidates:
            return _to_parse(candidates, syntax, size, input_size)
    return RegionParse(reason="no boxes found in the output")


def _valid_size(size: Any) -> tuple[int, int] | None:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError, OverflowError):
        return None
    return (width, height) if width > 0 and height > 0 else None


def _take(items: Iterator[_Candidate], limit: int) -> Iterator[_Candidate]:
    for index, item in enumerate(items):
        if index >= limit:
            return
        yield item


def _to_parse(
    candidates: list[_Candidate], syntax: str, size: tuple[int, int], input_size: tuple[int, int]
) -> RegionParse:
    regions = []
    for cand in candidates:
        box = _to_pixels(cand, size, input_size)
        if box is not None:
            regions.append(Region(box=box, label=cand.label, score=cand.score))
    dropped = len(candidates) - len(regions)
    reason = "" if regions else f"{dropped} box(es) found ({syntax}), all non-finite or degenerate"
    return RegionParse(regions=tuple(regions), reason=reason, syntax=syntax, dropped=dropped)


def _to_pixels(cand: _Candidate, size: tuple[int, int], input_size: tuple[int, int]) -> Box | None:
    """Map one candidate to clipped original-image pixels, or None when unusable."""
    width, height = size
    a, b, c, d = cand.coords
    if cand.grid == "paligemma_1024":  # y1, x1, y2, x2 on a 1024 grid
        x1, y1, x2, y2 = b / 1024 * width, a / 1024 * height, d / 1024 * width, c / 1024 * height
    elif cand.grid == "florence_1000":  # bins 0..999, bin centre
        x1, y1 = (a + 0.5) / 1000 * width, (b + 0.5) / 1000 * height
        x2, y2 = (c + 0.5) / 1000 * width, (d + 0.5) / 1000 * height
    elif cand.grid == "gemini_yxyx_1000":
        x1, y1, x2, y2 = b / 1000 * width, a / 1000 * height, d / 1000 * width, c / 1000 * height
    elif cand.grid == "qwen2_1000":
        x1, y1, x2, y2 = a / 1000 * width, b / 1000 * height, c / 1000 * width, d / 1000 * height
    elif cand.grid == "normalized":
        x1, y1, x2, y2 = a * width, b * height, c * width, d * height
    else:  # absolute pixels of the image the model saw
        sx, sy = width / input_size[0], height / input_size[1]
        x1, y1, x2, y2 = a * sx, b * sy, c * sx, d * sy
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    box = Box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)).clip(width, height)
    return box if box.is_valid(MIN_BOX_SIDE_PX) else None


def _number_grid(coords: tuple[float, ...], coord_format: str) -> str:
    """Grid of numbers that carry none of their own (JSON, plain lists)."""
    if coord_format == "auto":
        return "normalized" if all(0.0 <= v <= 1.0 for v in coords) else "absolute"
    return "absolute" if coord_format == "qwen25_abs" else coord_format


def _floats(values: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        return None
    out = []
    for value in values:
        if isinstance(value, bool):
            return None
        try:
            out.append(float(value))
        except (TypeError, ValueError, OverflowError):
            return None
    return (out[0], out[1], out[2], out[3])


def _clean_label(raw: Any) -> str:
    label = _SPECIAL_TOKEN.sub(" ", str(raw)) if raw is not None else ""
    label = " ".join(label.split()).strip(_LABEL_JUNK)
    return label[:MAX_LABEL_CHARS]


def _score(raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        return 1.0
    return min(max(value, 0.0), 1.0) if math.isfinite(value) else 1.0


# ---- syntax finders: each yields candidates in the order they appear --------------------------------


def _find_qwen2_points(text: str, coord_format: str) -> Iterator[_Candidate]:
    grid = "qwen2_1000" if coord_format == "auto" else _number_grid((), coord_format)
    previous_end = 0
    for match in _QWEN2_BOX.finditer(text):
        coords = _floats([match.group(k) for k in ("x1", "y1", "x2", "y2")])
        if coords is None:
            continue
        ref = match.group("ref")
        label = ref if ref is not None else _line_before(text, previous_end, match.start())
        previous_end = match.end()
        yield _Candidate(coords, grid, _clean_label(label))


def _find_florence(text: str, coord_format: str) -> Iterator[_Candidate]:
    yield from _find_loc_tokens(_FLORENCE_BOX, text, "florence_1000", label_before=True)


def _find_paligemma(text: str, coord_format: str) -> Iterator[_Candidate]:
    yield from _find_loc_tokens(_PALIGEMMA_BOX, text, "paligemma_1024", label_before=False)


def _find_loc_tokens(
    pattern: re.Pattern[str], text: str, grid: str, label_before: bool
) -> Iterator[_Candidate]:
    """Location-token boxes; the label is the text before (Florence-2) or after (PaliGemma) each box.

    When the usual side holds no words but the other does, the other side is used.
    """
    matches = list(pattern.finditer(text))
    if not matches:
        return
    gap_starts = [0, *(m.end() for m in matches)]
    gap_ends = [*(m.start() for m in matches), len(text)]
    segments = [_clean_label(text[start:end]) for start, end in zip(gap_starts, gap_ends, strict=True)]
    before, after = segments[:-1], segments[1:]
    labels = before if label_before else after
    if not any(labels):
        labels = after if label_before else before
    for match, label in zip(matches, labels, strict=True):
        coords = _floats(match.groups())
        if coords is not None:
            yield _Candidate(coords, grid, label)


def _find_json(text: str, coord_format: str) -> Iterator[_Candidate]:
    fences = [m.group(1) for m in _FENCE.finditer(text) if m.group(1).strip()]
    sources = fences or [text]
    found = False
    for source in sources:
        for item in _json_values(source):
            for obj in _box_objects(item, depth=0):
                cand = _json_candidate(obj, coord_format)
                if cand is not None:
                    found = True
                    yield cand
    if not found:
        yield from _find_loose_json(text, coord_format)


def _json_values(source: str) -> Iterator[Any]:
    """Every JSON value that starts at a bracket in ``source`` (prose before and after is skipped)."""
    decoder = json.JSONDecoder()
    position, attempts = 0, 0
    while attempts < _MAX_JSON_ATTEMPTS:
        starts = [i for i in (source.find("[", position), source.find("{", position)) if i >= 0]
        if not starts:
            return
        start = min(starts)
        attempts += 1
        try:
            value, end = decoder.raw_decode(source, start)
        except (ValueError, RecursionError):
            position = start + 1
            continue
        yield value
        position = end


def _box_objects(value: Any, depth: int) -> Iterator[dict[str, Any]]:
    """Dicts holding a box key, searched through lists and nested dicts (bounded depth)."""
    if depth > 8:
        return
    if isinstance(value, dict):
        if any(key in value for key in _BOX_KEYS):
            yield value
            return
        for child in value.values():
            yield from _box_objects(child, depth + 1)
    elif isinstance(value, list):
        for child in value:
            yield from _box_objects(child, depth + 1)


def _json_candidate(obj: dict[str, Any], coord_format: str) -> _Candidate | None:
    coords = next((c for c in (_floats(obj.get(k)) for k in _BOX_KEYS) if c is not None), None)
    if coords is None:
        return None
    label = next((obj[k] for k in _LABEL_KEYS if isinstance(obj.get(k), (str, int, float))), "")
    score = next((_score(obj[k]) for k in _SCORE_KEYS if k in obj), 1.0)
    return _Candidate(coords, _number_grid(coords, coord_format), _clean_label(label), score)


def _find_loose_json(text: str, coord_format: str) -> Iterator[_Candidate]:
    """Malformed JSON: each ``"bbox_2d": [..]`` read alone, label and score from its enclosing object."""
    for match in _LOOSE_BOX.finditer(text):
        coords = _floats(match.groups())
        if coords is None:
            continue
        start = text.rfind("{", 0, match.start()) + 1
        close = text.find("}", match.end())
        stop = close if close >= 0 else min(len(text), match.end() + 200)
        window = text[start:stop]
        label_match = _LOOSE_LABEL.search(window)
        score_match = _LOOSE_SCORE.search(window)
        yield _Candidate(
            coords,
            _number_grid(coords, coord_format),
            _clean_label(label_match.group(2) if label_match else ""),
            _score(score_match.group(1)) if score_match else 1.0,
        )


def _find_plain_lists(text: str, coord_format: str) -> Iterator[_Candidate]:
    previous_end = 0
    for match in _PLAIN_LIST.finditer(text):
        coords = _floats(match.groups())
        if coords is None:
            continue
        label = _line_before(text, previous_end, match.start())
        previous_end = match.end()
        yield _Candidate(coords, _number_grid(coords, coord_format), _clean_label(label))


def _line_before(text: str, lower: int, position: int) -> str:
    """Text on the same line before ``position``, not reaching back past ``lower``."""
    line_start = text.rfind("\n", lower, position) + 1
    return text[max(lower, line_start) : position]


_FINDERS = (
    ("qwen2_points", _find_qwen2_points),
    ("florence", _find_florence),
    ("paligemma", _find_paligemma),
    ("json", _find_json),
    ("plain_list", _find_plain_lists),
)

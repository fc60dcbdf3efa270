"""The configuration reference as Markdown, generated from the schema in :mod:`.config`.

``spotvlm config --markdown`` prints it and ``docs/configuration.md`` holds it: every key with its type,
default, range and meaning, read from the pydantic fields (descriptions live in the schema only).
Sections that share one model (``edge`` and ``cloud``) share a table with a default per section.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .config import SpotVlmConfig

REGENERATE = "spotvlm config --markdown > docs/configuration.md"

INTRO = f"""# Configuration

<!-- generated from spotvlm_ros/core/config.py by `{REGENERATE}`; edit the schema, not this page -->

One schema (`spotvlm_ros/core/config.py`) validates every config, for the CLI and the ROS nodes alike.
A config file is YAML, plain or in ROS 2 parameter form (`/**: ros__parameters:`);
`config/spotvlm.yaml` lists every key with its default. ROS parameter names are the dotted paths
(`context.max_context_age_s`), and every key below is a parameter of every node, declared with its
description and range. Unknown keys, wrong types and out-of-range values are errors that name the key
and the value. `spotvlm config FILE` validates a file and prints every parameter; `--set KEY=VALUE`
overrides one key on `spotvlm replay|eval|demo`.
"""


@dataclass(frozen=True)
class KeyDoc:
    """One leaf key of the schema: dotted name, type, default, range and meaning."""

    name: str
    type: str
    default: Any
    range: str
    meaning: str


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return _type_name(type(get_args(annotation)[0]))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in get_args(annotation))
    if origin is not None:
        inner = ", ".join(_type_name(arg) for arg in get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def _choices(annotation: Any) -> tuple[Any, ...]:
    """The allowed values of a Literal, or of the items of a list of Literals."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    for arg in get_args(annotation):
        if get_origin(arg) is Literal:
            return get_args(arg)
    return ()


def _number(value: float) -> str:
    """Python spelling: large ints grouped with ``_``, floats as written (``5.0``)."""
    if isinstance(value, int) and abs(value) >= 100_000:
        return f"{value:_}"
    return repr(value)


def _range(field: FieldInfo) -> str:
    choices = _choices(field.annotation)
    if choices:
        prefix = "each of " if get_origin(field.annotation) is list else ""
        return prefix + ", ".join(str(c) for c in choices)
    bounds: dict[str, Any] = {}
    for meta in field.metadata:
        for attr in ("ge", "gt", "le", "lt"):
            if getattr(meta, attr, None) is not None:
                bounds[attr] = getattr(meta, attr)
    low = next(((k, bounds[k]) for k in ("ge", "gt") if k in bounds), None)
    high = next(((k, bounds[k]) for k in ("le", "lt") if k in bounds), None)
    if low and high and low[0] == "ge" and high[0] == "le":
        return f"{_number(low[1])} to {_number(high[1])}"
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return ", ".join(f"{signs[k]} {_number(v)}" for k, v in (b for b in (low, high) if b))


def _leaves(model: BaseModel, prefix: str = "") -> Iterator[KeyDoc]:
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _leaves(value, f"{prefix}{name}.")
            continue
        yield KeyDoc(
            name=f"{prefix}{name}",
            type=_type_name(field.annotation),
            default=value,
            range=_range(field),
            meaning=field.description or "",
        )


def key_docs(config: SpotVlmConfig | None = None) -> list[KeyDoc]:
    """Every leaf key of the schema, defaults from ``config`` (the schema's own when None)."""
    return list(_leaves(config or SpotVlmConfig()))


def _default(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{value}`" if value else "`''`"
    if isinstance(value, list):
        return "<br>".join(_default(item) for item in value) if value else "`[]`"
    if isinstance(value, int | float):
        return f"`{_number(value)}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _sections(config: SpotVlmConfig) -> list[tuple[list[str], type[BaseModel] | None]]:
    """Top-level keys grouped: scalar keys first (None), then sections, those of one model together."""
    groups: list[tuple[list[str], type[BaseModel] | None]] = [([], None)]
    for name in type(config).model_fields:
        value = getattr(config, name)
        if not isinstance(value, BaseModel):
            groups[0][0].append(name)
            continue
        same = next((g for g in groups[1:] if g[1] is type(value)), None)
        if same is None:
            groups.append(([name], type(value)))
        else:
            same[0].append(name)
    return groups if groups[0][0] else groups[1:]


def _section_doc(config: SpotVlmConfig, names: list[str]) -> str:
    descriptions = [type(config).model_fields[n].description for n in names]
    return " ".join(dict.fromkeys(d for d in descriptions if d))


def config_markdown(config: SpotVlmConfig | None = None) -> str:
    """The configuration reference page: an introduction, then one table per section."""
    config = config or SpotVlmConfig()
    by_name = {doc.name: doc for doc in key_docs(config)}
    out = [INTRO]
    for names, model in _sections(config):
        if model is None:
            out += ["## Top-level keys", "", _row(["key", "type", "default", "range", "meaning"])]
            out.append(_row(["---"] * 5))
            out += [_table_row(by_name[n], [by_name[n].default]) for n in names]
            out.append("")
            continue
        title = ", ".join(f"`{n}`" for n in names)
        out += [f"## {title}", ""]
        if _section_doc(config, names):
            out += [_section_doc(config, names), ""]
        heads = ["default"] if len(names) == 1 else [f"default ({n})" for n in names]
        out.append(_row(["key", "type", *heads, "range", "meaning"]))
        out.append(_row(["---"] * (4 + len(heads))))
        first = f"{names[0]}."
        for leaf in (n for n in by_name if n.startswith(first)):
            rest = leaf[len(first) :]
            docs = [by_name[f"{n}.{rest}"] for n in names]
            key = "<br>".join(f"`{n}.{rest}`" for n in names)
            out.append(_table_row(docs[0], [d.default for d in docs], key))
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _table_row(doc: KeyDoc, defaults: list[Any], key: str | None = None) -> str:
    defaults_md = [_default(value) for value in defaults]
    return _row([key or f"`{doc.name}`", f"`{doc.type}`", *defaults_md, doc.range, doc.meaning])

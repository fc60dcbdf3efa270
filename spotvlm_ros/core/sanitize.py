"""Sanitizing untrusted model text before it goes into another model's prompt.

LVLM answers (and labels) arrive over the network and are pasted into the SVLM's chat. They must stay
data: chat-template control tokens (``<|im_start|>``, ``</s>``, ``[INST]``, ``<end_of_turn>``, ...),
image placeholders (``<image>``, ``<|image_pad|>``) and role markers (``Assistant:``, ``### System:``) are
removed, invisible and control characters dropped, whitespace collapsed to one line, the length capped,
and the result quoted so the prompt shows it as a quotation, never as an instruction.
"""

from __future__ import annotations

import re
import unicodedata

from .compression import truncate_chars

__all__ = ["quote_data", "sanitize_label", "sanitize_text", "unquote_data"]

_ROLES = (
    "system|assistant|user|human|ai|bot|gpt|model|developer|tool|function|ipython|instruction|"
    "instructions|input|output|response|question|answer|context|sys|inst"
)
_SPECIAL_PATTERNS = (
    r"<\|[^<>|]{0,64}\|>",  # <|im_start|>, <|endoftext|>, <|image_pad|>, <|eot_id|>, ...
    r"<\s*/?\s*[A-Za-z_][\w\-.:]{0,64}\s*/?\s*>",  # </s>, <s>, <image>, <end_of_turn>, <loc_12>, ...
    r"<<\s*/?\s*[A-Za-z_]+\s*>>",  # <<SYS>>, <</SYS>>
    r"\[\s*/?\s*[A-Z][A-Z_]{1,40}\s*\]",  # [INST], [/INST], [SYSTEM_PROMPT], [IMG]
    r"<\||\|>",  # fragments left by the above
)
_SPECIAL_RE = re.compile("|".join(_SPECIAL_PATTERNS))
# a role marker opening a line, e.g. "Assistant:", "### System:", "**User**:", "> system:"
_ROLE_LINE_RE = re.compile(rf"^[ \t>#*_\-]*(?:{_ROLES})[ \t*_]*(?::|\s*$)", re.IGNORECASE | re.MULTILINE)
# a role marker inside a line: after markdown/quote marks, a sentence end or an opening quote
_ROLE_INLINE_RE = re.compile(
    r"(?:[#*>_]+\s*|(?<=^)|(?<=[.!?;:\"'(\[{]\s)|(?<=[.!?;:\"'(\[{]))"
    r"(?:system|assistant|user|human|developer|instructions?|response)\s*[*_]*\s*:",
    re.IGNORECASE,
)
_SPACE_RE = re.compile(r"\s+")
_QUOTES = str.maketrans({'"': "'", "“": "'", "”": "'", "„": "'", "‟": "'", "«": "'", "»": "'", "`": "'"})
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn"})


def _visible(text: str) -> str:
    """NFKC-normalised text without control (but newlines), format, private or unassigned chars."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(
        " " if ch == "\t" else ch
        for ch in text.replace("\r\n", "\n").replace("\r", "\n")
        if ch in "\n\t" or unicodedata.category(ch) not in _DROPPED_CATEGORIES
    )


def _strip_controls(text: str) -> str:
    """Remove special tokens and role markers until nothing changes (removals can join new ones)."""
    for _ in range(16):
        before = text
        text = _SPECIAL_RE.sub(" ", text)
        text = _ROLE_LINE_RE.sub(" ", text)
        if text == before:
            break
    return text


def sanitize_text(text: object, max_chars: int = 2000) -> str:
    """Untrusted model text made safe to embed: no control tokens or role markers, one line, capped."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = _visible(text)
    text = "\n".join(_strip_controls(line) for line in text.split("\n"))
    text = _strip_controls(_SPACE_RE.sub(" ", text))
    for _ in range(16):
        before = text
        text = _strip_controls(_ROLE_INLINE_RE.sub(" ", text))
        if text == before:
            break
    text = _SPACE_RE.sub(" ", text).strip()
    return truncate_chars(text, max_chars)


def quote_data(text: str) -> str:
    """Wrap sanitized text in double quotes; quote characters inside become single quotes."""
    return '"' + text.translate(_QUOTES) + '"'


def unquote_data(text: str) -> str:
    """``text`` without one level of :func:`quote_data` quotes (as it is when not quoted)."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


def sanitize_label(label: object, max_chars: int = 48) -> str:
    """A region label safe for prompts and drawn marks: sanitized, single quotes, short."""
    return sanitize_text(label, max_chars).translate(_QUOTES)

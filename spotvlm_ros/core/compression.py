"""Extractive compression of context text to a token budget.

Text is split into units: sentences, then clauses for long sentences, then word runs for very long
clauses. Splits never fall inside a number (``3.5``, ``1,200``, ``12:30``), a box (``[12, 40, 88, 120]``,
``(12,40),(88,120)``, ``{"bbox_2d": [...]}``) or a common abbreviation. Units are ranked by relevance to
the current prompt (shared content words), by recency of the text they come from and by position (the
lead sentence usually carries the answer), then taken greedily while they fit. Kept units are rendered
in their original order, `` … `` marking a gap. Everything is deterministic; ties break by position.

The budget is counted with the caller's token counter (the SVLM tokenizer) or, without one, with
:func:`estimate_tokens` (words and punctuation marks). A rendered result is always re-counted, so the
budget holds exactly even where a tokenizer merges across unit boundaries.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "Compressor",
    "Doc",
    "TokenCounter",
    "estimate_tokens",
    "protected_spans",
    "split_units",
    "truncate_chars",
]

TokenCounter = Callable[[str], int]

GAP = " … "

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_NUM = r"[-+]?\d+(?:[.,:/]\d+)*%?"
_BOX = rf"[\[(]\s*{_NUM}(?:\s*[,;]\s*{_NUM}){{1,7}}\s*[\])]"
_PROTECTED_RE = re.compile(
    rf"\{{[^{{}}]{{0,240}}\}}"  # a JSON object, e.g. {"bbox_2d": [1, 2, 3, 4], "label": "car"}
    rf"|\[\s*{_BOX}(?:\s*,\s*{_BOX})*\s*\]"  # a list of boxes or points
    rf"|{_BOX}(?:\s*(?:,|to|-)?\s*{_BOX})*"  # a box, a point, or a pair of corner points
    rf"|{_NUM}"
    r"|\b(?:e\.g|i\.e|etc|vs|approx|ca|Mr|Mrs|Ms|Dr|St|No|Fig)\."
    r"|\.\.\.",
    re.IGNORECASE,
)
_SENTENCE_END_RE = re.compile(r"(?:[.!?…]+[\"')\]]*|\n)\s+")
_CLAUSE_END_RE = re.compile(r"(?:[,;:]|\s[-–—])\s+")
_SPACE_RE = re.compile(r"\s+")
_WORD_RE = re.compile(r"[a-z0-9]+")
# fmt: off
_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "do", "does",
    "for", "from", "has", "have", "how", "i", "in", "is", "it", "its", "of", "on", "or", "that",
    "the", "there", "these", "this", "those", "to", "was", "were", "what", "when", "where",
    "which", "who", "why", "will", "with", "you", "your",
})
# fmt: on

# ranking weights: relevance dominates, then the doc bonus, recency and lead position
_W_RELEVANCE, _W_RECENCY, _W_LEAD = 1.0, 0.5, 0.25


def estimate_tokens(text: str) -> int:
    """Token estimate without a tokenizer: words and punctuation marks."""
    return len(_TOKEN_RE.findall(text))


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Character spans that must stay whole: numbers, boxes, points, JSON objects, abbreviations."""
    return [m.span() for m in _PROTECTED_RE.finditer(text)]


def _inside(pos: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start < pos < end for start, end in spans)


def _split(text: str, boundary: re.Pattern[str], spans: Sequence[tuple[int, int]]) -> list[str]:
    """Split after each boundary match that does not fall inside a protected span."""
    pieces, start = [], 0
    for match in boundary.finditer(text):
        if _inside(match.start(), spans) or _inside(match.end() - 1, spans):
            continue
        piece = text[start : match.end()].strip()
        if piece:
            pieces.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        pieces.append(tail)
    return pieces


def _word_runs(text: str, max_tokens: int, count: TokenCounter) -> list[str]:
    """Greedy runs of whole words (protected spans kept whole) of at most ``max_tokens`` each."""
    words = _split(text, _SPACE_RE, protected_spans(text))
    runs: list[str] = []
    current: list[str] = []
    for word in words:
        candidate = " ".join([*current, word])
        if current and count(candidate) > max_tokens:
            runs.append(" ".join(current))
            current = [word]
        else:
            current.append(word)
    if current:
        runs.append(" ".join(current))
    return runs


def split_units(text: str, max_unit_tokens: int = 40, count: TokenCounter = estimate_tokens) -> list[str]:
    """Sentences, with long ones split into clauses and very long clauses into word runs."""
    units: list[str] = []
    for sentence in _split(text, _SENTENCE_END_RE, protected_spans(text)):
        if count(sentence) <= max_unit_tokens:
            units.append(sentence)
            continue
        for clause in _split(sentence, _CLAUSE_END_RE, protected_spans(sentence)):
            if count(clause) <= max_unit_tokens:
                units.append(clause)
            else:
                units.extend(_word_runs(clause, max_unit_tokens, count))
    return units


def truncate_chars(text: str, max_chars: int, marker: str = "…") -> str:
    """Cut ``text`` to at most ``max_chars`` characters at a word boundary outside numbers and boxes."""
    if len(text) <= max_chars:
        return text
    limit = max(0, max_chars - len(marker))
    spans = protected_spans(text)
    cut = 0
    for match in _SPACE_RE.finditer(text, 0, limit + 1):
        if match.start() <= limit and not _inside(match.start(), spans):
            cut = match.start()
    return text[:cut].rstrip() + marker if cut else marker[:max_chars]


def _terms(text: str) -> frozenset[str]:
    """Content words, lower-cased, with a plural ``s`` folded."""
    words = (w for w in _WORD_RE.findall(text.lower()) if w not in _STOPWORDS)
    return frozenset(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


@dataclass(frozen=True, slots=True)
class Doc:
    """One text to compress beside others: ``overhead`` tokens are paid once if any unit is kept.

    ``rank`` is its recency (0 = newest) and ``bonus`` a score added to each of its units (e.g. for
    answers from the better model).
    """

    text: str
    rank: int = 0
    bonus: float = 0.0
    overhead: int = 0


def render_units(units: Sequence[str], kept: Sequence[int]) -> str:
    """Join the kept unit indices in order; non-adjacent units are separated by an ellipsis."""
    parts: list[str] = []
    previous = None
    for index in sorted(kept):
        if previous is not None:
            parts.append(" " if index == previous + 1 else GAP)
        parts.append(units[index])
        previous = index
    return "".join(parts)


class Compressor:
    """Budgeted extractive selection with cached unit splits and token counts."""

    def __init__(
        self, count_tokens: TokenCounter | None = None, max_unit_tokens: int = 40, cache_size: int = 4096
    ):
        self._count_fn = count_tokens or estimate_tokens
        self.max_unit_tokens = max_unit_tokens
        self._cache_size = cache_size
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._units: OrderedDict[tuple[str, int], tuple[str, ...]] = OrderedDict()

    def count(self, text: str) -> int:
        """Tokens of ``text`` (memoised)."""
        cached = self._counts.get(text)
        if cached is not None:
            self._counts.move_to_end(text)
            return cached
        value = int(self._count_fn(text)) if text else 0
        self._counts[text] = value
        if len(self._counts) > self._cache_size:
            self._counts.popitem(last=False)
        return value

    def count_once(self, text: str) -> int:
        """Tokens of ``text`` without memoising it (for text that will not come again)."""
        cached = self._counts.get(text)
        if cached is not None:
            return cached
        return int(self._count_fn(text)) if text else 0

    def units(self, text: str, max_unit_tokens: int) -> tuple[str, ...]:
        """The units of ``text`` (memoised)."""
        key = (text, max_unit_tokens)
        cached = self._units.get(key)
        if cached is None:
            cached = tuple(split_units(text, max_unit_tokens, self.count))
            self._units[key] = cached
            if len(self._units) > self._cache_size:
                self._units.popitem(last=False)
        return cached

    def select(
        self,
        docs: Sequence[Doc],
        budget: int,
        query: str = "",
        measure: Callable[[list[str | None]], int] | None = None,
    ) -> list[str | None]:
        """Compress several texts together; returns each doc's kept text, or None when dropped.

        ``measure`` counts the exact cost of a candidate result (by default the sum of the kept texts'
        counts plus overheads); units are removed, lowest-ranked first, until it fits ``budget``.
        """
        max_unit = max(1, min(self.max_unit_tokens, budget))
        all_units = [self.units(doc.text, max_unit) for doc in docs]
        query_terms = _terms(query)
        ranked = []
        for d, (doc, units) in enumerate(zip(docs, all_units, strict=True)):
            for u, unit in enumerate(units):
                relevance = len(_terms(unit) & query_terms) / len(query_terms) if query_terms else 0.0
                score = _W_RELEVANCE * relevance + _W_RECENCY / (1 + doc.rank) + _W_LEAD / (1 + u) + doc.bonus
                ranked.append((-score, doc.rank, d, u))
        ranked.sort()
        kept: dict[int, list[int]] = {}
        order: list[tuple[int, int]] = []
        used = 0
        for _, _, d, u in ranked:
            cost = self.count(all_units[d][u]) + (0 if d in kept else docs[d].overhead)
            if used + cost <= budget:
                kept.setdefault(d, []).append(u)
                order.append((d, u))
                used += cost

        def result() -> list[str | None]:
            return [render_units(all_units[d], kept[d]) if kept.get(d) else None for d in range(len(docs))]

        def exact(texts: list[str | None]) -> int:
            if measure is not None:
                return measure(texts)
            return sum(self.count(t) + docs[d].overhead for d, t in enumerate(texts) if t is not None)

        texts = result()
        while order and exact(texts) > budget:
            d, u = order.pop()
            kept[d].remove(u)
            texts = result()
        return texts

    def compress(self, text: str, budget: int, query: str = "") -> str:
        """``text`` cut to ``budget`` tokens by extractive selection ("" when nothing fits)."""
        if self.count(text) <= budget:
            return text
        return self.select([Doc(text)], budget, query)[0] or ""

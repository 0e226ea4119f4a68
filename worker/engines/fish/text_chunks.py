"""Long text in sentence-sized chunks, for a model whose prompt has a bounded size.

The text is cut after sentence-ending punctuation (Latin, and CJK, which needs
no space after it) and at line breaks; whole sentences are then packed into
chunks of at most `limit` characters. A sentence longer than that is cut at
clause punctuation, then between words, and only then anywhere. Order and
every non-space character are kept.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

# CJK marks, escaped: ideographic full stop, fullwidth ! ? ; , : ) and corner
# brackets; the ideographic comma; the ellipsis and curly closing quotes.
_SENTENCES = re.compile(
    r"""
    [^\n]+?
    (?:
        [.!?\u2026]+["'\u201d\u2019)\]]*(?=\s|$)         # Latin: end mark, then a space
      | [\u3002\uff01\uff1f\uff1b!?]+[\u300d\u300f\u201d\u2019\uff09"]*  # CJK: no space
      | (?=\n) | $
    )
    """,
    re.VERBOSE,
)
_CLAUSE_MARKS = ",\uff0c\u3001:\uff1a;\uff1b"
_CLAUSES = re.compile(f"[^{_CLAUSE_MARKS}]+[{_CLAUSE_MARKS}]*|[{_CLAUSE_MARKS}]+")
_WORDS = re.compile(r"\S+")


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def _join(left: str, right: str) -> str:
    if not left:
        return right
    return left + right if _wide(left[-1]) or _wide(right[0]) else f"{left} {right}"


def _pack(pieces: list[str], limit: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        joined = _join(current, piece)
        if current and len(joined) > limit:
            chunks.append(current)
            current = piece
        else:
            current = joined
    if current:
        chunks.append(current)
    return chunks


_LEVELS: list[Callable[[str], list[str]]] = [
    lambda text: _SENTENCES.findall(text),
    lambda text: _CLAUSES.findall(text),
    lambda text: _WORDS.findall(text),
]


def _pieces(text: str, limit: int, level: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at the coarsest boundary that works."""
    text = text.strip()
    if not text:
        return []
    if len(text) <= limit and level > 0:
        return [text]
    if level == len(_LEVELS):
        return [text[i : i + limit] for i in range(0, len(text), limit)]
    parts = [p.strip() for p in _LEVELS[level](text) if p.strip()]
    if level > 0 and len(parts) <= 1:
        return _pieces(text, limit, level + 1)
    return [piece for part in parts for piece in _pieces(part, limit, level + 1)]


def split_text(text: str, limit: int) -> list[str]:
    """Chunks of at most `limit` characters, cut at sentence boundaries where possible."""
    if limit < 1:
        raise ValueError("limit must be positive")
    return _pack(_pieces(text, limit, 0), limit)

"""The conversation as text, from a livekit-agents chat history (duck-typed, so testable alone)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from typing import Any

from .outcomes import fold, normalize_words

__all__ = ["transcript_from_items", "user_utterances", "quote_checker", "QuoteChecker", "QuoteContext"]

_LABELS = {"assistant": "Agent", "user": "Customer"}


def _messages(items: Iterable[Any]) -> Iterable[tuple[str, str]]:
    for item in items:
        if getattr(item, "type", None) != "message":
            continue
        role = getattr(item, "role", None)
        if role not in _LABELS:
            continue  # system / developer messages are instructions, not conversation
        text = getattr(item, "text_content", None)
        if isinstance(text, str) and text.strip():
            yield role, " ".join(text.split())


def transcript_from_items(items: Iterable[Any]) -> str:
    """``Agent: …`` / ``Customer: …`` lines, in order."""
    return "\n".join(f"{_LABELS[role]}: {text}" for role, text in _messages(items))


def user_utterances(items: Iterable[Any]) -> list[str]:
    return [text for role, text in _messages(items) if role == "user"]


# "a hundred twenty … on Friday": a quote given in parts
_PARTS_RE = re.compile(r"\.\.\.|\u2026")
_TOKEN_RE = re.compile(r"\w+", re.UNICODE)  # the words of normalize_words, with their places


@dataclasses.dataclass(frozen=True)
class QuoteContext:
    """Where a quote occurs in what the customer said: ``text`` is the customer's words (folded,
    punctuation kept) from the start of the utterance in which the quote begins to the end of the
    utterance in which it ends, and ``text[start:end]`` is the quote's span in it."""

    text: str
    start: int
    end: int


class QuoteChecker:
    """A ``customer_said`` check: the quote (normalised) occurs, as whole words, in one utterance
    of the customer or across their consecutive utterances. A quote in parts separated by an
    ellipsis ("a hundred twenty … on Friday") needs every part, in the order the customer said them.

    :meth:`context` tells where it occurs (its last occurrence: the customer's latest words), so
    that the words said around a quoted fragment can be read too."""

    def __init__(self, get_utterances: Callable[[], Iterable[str]]) -> None:
        self._get_utterances = get_utterances

    def __call__(self, quote: str) -> bool:
        return self.context(quote) is not None

    def context(self, quote: str) -> QuoteContext | None:
        parts = [p.split() for p in (normalize_words(part) for part in _PARTS_RE.split(quote)) if p]
        if not parts:
            return None
        texts = [fold(u) for u in self._get_utterances()]
        # every word of every utterance: (word, utterance index, start, end within the utterance)
        words = [(m.group(), i, m.start(), m.end()) for i, t in enumerate(texts) for m in _TOKEN_RE.finditer(t)]
        said = [w for w, *_ in words]
        end = len(said)
        found: list[int] = []
        for part in reversed(parts):  # the last occurrence: each part as late as it can be
            at = next((k for k in range(end - len(part), -1, -1) if said[k : k + len(part)] == part), None)
            if at is None:
                return None
            found.append(at)
            end = at
        first, last = words[found[-1]], words[found[0] + len(parts[-1]) - 1]
        # the utterances from the first word's to the last word's, joined as quote_checker joins them
        offsets, pos = {}, 0
        for i in range(first[1], last[1] + 1):
            offsets[i] = pos
            pos += len(texts[i]) + 1
        text = " ".join(texts[first[1] : last[1] + 1])
        return QuoteContext(text, offsets[first[1]] + first[2], offsets[last[1]] + last[3])


def quote_checker(get_utterances: Callable[[], Iterable[str]]) -> QuoteChecker:
    """The ``customer_said`` check of a call (see :class:`QuoteChecker`)."""
    return QuoteChecker(get_utterances)

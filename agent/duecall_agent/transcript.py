"""The conversation as text, from a livekit-agents chat history (duck-typed, so testable alone)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .outcomes import normalize_words

__all__ = ["transcript_from_items", "user_utterances", "quote_checker"]

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


def quote_checker(get_utterances: Callable[[], Iterable[str]]) -> Callable[[str], bool]:
    """A ``customer_said`` check: the quote (normalised) occurs, as whole words, in one utterance
    of the customer or across their consecutive utterances. A quote in parts separated by an
    ellipsis ("a hundred twenty … on Friday") needs every part, in the order the customer said them."""

    def said(quote: str) -> bool:
        parts = [p for p in (normalize_words(part) for part in _PARTS_RE.split(quote)) if p]
        if not parts:
            return False
        spoken = " " + " ".join(normalize_words(u) for u in get_utterances()) + " "
        pos = 0
        for part in parts:
            found = spoken.find(f" {part} ", pos)
            if found < 0:
                return False
            pos = found + len(part) + 1  # the space after the part starts the next search
        return True

    return said

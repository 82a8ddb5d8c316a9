"""The conversation as text, from a livekit-agents chat history (duck-typed, so testable alone)."""

from __future__ import annotations

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


def quote_checker(get_utterances: Callable[[], Iterable[str]]) -> Callable[[str], bool]:
    """A ``customer_said`` check: the quote (normalised) occurs in one utterance of the customer
    or across their consecutive utterances."""

    def said(quote: str) -> bool:
        q = normalize_words(quote)
        if not q:
            return False
        spoken = [normalize_words(u) for u in get_utterances()]
        return any(q in s for s in spoken) or q in " ".join(spoken)

    return said

"""What a failed outbound SIP call means for the reminder: which event to report.

``livekit-api`` (1.2) reports a failed ``create_sip_participant(..., wait_until_answered=True)``
by raising ``livekit.api.SipCallError`` — a ``ServerError`` (alias ``TwirpError``) whose
``metadata`` carries ``sip_status_code`` (e.g. ``"486"``) and ``sip_status`` (an enum name such as
``"SIP_STATUS_BUSY_HERE"``); see ``livekit/api/sip_service.py::_as_sip_error``. Errors before any
SIP exchange (bad trunk id, auth, validation) are a plain ``ServerError`` without those keys, and
network trouble surfaces as ``aiohttp.ClientError`` / ``asyncio.TimeoutError``.

Mapping (SPEC §1/§2 events):

| SIP status                          | event            | detail                          |
|-------------------------------------|------------------|---------------------------------|
| 408, 480, 487 (timeout, unavailable, cancelled while ringing) | call_completed | ``no_answer`` |
| 486, 600, 603 (busy here, busy everywhere, decline)           | call_completed | ``busy``      |
| 404, 410, 484, 485, 604 (number not found / gone / incomplete / ambiguous / does not exist anywhere) | call_failed | retryable false |
| anything else: 5xx, 403 from the trunk, other 4xx/6xx          | call_failed | retryable true  |
| no SIP status: API error, network error, timeout               | call_failed | retryable true  |

Without a SIP status the call's fate is *ambiguous*: the leg may still be ringing and connect after
the agent gave up, so the agent deletes the room (SPEC §10: no call connects to nobody).

603 Decline is not in the brief's list: the callee's phone rejected the call, which is a "not now"
like busy rather than a broken trunk, so it retries on the reminder's normal schedule.
A ``deadline_exceeded`` API error without a SIP status means ringing outlasted the request: no answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

from .outcomes import Result

__all__ = ["Failure", "SipDecision", "classify_sip_status", "classify_dial_error"]

NO_ANSWER_CODES = frozenset({408, 480, 487})
BUSY_CODES = frozenset({486, 600, 603})
INVALID_NUMBER_CODES = frozenset({404, 410, 484, 485, 604})


@dataclasses.dataclass(frozen=True)
class Failure:
    """The ``failure`` object of a ``call_failed`` event (SPEC §2)."""

    reason: str
    sip_status: int | None = None
    retryable: bool = True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason}
        if self.sip_status is not None:
            out["sip_status"] = self.sip_status
        out["retryable"] = self.retryable
        return out


@dataclasses.dataclass(frozen=True)
class SipDecision:
    """Either ``call_completed`` with an unreached ``result``, or ``call_failed`` with ``failure``."""

    event_type: str  # "call_completed" | "call_failed"
    result: Result | None = None
    failure: Failure | None = None
    # True when the call's fate is unknown (client timeout, network, an API error without a SIP
    # status): the SIP leg may still ring and connect, so the room must be closed.
    ambiguous: bool = False


_PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{6,}\d")


def _phrase(sip_status: str | None) -> str:
    """``"SIP_STATUS_BUSY_HERE"`` → ``"busy here"``; free text is scrubbed of anything number-like."""
    if not sip_status:
        return ""
    s = sip_status.strip()
    if s.startswith("SIP_STATUS_"):
        s = s[len("SIP_STATUS_") :].replace("_", " ").lower()
    return _PHONE_LIKE.sub("[number]", s)[:80]


def classify_sip_status(code: int | None, sip_status: str | None = None) -> SipDecision:
    """Map a final SIP response code of a failed outbound call to the event to report."""
    phrase = _phrase(sip_status)
    label = f"sip {code}" + (f" {phrase}" if phrase else "") if code is not None else "sip call failed"
    if code is None:
        return SipDecision("call_failed", failure=Failure(label, None, True))
    if code in NO_ANSWER_CODES:
        return SipDecision("call_completed", result=Result.NO_ANSWER)
    if code in BUSY_CODES:
        return SipDecision("call_completed", result=Result.BUSY)
    if code in INVALID_NUMBER_CODES:
        return SipDecision("call_failed", failure=Failure(f"invalid number ({label})", code, False))
    if code == 403:
        return SipDecision("call_failed", failure=Failure(f"refused by the sip trunk ({label})", code, True))
    if 500 <= code < 600:
        return SipDecision("call_failed", failure=Failure(f"sip trunk error ({label})", code, True))
    return SipDecision("call_failed", failure=Failure(label, code, True))


def classify_dial_error(exc: BaseException) -> SipDecision:
    """Map whatever ``create_sip_participant`` raised to the event to report.

    Duck-typed on ``metadata`` / ``code`` so it reads both ``SipCallError`` and a plain
    ``ServerError`` without importing livekit here (which keeps this module testable alone)."""
    metadata = getattr(exc, "metadata", None)
    if isinstance(metadata, dict) and metadata.get("sip_status_code") is not None:
        try:
            code: int | None = int(str(metadata["sip_status_code"]).strip())
        except ValueError:
            code = None
        if code is not None:
            return classify_sip_status(code, metadata.get("sip_status"))
    api_code = getattr(exc, "code", None)
    if isinstance(api_code, str) and api_code:
        if api_code == "deadline_exceeded":
            return SipDecision("call_completed", result=Result.NO_ANSWER, ambiguous=True)
        return SipDecision(
            "call_failed",
            failure=Failure(f"livekit api error: {_PHONE_LIKE.sub('[number]', api_code)[:60]}", None, True),
            ambiguous=True,
        )
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return SipDecision("call_failed", failure=Failure("timed out placing the sip call", None, True), ambiguous=True)
    # never forward the exception text: it may carry the dialled number
    return SipDecision(
        "call_failed", failure=Failure(f"error placing the sip call: {type(exc).__name__}", None, True), ambiguous=True
    )

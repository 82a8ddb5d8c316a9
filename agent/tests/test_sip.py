from __future__ import annotations

import asyncio

import aiohttp
import pytest
from livekit import api

from duecall_agent.outcomes import Result
from duecall_agent.sip import Failure, SipDecision, classify_dial_error, classify_sip_status


@pytest.mark.parametrize("code", [408, 480, 487])
def test_no_answer(code: int) -> None:
    assert classify_sip_status(code) == SipDecision("call_completed", result=Result.NO_ANSWER)


@pytest.mark.parametrize("code", [486, 600, 603])
def test_busy(code: int) -> None:
    assert classify_sip_status(code) == SipDecision("call_completed", result=Result.BUSY)


@pytest.mark.parametrize("code", [404, 410, 484, 485, 604])
def test_invalid_number_is_permanent(code: int) -> None:
    d = classify_sip_status(code, "SIP_STATUS_NOT_FOUND")
    assert d.event_type == "call_failed" and d.result is None
    assert d.failure is not None and d.failure.retryable is False and d.failure.sip_status == code
    assert "invalid number" in d.failure.reason


@pytest.mark.parametrize("code", [500, 502, 503, 504, 403, 400, 401, 407, 488, 606])
def test_trunk_and_other_errors_are_retryable(code: int) -> None:
    d = classify_sip_status(code)
    assert d.event_type == "call_failed"
    assert d.failure is not None and d.failure.retryable is True and d.failure.sip_status == code


def _sip_error(code: str, status: str = "SIP_STATUS_X") -> api.SipCallError:
    # exactly what livekit-api builds from a Twirp error response of CreateSIPParticipant
    err = api.TwirpError(
        "unavailable",
        "twirp error unknown: INVITE failed: sip status: %s" % code,
        status=503,
        metadata={"sip_status_code": code, "sip_status": status, "error_details": "Cg=="},
    )
    return api.SipCallError.from_server_error(err)


def test_livekit_sip_call_error_busy() -> None:
    d = classify_dial_error(_sip_error("486", "SIP_STATUS_BUSY_HERE"))
    assert d == SipDecision("call_completed", result=Result.BUSY)


def test_livekit_sip_call_error_no_answer() -> None:
    assert classify_dial_error(_sip_error("480")).result is Result.NO_ANSWER


def test_livekit_sip_call_error_invalid_number() -> None:
    d = classify_dial_error(_sip_error("404", "SIP_STATUS_NOT_FOUND"))
    assert d.failure == Failure("invalid number (sip 404 not found)", 404, False)


def test_livekit_sip_call_error_trunk() -> None:
    d = classify_dial_error(_sip_error("503", "SIP_STATUS_SERVICE_UNAVAILABLE"))
    assert d.failure == Failure("sip trunk error (sip 503 service unavailable)", 503, True)


def test_livekit_sip_call_error_403_from_trunk() -> None:
    d = classify_dial_error(_sip_error("403", "SIP_STATUS_FORBIDDEN"))
    assert d.failure is not None and d.failure.retryable is True and d.failure.sip_status == 403


def test_sip_service_wraps_errors_like_we_expect() -> None:
    """Guard on the installed livekit-api: SIP failures arrive as SipCallError with the code."""
    from livekit.api.sip_service import _as_sip_error

    plain = api.TwirpError("not_found", "trunk not found", status=404)
    assert _as_sip_error(plain) is plain
    wrapped = _as_sip_error(api.TwirpError("unavailable", "x", status=503, metadata={"sip_status_code": "486"}))
    assert isinstance(wrapped, api.SipCallError) and wrapped.sip_status_code == 486


def test_api_error_without_sip_status_is_retryable() -> None:
    d = classify_dial_error(api.TwirpError("not_found", "object cannot be found", status=404))
    assert d.event_type == "call_failed"
    assert d.failure == Failure("livekit api error: not_found", None, True)


def test_deadline_exceeded_without_sip_status_is_no_answer() -> None:
    d = classify_dial_error(api.TwirpError("deadline_exceeded", "timeout", status=504))
    assert d.result is Result.NO_ANSWER


@pytest.mark.parametrize(
    "exc",
    [asyncio.TimeoutError(), aiohttp.ClientConnectionError("boom +14155550100"), RuntimeError("dialing +14155550100 failed")],
)
def test_network_errors_are_retryable_and_never_leak_the_number(exc: BaseException) -> None:
    d = classify_dial_error(exc)
    assert d.event_type == "call_failed" and d.failure is not None and d.failure.retryable
    assert "4155550100" not in d.failure.reason


def test_reason_text_from_server_is_scrubbed() -> None:
    d = classify_dial_error(_sip_error("503", "call to +14155550100 rejected"))
    assert d.failure is not None and "4155550100" not in d.failure.reason


def test_garbage_sip_code_falls_back() -> None:
    err = api.TwirpError("unknown", "x", status=500, metadata={"sip_status_code": "abc"})
    d = classify_dial_error(err)
    assert d.event_type == "call_failed" and d.failure is not None and d.failure.retryable


def test_failure_to_json() -> None:
    assert Failure("sip trunk error", 503, True).to_json() == {"reason": "sip trunk error", "sip_status": 503, "retryable": True}
    assert Failure("x", None, False).to_json() == {"reason": "x", "retryable": False}

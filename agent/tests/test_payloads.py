"""The bodies the agent sends are exactly SPEC §2."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from duecall_agent.outcomes import Outcome, Result
from duecall_agent.sip import Failure
from duecall_agent.webhook_client import MAX_BODY_BYTES, build_body, encode_body, format_occurred_at

RID = "6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10"
AT = dt.datetime(2026, 11, 24, 10, 15, 0, 123456, tzinfo=dt.timezone.utc)

SPEC_EVENT_KEYS = {"event_type", "reminder_id", "attempt", "occurred_at", "outcome", "failure"}
SPEC_OUTCOME_KEYS = {"result", "promised_amount_minor", "promised_date", "summary", "transcript", "duration_seconds"}
SPEC_FAILURE_KEYS = {"reason", "sip_status", "retryable"}


def test_spec_example_payment_promised() -> None:
    body = build_body(
        "call_completed", RID, 2, AT,
        outcome=Outcome(Result.PAYMENT_PROMISED, 12000, dt.date(2026, 12, 1),
                        "Agreed to pay the full amount on Dec 1.", "…", 93),
    )
    assert body == {
        "event_type": "call_completed",
        "reminder_id": RID,
        "attempt": 2,
        "occurred_at": "2026-11-24T10:15:00Z",
        "outcome": {
            "result": "payment_promised",
            "promised_amount_minor": 12000,
            "promised_date": "2026-12-01",
            "summary": "Agreed to pay the full amount on Dec 1.",
            "transcript": "…",
            "duration_seconds": 93,
        },
    }
    assert encode_body(body) == (
        '{"event_type":"call_completed","reminder_id":"6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10","attempt":2,'
        '"occurred_at":"2026-11-24T10:15:00Z","outcome":{"result":"payment_promised","promised_amount_minor":12000,'
        '"promised_date":"2026-12-01","summary":"Agreed to pay the full amount on Dec 1.","transcript":"…",'
        '"duration_seconds":93}}'
    )


def test_call_answered() -> None:
    assert build_body("call_answered", RID, 1, AT) == {
        "event_type": "call_answered", "reminder_id": RID, "attempt": 1, "occurred_at": "2026-11-24T10:15:00Z",
    }


def test_call_failed_with_and_without_failure() -> None:
    assert build_body("call_failed", RID, 3, AT, failure=Failure("sip trunk error", 503, True))["failure"] == {
        "reason": "sip trunk error", "sip_status": 503, "retryable": True,
    }
    assert "failure" not in build_body("call_failed", RID, 3, AT)


def test_attempt_may_be_left_out() -> None:
    assert "attempt" not in build_body("call_failed", RID, None, AT)


@pytest.mark.parametrize("result", list(Result))
def test_every_result_builds_a_spec_body(result: Result) -> None:
    kw = dict(promised_amount_minor=100, promised_date=dt.date(2026, 12, 1)) if result is Result.PAYMENT_PROMISED else {}
    body = json.loads(encode_body(build_body("call_completed", RID, 1, AT, outcome=Outcome(result, summary="s", **kw))))
    assert set(body) <= SPEC_EVENT_KEYS and set(body["outcome"]) <= SPEC_OUTCOME_KEYS
    assert body["outcome"]["result"] == result.value


def test_failure_keys_are_spec_keys() -> None:
    body = build_body("call_failed", RID, 1, AT, failure=Failure("x", 404, False))
    assert set(body["failure"]) == SPEC_FAILURE_KEYS


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(event_type="call_completed"),  # no outcome
        dict(event_type="call_answered", outcome=Outcome(Result.BUSY)),
        dict(event_type="call_completed", outcome=Outcome(Result.BUSY), failure=Failure("x")),
        dict(event_type="call_started"),
        dict(event_type="call_answered", attempt=0),
        dict(event_type="call_answered", attempt=True),
    ],
)
def test_malformed_events_are_not_built(kwargs: dict) -> None:
    args = dict(reminder_id=RID, attempt=1, occurred_at=AT) | kwargs
    with pytest.raises(ValueError):
        build_body(**args)


def test_occurred_at_is_utc_z_whole_seconds() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert format_occurred_at(dt.datetime(2026, 11, 24, 12, 15, 0, 999999, tzinfo=plus2)) == "2026-11-24T10:15:00Z"
    with pytest.raises(ValueError):
        format_occurred_at(dt.datetime(2026, 11, 24, 10, 15))


def test_unicode_is_sent_as_utf8_not_escaped() -> None:
    text = encode_body(build_body("call_completed", RID, 1, AT, outcome=Outcome(Result.OTHER, transcript="Zoë 日本 👍")))
    assert "Zoë 日本 👍" in text and "\\u" not in text


def test_oversized_transcript_is_cut_in_the_middle() -> None:
    transcript = "Agent: hello\n" + ("Customer: ünïcode blah blah\n" * 5000) + "Agent: THE END"
    body = build_body("call_completed", RID, 1, AT, outcome=Outcome(Result.PAYMENT_PROMISED, 100, dt.date(2026, 12, 1), transcript=transcript))
    text = encode_body(body)
    size = len(text.encode("utf-8"))
    assert MAX_BODY_BYTES - 200 < size <= MAX_BODY_BYTES
    got = json.loads(text)["outcome"]
    assert got["transcript"].startswith("Agent: hello") and got["transcript"].endswith("Agent: THE END")
    assert "truncated" in got["transcript"]
    assert got["promised_amount_minor"] == 100


def test_small_body_is_untouched() -> None:
    body = build_body("call_completed", RID, 1, AT, outcome=Outcome(Result.OTHER, transcript="short"))
    assert json.loads(encode_body(body)) == body

"""Delivery of signed events to a loopback receiver, with a fake clock and fixed randomness."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import re

import pytest
from conftest import TEST_SECRET, Receiver, Reply, closed_port_url, independent_verify, library_verify
from standardwebhooks import Webhook

from duecall_agent.outcomes import Outcome, Result
from duecall_agent.sip import Failure
from duecall_agent.webhook_client import WebhookClient, WebhookConfigError, build_body, encode_body, signing_secret

RID = "6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10"
T0 = 1_795_515_300.25


class FakeTime:
    """A clock that only moves when the client sleeps."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client(url: str, t: FakeTime, rand: float = 0.5, **kw: object) -> WebhookClient:
    return WebhookClient(url, TEST_SECRET, sleep=t.sleep, rand=lambda: rand, clock=t.clock, **kw)  # type: ignore[arg-type]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def verify_request(req, secret: str = TEST_SECRET) -> None:  # type: ignore[no-untyped-def]
    ts = int(req.headers["webhook-timestamp"])
    args = (secret, req.headers["webhook-id"], ts, req.body.decode("utf-8"), req.headers["webhook-signature"], ts)
    assert library_verify(*args), "the PyPI library accepts it"
    assert independent_verify(*args), "an independent HMAC accepts it"


def test_delivered_first_try_with_valid_signature(receiver: Receiver) -> None:
    t = FakeTime()
    outcome = Outcome(Result.PAYMENT_PROMISED, 12000, dt.date(2026, 12, 1), "s", "Customer: ja, 120 € 👍", 93)
    res = run(client(receiver.url, t).call_completed(RID, 2, outcome))
    assert res.status == "delivered" and res.delivered and res.attempts == 1 and res.http_status == 200
    assert res.response == {"reminder_id": "x", "status": "processing", "applied": True}
    [req] = receiver.received
    assert req.path == "/api/webhooks/call-status"
    assert req.headers["content-type"] == "application/json"
    assert re.fullmatch(r"msg_[0-9a-f]{32}", req.headers["webhook-id"])
    assert req.headers["webhook-timestamp"] == str(int(T0))
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", req.headers["webhook-signature"])
    verify_request(req)
    body = json.loads(req.body)
    assert body["event_type"] == "call_completed" and body["attempt"] == 2 and body["reminder_id"] == RID
    assert body["occurred_at"] == "2026-11-24T10:15:00Z"
    assert body["outcome"]["transcript"] == "Customer: ja, 120 € 👍"
    assert t.sleeps == []


def test_signature_is_over_the_exact_bytes_sent(receiver: Receiver) -> None:
    t = FakeTime()
    body = build_body("call_failed", RID, 1, dt.datetime.fromtimestamp(T0, dt.timezone.utc), failure=Failure("x", 503, True))
    run(client(receiver.url, t).send(body, webhook_id="msg_fixed"))
    [req] = receiver.received
    assert req.body == encode_body(body).encode("utf-8")
    expected = Webhook(TEST_SECRET).sign("msg_fixed", dt.datetime.fromtimestamp(int(T0), dt.timezone.utc), encode_body(body))
    assert req.headers["webhook-signature"] == expected


@pytest.mark.parametrize("first", [500, 502, 503, 504, 429])
def test_retries_on_429_and_5xx_with_the_same_id_and_fresh_signatures(receiver: Receiver, first: int) -> None:
    receiver.replies = [Reply(first), Reply(first), Reply(200)]
    t = FakeTime()
    res = run(client(receiver.url, t, rand=0.5).call_answered(RID, 1))
    assert res.status == "delivered" and res.attempts == 3
    assert len(receiver.received) == 3
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert len(ids) == 1 and res.webhook_id in ids
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.received]
    assert stamps == [int(T0), int(T0 + 0.25), int(T0 + 0.25 + 0.5)]
    for r in receiver.received:
        verify_request(r)
    assert [r.body for r in receiver.received] == [receiver.received[0].body] * 3, "the body is the same on each try"
    assert t.sleeps == [0.25, 0.5]  # full jitter with rand=0.5: 0.5 * 0.5s, 0.5 * 1s


def test_gives_up_after_three_tries(receiver: Receiver) -> None:
    receiver.replies = [Reply(500, body={"error": {"code": "storage", "message": "db down"}})]
    t = FakeTime()
    res = run(client(receiver.url, t).call_answered(RID, 1))
    assert res.status == "gave_up" and res.attempts == 3 and res.http_status == 500
    assert len(receiver.received) == 3 and len(t.sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 413, 422, 301])
def test_never_retries_other_4xx(receiver: Receiver, status: int) -> None:
    receiver.replies = [Reply(status, body={"error": {"code": "nope", "message": "m"}}, headers={"location": "http://127.0.0.1:9/"} if status == 301 else {})]
    t = FakeTime()
    res = run(client(receiver.url, t).call_answered(RID, 1))
    assert res.status == "rejected" and res.http_status == status and res.attempts == 1
    assert res.error == "nope"
    assert len(receiver.received) == 1 and t.sleeps == []


def test_retries_on_dropped_connection(receiver: Receiver) -> None:
    receiver.replies = [Reply(drop=True), Reply(200)]
    t = FakeTime()
    res = run(client(receiver.url, t).call_answered(RID, 1))
    assert res.status == "delivered" and res.attempts == 2
    assert receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]
    assert len(t.sleeps) == 1


def test_retries_on_timeout(receiver: Receiver) -> None:
    receiver.replies = [Reply(200, delay=1.0), Reply(200)]
    t = FakeTime()
    res = run(client(receiver.url, t, timeout=0.2).call_answered(RID, 1))
    assert res.status == "delivered" and res.attempts == 2
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_gives_up_when_nobody_listens() -> None:
    t = FakeTime()
    res = run(client(closed_port_url(), t).call_failed(RID, 1, Failure("x")))
    assert res.status == "gave_up" and res.attempts == 3 and res.http_status is None
    assert res.error == "ConnectError"
    assert len(t.sleeps) == 2


@pytest.mark.parametrize(
    "rand,expected",
    [
        (0.0, [0.0, 0.0, 0.0, 0.0]),
        (0.5, [0.5, 1.0, 2.0, 3.0]),
        (0.999, [0.999, 1.998, 3.996, 5.994]),
        (1.0, [1.0, 2.0, 4.0, 6.0]),
    ],
)
def test_backoff_is_exponential_with_full_jitter_and_capped(rand: float, expected: list[float]) -> None:
    """base 1 s, cap 6 s, 5 tries: caps 1, 2, 4, 6 (not 8); each delay = rand * cap."""
    t = FakeTime()
    with Receiver() as r:
        r.replies = [Reply(503)]
        c = client(r.url, t, rand=rand, base_delay=1.0, max_delay=6.0, max_attempts=5)
        res = run(c.call_answered(RID, 1))
        assert len(r.received) == 5
    assert res.status == "gave_up"
    assert t.sleeps == pytest.approx(expected)


def test_backoff_bounds_with_real_randomness(receiver: Receiver) -> None:
    import random

    rng = random.Random(1234)
    receiver.replies = [Reply(500)]
    for _ in range(5):
        t = FakeTime()
        c = WebhookClient(receiver.url, TEST_SECRET, sleep=t.sleep, rand=rng.random, clock=t.clock, base_delay=0.5)
        run(c.call_answered(RID, 1))
        assert len(t.sleeps) == 2
        assert 0 <= t.sleeps[0] <= 0.5 and 0 <= t.sleeps[1] <= 1.0


def test_retry_after_is_honoured_and_capped(receiver: Receiver) -> None:
    receiver.replies = [Reply(429, headers={"retry-after": "2"}), Reply(503, headers={"retry-after": "600"}), Reply(200)]
    t = FakeTime()
    res = run(client(receiver.url, t, rand=0.5, max_retry_after=10.0).call_answered(RID, 1))
    assert res.delivered
    assert t.sleeps == [2.0, 10.0]


def test_each_event_gets_its_own_id(receiver: Receiver) -> None:
    t = FakeTime()
    c = client(receiver.url, t)
    run(c.call_answered(RID, 1))
    run(c.call_completed(RID, 1, Outcome(Result.BUSY)))
    a, b = (r.headers["webhook-id"] for r in receiver.received)
    assert a != b


def test_first_of_several_secrets_signs(receiver: Receiver) -> None:
    other = "whsec_" + base64.b64encode(b"second-key-used-only-to-verify!!").decode()
    t = FakeTime()
    c = WebhookClient.from_env(
        {"DUECALL_WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": f" {TEST_SECRET} , {other}"},
        sleep=t.sleep, clock=t.clock,
    )
    run(c.call_answered(RID, 1))
    [req] = receiver.received
    verify_request(req, TEST_SECRET)
    ts = int(req.headers["webhook-timestamp"])
    assert not independent_verify(other, req.headers["webhook-id"], ts, req.body.decode(), req.headers["webhook-signature"], ts)


def test_real_clock_timestamps_pass_the_receivers_tolerance(receiver: Receiver) -> None:
    res = run(WebhookClient(receiver.url, TEST_SECRET).call_answered(RID, 1))
    assert res.delivered
    [req] = receiver.received
    Webhook(TEST_SECRET).verify(req.body, dict(req.headers))  # wall clock, 5-minute tolerance


@pytest.mark.parametrize(
    "env,match",
    [
        ({}, "DUECALL_WEBHOOK_URL"),
        ({"DUECALL_WEBHOOK_URL": "http://127.0.0.1:1/x"}, "WEBHOOK_SECRET"),
        ({"DUECALL_WEBHOOK_URL": "http://127.0.0.1:1/x", "WEBHOOK_SECRET": " , "}, "WEBHOOK_SECRET"),
        ({"DUECALL_WEBHOOK_URL": "http://127.0.0.1:1/x", "WEBHOOK_SECRET": "whsec_"}, "WEBHOOK_SECRET"),
        ({"DUECALL_WEBHOOK_URL": "ftp://x", "WEBHOOK_SECRET": TEST_SECRET}, "DUECALL_WEBHOOK_URL"),
    ],
)
def test_config_errors_name_the_variable(env: dict, match: str) -> None:
    with pytest.raises(WebhookConfigError, match=match):
        WebhookClient.from_env(env)


def test_signing_secret_picks_the_first_entry() -> None:
    assert signing_secret("whsec_QUJD,whsec_REVG") == "whsec_QUJD"


def test_nothing_secret_or_personal_is_logged(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.replies = [Reply(500), Reply(400, body={"error": {"code": "bad", "message": "m"}})]
    t = FakeTime()
    c = client(receiver.url, t)
    outcome = Outcome(Result.OTHER, summary="call me on +14155550100", transcript="secret transcript words")
    run(c.call_completed(RID, 1, outcome))
    assert "WebhookClient" in repr(c) and TEST_SECRET not in repr(c)
    text = caplog.text + " ".join(str(getattr(r, "duecall", "")) for r in caplog.records)
    assert RID in text, "ids are logged"
    for forbidden in ("4155550100", "secret transcript", TEST_SECRET, TEST_SECRET[6:], "v1,"):
        assert forbidden not in text

"""End to end against the real ``duecall`` binary: the agent's signed events as the service sees
them, and (through a stand-in LiveKit) the whole attempt: claim → room + dispatch → the metadata
the agent would get → call_answered → call_completed → the reminder's final state.

Skipped unless ``DUECALL_BIN`` names the binary. Everything listens on 127.0.0.1 only; each test
starts its own service process (cwd = a temp dir, so no stray .env is read) and stops it.

Service settings this file relies on (SPEC §4–§6): DATABASE_URL, BIND_ADDR, WEBHOOK_SECRET,
DUECALL_API_KEY, CRON_SECRET, DIALER, LIVEKIT_URL/API_KEY/API_SECRET, AGENT_NAME,
SIP_OUTBOUND_TRUNK_ID, SCHEDULER_INTERVAL_SECS=0 (ticks only on demand), CALLING_WINDOW,
CALLING_DAYS.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import os
import socket
import subprocess
import time
import uuid
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_livekit import API_KEY, API_SECRET, FakeLiveKit

from duecall_agent.metadata import parse_metadata
from duecall_agent.outcomes import Outcome, Result
from duecall_agent.sip import Failure
from duecall_agent.webhook_client import WebhookClient, build_body

DUECALL_BIN = os.environ.get("DUECALL_BIN", "")
pytestmark = pytest.mark.skipif(not DUECALL_BIN, reason="set DUECALL_BIN to the duecall binary to run the end-to-end tests")

SECRET = "whsec_" + base64.b64encode(b"e2e-test-only-webhook-secret-001").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"e2e-test-only-older-secret-00002").decode()
WRONG_SECRET = "whsec_" + base64.b64encode(b"e2e-test-only-a-wrong-secret-003").decode()
API_TOKEN = "e2e-api-key-test-only-0123456789abcdef"
CRON_TOKEN = "e2e-cron-secret-test-only-0123456789abcdef"
AGENT_NAME = "payment-reminder-e2e"
TRUNK = "ST_e2e_trunk"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.proc = proc
        self.base = base
        self.log = log
        self.http = httpx.Client(base_url=base, timeout=10.0, trust_env=False)

    @property
    def webhook_url(self) -> str:
        return self.base + "/api/webhooks/call-status"

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {API_TOKEN}", **kw.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kw)

    def tick(self) -> dict[str, Any]:
        r = self.http.post("/api/cron/process-reminders", headers={"authorization": f"Bearer {CRON_TOKEN}"})
        assert r.status_code == 200, r.text
        return r.json()

    def reminder(self, rid: str) -> dict[str, Any]:
        r = self.api("GET", f"/api/reminders/{rid}")
        assert r.status_code == 200, r.text
        return r.json()

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@contextlib.contextmanager
def running_service(tmp_path: Path, **env: str) -> Iterator[Service]:
    port = _free_port()
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        "DATABASE_URL": f"sqlite://{tmp_path}/t.db",
        "BIND_ADDR": f"127.0.0.1:{port}",
        "WEBHOOK_SECRET": SECRET,
        "DUECALL_API_KEY": API_TOKEN,
        "CRON_SECRET": CRON_TOKEN,
        "SCHEDULER_INTERVAL_SECS": "0",
        "DIALER": "none",
        **env,
    }
    log = tmp_path / "duecall.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([DUECALL_BIN, "serve"], env=full_env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    svc = Service(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"duecall exited with {proc.returncode}:\n{svc.log_tail()}")
            try:
                if svc.http.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"duecall did not answer /healthz in 30 s:\n{svc.log_tail()}")
            time.sleep(0.1)
        yield svc
    finally:
        svc.http.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _midday_zone() -> str:
    """An IANA zone where it is now about midday on a Monday–Saturday, so the reminder is inside
    the default calling window whatever time the test runs."""
    now = dt.datetime.now(dt.timezone.utc)
    best, best_score = "Etc/UTC", 99.0
    for offset in range(-12, 15):
        name = "Etc/UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
        local = now.astimezone(zoneinfo.ZoneInfo(name))
        score = abs(local.hour + local.minute / 60 - 13) + (50 if local.weekday() == 6 else 0)
        if score < best_score:
            best, best_score = name, score
    return best


def new_reminder(svc: Service, **overrides: Any) -> dict[str, Any]:
    body = {
        "customer_name": "Ada Lovelace",
        "phone_number": "+14155550100",
        "amount_due_minor": 12345,
        "currency": "USD",
        "due_date": (dt.date.today() + dt.timedelta(days=7)).isoformat(),
        "timezone": _midday_zone(),
        "language": "en",
        "external_id": f"e2e-{uuid.uuid4().hex[:12]}",
        **overrides,
    }
    r = svc.api("POST", "/api/reminders", json=body)
    assert r.status_code == 201, r.text
    rem = r.json()
    assert rem["status"] == "pending" and rem["attempt_count"] == 0
    return rem


def agent_client(svc: Service, secret: str = SECRET) -> WebhookClient:
    return WebhookClient(svc.webhook_url, secret)


def send(client: WebhookClient, body: dict[str, Any], webhook_id: str | None = None) -> Any:
    return asyncio.run(client.send(body, webhook_id=webhook_id))


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# ---- signatures and addressing, no dispatch needed ------------------------------------------------


def test_service_checks_the_agents_signatures(tmp_path: Path) -> None:
    with running_service(tmp_path, WEBHOOK_SECRET=f"{SECRET},{OLD_SECRET}") as svc:
        rem = new_reminder(svc)
        rid = rem["id"]
        # right signature, but the reminder was never dispatched: 409, nothing applied
        res = asyncio.run(agent_client(svc).call_answered(rid, 1))
        assert res.status == "rejected" and res.http_status == 409 and res.attempts == 1
        # the second (rotated-out) secret is accepted too
        res = asyncio.run(agent_client(svc, OLD_SECRET).call_answered(rid, 1))
        assert res.http_status == 409
        # a wrong key is 401, never retried
        res = asyncio.run(agent_client(svc, WRONG_SECRET).call_answered(rid, 1))
        assert res.status == "rejected" and res.http_status == 401 and res.attempts == 1
        # unknown reminder: 404 (also for ids that are not even UUIDs)
        assert asyncio.run(agent_client(svc).call_answered(str(uuid.uuid4()), 1)).http_status == 404
        assert send(agent_client(svc), {**build_body("call_answered", rid, 1, now()), "reminder_id": "nope"}).http_status == 404
        # unknown event type / result: 400
        assert send(agent_client(svc), {**build_body("call_answered", rid, 1, now()), "event_type": "call_exploded"}).http_status == 400
        bad_result = build_body("call_completed", rid, 1, now(), outcome=Outcome(Result.OTHER))
        bad_result["outcome"]["result"] = "teleported"
        assert send(agent_client(svc), bad_result).http_status == 400
        # nothing changed
        assert svc.reminder(rid)["status"] == "pending"


def test_stale_timestamp_is_refused(tmp_path: Path) -> None:
    with running_service(tmp_path) as svc:
        rid = new_reminder(svc)["id"]
        stale = WebhookClient(svc.webhook_url, SECRET, clock=lambda: time.time() - 301)
        assert asyncio.run(stale.call_answered(rid, 1)).http_status == 401
        future = WebhookClient(svc.webhook_url, SECRET, clock=lambda: time.time() + 301)
        assert asyncio.run(future.call_answered(rid, 1)).http_status == 401


# ---- a whole attempt through the stand-in LiveKit ---------------------------------------------------


@contextlib.contextmanager
def dialing_service(tmp_path: Path, **env: str) -> Iterator[tuple[Service, FakeLiveKit]]:
    settings = {
        "DIALER": "livekit",
        "AGENT_NAME": AGENT_NAME,
        "SIP_OUTBOUND_TRUNK_ID": TRUNK,
        "CALLING_WINDOW": "00:00-23:59",
        "CALLING_DAYS": "Mon-Sun",
        **env,
    }
    with FakeLiveKit() as lk, running_service(
        tmp_path, LIVEKIT_URL=lk.url, LIVEKIT_API_KEY=API_KEY, LIVEKIT_API_SECRET=API_SECRET, **settings
    ) as svc:
        yield svc, lk


def dispatch_one(svc: Service, lk: FakeLiveKit, rem: dict[str, Any]) -> Any:
    """Tick until the service dispatched the reminder's attempt; return the job metadata."""
    deadline = time.monotonic() + 15
    while True:
        svc.tick()
        mine = [d for d in lk.dispatches() if rem["id"] in d.room]
        if mine:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"no dispatch for {rem['id']}; LiveKit calls: {[c.method for c in lk.calls]}\n{svc.log_tail()}")
        time.sleep(0.2)
    d = mine[-1]
    assert d.agent_name == AGENT_NAME
    md = parse_metadata(d.metadata)  # exactly what the agent's entrypoint parses (SPEC §3)
    assert d.room == md.room_name == f"reminder-{rem['id']}-{md.attempt}"
    [room] = [r for r in lk.created_rooms() if r.name == d.room]
    assert parse_metadata(room.metadata) == md, "room and dispatch carry the same metadata"
    assert md.reminder_id == rem["id"] and md.phone_number == rem["phone_number"]
    assert md.customer_name == rem["customer_name"] and md.amount_due_minor == rem["amount_due_minor"]
    assert md.currency == rem["currency"] and md.due_date.isoformat() == rem["due_date"]
    assert md.timezone == rem["timezone"] and md.language == rem["language"]
    assert md.sip_trunk_id == TRUNK
    return md


def test_promise_to_pay_completes_the_reminder(tmp_path: Path) -> None:
    with dialing_service(tmp_path) as (svc, lk):
        rem = new_reminder(svc)
        md = dispatch_one(svc, lk, rem)
        assert md.attempt == 1
        assert svc.reminder(rem["id"])["status"] == "in_progress"
        client = agent_client(svc)

        answered = build_body("call_answered", md.reminder_id, md.attempt, now())
        res = send(client, answered, webhook_id="msg_e2e_answered")
        assert res.status == "delivered" and res.response["applied"] is True and res.response["status"] == "processing"
        again = send(client, answered, webhook_id="msg_e2e_answered")  # a retry of the same event
        assert again.http_status == 200 and again.response["applied"] is False

        outcome = Outcome(Result.PAYMENT_PROMISED, 12000, md.due_date, "Customer promised to pay.", "Agent: hi\nCustomer: 120 on the 1st", 93)
        res = asyncio.run(client.call_completed(md.reminder_id, md.attempt, outcome))
        assert res.delivered and res.response["status"] == "completed"

        got = svc.reminder(rem["id"])
        assert got["status"] == "completed" and got["next_attempt_at"] is None
        assert got["outcome"]["result"] == "payment_promised"
        assert got["outcome"]["promised_amount_minor"] == 12000
        assert got["outcome"]["promised_date"] == md.due_date.isoformat()
        [attempt] = got["attempts"]
        assert attempt["attempt"] == 1 and attempt["room_name"] == md.room_name
        assert attempt["answered_at"] and attempt["ended_at"] and attempt["outcome"]["result"] == "payment_promised"

        # a late event for another attempt is recorded nowhere near the status: 409
        assert asyncio.run(client.call_answered(md.reminder_id, md.attempt + 1)).http_status == 409


def test_opt_out_cancels_the_reminder(tmp_path: Path) -> None:
    with dialing_service(tmp_path) as (svc, lk):
        rem = new_reminder(svc)
        md = dispatch_one(svc, lk, rem)
        client = agent_client(svc)
        assert asyncio.run(client.call_answered(md.reminder_id, md.attempt)).delivered
        res = asyncio.run(client.call_completed(md.reminder_id, md.attempt, Outcome(Result.OPTED_OUT, summary="stop calling")))
        assert res.delivered
        assert svc.reminder(rem["id"])["status"] == "cancelled"


def test_no_answer_with_attempts_left_goes_back_to_pending(tmp_path: Path) -> None:
    with dialing_service(tmp_path) as (svc, lk):
        rem = new_reminder(svc, max_attempts=3)
        md = dispatch_one(svc, lk, rem)
        res = asyncio.run(agent_client(svc).call_completed(md.reminder_id, md.attempt, Outcome(Result.NO_ANSWER)))
        assert res.delivered
        got = svc.reminder(rem["id"])
        assert got["status"] == "pending" and got["next_attempt_at"] is not None and got["attempt_count"] == 1


def test_busy_on_the_last_attempt_fails_the_reminder(tmp_path: Path) -> None:
    with dialing_service(tmp_path) as (svc, lk):
        rem = new_reminder(svc, max_attempts=1)
        md = dispatch_one(svc, lk, rem)
        assert asyncio.run(agent_client(svc).call_completed(md.reminder_id, md.attempt, Outcome(Result.BUSY))).delivered
        got = svc.reminder(rem["id"])
        assert got["status"] == "failed" and got["next_attempt_at"] is None
        assert got["skip_reason"] == "max_attempts_reached"


def test_permanent_sip_failure_is_not_retried(tmp_path: Path) -> None:
    with dialing_service(tmp_path) as (svc, lk):
        rem = new_reminder(svc, max_attempts=3)
        md = dispatch_one(svc, lk, rem)
        failure = Failure("invalid number (sip 404 not found)", 404, False)
        assert asyncio.run(agent_client(svc).call_failed(md.reminder_id, md.attempt, failure)).delivered
        got = svc.reminder(rem["id"])
        assert got["status"] == "failed" and got["next_attempt_at"] is None
        assert got["attempts"][0]["failure"]["sip_status"] == 404


def test_retryable_failure_schedules_another_attempt(tmp_path: Path) -> None:
    with dialing_service(tmp_path) as (svc, lk):
        rem = new_reminder(svc, max_attempts=3)
        md = dispatch_one(svc, lk, rem)
        failure = Failure("sip trunk error (sip 503 service unavailable)", 503, True)
        assert asyncio.run(agent_client(svc).call_failed(md.reminder_id, md.attempt, failure)).delivered
        got = svc.reminder(rem["id"])
        assert got["status"] == "failed" and got["next_attempt_at"] is not None


# ---- SPEC §1 and §10: the outcomes of the right-party check, callbacks, a late opt-out ------------


def test_not_available_is_tried_again_and_fails_only_when_no_attempt_remains(tmp_path: Path) -> None:
    with dialing_service(tmp_path) as (svc, lk):
        rem = new_reminder(svc, max_attempts=3)
        md = dispatch_one(svc, lk, rem)
        client = agent_client(svc)
        assert asyncio.run(client.call_answered(md.reminder_id, md.attempt)).delivered
        res = asyncio.run(client.call_completed(md.reminder_id, md.attempt, Outcome(Result.NOT_AVAILABLE)))
        assert res.delivered and res.response["status"] == "pending"
        got = svc.reminder(rem["id"])
        assert got["status"] == "pending" and got["attempt_count"] == 1
        assert got["next_attempt_at"] is not None and got["skip_reason"] == "not_available"
        assert got["attempts"][0]["outcome"]["result"] == "not_available"

        last = new_reminder(svc, max_attempts=1, phone_number="+14155550101")
        md = dispatch_one(svc, lk, last)
        res = asyncio.run(client.call_completed(md.reminder_id, md.attempt, Outcome(Result.NOT_AVAILABLE)))
        assert res.delivered
        got = svc.reminder(last["id"])
        assert got["status"] == "failed" and got["next_attempt_at"] is None
        assert got["skip_reason"] == "max_attempts_reached"


def _at(zone: str, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), zoneinfo.ZoneInfo(zone))


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_callback_is_scheduled_at_the_customers_time_or_moved_into_the_window(tmp_path: Path) -> None:
    # The default window, in the reminder's zone alone (the test's zone is wherever it is midday).
    with dialing_service(tmp_path, CALLING_WINDOW="08:00-21:00", ZONE_POLICY="given") as (svc, lk):
        client = agent_client(svc)
        rem = new_reminder(svc, max_attempts=3)
        md = dispatch_one(svc, lk, rem)
        tomorrow = md.local_today(now()) + dt.timedelta(days=1)
        inside = _at(md.timezone, tomorrow, 10, 30)
        outcome = Outcome(Result.CALLBACK_REQUESTED, summary="call me tomorrow at half past ten", callback_at=inside)
        res = asyncio.run(client.call_completed(md.reminder_id, md.attempt, outcome))
        assert res.delivered and res.response["status"] == "pending"
        got = svc.reminder(rem["id"])
        assert got["status"] == "pending"
        assert _utc(got["next_attempt_at"]) == inside
        assert _utc(got["outcome"]["callback_at"]) == inside

        late = new_reminder(svc, max_attempts=3, phone_number="+14155550102")
        md = dispatch_one(svc, lk, late)
        outside = _at(md.timezone, tomorrow, 22, 15)  # after the window closes
        outcome = Outcome(Result.CALLBACK_REQUESTED, summary="call me tomorrow night", callback_at=outside)
        assert asyncio.run(client.call_completed(md.reminder_id, md.attempt, outcome)).delivered
        got = svc.reminder(late["id"])
        assert got["status"] == "pending"
        # the first lawful moment after it: the window's opening the next morning
        assert _utc(got["next_attempt_at"]) == _at(md.timezone, tomorrow + dt.timedelta(days=1), 8, 0)


def test_an_opt_out_after_a_reported_promise_still_suppresses_the_number(tmp_path: Path) -> None:
    """The agent reports a promise at once; when the customer then says "stop calling", it sends a
    second call_completed (opted_out, its own webhook id): the number must end on the list."""
    with dialing_service(tmp_path) as (svc, lk):
        rem = new_reminder(svc)
        md = dispatch_one(svc, lk, rem)
        client = agent_client(svc)
        promise = Outcome(Result.PAYMENT_PROMISED, 12000, md.due_date, "Customer promised to pay.")
        assert asyncio.run(client.call_completed(md.reminder_id, md.attempt, promise)).delivered
        assert svc.reminder(rem["id"])["status"] == "completed"

        res = asyncio.run(client.call_completed(md.reminder_id, md.attempt, Outcome(Result.OPTED_OUT, summary="stop calling")))
        assert res.http_status is not None and 200 <= res.http_status < 300, res
        listed = svc.api("GET", "/api/suppressions/%2B14155550100")
        assert listed.status_code == 200, listed.text
        assert listed.json()["reason"] == "opted_out" and listed.json()["reminder_id"] == rem["id"]
        # the promise stays what the reminder ended with; no new reminder for the number is dialled
        assert svc.reminder(rem["id"])["outcome"]["result"] == "payment_promised"
        # a new reminder for the number is stored cancelled from the start, never dialled
        r = svc.api("POST", "/api/reminders", json={**_body_of(rem), "external_id": "e2e-after-opt-out"})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "cancelled" and r.json()["skip_reason"] == "suppressed"


def _body_of(rem: dict[str, Any]) -> dict[str, Any]:
    keys = ("customer_name", "phone_number", "amount_due_minor", "currency", "due_date", "timezone", "language")
    return {k: rem[k] for k in keys}


def test_the_dispatched_metadata_carries_verify_and_disclosures(tmp_path: Path) -> None:
    with dialing_service(tmp_path, CALL_DISCLOSURES="collector") as (svc, lk):
        rem = new_reminder(svc, metadata={"verify": {"label": "ZIP code", "value": "02139"}, "invoice": "1042"})
        md = dispatch_one(svc, lk, rem)
        assert md.verify is not None and (md.verify.label, md.verify.value) == ("ZIP code", "02139")
        assert md.disclosures == frozenset({"collector"})

    (tmp_path / "none").mkdir()
    with dialing_service(tmp_path / "none", CALL_DISCLOSURES="none") as (svc, lk):
        md = dispatch_one(svc, lk, new_reminder(svc))
        assert md.verify is None and md.disclosures == frozenset()

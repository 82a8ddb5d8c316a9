"""SPEC §9 end to end: the real ``duecall`` binary notifies a business system's endpoint.

A receiver (``http.server`` on 127.0.0.1, port 0, in a thread) stands in for the business system:
it verifies EVERY request with the PyPI ``standardwebhooks`` library, once per configured secret
(during a rotation the service signs with each), records ``(webhook-id, body)`` and answers as the
test scripts it. The service runs with ``NOTIFY_URL`` pointing at it and
``NOTIFY_SECRET=<A>,<B>``; a live reminder is set up through the stand-in LiveKit as in
``test_against_service.py``, and the agent's signed ``call_completed`` ends its call.

The binary runs on the system clock, so the first retry (5 s after a failed try) is waited for in
real time. Skipped unless ``DUECALL_BIN`` names the binary.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook
from test_against_service import DUECALL_BIN, Service, agent_client, dialing_service, dispatch_one, new_reminder

from duecall_agent.outcomes import Outcome, Result

pytestmark = pytest.mark.skipif(not DUECALL_BIN, reason="set DUECALL_BIN to the duecall binary to run the end-to-end tests")

NOTIFY_SECRET_A = "whsec_" + base64.b64encode(b"e2e-notify-secret-A-test-only-01").decode()
NOTIFY_SECRET_B = "whsec_" + base64.b64encode(b"e2e-notify-secret-B-test-only-02").decode()
NOT_CONFIGURED = "whsec_" + base64.b64encode(b"e2e-notify-secret-never-used-003").decode()

WAIT_SECS = 10.0  # every wait for the service is bounded by this


@dataclass
class Delivery:
    webhook_id: str
    timestamp: int
    body: dict[str, Any]
    raw: bytes
    at: float  # time.monotonic() when it arrived
    answered: int


class NotifyReceiver:
    """The business system's endpoint. Verifies each request with ``standardwebhooks`` against each
    of ``secrets`` separately (and checks that a secret that was never configured does NOT verify);
    a request that fails any check is recorded in ``problems`` and answered 400. ``answer`` picks
    the status for a verified request from its webhook-id and how many times that id came before."""

    def __init__(self, secrets: list[str], answer: Callable[[str, int], int] = lambda _id, _n: 204) -> None:
        self.secrets = secrets
        self.answer = answer
        self.deliveries: list[Delivery] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = outer._handle(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _handle(self, path: str, headers: dict[str, str], raw: bytes) -> int:
        problems = []
        if path != "/hooks/duecall":
            problems.append(f"POST to {path}")
        if not headers.get("content-type", "").startswith("application/json"):
            problems.append(f"content-type {headers.get('content-type')!r}")
        signatures = headers.get("webhook-signature", "").split(" ")
        if len(signatures) != len(self.secrets) or not all(s.startswith("v1,") for s in signatures):
            problems.append(f"{len(signatures)} signature entries, expected one v1 per secret")
        for n, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(raw, headers)  # the library's own clock: ±5 min of now
            except Exception as e:  # WebhookVerificationError, or a malformed header
                problems.append(f"secret #{n} does not verify: {e}")
        try:
            Webhook(NOT_CONFIGURED).verify(raw, headers)
            problems.append("a secret that was never configured verifies")
        except Exception:
            pass
        webhook_id = headers.get("webhook-id", "")
        try:
            body = json.loads(raw)
        except ValueError:
            problems.append("body is not JSON")
            body = None
        with self._lock:
            if problems:
                self.problems.extend(f"{webhook_id}: {p}" for p in problems)
                return 400
            seen = sum(1 for d in self.deliveries if d.webhook_id == webhook_id)
            status = self.answer(webhook_id, seen)
            self.deliveries.append(
                Delivery(webhook_id, int(headers["webhook-timestamp"]), body, raw, time.monotonic(), status)
            )
            return status

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/duecall"

    def got(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def wait_for(self, what: str, ready: Callable[[list[Delivery]], bool], svc: Service) -> list[Delivery]:
        deadline = time.monotonic() + WAIT_SECS
        while True:
            got = self.got()
            assert not self.problems, self.problems
            if ready(got):
                return got
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; got {[(d.webhook_id, d.body.get('type')) for d in got]}\n{svc.log_tail()}")
            time.sleep(0.05)

    def __enter__(self) -> "NotifyReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def notify_receiver() -> Iterator[NotifyReceiver]:
    with NotifyReceiver([NOTIFY_SECRET_A, NOTIFY_SECRET_B]) as rx:
        yield rx


def notifying_service(tmp_path: Path, rx: NotifyReceiver) -> Any:
    return dialing_service(tmp_path, NOTIFY_URL=rx.url, NOTIFY_SECRET=f"{NOTIFY_SECRET_A},{NOTIFY_SECRET_B}")


def complete_with_promise(svc: Service, lk: Any) -> dict[str, Any]:
    """A live reminder whose call the agent ends with a promise to pay; the reminder as the API shows it."""
    rem = new_reminder(svc)
    md = dispatch_one(svc, lk, rem)
    client = agent_client(svc)
    assert asyncio.run(client.call_answered(md.reminder_id, md.attempt)).delivered
    outcome = Outcome(Result.PAYMENT_PROMISED, 12000, md.due_date, "Customer promised to pay.")
    res = asyncio.run(client.call_completed(md.reminder_id, md.attempt, outcome))
    assert res.delivered and res.response["status"] == "completed"
    return svc.reminder(rem["id"])


def listed(svc: Service, rid: str, status: str = "") -> list[dict[str, Any]]:
    query = f"?reminder_id={rid}" + (f"&status={status}" if status else "")
    r = svc.api("GET", f"/api/notifications{query}")
    assert r.status_code == 200, r.text
    return r.json()["notifications"]


def wait_listed(svc: Service, rid: str, ready: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_SECS
    while True:
        got = listed(svc, rid)
        if ready(got):
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting on GET /api/notifications: {json.dumps(got, indent=1)[:3000]}")
        time.sleep(0.1)


def by_sequence(deliveries: list[Delivery]) -> list[Delivery]:
    return sorted(deliveries, key=lambda d: d.body["data"]["sequence"])


def test_a_promise_is_notified_signed_with_both_secrets_and_in_sequence(tmp_path: Path, notify_receiver: NotifyReceiver) -> None:
    rx = notify_receiver
    with notifying_service(tmp_path, rx) as (svc, lk):
        rem = complete_with_promise(svc, lk)
        rid = rem["id"]
        got = by_sequence(rx.wait_for("two notifications", lambda g: len(g) >= 2, svc))
        time.sleep(1.0)  # nothing else is on its way
        assert len(rx.got()) == 2, [d.body["type"] for d in rx.got()]

        assert [d.body["type"] for d in got] == ["attempt.ended", "reminder.completed"]
        assert len({d.webhook_id for d in got}) == 2
        for n, d in enumerate(got, start=1):
            assert d.webhook_id.startswith("msg_"), d.webhook_id
            assert set(d.body) == {"type", "timestamp", "data"}
            assert d.body["timestamp"].endswith("Z")
            data = d.body["data"]
            assert data["sequence"] == n
            assert data["id"] == rid
            assert data["status"] == "completed"
            assert data["outcome"]["result"] == "payment_promised"
            assert data["outcome"]["promised_amount_minor"] == 12000
            assert abs(d.timestamp - time.time()) < 60
            # the reminder exactly as GET /api/reminders/{id} shows it (SPEC §5), less its
            # "attempts" list, plus "sequence" (and "attempt" for attempt.ended)
            extra = {"sequence", "attempt"} if d.body["type"] == "attempt.ended" else {"sequence"}
            lists = {"attempts", "payments", "actions"}  # the reminder's page adds its lists; data is the reminder
            assert set(data) == (set(rem) - lists) | extra
            assert {k: v for k, v in data.items() if k not in extra} == {k: v for k, v in rem.items() if k not in lists}

        attempt = got[0].body["data"]["attempt"]
        assert attempt["attempt"] == 1 and attempt["status"] == "completed"
        assert attempt["outcome"]["result"] == "payment_promised"
        assert attempt == rem["attempts"][0], "the attempt as GET /api/reminders/{id} lists it"
        assert "attempt" not in got[1].body["data"]

        # the API: both delivered, one try each, and the payload is what was POSTed
        notes = wait_listed(svc, rid, lambda ns: len(ns) == 2 and all(n["status"] == "delivered" for n in ns))
        assert {n["id"] for n in notes} == {d.webhook_id for d in got}
        for n in notes:
            sent = next(d for d in got if d.webhook_id == n["id"])
            assert n["reminder_id"] == rid and n["type"] == sent.body["type"]
            assert n["sequence"] == sent.body["data"]["sequence"]
            assert n["payload"] == sent.body
            assert n["delivered_at"] and n["next_try_at"] is None
            [one] = n["tries"]
            assert one["status_code"] == 204 and one["error"] is None
            assert isinstance(one["duration_ms"], int) and one["at"]
            r = svc.api("GET", f"/api/notifications/{n['id']}")
            assert r.status_code == 200 and r.json()["id"] == n["id"]
        assert [n["id"] for n in listed(svc, rid, "pending")] == []
        assert len(listed(svc, rid, "delivered")) == 2

        # a resend through the API: the same notification again, same webhook-id, same body
        completed = got[1]
        r = svc.api("POST", f"/api/notifications/{completed.webhook_id}/resend")
        assert r.status_code == 200, r.text
        assert r.json()["id"] == completed.webhook_id and r.json()["status"] == "pending"
        again = rx.wait_for("the resent notification", lambda g: len(g) >= 3, svc)
        assert len(again) == 3
        assert again[2].webhook_id == completed.webhook_id and again[2].raw == completed.raw
        n = wait_listed(svc, rid, lambda ns: all(n["status"] == "delivered" for n in ns))
        assert [len(x["tries"]) for x in sorted(n, key=lambda x: x["sequence"])] == [1, 2]
        assert svc.api("POST", "/api/notifications/msg_nosuch/resend").status_code == 404


def test_a_failed_try_is_retried_5_s_later_with_the_same_id_and_body(tmp_path: Path) -> None:
    # Every notification's first try is answered 500, every later one 200.
    with NotifyReceiver([NOTIFY_SECRET_A, NOTIFY_SECRET_B], answer=lambda _id, seen: 500 if seen == 0 else 200) as rx:
        with notifying_service(tmp_path, rx) as (svc, lk):
            rid = complete_with_promise(svc, lk)["id"]
            first = rx.wait_for("two first tries", lambda g: len(g) >= 2, svc)
            assert [d.answered for d in first] == [500, 500]
            pending = wait_listed(svc, rid, lambda ns: len(ns) == 2 and all(len(n["tries"]) == 1 for n in ns))
            for n in pending:
                assert n["status"] == "pending" and n["delivered_at"] is None and n["next_try_at"]
                assert n["tries"][0]["status_code"] == 500 and n["tries"][0]["error"] == "HTTP 500"

            time.sleep(1.0)
            assert len(rx.got()) == 2, "no second try within a second of the first"

            got = rx.wait_for("the retries", lambda g: len(g) >= 4, svc)
            time.sleep(0.5)
            got = rx.got()
            assert len(got) == 4, [(d.webhook_id, d.answered) for d in got]
            ids = {d.webhook_id for d in got}
            assert len(ids) == 2
            for wid in ids:
                tries = [d for d in got if d.webhook_id == wid]
                assert [d.answered for d in tries] == [500, 200]
                assert tries[1].raw == tries[0].raw, "the same body, byte for byte"
                waited = tries[1].at - tries[0].at
                assert 4.0 <= waited <= 10.0, f"retried after {waited:.2f} s, SPEC §9 says 5 s"
                assert tries[1].timestamp >= tries[0].timestamp  # signed afresh for each try
            assert sorted(d.body["data"]["sequence"] for d in got) == [1, 1, 2, 2]

            notes = wait_listed(svc, rid, lambda ns: len(ns) == 2 and all(n["status"] == "delivered" for n in ns))
            assert {n["id"] for n in notes} == ids
            for n in notes:
                assert [t["status_code"] for t in n["tries"]] == [500, 200]
                assert [t["error"] for t in n["tries"]] == ["HTTP 500", None]
                assert n["delivered_at"] and n["next_try_at"] is None
            assert listed(svc, rid, "pending") == []

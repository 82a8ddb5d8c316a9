"""Shared test helpers: the vectors, two independent signature checkers, a loopback receiver."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import http.server
import json
import secrets
import socket
import sys
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

AGENT_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = AGENT_DIR.parent
VECTORS_DIR = REPO_DIR / "spec" / "vectors"
sys.path.insert(0, str(AGENT_DIR))

TOLERANCE_SECS = 300


def load_vectors(name: str) -> dict[str, Any]:
    return json.loads((VECTORS_DIR / name).read_text(encoding="utf-8"))


# ---- checker 1: a tiny HMAC-SHA256 built on hashlib.sha256 alone (no hmac module, no library) ----


def _hmac_sha256(key: bytes, msg: bytes) -> bytes:
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + msg).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()


def _b64(s: str) -> bytes | None:
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None


def independent_verify(secret: str, msg_id: str, timestamp: int, payload: str, signature: str, now: int) -> bool:
    """SPEC §2 from first principles: key = base64 after ``whsec_``; content
    ``{id}.{timestamp}.{body}``; any space-separated ``v1,<base64>`` entry equal to the digest;
    |now - timestamp| <= 300."""
    if not secret.startswith("whsec_"):
        return False
    key = _b64(secret[len("whsec_"):])
    if not key:
        return False
    if abs(now - timestamp) > TOLERANCE_SECS:
        return False
    expected = _hmac_sha256(key, f"{msg_id}.{timestamp}.".encode() + payload.encode("utf-8"))
    for entry in signature.split(" "):
        version, sep, value = entry.partition(",")
        if not sep or version != "v1":
            continue
        got = _b64(value)
        if got is not None and secrets.compare_digest(got, expected):
            return True
    return False


# ---- checker 2: the PyPI library's own verify, with its clock pinned ----


def library_verify(secret: str, msg_id: str, timestamp: int, payload: str, signature: str, now: int) -> bool:
    import standardwebhooks.webhooks as swh

    pinned = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc)

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
            return pinned if tz is None else pinned.astimezone(tz)

    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
    with mock.patch.object(swh, "datetime", Clock):
        try:
            swh.Webhook(secret).verify(payload, headers, json_parse=False)
        except Exception:  # the library also raises ValueError/binascii.Error on malformed headers
            return False
    return True


# ---- a loopback HTTP receiver with scripted answers ----


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"reminder_id": "x", "status": "processing", "applied": True})
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering (a network error for the client)
    delay: float = 0.0  # seconds before answering (to trigger client timeouts)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """``http.server`` on 127.0.0.1, port 0, in a thread. Answers from ``replies`` in order (the
    last one repeats) and records every request."""

    def __init__(self) -> None:
        self.replies: list[Reply] = [Reply()]
        self.received: list[Received] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with outer._lock:
                    outer.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    index = min(len(outer.received) - 1, len(outer.replies) - 1)
                    reply = outer.replies[index]
                if reply.delay:
                    threading.Event().wait(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/api/webhooks/call-status"

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Any:
    with Receiver() as r:
        yield r


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/api/webhooks/call-status"


VALID_METADATA: dict[str, Any] = {
    "reminder_id": "6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10",
    "attempt": 2,
    "phone_number": "+14155550100",
    "customer_name": "Ada Lovelace",
    "amount_due_minor": 12345,
    "currency": "USD",
    "due_date": "2026-12-01",
    "language": "en",
    "timezone": "America/New_York",
    "sip_trunk_id": "ST_abc123",
}

TEST_SECRET = "whsec_" + base64.b64encode(b"duecall-test-only-webhook-key-01").decode()


# ---- a fake job context (no LiveKit server) ------------------------------------------------------

from duecall_agent.metadata import parse_metadata  # noqa: E402
from livekit import api  # noqa: E402

_VALID_MD = parse_metadata(VALID_METADATA)


class FakeSip:
    """``ctx.api.sip``: raises ``exc`` from ``create_sip_participant``, or (``exc`` None) answers."""

    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc
        self.requests: list[api.CreateSIPParticipantRequest] = []
        self.timeouts: list[float | None] = []

    async def create_sip_participant(
        self, request: api.CreateSIPParticipantRequest, *, timeout: float | None = None
    ) -> api.SIPParticipantInfo:
        self.requests.append(request)
        self.timeouts.append(timeout)
        if self.exc is not None:
            raise self.exc
        return api.SIPParticipantInfo(
            participant_id="PA_customer", participant_identity=request.participant_identity, room_name=request.room_name
        )


class FakeCtx:
    """A stand-in ``JobContext``: records shutdowns, shutdown callbacks and deleted rooms."""

    def __init__(self, metadata: str, exc: BaseException | None) -> None:
        self.job = types.SimpleNamespace(metadata=metadata, room=types.SimpleNamespace(metadata="", name="reminder-x"))
        self.room = types.SimpleNamespace(name=_VALID_MD.room_name)
        self.api = types.SimpleNamespace(sip=FakeSip(exc))
        self.proc = types.SimpleNamespace(userdata={"vad": None})
        self.log_context_fields: dict = {}
        self.shutdowns: list[str] = []
        self.shutdown_callbacks: list[Any] = []
        self.connected = False
        self.deleted_rooms = 0

    async def connect(self) -> None:
        self.connected = True

    def add_shutdown_callback(self, cb: Any) -> None:
        self.shutdown_callbacks.append(cb)

    def shutdown(self, reason: str = "") -> None:
        self.shutdowns.append(reason)

    def delete_room(self) -> "asyncio.Future[None]":
        self.deleted_rooms += 1
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut



def text_only_start(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """``AgentSession.start`` as the job calls it, but without a LiveKit room (none can run here):
    the options the job passed are recorded, and the real session starts in text mode."""
    from livekit.agents import AgentSession

    real_start = AgentSession.start
    calls: list[dict[str, Any]] = []

    async def start(self: Any, agent: Any, *, room: Any = None, room_options: Any = None, **kw: Any) -> Any:
        calls.append({"session": self, "agent": agent, "room": room, "room_options": room_options})
        return await real_start(self, agent, **kw)

    monkeypatch.setattr(AgentSession, "start", start)
    return calls


@pytest.fixture
def session_starts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the job passed to ``AgentSession.start`` (see :func:`text_only_start`)."""
    return text_only_start(monkeypatch)


@pytest.fixture
def job_env(monkeypatch: pytest.MonkeyPatch, receiver: Receiver, session_starts: list[dict[str, Any]]) -> Receiver:
    """A job's environment, offline: text-only sessions, no AMD, reports to the loopback receiver."""
    monkeypatch.setenv("AGENT_AMD", "off")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # loopback only: the LLM's warm-up connect fails at once
    monkeypatch.setenv("LIVEKIT_API_KEY", "test-key-not-real")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "test-secret-not-real")
    monkeypatch.setenv("DUECALL_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("WEBHOOK_SECRET", TEST_SECRET)
    monkeypatch.setenv("AGENT_VAD", "none")
    for key in ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "CARTESIA_API_KEY"):
        monkeypatch.setenv(key, "test-key-not-real")
    return receiver


def signed_events(receiver: Receiver) -> list[dict]:
    out = []
    for req in receiver.received:
        ts = int(req.headers["webhook-timestamp"])
        assert library_verify(TEST_SECRET, req.headers["webhook-id"], ts, req.body.decode(), req.headers["webhook-signature"], ts)
        out.append(json.loads(req.body))
    return out

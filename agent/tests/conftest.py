"""Shared test helpers: the vectors, two independent signature checkers, a loopback receiver."""

from __future__ import annotations

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

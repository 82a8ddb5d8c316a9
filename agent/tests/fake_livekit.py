"""A stand-in LiveKit server for end-to-end tests: the Twirp endpoints the duecall service calls
(RoomService.CreateRoom/DeleteRoom/ListRooms, AgentDispatchService.CreateDispatch/DeleteDispatch/
ListDispatch), protobuf or JSON bodies, bearer JWTs checked against the API secret. Loopback only.

It records every call, so a test can read the room name, the agent name and the metadata the
service dispatched — exactly what the real agent would receive as its job."""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from livekit import api

API_KEY = "APIfaketestkey"
API_SECRET = "fake-livekit-secret-for-tests-only-0123456789"

_METHODS: dict[tuple[str, str], tuple[type[Message], type[Message]]] = {
    ("livekit.RoomService", "CreateRoom"): (api.CreateRoomRequest, api.Room),
    ("livekit.RoomService", "DeleteRoom"): (api.DeleteRoomRequest, api.DeleteRoomResponse),
    ("livekit.RoomService", "ListRooms"): (api.ListRoomsRequest, api.ListRoomsResponse),
    ("livekit.AgentDispatchService", "CreateDispatch"): (api.CreateAgentDispatchRequest, api.AgentDispatch),
    ("livekit.AgentDispatchService", "DeleteDispatch"): (api.DeleteAgentDispatchRequest, api.AgentDispatch),
    ("livekit.AgentDispatchService", "ListDispatch"): (api.ListAgentDispatchRequest, api.ListAgentDispatchResponse),
}


@dataclass
class Call:
    service: str
    method: str
    request: Message
    grants: Any


@dataclass
class FakeLiveKit:
    calls: list[Call] = field(default_factory=list)
    rooms: dict[str, Any] = field(default_factory=dict)
    # (service, method) -> Twirp error code to answer once, e.g. {("livekit.RoomService", "CreateRoom"): "unavailable"}
    fail_once: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                outer._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeLiveKit":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def dispatches(self) -> list[Any]:
        with self._lock:
            return [c.request for c in self.calls if c.method == "CreateDispatch"]

    def created_rooms(self) -> list[Any]:
        with self._lock:
            return [c.request for c in self.calls if c.method == "CreateRoom"]

    # ---- protocol ---------------------------------------------------------------------------

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length)
        parts = h.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "twirp" or (parts[1], parts[2]) not in _METHODS:
            return self._error(h, 404, "bad_route", f"no such method {h.path}")
        service, method = parts[1], parts[2]
        auth = h.headers.get("authorization") or ""
        if not auth.lower().startswith("bearer "):
            return self._error(h, 401, "unauthenticated", "missing bearer token")
        try:
            claims = api.TokenVerifier(API_KEY, API_SECRET).verify(auth.split(" ", 1)[1].strip())
        except Exception:
            return self._error(h, 401, "unauthenticated", "invalid token")
        req_cls, resp_cls = _METHODS[(service, method)]
        as_json = "json" in (h.headers.get("content-type") or "")
        req = req_cls()
        try:
            if as_json:
                json_format.Parse(raw.decode() or "{}", req, ignore_unknown_fields=True)
            else:
                req.ParseFromString(raw)
        except Exception:
            return self._error(h, 400, "malformed", "cannot parse request")
        with self._lock:
            self.calls.append(Call(service, method, req, claims))
            failure = self.fail_once.pop((service, method), None)
        if failure:
            return self._error(h, 503 if failure == "unavailable" else 400, failure, "injected failure")
        resp = self._respond(method, req, resp_cls)
        if as_json:
            body = json_format.MessageToJson(resp).encode()
            ctype = "application/json"
        else:
            body = resp.SerializeToString()
            ctype = "application/protobuf"
        h.send_response(200)
        h.send_header("content-type", ctype)
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _respond(self, method: str, req: Any, resp_cls: type[Message]) -> Message:
        if method == "CreateRoom":
            room = api.Room(name=req.name, sid=f"RM_{len(self.rooms) + 1:06d}", metadata=req.metadata,
                            creation_time=int(time.time()), empty_timeout=req.empty_timeout)
            with self._lock:
                self.rooms[req.name] = room
            return room
        if method == "CreateDispatch":
            return api.AgentDispatch(id=f"AD_{len(self.calls):06d}", agent_name=req.agent_name, room=req.room, metadata=req.metadata)
        if method == "ListRooms":
            with self._lock:
                return api.ListRoomsResponse(rooms=list(self.rooms.values()))
        if method == "DeleteRoom":
            with self._lock:
                self.rooms.pop(req.room, None)
        return resp_cls()

    @staticmethod
    def _error(h: http.server.BaseHTTPRequestHandler, status: int, code: str, msg: str) -> None:
        body = json.dumps({"code": code, "msg": msg}).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

"""Report what happened to the service: ``POST /api/webhooks/call-status`` (SPEC §2).

Each event is JSON, signed per Standard Webhooks with the PyPI ``standardwebhooks`` package:
``webhook-id`` (one per event: ``msg_`` + 32 hex digits, the same on every retry of it),
``webhook-timestamp`` (Unix seconds, fresh on every try) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256>`` over ``{id}.{timestamp}.{body}``, re-signed on every try).

Delivery: 3 tries in all; between tries an exponential backoff with full jitter
(``uniform(0, min(max_delay, base_delay * 2**(n-1)))`` after try ``n``); a ``Retry-After`` of a
429/503 is honoured up to ``max_retry_after``. Retried: network errors, timeouts, 429 and 5xx.
Never retried: any other answer (2xx is success; other 4xx, 3xx mean "do not send this again").

Configuration: ``DUECALL_WEBHOOK_URL`` and ``WEBHOOK_SECRET`` (``whsec_…``; of a comma-separated
list the first one signs). The body, the secret and the signature are never logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from standardwebhooks import Webhook

from .outcomes import Outcome
from .sip import Failure

__all__ = [
    "DeliveryResult",
    "WebhookClient",
    "WebhookConfigError",
    "build_body",
    "encode_body",
    "format_occurred_at",
    "new_webhook_id",
    "signing_secret",
    "MAX_BODY_BYTES",
]

log = logging.getLogger("duecall_agent.webhook")

MAX_BODY_BYTES = 64 * 1024  # the service answers 413 above this
EVENT_TYPES = ("call_answered", "call_completed", "call_failed")
RETRY_STATUSES = frozenset({429}) | frozenset(range(500, 600))
_TRUNCATION_MARK = "\n…[transcript truncated]…\n"


class WebhookConfigError(ValueError):
    """DUECALL_WEBHOOK_URL or WEBHOOK_SECRET missing or unusable (the message names which)."""


def signing_secret(value: str | None) -> str:
    """The secret that signs: the first non-empty entry of a comma-separated ``WEBHOOK_SECRET``."""
    for part in (value or "").split(","):
        part = part.strip()
        if part:
            try:
                Webhook(part)
            except Exception:
                raise WebhookConfigError("WEBHOOK_SECRET: not a whsec_<base64> secret") from None
            return part
    raise WebhookConfigError("WEBHOOK_SECRET: missing")


def new_webhook_id() -> str:
    return "msg_" + uuid.uuid4().hex


def format_occurred_at(when: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` and whole seconds: ``2026-11-24T10:15:00Z``."""
    if when.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    return when.astimezone(dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_body(
    event_type: str,
    reminder_id: str,
    attempt: int | None,
    occurred_at: dt.datetime,
    *,
    outcome: Outcome | None = None,
    failure: Failure | None = None,
) -> dict[str, Any]:
    """The SPEC §2 body as a dict, keys in a fixed order."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event_type {event_type!r}")
    if event_type == "call_completed" and outcome is None:
        raise ValueError("call_completed needs an outcome")
    if outcome is not None and event_type != "call_completed":
        raise ValueError("only call_completed carries an outcome")
    if failure is not None and event_type != "call_failed":
        raise ValueError("only call_failed carries a failure")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1):
        raise ValueError("attempt must be an integer >= 1")
    body: dict[str, Any] = {"event_type": event_type, "reminder_id": reminder_id}
    if attempt is not None:  # without it the service applies the event to the current attempt
        body["attempt"] = attempt
    body["occurred_at"] = format_occurred_at(occurred_at)
    if outcome is not None:
        body["outcome"] = outcome.to_json()
    if failure is not None:
        body["failure"] = failure.to_json()
    return body


def encode_body(body: Mapping[str, Any], *, max_bytes: int = MAX_BODY_BYTES) -> str:
    """Compact JSON, UTF-8 kept as is. A transcript that would push the body over ``max_bytes``
    is cut in the middle (its start and end are kept), so the outcome still gets through."""
    text = _dumps(body)
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    outcome = body.get("outcome")
    transcript = outcome.get("transcript") if isinstance(outcome, dict) else None
    if not isinstance(transcript, str):
        raise ValueError("event body is larger than the service accepts")
    without = dict(body, outcome=dict(outcome, transcript=""))
    budget = max_bytes - len(_dumps(without).encode("utf-8"))
    cut = _cut_middle(transcript, budget)
    text = _dumps(dict(body, outcome=dict(outcome, transcript=cut)))
    if len(text.encode("utf-8")) > max_bytes:
        raise ValueError("event body is larger than the service accepts")
    return text


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _cut_middle(text: str, budget_json_bytes: int) -> str:
    """Longest head+mark+tail of ``text`` whose JSON-escaped UTF-8 size fits the budget."""

    def size(s: str) -> int:
        return len(_dumps(s).encode("utf-8")) - 2  # without the quotes

    if size(text) <= budget_json_bytes:
        return text
    lo, hi = 0, len(text) // 2
    best = _TRUNCATION_MARK.strip()
    while lo <= hi:  # binary search on the kept characters per side
        mid = (lo + hi) // 2
        candidate = text[:mid] + _TRUNCATION_MARK + (text[-mid:] if mid else "")
        if size(candidate) <= budget_json_bytes:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best


@dataclasses.dataclass(frozen=True)
class DeliveryResult:
    """``delivered`` (2xx), ``rejected`` (a non-retryable answer, with its status) or
    ``gave_up`` (every try failed with a retryable status or a network error)."""

    status: str
    webhook_id: str
    attempts: int
    http_status: int | None = None
    error: str | None = None
    response: Any = None

    @property
    def delivered(self) -> bool:
        return self.status == "delivered"


Sleep = Callable[[float], Awaitable[None]]


class WebhookClient:
    def __init__(
        self,
        url: str,
        secret: str,
        *,
        max_attempts: int = 3,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        max_retry_after: float = 30.0,
        timeout: float = 5.0,
        sleep: Sleep = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
        id_factory: Callable[[], str] = new_webhook_id,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not url or not url.startswith(("http://", "https://")):
            raise WebhookConfigError("DUECALL_WEBHOOK_URL: missing or not an http(s) URL")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.url = url
        self._webhook = Webhook(signing_secret(secret))
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_retry_after = max_retry_after
        self.timeout = timeout
        self._sleep = sleep
        self._rand = rand
        self._clock = clock
        self._id_factory = id_factory
        self._transport = transport

    def worst_case_delivery_secs(self) -> float:
        """The longest one event's delivery can take: every try running into every httpx timeout
        (connect, write, read, pool: ``timeout`` each) and the longest wait between tries."""
        wait = max(self.max_delay, self.max_retry_after)
        return self.max_attempts * 4 * self.timeout + (self.max_attempts - 1) * wait

    def __repr__(self) -> str:  # never shows the secret
        return f"WebhookClient(url={self.url!r}, max_attempts={self.max_attempts})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> "WebhookClient":
        env = os.environ if env is None else env
        url = (env.get("DUECALL_WEBHOOK_URL") or "").strip()
        if not url:
            raise WebhookConfigError("DUECALL_WEBHOOK_URL: missing")
        return cls(url, env.get("WEBHOOK_SECRET") or "", **kwargs)

    # ---- events ---------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), tz=dt.timezone.utc)

    async def call_answered(
        self, reminder_id: str, attempt: int, *, occurred_at: dt.datetime | None = None
    ) -> DeliveryResult:
        return await self.send(build_body("call_answered", reminder_id, attempt, occurred_at or self.now()))

    async def call_completed(
        self, reminder_id: str, attempt: int, outcome: Outcome, *, occurred_at: dt.datetime | None = None
    ) -> DeliveryResult:
        return await self.send(
            build_body("call_completed", reminder_id, attempt, occurred_at or self.now(), outcome=outcome)
        )

    async def call_failed(
        self,
        reminder_id: str,
        attempt: int | None,
        failure: Failure | None = None,
        *,
        occurred_at: dt.datetime | None = None,
    ) -> DeliveryResult:
        return await self.send(
            build_body("call_failed", reminder_id, attempt, occurred_at or self.now(), failure=failure)
        )

    # ---- delivery -------------------------------------------------------------------------

    def sign(self, webhook_id: str, timestamp: int, body: str) -> dict[str, str]:
        """The three Standard Webhooks headers for one try."""
        when = dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self._webhook.sign(webhook_id, when, body),
        }

    def backoff(self, tries_done: int) -> float:
        """Full jitter: uniform in ``[0, min(max_delay, base_delay * 2**(tries_done-1))]``."""
        cap = min(self.max_delay, self.base_delay * (2 ** (tries_done - 1)))
        return cap * min(max(self._rand(), 0.0), 1.0)

    async def send(self, body: Mapping[str, Any], *, webhook_id: str | None = None) -> DeliveryResult:
        """Deliver one event (the same ``webhook-id`` on every try); never raises for delivery
        problems, only returns how it went."""
        text = encode_body(body)
        payload = text.encode("utf-8")
        webhook_id = webhook_id or self._id_factory()
        ctx = {
            "event_type": body.get("event_type"),
            "reminder_id": body.get("reminder_id"),
            "attempt": body.get("attempt"),
            "webhook_id": webhook_id,
        }
        last_status: int | None = None
        last_error: str | None = None
        async with httpx.AsyncClient(
            timeout=self.timeout, transport=self._transport, follow_redirects=False, trust_env=False
        ) as http:
            for n in range(1, self.max_attempts + 1):
                headers = self.sign(webhook_id, int(self._clock()), text)
                headers["content-type"] = "application/json"
                retry_after: float | None = None
                try:
                    resp = await http.post(self.url, content=payload, headers=headers)
                except httpx.HTTPError as exc:  # connect/read/write errors and timeouts
                    last_status, last_error = None, type(exc).__name__
                    log.warning("webhook try %d/%d failed: %s", n, self.max_attempts, last_error, extra={"duecall": ctx})
                else:
                    last_status, last_error = resp.status_code, None
                    if 200 <= resp.status_code < 300:
                        log.info("webhook delivered (try %d, status %d)", n, resp.status_code, extra={"duecall": ctx})
                        return DeliveryResult("delivered", webhook_id, n, resp.status_code, None, _json_or_none(resp))
                    if resp.status_code not in RETRY_STATUSES:
                        err = _error_code(resp)
                        log.error(
                            "webhook rejected with status %d (%s); not retried",
                            resp.status_code,
                            err or "no error code",
                            extra={"duecall": ctx},
                        )
                        return DeliveryResult("rejected", webhook_id, n, resp.status_code, err, _json_or_none(resp))
                    log.warning("webhook try %d/%d answered %d", n, self.max_attempts, resp.status_code, extra={"duecall": ctx})
                    if resp.status_code in (429, 503):
                        retry_after = _retry_after_seconds(resp.headers.get("retry-after"))
                if n < self.max_attempts:
                    delay = self.backoff(n)
                    if retry_after is not None:
                        delay = max(delay, min(retry_after, self.max_retry_after))
                    await self._sleep(delay)
        log.error("webhook gave up after %d tries", self.max_attempts, extra={"duecall": ctx})
        return DeliveryResult("gave_up", webhook_id, self.max_attempts, last_status, last_error)


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except Exception:
        return None


def _error_code(resp: httpx.Response) -> str | None:
    data = _json_or_none(resp)
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = data["error"].get("code")
        if isinstance(code, str):
            return code[:80]
    return None


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # the HTTP-date form is not worth supporting here
    return seconds if seconds >= 0 else None

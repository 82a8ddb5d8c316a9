"""The order of the reports of one call attempt, independent of LiveKit.

- ``call_answered`` at most once, and before the terminal event (a terminal event waits for it);
- exactly one terminal event (``call_completed`` or ``call_failed``): whoever comes first — a
  final outcome recorded mid-call, the session ending, the agent hanging up, the job shutting
  down, an error — sends it, later calls get the same result back without sending anything;
- one exception: an opt-out heard *after* another outcome was reported is sent as a second
  ``call_completed`` (``opted_out``, its own webhook id). The service adds the number to its
  suppression list whatever the attempt's state (SPEC §7: an opt-out is never lost).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from .metadata import CallMetadata
from .outcomes import Outcome
from .sip import Failure
from .webhook_client import DeliveryResult

log = logging.getLogger("duecall_agent.report")


class EventSender(Protocol):
    async def call_answered(self, reminder_id: str, attempt: int) -> DeliveryResult: ...

    async def call_completed(self, reminder_id: str, attempt: int, outcome: Outcome) -> DeliveryResult: ...

    async def call_failed(self, reminder_id: str, attempt: int, failure: Failure | None = None) -> DeliveryResult: ...


class CallReporter:
    def __init__(self, sender: EventSender, reminder_id: str, attempt: int) -> None:
        self._sender = sender
        self.reminder_id = reminder_id
        self.attempt = attempt
        self._answered: asyncio.Task[DeliveryResult] | None = None
        self._terminal: asyncio.Task[DeliveryResult] | None = None
        self._terminal_kind: str | None = None
        self._terminal_result: str | None = None
        self._opt_out: asyncio.Task[DeliveryResult] | None = None

    @classmethod
    def for_call(cls, sender: EventSender, md: CallMetadata) -> "CallReporter":
        return cls(sender, md.reminder_id, md.attempt)

    @property
    def finished(self) -> bool:
        return self._terminal is not None

    @property
    def reported_result(self) -> str | None:
        """The ``result`` of the ``call_completed`` under way or sent (None: none, or call_failed)."""
        return self._terminal_result

    async def wait(self) -> DeliveryResult | None:
        """The terminal report's result once delivered (or given up), and a late opt-out's
        delivery; None if no terminal report was started."""
        if self._terminal is None:
            return None
        result = await asyncio.shield(self._terminal)
        if self._opt_out is not None:
            await asyncio.shield(self._opt_out)
        return result

    async def opted_out_after(self, outcome: Outcome) -> DeliveryResult | None:
        """An opt-out heard after another ``call_completed`` was reported: send it too (once).
        Before any report it is the terminal report itself."""
        if self._terminal is None:
            return await self.completed(outcome)
        if self._terminal_result == "opted_out" or self._opt_out is not None:
            return await asyncio.shield(self._opt_out) if self._opt_out is not None else None
        self._opt_out = asyncio.ensure_future(self._send_after_terminal(outcome))
        return await asyncio.shield(self._opt_out)

    async def _send_after_terminal(self, outcome: Outcome) -> DeliveryResult:
        assert self._terminal is not None
        try:
            await self._terminal  # in order: the service sees the first outcome, then the opt-out
        except Exception:
            log.exception("terminal delivery raised")
        return await self._sender.call_completed(self.reminder_id, self.attempt, outcome)

    def answered(self) -> asyncio.Task[DeliveryResult]:
        """Start sending ``call_answered`` in the background (once); the conversation goes on."""
        if self._answered is None:
            self._answered = asyncio.ensure_future(self._sender.call_answered(self.reminder_id, self.attempt))
        return self._answered

    async def completed(self, outcome: Outcome) -> DeliveryResult:
        return await self._finish("call_completed", outcome=outcome)

    async def failed(self, failure: Failure | None) -> DeliveryResult:
        return await self._finish("call_failed", failure=failure)

    async def _finish(self, kind: str, *, outcome: Outcome | None = None, failure: Failure | None = None) -> DeliveryResult:
        if self._terminal is None:
            self._terminal_kind = kind
            self._terminal_result = outcome.result.value if outcome is not None else None
            self._terminal = asyncio.ensure_future(self._send_terminal(kind, outcome, failure))
        else:
            log.debug("terminal event already under way; %s not sent", kind)
        # shield: a caller being cancelled (job shutdown) must not cancel the delivery itself
        return await asyncio.shield(self._terminal)

    async def _send_terminal(self, kind: str, outcome: Outcome | None, failure: Failure | None) -> DeliveryResult:
        if self._answered is not None:
            try:
                await self._answered
            except Exception:  # its own delivery problem is logged by the client
                log.exception("call_answered delivery raised")
        if kind == "call_completed":
            assert outcome is not None
            return await self._sender.call_completed(self.reminder_id, self.attempt, outcome)
        return await self._sender.call_failed(self.reminder_id, self.attempt, failure)

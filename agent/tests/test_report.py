"""Order and uniqueness of one attempt's reports (no LiveKit involved)."""

from __future__ import annotations

import asyncio

from duecall_agent.outcomes import Outcome, Result
from duecall_agent.report import CallReporter
from duecall_agent.sip import Failure
from duecall_agent.webhook_client import DeliveryResult

RID = "6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10"


class FakeSender:
    def __init__(self, answered_delay: float = 0.0) -> None:
        self.sent: list[tuple] = []
        self.answered_delay = answered_delay

    async def call_answered(self, reminder_id: str, attempt: int) -> DeliveryResult:
        await asyncio.sleep(self.answered_delay)
        self.sent.append(("call_answered", reminder_id, attempt))
        return DeliveryResult("delivered", "msg_a", 1, 200)

    async def call_completed(self, reminder_id: str, attempt: int, outcome: Outcome) -> DeliveryResult:
        await asyncio.sleep(0.01)
        self.sent.append(("call_completed", reminder_id, attempt, outcome.result))
        return DeliveryResult("delivered", "msg_c", 1, 200)

    async def call_failed(self, reminder_id: str, attempt: int, failure: Failure | None = None) -> DeliveryResult:
        self.sent.append(("call_failed", reminder_id, attempt, failure))
        return DeliveryResult("delivered", "msg_f", 1, 200)


def test_answered_is_sent_before_completed_even_when_slow() -> None:
    async def main() -> list[tuple]:
        s = FakeSender(answered_delay=0.05)
        r = CallReporter(s, RID, 2)
        r.answered()
        await r.completed(Outcome(Result.PAID))
        return s.sent

    assert [e[0] for e in asyncio.run(main())] == ["call_answered", "call_completed"]


def test_exactly_one_terminal_event_whoever_comes_first() -> None:
    async def main() -> tuple[list[tuple], list[DeliveryResult]]:
        s = FakeSender()
        r = CallReporter(s, RID, 2)
        r.answered()
        r.answered()
        results = await asyncio.gather(
            r.completed(Outcome(Result.PAID)),
            r.failed(Failure("late error")),
            r.completed(Outcome(Result.OTHER)),
        )
        results.append(await r.wait())  # type: ignore[arg-type]
        return s.sent, results

    sent, results = asyncio.run(main())
    assert sent == [("call_answered", RID, 2), ("call_completed", RID, 2, Result.PAID)]
    assert {res.webhook_id for res in results} == {"msg_c"}


def test_failed_without_answer() -> None:
    async def main() -> list[tuple]:
        s = FakeSender()
        r = CallReporter(s, RID, 1)
        assert await r.wait() is None and not r.finished
        await r.failed(Failure("sip trunk error", 503, True))
        assert r.finished
        return s.sent

    assert asyncio.run(main()) == [("call_failed", RID, 1, Failure("sip trunk error", 503, True))]


def test_a_cancelled_caller_does_not_cancel_the_delivery() -> None:
    async def main() -> list[tuple]:
        s = FakeSender()
        r = CallReporter(s, RID, 1)
        waiter = asyncio.ensure_future(r.completed(Outcome(Result.BUSY)))
        await asyncio.sleep(0)
        waiter.cancel()
        await r.wait()
        return s.sent

    assert asyncio.run(main()) == [("call_completed", RID, 1, Result.BUSY)]

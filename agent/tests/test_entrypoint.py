"""The job's answered path through the real ``entrypoint`` and ``_Call.run``: the SIP participant
is created (the customer picks up), and the voice session runs for real in text mode (no LiveKit
room, no STT/TTS; the LLM is the OpenAI plugin pointed at a closed loopback port and is never
asked). Reports go signed to the loopback receiver. Each test names, in its docstring, the line
of agent.py whose removal makes it fail."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import VALID_METADATA, FakeCtx, Receiver, signed_events
from scripted_llm import Call, Say, ScriptedLLM

import duecall_agent.agent as agent_mod
from duecall_agent import providers
from duecall_agent.metadata import parse_metadata
from livekit.agents import AMDCategory, AMDPredictionEvent
from livekit.agents.voice.events import CloseReason

MD = parse_metadata(VALID_METADATA)
IDENTITY = f"customer-{MD.reminder_id}-{MD.attempt}"
WAIT_SECS = 2.0  # every wait is bounded: a broken path fails, it does not hang
TERMINAL = ("call_completed", "call_failed")


@pytest.fixture
def answered_env(job_env: Receiver, monkeypatch: pytest.MonkeyPatch) -> Receiver:
    monkeypatch.setattr(agent_mod, "GREETING_WAIT_SECS", 0.01)
    monkeypatch.setattr(providers, "build_stt", lambda *a: None)  # text only: nothing to transcribe
    monkeypatch.setattr(providers, "build_tts", lambda *a: None)  # nor to synthesise
    return job_env


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[agent_mod._Call]:
    """Every ``_Call`` the entrypoint makes (found without relying on the shutdown callback)."""
    made: list[agent_mod._Call] = []

    class Recorded(agent_mod._Call):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(agent_mod, "_Call", Recorded)
    return made


async def until(check: Callable[[], bool], what: str, timeout: float = WAIT_SECS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def answer(calls: list[agent_mod._Call], metadata: dict[str, Any] = VALID_METADATA) -> tuple[FakeCtx, agent_mod._Call]:
    """Run the job until its entrypoint returns: dialled, answered, greeted or voicemailed."""
    ctx = FakeCtx(json.dumps(metadata), None)  # no SIP error: the customer answers
    await asyncio.wait_for(agent_mod.entrypoint(ctx), WAIT_SECS)  # type: ignore[arg-type]
    [call] = calls
    assert call.session is not None and call.recorder is not None
    [req] = ctx.api.sip.requests
    assert req.participant_identity == IDENTITY and req.wait_until_answered
    return ctx, call


def events(receiver: Receiver) -> list[dict[str, Any]]:
    return signed_events(receiver)


def terminals(receiver: Receiver) -> list[dict[str, Any]]:
    return [e for e in events(receiver) if e["event_type"] in TERMINAL]


def messages(call: agent_mod._Call) -> list[tuple[str, str]]:
    assert call.session is not None
    return [(i.role, i.text_content or "") for i in call.session.history.items if i.type == "message"]


async def close_and_settle(ctx: FakeCtx, call: agent_mod._Call) -> None:
    assert call.session is not None
    await asyncio.wait_for(call.session.aclose(), WAIT_SECS)
    await asyncio.wait_for(call.reporter.wait(), WAIT_SECS)


# ---- call_answered ---------------------------------------------------------------------------------


def test_an_answered_call_reports_call_answered_during_the_call(answered_env: Receiver, calls: list[Any]) -> None:
    """Guards: `self.reporter.answered()` removed from `_Call.run` (no call_answered is sent)."""

    async def main() -> None:
        ctx, call = await answer(calls)
        # sent while the call goes on, not only as part of the ending
        await until(lambda: any(e["event_type"] == "call_answered" for e in events(answered_env)), "call_answered")
        assert ctx.shutdowns == [] and terminals(answered_env) == []
        await close_and_settle(ctx, call)

    asyncio.run(main())
    evs = events(answered_env)
    assert [e["event_type"] for e in evs] == ["call_answered", "call_completed"]
    assert (evs[0]["reminder_id"], evs[0]["attempt"]) == (MD.reminder_id, MD.attempt)


# ---- the session's close handler ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["session.aclose", "customer hung up"])
def test_the_session_closing_ends_the_call_with_one_report_and_deletes_the_room(
    answered_env: Receiver, calls: list[Any], how: str
) -> None:
    """Guards: `session.on("close", self._on_close)` removed from `_Call.run` (no report, the room
    stays)."""

    async def main() -> None:
        ctx, call = await answer(calls)
        await until(lambda: bool(messages(call)), "the opening line")
        if how == "session.aclose":
            await asyncio.wait_for(call.session.aclose(), WAIT_SECS)
        else:  # what room_io does with close_on_disconnect when the customer's participant leaves
            call.session._close_soon(reason=CloseReason.PARTICIPANT_DISCONNECTED)
        await until(lambda: bool(ctx.shutdowns), "the job to end")
        await until(lambda: bool(terminals(answered_env)), "the terminal report")
        await asyncio.sleep(0.1)  # nothing more may follow
        assert ctx.shutdowns == ["session closed"] and ctx.deleted_rooms == 1

    asyncio.run(main())
    [done] = terminals(answered_env)
    assert done["event_type"] == "call_completed"
    # nobody spoke after the opening line: nobody was reached
    assert done["outcome"]["result"] == "no_answer"
    assert done["outcome"]["transcript"].startswith("Agent: Hello, this is Alex, an automated AI assistant.")


# ---- the shutdown callback ------------------------------------------------------------------------


def test_a_job_shut_down_mid_call_sends_exactly_one_terminal_report(answered_env: Receiver, calls: list[Any]) -> None:
    """Guards: `ctx.add_shutdown_callback(call.on_shutdown)` removed from `entrypoint` (a killed
    job reports nothing)."""

    async def main() -> None:
        ctx, call = await answer(calls)
        await until(lambda: bool(messages(call)), "the opening line")
        assert terminals(answered_env) == []
        # the worker shuts the job down (drain, kill): LiveKit runs the job's shutdown callbacks
        assert ctx.shutdown_callbacks, "no shutdown callback registered"
        for cb in ctx.shutdown_callbacks:
            await asyncio.wait_for(cb("worker shutting down"), WAIT_SECS)
        assert len(terminals(answered_env)) == 1  # delivered before the callback returned
        # then the session closes as the job goes down: nothing more is sent
        await close_and_settle(ctx, call)
        await asyncio.sleep(0.1)

    asyncio.run(main())
    [done] = terminals(answered_env)
    assert done["event_type"] == "call_completed" and done["outcome"]["result"] == "no_answer"
    assert [e["event_type"] for e in events(answered_env)] == ["call_answered", "call_completed"]


# ---- the room options ----------------------------------------------------------------------------


def test_the_session_listens_to_the_dialled_customer_and_closes_when_they_leave(
    answered_env: Receiver, calls: list[Any], session_starts: list[dict[str, Any]]
) -> None:
    """Guards: `close_on_disconnect=True` changed to False, or the `participant_identity` changed,
    in `_Call.run`'s RoomOptions. (Removing `close_on_disconnect=True` alone is equivalent in
    livekit-agents 1.8.9, whose default is True: the last assert notices if that default changes.)"""

    async def main() -> None:
        ctx, call = await answer(calls)
        [start] = session_starts
        opts = start["room_options"]
        assert start["room"] is ctx.room and start["agent"] is call.agent
        assert opts.participant_identity == IDENTITY == ctx.api.sip.requests[0].participant_identity
        assert opts.close_on_disconnect is True
        assert MD.phone_number.lstrip("+") not in opts.participant_identity
        await close_and_settle(ctx, call)

    asyncio.run(main())
    from livekit.agents import room_io

    assert room_io.RoomOptions().close_on_disconnect is True


# ---- the opening line ----------------------------------------------------------------------------


def test_the_opening_line_is_said_in_code_before_any_user_input(answered_env: Receiver, calls: list[Any]) -> None:
    """Guards: `agent.open()` removed from `_Call.run` (nobody speaks first; the model is not
    asked either, so the customer hears silence)."""

    async def main() -> list[tuple[str, str]]:
        ctx, call = await answer(calls)
        await until(lambda: bool(messages(call)), "the opening line")
        assert call.agent is not None and call.agent.opened
        said = messages(call)
        assert call.recorder is not None
        assert said == [("assistant", call.recorder.opening_line())]  # first, and nothing before it
        await close_and_settle(ctx, call)
        return said

    [(_, line)] = asyncio.run(main())
    assert line.startswith("Hello, this is Alex, an automated AI assistant.") and "Ada Lovelace" in line
    for leak in ("123", "USD", "2026-12-01", "December"):  # nothing about the debt before identity
        assert leak not in line


# ---- an opt-out mid-call -------------------------------------------------------------------------


def test_an_opt_out_mid_call_is_reported_before_the_session_closes(answered_env: Receiver, calls: list[Any]) -> None:
    """Guards: `report_now=self.report_now` removed from the `PaymentReminderAgent(...)` in
    `_Call.run` (the opt-out would wait for the end of the call)."""

    async def main() -> None:
        ctx, call = await answer(calls)
        await until(lambda: bool(messages(call)), "the opening line")
        [opt_out] = [t for t in call.agent.tools if t.info.name == "opt_out"]
        reply = await asyncio.wait_for(opt_out(), WAIT_SECS)
        assert reply  # what the model is told to confirm
        # reported while the call is still up: the session has not closed, the room is there
        await until(lambda: bool(terminals(answered_env)), "the opt-out report")
        assert ctx.shutdowns == [] and ctx.deleted_rooms == 0
        assert call.session is not None and [r for r, _ in messages(call)] == ["assistant"]
        # then the session closes: the opt-out was the report, nothing else is sent
        await close_and_settle(ctx, call)
        await until(lambda: bool(ctx.shutdowns), "the job to end")
        await asyncio.sleep(0.1)

    asyncio.run(main())
    [done] = terminals(answered_env)
    assert done["event_type"] == "call_completed" and done["outcome"]["result"] == "opted_out"
    assert [e["event_type"] for e in events(answered_env)] == ["call_answered", "call_completed"]


# ---- answering-machine detection ------------------------------------------------------------------


class FakeAMD:
    """Stands in for livekit's ``AMD`` (which needs a room): gives a fixed verdict."""

    made: list["FakeAMD"] = []
    category = AMDCategory.HUMAN

    def __init__(self, session: Any, *, participant_identity: str, ivr_detection: bool) -> None:
        self.session = session
        self.participant_identity = participant_identity
        self.ivr_detection = ivr_detection
        self.entered = self.closed = False
        FakeAMD.made.append(self)

    async def __aenter__(self) -> "FakeAMD":
        self.entered = True
        return self

    async def execute(self) -> AMDPredictionEvent:
        return AMDPredictionEvent(speech_duration=2.5, category=self.category, reason="test", transcript="", delay=0.1)

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    "category,leaves_message",
    [(AMDCategory.MACHINE_VM, True), (AMDCategory.MACHINE_UNAVAILABLE, False), (AMDCategory.MACHINE_IVR, False)],
    ids=lambda v: getattr(v, "value", str(v)),
)
def test_a_machine_gets_the_limited_voicemail_or_none_and_the_call_ends_as_voicemail(
    answered_env: Receiver, calls: list[Any], monkeypatch: pytest.MonkeyPatch, category: AMDCategory, leaves_message: bool
) -> None:
    """Guards: `await self.leave_voicemail(verdict.category)` removed from `_Call.run` (the machine
    hears the opening line, nothing is reported as voicemail); and, for the machine-ivr and
    machine-unavailable cases, `leave_message=category_value == "machine-vm"` removed from
    `leave_voicemail` (a message is spoken where nobody can take it, and the summary says one
    was left — the bug this test found: the summary said so even when none was spoken)."""
    monkeypatch.setenv("AGENT_AMD", "on")
    monkeypatch.setenv("DUECALL_COMPANY_NAME", "Acme Services")
    monkeypatch.setenv("DUECALL_CALLBACK_NUMBER", "+1 800 555 0199")
    monkeypatch.setattr(FakeAMD, "made", [])
    monkeypatch.setattr(FakeAMD, "category", category)
    monkeypatch.setattr(agent_mod, "AMD", FakeAMD)

    async def main() -> tuple[FakeCtx, list[tuple[str, str]]]:
        ctx, call = await answer(calls)  # leave_voicemail hangs up before the entrypoint returns
        said = messages(call)
        await asyncio.wait_for(call.reporter.wait(), WAIT_SECS)
        await asyncio.sleep(0.05)
        return ctx, said

    ctx, said = asyncio.run(main())
    [detector] = FakeAMD.made
    assert detector.participant_identity == IDENTITY and detector.ivr_detection is False
    assert detector.entered and detector.closed
    if leaves_message:
        [(role, text)] = said
        assert role == "assistant"
        assert "Acme Services" in text and "+1 800 555 0199" in text
        for leak in ("Ada", "Lovelace", "123", "USD", "debt", "payment", "automated AI assistant"):
            assert leak not in text
    else:
        assert said == []  # neither a message nor the opening line
    [done] = terminals(answered_env)
    assert done["event_type"] == "call_completed" and done["outcome"]["result"] == "voicemail"
    if not leaves_message:
        assert done["outcome"]["summary"].startswith("Voicemail: no message was left.")
    assert [e["event_type"] for e in events(answered_env)] == ["call_answered", "call_completed"]
    assert ctx.shutdowns == ["voicemail"] and ctx.deleted_rooms == 1


def test_a_person_by_the_detectors_verdict_hears_the_opening_line(
    answered_env: Receiver, calls: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards: `verdict.is_machine` check in `_Call.run` (a person must never get the voicemail)."""
    monkeypatch.setenv("AGENT_AMD", "on")
    monkeypatch.setattr(FakeAMD, "made", [])
    monkeypatch.setattr(FakeAMD, "category", AMDCategory.HUMAN)
    monkeypatch.setattr(agent_mod, "AMD", FakeAMD)

    async def main() -> None:
        ctx, call = await answer(calls)
        await until(lambda: bool(messages(call)), "the opening line")
        assert call.recorder is not None and messages(call) == [("assistant", call.recorder.opening_line())]
        assert terminals(answered_env) == [] and ctx.shutdowns == []
        await close_and_settle(ctx, call)

    asyncio.run(main())
    [done] = terminals(answered_env)
    assert done["outcome"]["result"] == "no_answer"


# ---- an opt-out the model calls, through the running session ------------------------------------


def test_an_opt_out_the_model_calls_mid_call_is_reported_while_the_call_goes_on(
    answered_env: Receiver, calls: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards: `report_now=self.report_now` removed from the `PaymentReminderAgent(...)` in
    `_Call.run` — here with the tool called by the framework, as the model's reply to the
    customer's words (text input, as LiveKit's chat input delivers it)."""
    model = ScriptedLLM([Call.of("opt_out"), Say("Understood, we will not call you again. Goodbye.")])
    monkeypatch.setattr(providers, "build_llm", lambda *a: model)

    async def main() -> None:
        ctx, call = await answer(calls)
        await until(lambda: bool(messages(call)), "the opening line")
        handle = call.session.generate_reply(user_input="Please stop calling me.")
        await until(lambda: bool(terminals(answered_env)), "the opt-out report")
        assert ctx.shutdowns == [] and ctx.deleted_rooms == 0  # the call is still up
        await asyncio.wait_for(handle.wait_for_playout(), WAIT_SECS)
        await until(lambda: ("assistant", "Understood, we will not call you again. Goodbye.") in messages(call), "the goodbye")
        await close_and_settle(ctx, call)
        await until(lambda: bool(ctx.shutdowns), "the job to end")
        await asyncio.sleep(0.1)

    asyncio.run(main())
    # the model saw the opening line as its own words, then the customer's
    first = model.requests[0].chat_ctx
    said = [(m.role, m.text_content) for m in first.items if m.type == "message" and m.role != "system"]
    assert said[0][0] == "assistant" and said[0][1].startswith("Hello, this is Alex")
    assert said[-1] == ("user", "Please stop calling me.")
    [done] = terminals(answered_env)
    assert done["event_type"] == "call_completed" and done["outcome"]["result"] == "opted_out"
    assert "Please stop calling me." in done["outcome"]["transcript"]
    assert [e["event_type"] for e in events(answered_env)] == ["call_answered", "call_completed"]

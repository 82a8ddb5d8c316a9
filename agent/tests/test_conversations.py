"""Whole conversations with the real agent in a real ``AgentSession`` (text only: no STT, TTS, VAD
or room), the model replaced by :class:`scripted_llm.ScriptedLLM`. The script plays a model that
does what the instructions ask; the tests check what the agent's tools and recorder make of it —
the outputs the model is shown, the outcome, what is reported and when, what is said."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import re
import zoneinfo
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from conftest import VALID_METADATA
from scripted_llm import Call, Reply, Say, ScriptedLLM, answered_since_user, last_user_text

from duecall_agent.agent import Persona, PaymentReminderAgent
from duecall_agent.metadata import CallMetadata, parse_metadata
from duecall_agent.outcomes import OutcomeRecorder, Result
from duecall_agent.transcript import quote_checker, user_utterances
from livekit.agents import AgentSession, StopResponse, llm
from livekit.agents.voice.run_result import RunResult

TODAY = dt.date(2026, 11, 24)  # a Tuesday; "next Friday" is 2026-11-27 (or a week later)
NOW = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.timezone.utc)  # 10:00 in New York, 07:00 in LA
PERSONA = Persona(company_name="Acme Services", agent_name="Sam", callback_number="+1 800 555 0199")
STEP_SECS = 2.0  # no single run may take longer than this

# What nobody but the confirmed customer may hear: the amount (12345 minor units of USD, due
# 2026-12-01), the currency, the business, and words about a debt.
_LEAKS = re.compile(
    r"123\.45|12345|\b123\b|USD|dollar|2026-12-01|December|Acme|"
    r"\b(debt\w*|owe[sd]?|owing|payments?|balance|collect\w*|bill\w*|deuda\w*|cobr\w*|pag\w*|saldo\w*|factura\w*)\b",
    re.IGNORECASE,
)


def leaks(text: str) -> list[str]:
    return [m.group(0) for m in _LEAKS.finditer(text)]


# ---- the harness --------------------------------------------------------------------------------


@dataclasses.dataclass
class Conversation:
    md: CallMetadata
    recorder: OutcomeRecorder
    agent: PaymentReminderAgent
    model: ScriptedLLM
    session: AgentSession
    # everything that happened, in order: ("item", "type:role"), ("tool_output", name) (the
    # model may read it now), ("report_now", result), ("report_done", result), ("hang_up", reason),
    # ("closed", "")
    log: list[tuple[str, str]]
    closed: asyncio.Event

    async def say(self, text: str) -> RunResult:
        """The customer says ``text``; returns the run (the model's reply and tool calls)."""
        return await asyncio.wait_for(self.session.run(user_input=text), STEP_SECS)

    def reports(self) -> list[str]:
        return [value for what, value in self.log if what == "report_now"]

    def texts(self) -> list[str]:
        """Every assistant message and every tool output of the whole conversation."""
        out = []
        for item in self.session.history.items:
            if item.type == "message" and item.role == "assistant":
                out.append(item.text_content or "")
            elif item.type == "function_call_output":
                out.append(item.output)
        return out

    def assistant_messages(self) -> list[str]:
        return [
            item.text_content or ""
            for item in self.session.history.items
            if item.type == "message" and item.role == "assistant"
        ]


@contextlib.asynccontextmanager
async def conversation(
    script: Callable[[llm.ChatContext], Reply] | list[Reply],
    *,
    persona: Persona = PERSONA,
    opened: bool = True,
    safety_hangup_secs: float = 0,
    **metadata: Any,
) -> AsyncIterator[Conversation]:
    """The agent as the job builds it (recorder from the persona and metadata, quotes checked
    against what the customer said in the session), opened with its opening line. ``hang_up``
    stands in for deleting the room: it closes the session, as LiveKit would."""
    md = parse_metadata({**VALID_METADATA, **metadata})
    log: list[tuple[str, str]] = []
    closed = asyncio.Event()
    model = ScriptedLLM(script)
    session: AgentSession = AgentSession(llm=model)
    recorder = persona.recorder(
        md, TODAY, customer_said=quote_checker(lambda: user_utterances(session.history.items)), clock=lambda: NOW
    )
    background: set[asyncio.Task[Any]] = set()

    async def report_now() -> None:
        result = recorder.result.value if recorder.result else ""
        log.append(("report_now", result))
        recorder.reported = True  # as the job's report_now does: a reported promise stays as it is
        await asyncio.sleep(0.01)  # a delivery takes a moment; the tool waits for it
        log.append(("report_done", result))

    async def hang_up(reason: str) -> None:
        log.append(("hang_up", reason))
        task = asyncio.ensure_future(session.aclose())  # the room goes; the session closes
        background.add(task)

    agent = PaymentReminderAgent(
        md, recorder, persona, TODAY, hang_up=hang_up, report_now=report_now, safety_hangup_secs=safety_hangup_secs
    )

    def on_item(ev: Any) -> None:
        item = ev.item
        log.append(("item", f"{item.type}:{getattr(item, 'role', None) or getattr(item, 'name', '')}"))

    def on_close(_ev: Any) -> None:
        log.append(("closed", ""))
        closed.set()

    def on_tools(ev: Any) -> None:
        for out in ev.function_call_outputs:
            log.append(("tool_output", out.name))

    session.on("conversation_item_added", on_item)
    session.on("function_tools_executed", on_tools)
    session.on("close", on_close)
    try:
        await asyncio.wait_for(session.start(agent), STEP_SECS)
        if opened:
            await asyncio.wait_for(agent.open(), STEP_SECS)  # the opening line, said in code
            assert agent.opened
        yield Conversation(md, recorder, agent, model, session, log, closed)
    finally:
        if background:
            await asyncio.wait_for(asyncio.gather(*background, return_exceptions=True), STEP_SECS)
        await asyncio.wait_for(session.aclose(), STEP_SECS)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


def reacting(on_user: Callable[[str], Reply], on_output: Callable[[llm.FunctionCallOutput], Reply]) -> Callable[[llm.ChatContext], Reply]:
    """A model that answers the customer's words with ``on_user`` and, once its tool calls have
    returned, answers the newest output with ``on_output``."""

    def script(ctx: llm.ChatContext) -> Reply:
        outputs = answered_since_user(ctx)
        if outputs:
            return on_output(outputs[-1])
        return on_user(last_user_text(ctx))

    return script


def identified_then(on_user: Callable[[str], Reply]) -> Callable[[str], Reply]:
    """A customer who first says who they are: then the model calls confirm_identity."""

    def step(text: str) -> Reply:
        if "this is ada" in text.lower() or "speaking" in text.lower():
            return Call.of("confirm_identity")
        return on_user(text)

    return step


def say_back(out: llm.FunctionCallOutput) -> Reply:
    return Say("Thank you." if not out.is_error else "Sorry, could you say that again?")


# ---- before the opening line --------------------------------------------------------------------


def test_nothing_is_answered_before_the_opening_line_nor_to_a_machine() -> None:
    """Guards: a turn heard before open() (or after a voicemail) gets no reply; after open() it does."""
    async def turn(c: Conversation, text: str) -> None:
        msg = llm.ChatMessage(role="user", content=[text])
        await c.agent.on_user_turn_completed(c.session.history.copy(), msg)

    async def main() -> None:
        async with conversation([Call.of("voicemail_detected")], opened=False) as c:
            assert not c.agent.opened and c.assistant_messages() == []
            with pytest.raises(StopResponse):
                await turn(c, "Hello?")
            await c.agent.open()
            assert c.assistant_messages() == [c.recorder.opening_line()]
            await turn(c, "Hello?")  # now the model may answer
            await c.say(GREETING)  # a machine: the model calls voicemail_detected
            await asyncio.wait_for(c.closed.wait(), STEP_SECS)
            assert c.recorder.result is Result.VOICEMAIL
            with pytest.raises(StopResponse):
                await turn(c, "beep")

    run(main())


# ---- promises -----------------------------------------------------------------------------------


def test_a_promise_with_the_amount_in_words_is_recorded_with_the_resolved_date() -> None:
    """Guards: a promise stated in words is recorded as 12000 minor units on the customer's date."""
    quote = "I can pay one hundred twenty dollars next Friday"

    def on_user(text: str) -> Reply:
        if "one hundred twenty" in text:
            return Call.of("record_payment_promise", amount_minor=12000, date="2026-11-27", customer_quote=text)
        return Say("How much can you pay, and when?")

    async def main() -> None:
        async with conversation(reacting(identified_then(on_user), say_back)) as c:
            first = await c.say("Yes, this is Ada.")
            first.expect.next_event().is_function_call(name="confirm_identity")
            first.expect.next_event().is_function_call_output(is_error=False)
            first.expect.next_event().is_message(role="assistant")
            first.expect.no_more_events()

            result = await c.say(quote)
            result.expect.next_event().is_function_call(
                name="record_payment_promise",
                arguments={"amount_minor": 12000, "date": "2026-11-27", "customer_quote": quote},
            )
            out = result.expect.next_event().is_function_call_output(is_error=False).event().item
            assert "Recorded: 120.00 USD on 2026-11-27" in out.output
            result.expect.next_event().is_message(role="assistant")
            result.expect.no_more_events()

            assert c.recorder.result is Result.PAYMENT_PROMISED
            outcome = c.recorder.outcome().to_json()
            assert outcome["result"] == "payment_promised"
            assert outcome["promised_amount_minor"] == 12000 and outcome["promised_date"] == "2026-11-27"
            assert c.reports() == ["payment_promised"]  # a final outcome is reported at once

    run(main())


def test_a_bare_yes_is_no_promise() -> None:
    """Guards: "yes" to a question that named no amount is refused, and no promise is recorded."""

    def on_user(text: str) -> Reply:
        if text == "yes":  # the model takes the yes for a promise of the whole amount
            return Call.of("record_payment_promise", amount_minor=12345, date="2026-11-27", customer_quote="yes")
        return Say("Would you be able to take care of it?")

    async def main() -> None:
        async with conversation(reacting(identified_then(on_user), say_back)) as c:
            await c.say("Yes, this is Ada.")
            await c.say("Okay.")
            result = await c.say("yes")
            result.expect.next_event().is_function_call(name="record_payment_promise", arguments={"customer_quote": "yes"})
            out = result.expect.next_event().is_function_call_output(is_error=True).event().item
            assert "no amount and no date" in out.output and "not a promise" in out.output
            result.expect.next_event().is_message(role="assistant")
            result.expect.no_more_events()
            assert c.recorder.result is None and c.reports() == []
            assert c.recorder.outcome().promised_amount_minor is None

    run(main())


def test_a_negated_promise_is_refused() -> None:
    """Guards: "I can't pay one hundred twenty dollars next Friday" is no promise."""
    quote = "I can't pay one hundred twenty dollars next Friday"
    script: list[Reply] = [
        Call.of("confirm_identity"),
        Say("When can you pay?"),
        Call.of("record_payment_promise", amount_minor=12000, date="2026-11-27", customer_quote=quote),
        Say("Thank you."),
    ]

    async def main() -> None:
        async with conversation(script) as c:
            await c.say("Yes, this is Ada.")
            await c.say(quote)
            assert c.recorder.result is None

    run(main())


def test_a_promise_quote_the_customer_never_said_is_refused() -> None:
    """Guards: the quote is checked against the session's own transcript (no invented promise)."""

    def on_user(text: str) -> Reply:
        return Call.of(
            "record_payment_promise", amount_minor=12000, date="2026-11-27",
            customer_quote="I can pay one hundred twenty dollars next Friday",
        )

    async def main() -> None:
        async with conversation(reacting(identified_then(on_user), say_back)) as c:
            await c.say("Yes, this is Ada.")
            result = await c.say("I need to think about it.")
            result.expect.next_event().is_function_call(name="record_payment_promise")
            out = result.expect.next_event().is_function_call_output(is_error=True).event().item
            assert "did not say that" in out.output
            assert c.recorder.result is None

    run(main())


def test_a_date_the_words_do_not_name_is_refused_then_the_right_one_is_recorded() -> None:
    """Guards: the model's date must be one the customer's words name; it can retry with the right one."""
    quote = "I can pay one hundred twenty dollars next Friday"
    script: list[Reply] = [
        Call.of("confirm_identity"),
        Say("Thank you. The amount due is 123.45 USD. When can you pay?"),
        Call.of("record_payment_promise", amount_minor=12000, date="2026-11-28", customer_quote=quote),
        Call.of("record_payment_promise", amount_minor=12000, date="2026-11-27", customer_quote=quote),
        Say("Thank you, 120 dollars on Friday, November 27. Goodbye."),
    ]

    async def main() -> None:
        async with conversation(script) as c:
            await c.say("Yes, this is Ada.")
            result = await c.say(quote)
            result.expect.next_event().is_function_call(name="record_payment_promise", arguments={"date": "2026-11-28"})
            wrong = result.expect.next_event().is_function_call_output(is_error=True).event().item
            assert "not 2026-11-28" in wrong.output and "2026-11-27" in wrong.output
            result.expect.next_event().is_function_call(name="record_payment_promise", arguments={"date": "2026-11-27"})
            result.expect.next_event().is_function_call_output(is_error=False)
            result.expect.next_event().is_message(role="assistant")
            result.expect.no_more_events()
            outcome = c.recorder.outcome()
            assert (outcome.result, outcome.promised_amount_minor, outcome.promised_date) == (
                Result.PAYMENT_PROMISED, 12000, dt.date(2026, 11, 27),
            )
            assert c.reports() == ["payment_promised"]  # the refused call reported nothing

    run(main())


def test_a_reported_promise_is_not_revised_on_the_call() -> None:
    """Guards: once reported at once, a promise cannot be changed by a later revise on the same call."""
    first = "I can pay one hundred twenty dollars next Friday"
    second = "Actually make it one hundred dollars on December 4th"
    script: list[Reply] = [
        Call.of("confirm_identity"),
        Say("When can you pay?"),
        Call.of("record_payment_promise", amount_minor=12000, date="2026-11-27", customer_quote=first),
        Say("Thank you."),
        Call.of("record_payment_promise", amount_minor=10000, date="2026-12-04", customer_quote=second, revise=True),
        Say("I'm sorry, please call us back to change it."),
    ]

    async def main() -> None:
        async with conversation(script) as c:
            await c.say("Yes, this is Ada.")
            await c.say(first)
            result = await c.say(second)
            result.expect.next_event().is_function_call(name="record_payment_promise", arguments={"revise": True})
            out = result.expect.next_event().is_function_call_output(is_error=True).event().item
            assert "already reported" in out.output
            outcome = c.recorder.outcome()
            assert (outcome.promised_amount_minor, outcome.promised_date) == (12000, dt.date(2026, 11, 27))
            assert c.reports() == ["payment_promised"]

    run(main())


def test_amount_and_date_said_in_two_turns_are_joined_in_the_quote() -> None:
    """Guards: a quote joining two of the customer's turns with "..." is accepted when both parts were said."""
    quote = "one hundred twenty dollars ... next Friday"
    script: list[Reply] = [
        Call.of("confirm_identity"),
        Say("How much can you pay?"),
        Say("And on which day?"),
        Call.of("record_payment_promise", amount_minor=12000, date="2026-11-27", customer_quote=quote),
        Say("Thank you."),
    ]

    async def main() -> None:
        async with conversation(script) as c:
            await c.say("Yes, this is Ada.")
            await c.say("I could do one hundred twenty dollars.")
            result = await c.say("Next Friday.")
            result.expect.next_event().is_function_call(name="record_payment_promise")
            result.expect.next_event().is_function_call_output(is_error=False)
            assert c.recorder.outcome().promised_amount_minor == 12000

    run(main())


def test_the_call_is_hung_up_when_the_model_forgets_end_call() -> None:
    """Guards: after a final outcome, a model that never calls end_call is hung up by the safety timer."""
    script: list[Reply] = [Call.of("confirm_identity"), Say("Thanks."), Call.of("record_already_paid", note="paid Monday"), Say("Thank you!")]

    async def main() -> None:
        async with conversation(script, safety_hangup_secs=0.05) as c:
            await c.say("Yes, this is Ada.")
            await c.say("I already paid that on Monday.")
            await asyncio.wait_for(c.closed.wait(), STEP_SECS)
            assert c.recorder.result is Result.PAID and ("hang_up", "safety_timeout") in c.log
            assert c.reports() == ["paid"]

    run(main())


# ---- the right party ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "language,lines,goodbye",
    [
        ("en", ("Hello? Who is this?", "He's not here, I'm his wife."), "Thank you, I will try Ada another time. Goodbye."),
        ("es-MX", ("¿Bueno? ¿Quién habla?", "No está, soy su esposa."), "Gracias. Volveré a llamar a Ada en otro momento. Adiós."),
    ],
)
def test_a_third_party_hears_nothing_about_the_debt(language: str, lines: tuple[str, str], goodbye: str) -> None:
    """Guards: someone else who answers gets not_available and no word of amount, business or debt."""

    def on_user(text: str) -> Reply:
        if "wife" in text or "esposa" in text:
            return Call.of("customer_not_available")
        return Say("May I ask who I am speaking with?")

    def on_output(out: llm.FunctionCallOutput) -> Reply:
        said = out.output.split("say only this and end the call: ", 1)[-1]
        return [Say(said), Call.of("end_call")]

    async def main() -> None:
        async with conversation(reacting(on_user, on_output), language=language) as c:
            runs = [await c.say(lines[0])]
            runs.append(await c.say(lines[1]))
            last = runs[-1]
            last.expect.next_event().is_function_call(name="customer_not_available")
            last.expect.next_event().is_function_call_output(is_error=False)
            msg = last.expect.next_event().is_message(role="assistant").event().item
            assert msg.text_content == goodbye
            last.expect.next_event().is_function_call(name="end_call")
            await asyncio.wait_for(c.closed.wait(), STEP_SECS)

            assert c.recorder.result is Result.NOT_AVAILABLE and not c.recorder.identity_confirmed
            assert c.reports() == ["not_available"] and ("hang_up", "end_call") in c.log
            texts = c.texts()
            assert len(texts) >= 4  # the opening line, two replies, the tool's output
            for text in texts:
                assert leaks(text) == [], text
            for r in runs:
                for event in r.events:
                    item = event.item
                    text = item.text_content if item.type == "message" else getattr(item, "output", "")
                    assert leaks(text or "") == [], text
            # and the model itself was never told the amount
            for request in c.model.requests:
                assert "123.45" not in request.instructions and "2026-12-01" not in request.instructions

    run(main())


def test_a_third_party_asking_for_a_callback_is_not_available() -> None:
    """Guards: "call back later" from someone else is not_available, with no callback time and no debt words."""

    def on_user(text: str) -> Reply:
        return Call.of("request_callback", note="his wife answered", when="tomorrow at 5 pm")

    def on_output(out: llm.FunctionCallOutput) -> Reply:
        return [Say(out.output.split("say only this and end the call: ", 1)[-1]), Call.of("end_call")]

    async def main() -> None:
        async with conversation(reacting(on_user, on_output)) as c:
            result = await c.say("He's at work, call back tomorrow at 5 pm.")
            result.expect.next_event().is_function_call(name="request_callback")
            result.expect.next_event().is_function_call_output(is_error=False)
            await asyncio.wait_for(c.closed.wait(), STEP_SECS)
            outcome = c.recorder.outcome()
            assert outcome.result is Result.NOT_AVAILABLE and outcome.callback_at is None
            assert "wife" not in (outcome.summary or "")  # a third party's words are not kept
            assert c.reports() == ["not_available"]
            for text in c.texts():
                assert leaks(text) == [], text

    run(main())


def test_a_wrong_number_is_recorded_and_hears_nothing_about_the_debt() -> None:
    """Guards: "no Ada here" → wrong_number, reported, and nothing said about amount, business or debt."""
    script: list[Reply] = [Call.of("wrong_number"), [Say("I'm sorry for the trouble. Goodbye."), Call.of("end_call")]]

    async def main() -> None:
        async with conversation(script) as c:
            result = await c.say("There's no Ada here, you have the wrong number.")
            result.expect.next_event().is_function_call(name="wrong_number")
            result.expect.next_event().is_function_call_output(is_error=False)
            await asyncio.wait_for(c.closed.wait(), STEP_SECS)
            assert c.recorder.result is Result.WRONG_NUMBER and c.reports() == ["wrong_number"]
            for text in c.assistant_messages():
                assert leaks(text) == [], text
            # a wrong number cannot follow a confirmed identity (that would hide a reached customer)
            assert not c.recorder.identity_confirmed

    run(main())


def test_the_second_identifier_gates_the_debt_facts() -> None:
    """Guards: a wrong ZIP code discloses nothing; the right one gives the collector notice and the debt."""

    def on_user(text: str) -> Reply:
        return Call.of("confirm_identity", verify_answer="" if "speaking" in text else text)

    def on_output(out: llm.FunctionCallOutput) -> Reply:
        return Say("Could you tell me your ZIP code?" if out.is_error else "Thank you.")

    async def main() -> None:
        async with conversation(reacting(on_user, on_output), verify={"label": "ZIP code", "value": "02139"}) as c:
            first = await c.say("Yes, speaking.")
            first.expect.next_event().is_function_call(name="confirm_identity", arguments={"verify_answer": ""})
            asked = first.expect.next_event().is_function_call_output(is_error=True).event().item
            assert "ask the person for their ZIP code" in asked.output

            wrong = await c.say("It's 90210.")
            wrong.expect.next_event().is_function_call(name="confirm_identity", arguments={"verify_answer": "It's 90210."})
            refused = wrong.expect.next_event().is_function_call_output(is_error=True).event().item
            assert "does not match" in refused.output and "02139" not in refused.output
            assert not c.recorder.identity_confirmed
            for text in c.texts():
                assert leaks(text) == [], text
            assert "123.45" not in c.model.requests[-1].instructions  # the model was not told either

            right = await c.say("zero two one three nine")
            right.expect.next_event().is_function_call(name="confirm_identity")
            told = right.expect.next_event().is_function_call_output(is_error=False).event().item
            assert "This is Acme Services. This is an attempt to collect a debt" in told.output
            assert "123.45 USD" in told.output and "2026-12-01" in told.output
            right.expect.next_event().is_message(role="assistant")
            right.expect.no_more_events()
            assert c.recorder.identity_confirmed
            # from now on the model's instructions carry the facts
            assert "123.45 USD" in c.model.requests[-1].instructions

    run(main())


@pytest.mark.parametrize(
    "label,value,answer",
    [
        ("ZIP code", "02139", "02138 02139 02140"),
        ("ZIP code", "02139", "It's 90210, or maybe 02139, or 10001."),
        ("birth year", "1984", "1982 1983 1984 1985 1986"),
        ("birth year", "1984", "1983 1984"),
        ("birth year", "1984", "nineteen eighty three, nineteen eighty four or nineteen eighty five"),
    ],
)
def test_a_list_of_guesses_does_not_pass_the_second_identifier(label: str, value: str, answer: str) -> None:
    """Guards: one answer naming several candidates is no match (else two tries would allow any number of guesses)."""

    async def main() -> None:
        script: list[Reply] = [Call.of("confirm_identity", verify_answer=answer), Say("Sorry, which one is it?")]
        async with conversation(script, verify={"label": label, "value": value}) as c:
            result = await c.say(answer)
            result.expect.next_event().is_function_call(name="confirm_identity")
            out = result.expect.next_event().is_function_call_output(is_error=True).event().item
            assert "does not match" in out.output
            assert not c.recorder.identity_confirmed
            for text in c.texts():
                assert leaks(text) == [], text

    run(main())


@pytest.mark.parametrize(
    "label,value,answer",
    [
        ("ZIP code", "02139", "Yes, it's zero two one three nine."),
        ("ZIP code", "02139", "One second... it's 02139."),
        ("ZIP code", "02139", "02139-4307"),
        ("ZIP code", "02139", "02139, yes, 02139."),
        ("birth year", "1984", "nineteen eighty four"),
        ("birth year", "1984", "I was born in 1984, I'm forty two."),
    ],
)
def test_a_plain_answer_passes_the_second_identifier(label: str, value: str, answer: str) -> None:
    """Guards: ordinary ways of saying the identifier (digit words, ZIP+4, said twice) still match."""

    async def main() -> None:
        script: list[Reply] = [Call.of("confirm_identity", verify_answer=answer), Say("Thank you.")]
        async with conversation(script, verify={"label": label, "value": value}) as c:
            result = await c.say(answer)
            result.expect.next_event().is_function_call(name="confirm_identity")
            out = result.expect.next_event().is_function_call_output(is_error=False).event().item
            assert "123.45 USD" in out.output and c.recorder.identity_confirmed

    run(main())


def test_two_wrong_identifiers_end_in_not_available_and_lock_the_debt() -> None:
    """Guards: after two wrong ZIP codes even the right one is refused, and the call ends not_available."""

    def on_user(text: str) -> Reply:
        return Call.of("confirm_identity", verify_answer=text)

    def on_output(out: llm.FunctionCallOutput) -> Reply:
        if out.name == "confirm_identity" and "does not match" in out.output and "customer_not_available" in out.output:
            return Call.of("confirm_identity", verify_answer="02139")  # a model trying the right answer anyway
        if out.name == "confirm_identity" and "could not be confirmed" in out.output:
            return Call.of("customer_not_available")
        if out.name == "customer_not_available":
            return [Say(out.output.split("say only this and end the call: ", 1)[-1]), Call.of("end_call")]
        return Say("Sorry, could you repeat your ZIP code?")

    async def main() -> None:
        async with conversation(reacting(on_user, on_output), verify={"label": "ZIP code", "value": "02139"}) as c:
            await c.say("It's 90210.")
            last = await c.say("Oh, I mean 10001.")
            last.expect.next_event().is_function_call(name="confirm_identity")
            last.expect.next_event().is_function_call_output(is_error=True)
            last.expect.next_event().is_function_call(name="confirm_identity", arguments={"verify_answer": "02139"})
            locked = last.expect.next_event().is_function_call_output(is_error=True).event().item
            assert "could not be confirmed" in locked.output and "123.45" not in locked.output
            last.expect.next_event().is_function_call(name="customer_not_available")
            await asyncio.wait_for(c.closed.wait(), STEP_SECS)
            assert c.recorder.result is Result.NOT_AVAILABLE and not c.recorder.identity_confirmed
            for text in c.texts():
                assert leaks(text) == [], text
            assert c.reports() == ["not_available"]

    run(main())


def test_a_spanish_call_reads_the_promise_in_spanish_words() -> None:
    """Guards: a call in Spanish gives the notice in Spanish and reads "ciento veinte dólares el próximo viernes"."""
    quote = "Puedo pagar ciento veinte dólares el próximo viernes"
    script: list[Reply] = [
        Call.of("confirm_identity"),
        Say("Gracias. ¿Cuándo puede pagar?"),
        Call.of("record_payment_promise", amount_minor=12000, date="2026-11-27", customer_quote=quote),
        Say("Gracias, adiós."),
    ]

    async def main() -> None:
        async with conversation(script, language="es-MX", timezone="America/Mexico_City") as c:
            assert c.assistant_messages()[0].startswith("Hola, soy Sam, un asistente automático")
            first = await c.say("Sí, soy Ada.")
            first.expect.next_event().is_function_call(name="confirm_identity")
            told = first.expect.next_event().is_function_call_output(is_error=False).event().item
            assert "Acme Services intenta cobrar una deuda" in told.output and "123.45 USD" in told.output
            result = await c.say(quote)
            result.expect.next_event().is_function_call(name="record_payment_promise")
            result.expect.next_event().is_function_call_output(is_error=False)
            outcome = c.recorder.outcome()
            assert (outcome.result, outcome.promised_amount_minor, outcome.promised_date) == (
                Result.PAYMENT_PROMISED, 12000, dt.date(2026, 11, 27),
            )

    run(main())


# ---- final outcomes -----------------------------------------------------------------------------


def test_a_dispute_is_recorded_and_reported_at_once() -> None:
    """Guards: a dispute is disputed and reported before the model is shown the tool's output."""

    def on_user(text: str) -> Reply:
        return Call.of("record_dispute", note="says it is not theirs")

    async def main() -> None:
        async with conversation(reacting(identified_then(on_user), say_back)) as c:
            await c.say("Yes, this is Ada.")
            result = await c.say("I don't owe you anything, that's not mine.")
            result.expect.next_event().is_function_call(name="record_dispute")
            result.expect.next_event().is_function_call_output(is_error=False)
            result.expect.next_event().is_message(role="assistant")
            result.expect.no_more_events()
            assert c.recorder.result is Result.DISPUTED
            assert c.reports() == ["disputed"]
            done = c.log.index(("report_done", "disputed"))
            assert done < c.log.index(("tool_output", "record_dispute"))
            assert c.recorder.outcome().to_json()["result"] == "disputed"

    run(main())


def test_a_callback_time_is_resolved_in_the_customers_zone() -> None:
    """Guards: "tomorrow at 3pm" becomes callback_at 15:00 on the customer's (not the server's) clock."""

    def on_user(text: str) -> Reply:
        return Call.of("request_callback", when="tomorrow at 3pm")

    async def main() -> None:
        async with conversation(reacting(identified_then(on_user), say_back), timezone="America/Los_Angeles") as c:
            await c.say("Yes, this is Ada.")
            result = await c.say("I'm driving, call me tomorrow at 3pm.")
            result.expect.next_event().is_function_call(name="request_callback", arguments={"when": "tomorrow at 3pm"})
            out = result.expect.next_event().is_function_call_output(is_error=False).event().item
            assert "2026-11-25 at 15:00" in out.output
            outcome = c.recorder.outcome()
            assert outcome.result is Result.CALLBACK_REQUESTED
            la = zoneinfo.ZoneInfo("America/Los_Angeles")
            assert outcome.callback_at == dt.datetime(2026, 11, 25, 15, 0, tzinfo=la)
            assert outcome.callback_at.utcoffset() is not None
            assert outcome.to_json()["callback_at"] == "2026-11-25T23:00:00Z"
            assert c.reports() == ["callback_requested"]

    run(main())


def test_an_opt_out_is_reported_before_the_call_ends() -> None:
    """Guards: "stop calling me" → opted_out, reported (awaited) before the hang-up closes the session."""

    def on_user(text: str) -> Reply:
        if "stop calling" in text.lower():
            return Call.of("opt_out")
        return Say("Is this Ada Lovelace?")

    def on_output(out: llm.FunctionCallOutput) -> Reply:
        return [Say("Understood, you will not be called again. Goodbye."), Call.of("end_call")]

    async def main() -> None:
        async with conversation(reacting(on_user, on_output)) as c:
            result = await c.say("Stop calling me.")
            result.expect.next_event().is_function_call(name="opt_out")
            result.expect.next_event().is_function_call_output(is_error=False)
            result.expect.next_event().is_message(role="assistant")
            result.expect.next_event().is_function_call(name="end_call")
            await asyncio.wait_for(c.closed.wait(), STEP_SECS)

            assert c.recorder.result is Result.OPTED_OUT
            assert c.recorder.outcome().to_json()["result"] == "opted_out"
            assert c.reports() == ["opted_out"]
            order = [what for what, _ in c.log if what in ("report_now", "report_done", "hang_up", "closed")]
            assert order == ["report_now", "report_done", "hang_up", "closed"]

    run(main())


def test_an_opt_out_and_end_call_in_one_turn_still_reports_first() -> None:
    """Guards: opt_out and end_call called together — the report starts before the hang-up and ends before the close."""

    async def main() -> None:
        async with conversation([[Say("Understood. Goodbye."), Call.of("opt_out"), Call.of("end_call")]]) as c:
            result = await c.say("Stop calling me.")
            result.expect.contains_function_call(name="opt_out")
            result.expect.contains_function_call(name="end_call")
            await asyncio.wait_for(c.closed.wait(), STEP_SECS)
            assert c.recorder.result is Result.OPTED_OUT and c.reports() == ["opted_out"]
            log = c.log
            assert log.index(("report_now", "opted_out")) < log.index(("hang_up", "end_call"))
            assert log.index(("report_done", "opted_out")) < log.index(("closed", ""))

    run(main())


def test_an_opt_out_after_a_promise_replaces_it_and_is_reported_too() -> None:
    """Guards: an opt-out after a reported promise wins and is reported again (never lost)."""
    quote = "I can pay one hundred twenty dollars next Friday"
    script: list[Reply] = [
        Call.of("confirm_identity"),
        Say("When can you pay?"),
        Call.of("record_payment_promise", amount_minor=12000, date="2026-11-27", customer_quote=quote),
        Say("Thank you."),
        Call.of("opt_out"),
        [Say("Understood. Goodbye."), Call.of("end_call")],
    ]

    async def main() -> None:
        async with conversation(script) as c:
            await c.say("Yes, this is Ada.")
            await c.say(quote)
            result = await c.say("And don't ever call this number again.")
            result.expect.next_event().is_function_call(name="opt_out")
            result.expect.next_event().is_function_call_output(is_error=False)
            await asyncio.wait_for(c.closed.wait(), STEP_SECS)
            assert c.recorder.outcome().to_json() == {
                "result": "opted_out", "summary": "Customer asked not to be called again. [identity confirmed]",
            }
            assert c.reports() == ["payment_promised", "opted_out"]
            assert c.log.index(("report_done", "opted_out")) < c.log.index(("closed", ""))

    run(main())


# ---- voicemail ----------------------------------------------------------------------------------

GREETING = "Hi, you've reached Ada Lovelace. Please leave a message after the tone."


def voicemail_model(ctx: llm.ChatContext) -> Reply:
    return Call.of("voicemail_detected")


def test_a_voicemail_gets_only_the_limited_content_message() -> None:
    """Guards: the voicemail says the callback number, the persona and business, nothing about the debt."""

    async def main() -> None:
        async with conversation(voicemail_model) as c:
            result = await c.say(GREETING)
            result.expect.next_event().is_function_call(name="voicemail_detected")
            await asyncio.wait_for(c.closed.wait(), STEP_SECS)

            assert c.recorder.result is Result.VOICEMAIL and c.reports() == ["voicemail"]
            assert ("hang_up", "voicemail") in c.log
            opening, message = c.assistant_messages()
            assert opening == c.recorder.opening_line()
            assert message == "Hi, this is Sam calling from Acme Services. Please call me back at +1 800 555 0199. Thank you."
            for word in ("Ada", "Lovelace", "123", "USD", "dollar", "2026-12-01"):
                assert word not in message
            assert leaks(message.replace("Acme", "")) == []
            assert c.log.index(("report_done", "voicemail")) < c.log.index(("hang_up", "voicemail"))

    run(main())


def test_a_voicemail_without_a_callback_number_leaves_no_message() -> None:
    """Guards: with no callback number nothing is said to the machine; it is reported and hung up."""

    async def main() -> None:
        async with conversation(voicemail_model, persona=dataclasses.replace(PERSONA, callback_number=None)) as c:
            await c.say(GREETING)
            await asyncio.wait_for(c.closed.wait(), STEP_SECS)
            assert c.recorder.result is Result.VOICEMAIL and c.reports() == ["voicemail"]
            assert c.assistant_messages() == [c.recorder.opening_line()]  # nothing after the opening
            assert ("hang_up", "voicemail") in c.log
            assert c.recorder.outcome().summary.startswith("Voicemail: no message was left.")

    run(main())


def test_a_voicemail_never_names_a_business_that_suggests_debt() -> None:
    """Guards: a persona whose business name suggests debt leaves no message at all."""
    rec = dataclasses.replace(PERSONA, company_name="Acme Debt Recovery").recorder(parse_metadata(VALID_METADATA), TODAY)
    assert rec.record_voicemail() is None and rec.result is Result.VOICEMAIL
    custom = dataclasses.replace(PERSONA, voicemail_business="Acme Services", company_name="Acme Collections")
    message = custom.recorder(parse_metadata(VALID_METADATA), TODAY).voicemail_message()
    assert message is not None and "+1 800 555 0199" in message and "Sam" in message and "Acme Services" in message
    assert "Collections" not in message and "Ada" not in message


# ---- the harness itself -------------------------------------------------------------------------


def test_the_scripted_model_fails_loudly_when_its_script_runs_out() -> None:
    """Guards the harness: a conversation longer than its script is an error, not a silent pass."""
    from scripted_llm import ScriptExhausted

    async def main() -> None:
        async with conversation([Say("Is this Ada Lovelace?")]) as c:
            first = await c.say("Hello?")
            assert first.expect.next_event().is_message(role="assistant").event().item.text_content == "Is this Ada Lovelace?"
            with pytest.raises(ScriptExhausted):
                await c.say("Hello??")

    run(main())


# ---- livekit's mock_tools: the call kept up past the model's end_call ------------------------------


def test_a_final_outcome_is_not_replaced_when_the_call_goes_on_past_end_call() -> None:
    """Guards: the recorder's "already recorded" refusals (``record_promise`` and ``_set``; either
    alone holds) — a dispute, once reported, is not turned
    into a promise by a later turn (the misreport the service could never undo). ``end_call`` is
    replaced with livekit's ``mock_tools`` so the call stays up after the model ends it, as a slow
    hang-up or a customer who keeps talking would leave it."""
    from livekit.agents.voice.run_result import mock_tools

    ended: list[str] = []

    def on_user(text: str) -> Reply:
        if "not mine" in text:
            return [Call.of("record_dispute", note="says it is not theirs"), Call.of("end_call")]
        return Call.of(
            "record_payment_promise", amount_minor=12000, date="2026-11-27", customer_quote=text
        )

    async def main() -> None:
        with mock_tools(PaymentReminderAgent, {"end_call": lambda: ended.append("end_call")}):
            async with conversation(reacting(identified_then(on_user), say_back)) as c:
                await c.say("Yes, this is Ada.")
                result = await c.say("I don't owe you anything, that's not mine.")
                result.expect.contains_function_call(name="record_dispute")
                result.expect.contains_function_call(name="end_call")
                assert ended == ["end_call"] and not c.closed.is_set()
                later = await c.say("Well, fine, I will pay one hundred twenty dollars on Friday.")
                later.expect.next_event().is_function_call(name="record_payment_promise")
                out = later.expect.next_event().is_function_call_output(is_error=True).event().item
                assert "disputed is already recorded" in out.output
                assert c.recorder.result is Result.DISPUTED
                assert c.recorder.outcome().to_json()["result"] == "disputed"
                assert c.reports() == ["disputed"]  # nothing else was sent

    run(main())

"""agent.py against the installed livekit-agents 1.8: imports, tool schemas, tool behaviour, the
job's dial-failure path — all offline (fake job context, loopback webhook receiver)."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import types
from typing import Any

import pytest
from conftest import TEST_SECRET, VALID_METADATA, FakeCtx, Receiver, Reply, signed_events, text_only_start

import duecall_agent.agent as agent_mod
from duecall_agent import providers
from duecall_agent.agent import Persona, PaymentReminderAgent, build_instructions, load_call_metadata, worker_options
from duecall_agent.metadata import MetadataError, parse_metadata
from duecall_agent.outcomes import OutcomeRecorder, Result
from duecall_agent.transcript import quote_checker, transcript_from_items, user_utterances
from livekit import api
from livekit.agents import ChatContext, StopResponse, ToolError, WorkerOptions
from livekit.agents.llm.utils import build_legacy_openai_schema, build_strict_openai_schema, prepare_function_arguments

MD = parse_metadata(VALID_METADATA)
_events = signed_events
TODAY = dt.date(2026, 11, 24)
EXPECTED_TOOLS = {
    "confirm_identity", "record_payment_promise", "record_already_paid", "record_dispute", "record_refusal",
    "request_callback", "customer_not_available", "wrong_number", "record_other", "opt_out", "voicemail_detected", "end_call",
}


class Hangups:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def __call__(self, reason: str) -> None:
        self.reasons.append(reason)


def make_agent(said: list[str] | None = None, safety: float = 0.0) -> tuple[PaymentReminderAgent, OutcomeRecorder, Hangups]:
    rec = OutcomeRecorder(
        customer_name=MD.customer_name, amount_due_minor=MD.amount_due_minor, currency=MD.currency,
        due_date=MD.due_date, call_date=TODAY,
        customer_said=quote_checker(lambda: said) if said is not None else None,
    )
    hang = Hangups()
    return PaymentReminderAgent(MD, rec, Persona(company_name="Acme Billing"), TODAY, hang_up=hang, safety_hangup_secs=safety), rec, hang


class FakeRunContext:
    def __init__(self) -> None:
        self.waited = False

    async def wait_for_playout(self) -> None:
        self.waited = True


def tool(agent: PaymentReminderAgent, name: str) -> Any:
    [t] = [t for t in agent.tools if t.info.name == name]
    return t


def test_worker_options() -> None:
    opts = worker_options()
    assert isinstance(opts, WorkerOptions)
    assert opts.agent_name == "payment-reminder"
    assert opts.entrypoint_fnc is agent_mod.entrypoint and opts.prewarm_fnc is agent_mod.prewarm


def test_agent_name_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_NAME", "reminder-eu")
    try:
        assert importlib.reload(agent_mod).worker_options().agent_name == "reminder-eu"
    finally:
        monkeypatch.delenv("AGENT_NAME")
        importlib.reload(agent_mod)


def test_tools_and_their_schemas() -> None:
    agent, _, _ = make_agent()
    assert {t.info.name for t in agent.tools} == EXPECTED_TOOLS
    for t in agent.tools:
        assert t.info.description, t.info.name
        strict = build_strict_openai_schema(t)["function"]
        legacy = build_legacy_openai_schema(t)["function"]
        assert strict["name"] == legacy["name"] == t.info.name
        assert "context" not in json.dumps(strict["parameters"]), "RunContext is not an LLM parameter"
    params = build_strict_openai_schema(tool(agent, "record_payment_promise"))["function"]["parameters"]
    assert params["properties"]["amount_minor"]["type"] == "integer"
    assert set(params["required"]) >= {"amount_minor", "date", "customer_quote"}


def test_instructions_hold_no_debt_before_identity() -> None:
    agent, _, _ = make_agent()
    text = agent.instructions
    assert isinstance(text, str) and "Ada Lovelace" in text
    # the business is not named to whoever answers: it would tell a third party about the debt
    for leak in ("123.45", "12345", "2026-12-01", "December", "Acme Billing"):
        assert leak not in text
    assert "+14155550100" not in text


def test_confirm_identity_reveals_the_debt_to_the_model() -> None:
    agent, rec, _ = make_agent()
    out = asyncio.run(tool(agent, "confirm_identity")())
    assert "123.45 USD" in out and "2026-12-01" in out
    assert rec.identity_confirmed
    assert "123.45 USD" in agent.instructions


def test_promise_tool_enforces_the_rules() -> None:
    said = ["Yes, that's me.", "I will pay 120 dollars on December 1st."]
    agent, rec, hang = make_agent(said=said, safety=0.01)
    promise = tool(agent, "record_payment_promise")

    async def main() -> None:
        with pytest.raises(ToolError, match="identity"):
            await promise(12000, "2026-12-01", "I will pay 120 dollars on December 1st")
        await tool(agent, "confirm_identity")()
        with pytest.raises(ToolError, match="did not say"):
            await promise(12000, "2026-12-01", "I will pay everything tomorrow")
        with pytest.raises(ToolError, match="past"):
            await promise(12000, "2026-11-01", "I will pay 120 dollars on December 1st")
        out = await promise(12000, "2026-12-01", "I will pay 120 dollars on December 1st")
        assert "120.00 USD" in out
        await asyncio.sleep(0.05)  # the safety hang-up fires if the model never calls end_call

    asyncio.run(main())
    assert rec.result is Result.PAYMENT_PROMISED
    assert hang.reasons == ["safety_timeout"]


def test_llm_arguments_are_validated_by_the_framework() -> None:
    agent, _, _ = make_agent()
    promise = tool(agent, "record_payment_promise")
    args, kwargs = prepare_function_arguments(
        fnc=promise, json_arguments='{"amount_minor": 12000, "date": "2026-12-01", "customer_quote": "x", "revise": false}'
    )
    assert kwargs | dict(zip(["amount_minor", "date", "customer_quote", "revise"], args)) == {
        "amount_minor": 12000, "date": "2026-12-01", "customer_quote": "x", "revise": False,
    }
    with pytest.raises(ToolError):
        prepare_function_arguments(fnc=promise, json_arguments='{"amount_minor": "lots", "date": "2026-12-01", "customer_quote": "x"}')


def test_opt_out_tool_wins_and_conflicts_surface_as_tool_errors() -> None:
    agent, rec, _ = make_agent()

    async def main() -> None:
        await tool(agent, "request_callback")("")
        with pytest.raises(ToolError, match="already recorded"):
            await tool(agent, "record_other")("")
        await tool(agent, "opt_out")()

    asyncio.run(main())
    assert rec.result is Result.OPTED_OUT


def test_callback_tool_takes_the_customers_words_for_the_time() -> None:
    now = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.timezone.utc)
    rec = OutcomeRecorder(
        customer_name=MD.customer_name, amount_due_minor=MD.amount_due_minor, currency=MD.currency,
        due_date=MD.due_date, call_date=TODAY, language=MD.language, timezone=MD.timezone, clock=lambda: now,
    )
    agent = PaymentReminderAgent(MD, rec, Persona(company_name="Acme Billing"), TODAY, hang_up=Hangups(), safety_hangup_secs=0)
    params = build_strict_openai_schema(tool(agent, "request_callback"))["function"]["parameters"]
    assert set(params["properties"]) == {"note", "when"}
    args, kwargs = prepare_function_arguments(fnc=tool(agent, "request_callback"), json_arguments='{"note": "", "when": "tomorrow at 5 pm"}')

    async def main() -> str:
        await tool(agent, "confirm_identity")()
        return await tool(agent, "request_callback")(*args, **kwargs)

    assert "2026-11-25 at 17:00" in asyncio.run(main())
    assert rec.outcome().to_json()["callback_at"] == "2026-11-25T22:00:00Z"  # MD is a New York customer


def test_the_job_reads_words_in_the_calls_language_and_zone(job_env: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[OutcomeRecorder] = []

    class Recorder(OutcomeRecorder):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            built.append(self)

    monkeypatch.setattr(agent_mod, "OutcomeRecorder", Recorder)
    md = dict(VALID_METADATA, language="es-MX", timezone="America/Mexico_City")
    asyncio.run(agent_mod.entrypoint(FakeCtx(json.dumps(md), _sip_error("486"))))  # type: ignore[arg-type]
    [rec] = built
    assert (rec.language, rec.timezone) == ("es-MX", "America/Mexico_City")
    assert rec.clock().tzinfo is not None


def test_end_call_waits_for_the_goodbye_then_hangs_up() -> None:
    agent, _, hang = make_agent()
    ctx = FakeRunContext()
    with pytest.raises(StopResponse):
        asyncio.run(tool(agent, "end_call")(ctx))
    assert ctx.waited and hang.reasons == ["end_call"]


def _voicemail_by_tool(monkeypatch: pytest.MonkeyPatch, **persona: Any) -> tuple[OutcomeRecorder, list[tuple[str, bool]], Hangups, list[str]]:
    rec = OutcomeRecorder(
        customer_name=MD.customer_name, amount_due_minor=MD.amount_due_minor, currency=MD.currency,
        due_date=MD.due_date, call_date=TODAY, **persona,
    )
    hang, reported = Hangups(), []

    async def report_now() -> None:
        reported.append(rec.result.value if rec.result else "")

    agent = PaymentReminderAgent(MD, rec, Persona(), TODAY, hang_up=hang, report_now=report_now)
    said: list[tuple[str, bool]] = []

    class Handle:
        async def wait_for_playout(self) -> None:
            return None

    fake_session = types.SimpleNamespace(say=lambda text, allow_interruptions=True: said.append((text, allow_interruptions)) or Handle())
    monkeypatch.setattr(PaymentReminderAgent, "session", property(lambda self: fake_session))

    async def main() -> None:
        with pytest.raises(StopResponse):
            await tool(agent, "voicemail_detected")(FakeRunContext())
        await asyncio.sleep(0.01)

    asyncio.run(main())
    return rec, said, hang, reported


def test_voicemail_tool_says_the_limited_message_then_hangs_up(monkeypatch: pytest.MonkeyPatch) -> None:
    rec, said, hang, reported = _voicemail_by_tool(
        monkeypatch, company_name="Acme Services", callback_number="+1 800 555 0199", callback_contact="Sam Lee"
    )
    assert rec.result is Result.VOICEMAIL and reported == ["voicemail"]  # reported before the message
    [(text, interruptible)] = said
    assert "Acme Services" in text and "Sam Lee" in text and "+1 800 555 0199" in text and not interruptible
    for leak in ("Ada", "Lovelace", "123", "USD", "debt", "payment"):
        assert leak not in text
    assert hang.reasons == ["voicemail"]


def test_voicemail_without_a_callback_number_leaves_no_message(monkeypatch: pytest.MonkeyPatch) -> None:
    rec, said, hang, reported = _voicemail_by_tool(monkeypatch, company_name="Acme Services")
    assert rec.result is Result.VOICEMAIL and said == [] and hang.reasons == ["voicemail"]
    assert reported == ["voicemail"] and rec.outcome().summary.startswith("Voicemail: no message was left.")


def test_transcript_from_a_real_chat_context() -> None:
    chat = ChatContext.empty()
    chat.add_message(role="system", content="You are Alex ... secret rules")
    chat.add_message(role="assistant", content="Hello, am I speaking with Ada?")
    chat.add_message(role="user", content="Yes,   speaking.\n")
    chat.add_message(role="user", content="   ")
    chat.add_message(role="assistant", content="Thank you.")
    assert transcript_from_items(chat.items) == (
        "Agent: Hello, am I speaking with Ada?\nCustomer: Yes, speaking.\nAgent: Thank you."
    )
    assert user_utterances(chat.items) == ["Yes, speaking."]


def test_persona_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUECALL_COMPANY_NAME", "Acme Billing")
    monkeypatch.setenv("DUECALL_CALLBACK_NUMBER", "+1 800 555 0199")
    p = Persona.from_env()
    assert p.company_name == "Acme Billing" and p.callback_number == "+1 800 555 0199" and p.agent_name == "Alex"


def test_instructions_mention_today_and_minor_units() -> None:
    text = build_instructions(MD, Persona(), TODAY)
    assert "Tuesday, 2026-11-24" in text and "12.50 USD is 1250" in text


# ---- metadata from the job -----------------------------------------------------------------------


def fake_job(job_md: str, room_md: str = "") -> Any:
    return types.SimpleNamespace(job=types.SimpleNamespace(metadata=job_md, room=types.SimpleNamespace(metadata=room_md, name="r")))


def test_metadata_from_job_then_room(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIP_OUTBOUND_TRUNK_ID", raising=False)
    raw = json.dumps(VALID_METADATA)
    assert load_call_metadata(fake_job(raw)) == MD
    assert load_call_metadata(fake_job("", raw)) == MD
    with pytest.raises(MetadataError):
        load_call_metadata(fake_job("", ""))
    no_trunk = json.dumps({**VALID_METADATA, "sip_trunk_id": None})
    monkeypatch.setenv("SIP_OUTBOUND_TRUNK_ID", "ST_env")
    assert load_call_metadata(fake_job(no_trunk)).sip_trunk_id == "ST_env"


# ---- providers -----------------------------------------------------------------------------------


def test_provider_defaults_and_parsing() -> None:
    cfg = providers.ProviderConfig.from_env({})
    assert (cfg.stt, cfg.llm, cfg.tts, cfg.vad) == (
        providers.ProviderSpec("deepgram", "nova-3"),
        providers.ProviderSpec("openai", "gpt-4.1-mini"),
        providers.ProviderSpec("cartesia", "sonic-3"),
        "silero",
    )
    cfg = providers.ProviderConfig.from_env({"AGENT_LLM": "inference:openai/gpt-4.1-mini", "AGENT_VAD": "none", "AGENT_TTS_VOICE": "v1"})
    assert cfg.llm == providers.ProviderSpec("inference", "openai/gpt-4.1-mini") and cfg.vad == "none" and cfg.tts_voice == "v1"
    assert providers.build_llm(cfg.llm) == "openai/gpt-4.1-mini"
    assert providers.build_vad("none") is None
    cfg = providers.ProviderConfig.from_env({"AGENT_TTS_VOICE": "v1", "AGENT_TTS_VOICE_ES": "v-es"})
    assert (cfg.voice_for("es-MX"), cfg.voice_for("es"), cfg.voice_for("en-US")) == ("v-es", "v-es", "v1")


def test_the_reminders_language_reaches_every_provider_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """STT and TTS get the call's language whichever route builds them (LiveKit Inference included)."""
    from livekit.agents import inference
    from livekit.plugins import cartesia, deepgram, openai

    for key in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "DEEPGRAM_API_KEY", "OPENAI_API_KEY", "CARTESIA_API_KEY"):
        monkeypatch.setenv(key, "test-key-not-real")

    async def main() -> None:
        stt = providers.build_stt(providers.ProviderSpec("inference", "deepgram/nova-3"), "es-MX")
        assert isinstance(stt, inference.STT) and stt._opts.language == "es-MX"
        tts = providers.build_tts(providers.ProviderSpec("inference", "cartesia/sonic-3"), "es-MX", "v-es")
        assert isinstance(tts, inference.TTS) and (tts._opts.language, tts._opts.voice) == ("es-MX", "v-es")
        assert providers.build_stt(providers.ProviderSpec("deepgram", "nova-3"), "es-MX")._opts.language == "es-MX"
        assert providers.build_stt(providers.ProviderSpec("openai", "gpt-4o-mini-transcribe"), "es-MX")._opts.languages == ["es"]
        assert str(providers.build_stt(providers.ProviderSpec("cartesia", "ink-whisper"), "es-MX")._language) == "es"
        assert providers.build_tts(providers.ProviderSpec("cartesia", "sonic-3"), "es-MX", None)._opts.language == "es"
        assert isinstance(providers.build_tts(providers.ProviderSpec("openai", "gpt-4o-mini-tts"), "es", None), openai.TTS)
        assert isinstance(providers.build_tts(providers.ProviderSpec("deepgram", "aura-2-thalia-en"), "es", "aura-2-celeste-es"), deepgram.TTS)
        assert isinstance(providers.build_tts(providers.ProviderSpec("cartesia", "sonic-3"), "es", None), cartesia.TTS)

    asyncio.run(main())


@pytest.mark.parametrize(
    "env,var",
    [
        ({"AGENT_STT": "nova-3"}, "AGENT_STT"),
        ({"AGENT_STT": "whisperer:large"}, "AGENT_STT"),
        ({"AGENT_LLM": "cartesia:sonic"}, "AGENT_LLM"),
        ({"AGENT_LLM": "inference:gpt-4o"}, "AGENT_LLM"),
        ({"AGENT_TTS": "openai:"}, "AGENT_TTS"),
        ({"AGENT_VAD": "webrtc"}, "AGENT_VAD"),
    ],
)
def test_provider_errors_name_the_variable(env: dict, var: str) -> None:
    with pytest.raises(providers.ProviderError, match=var):
        providers.ProviderConfig.from_env(env)


def test_plugin_objects_build_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "CARTESIA_API_KEY"):
        monkeypatch.setenv(key, "test-key-not-real")
    from livekit.plugins import cartesia, deepgram, openai, silero

    async def main() -> None:
        assert isinstance(providers.build_stt(providers.ProviderSpec("deepgram", "nova-3"), "en-US"), deepgram.STT)
        assert isinstance(providers.build_stt(providers.ProviderSpec("openai", "gpt-4o-mini-transcribe"), "en-US"), openai.STT)
        assert isinstance(providers.build_llm(providers.ProviderSpec("openai", "gpt-4.1-mini")), openai.LLM)
        assert isinstance(providers.build_tts(providers.ProviderSpec("cartesia", "sonic-3"), "en-US", None), cartesia.TTS)
        assert isinstance(providers.build_tts(providers.ProviderSpec("deepgram", "aura-2-thalia-en"), "en", None), deepgram.TTS)
        assert isinstance(providers.build_vad("silero"), silero.VAD)  # bundled model, no download

    asyncio.run(main())


# ---- the job when the call does not connect (fake JobContext, real reporting over loopback) ------


def _sip_error(code: str) -> api.SipCallError:
    return api.SipCallError.from_server_error(
        api.TwirpError("unavailable", "INVITE failed", status=503, metadata={"sip_status_code": code})
    )


@pytest.mark.parametrize(
    "exc,expected",
    [
        (_sip_error("486"), {"event_type": "call_completed", "outcome": {"result": "busy", "summary": "Not reached: busy."}}),
        (_sip_error("480"), {"event_type": "call_completed", "outcome": {"result": "no_answer", "summary": "Not reached: no answer."}}),
        (_sip_error("404"), {"event_type": "call_failed", "failure": {"reason": "invalid number (sip 404)", "sip_status": 404, "retryable": False}}),
        (_sip_error("503"), {"event_type": "call_failed", "failure": {"reason": "sip trunk error (sip 503)", "sip_status": 503, "retryable": True}}),
    ],
)
def test_job_reports_a_call_that_did_not_connect(job_env: Receiver, exc: BaseException, expected: dict) -> None:
    ctx = FakeCtx(json.dumps(VALID_METADATA), exc)
    asyncio.run(agent_mod.entrypoint(ctx))  # type: ignore[arg-type]
    [event] = _events(job_env)
    assert {k: event[k] for k in expected} == expected
    assert event["reminder_id"] == MD.reminder_id and event["attempt"] == MD.attempt
    [req] = ctx.api.sip.requests
    assert (req.room_name, req.sip_trunk_id, req.sip_call_to) == (MD.room_name, "ST_abc123", "+14155550100")
    assert req.wait_until_answered and req.hide_phone_number
    assert "4155550100" not in req.participant_identity
    assert req.ringing_timeout.seconds == 30 and req.max_call_duration.seconds == 900
    assert ctx.connected and ctx.shutdowns == ["call not connected"]
    assert ctx.log_context_fields == MD.log_fields()
    # the client waits longer than the phone rings: a timeout means trouble, not "no answer"
    assert ctx.api.sip.timeouts == [30 + agent_mod.DIAL_TIMEOUT_MARGIN_SECS]
    assert ctx.deleted_rooms == 0  # a SIP answer is final: nothing can connect later


@pytest.mark.parametrize(
    "exc",
    [asyncio.TimeoutError(), __import__("aiohttp").ClientConnectionError("reset"), api.TwirpError("internal", "oops", status=500)],
    ids=["client-timeout", "network", "api-error-without-sip-status"],
)
def test_an_ambiguous_dial_error_closes_the_room(job_env: Receiver, exc: BaseException) -> None:
    """Guards: deleting the room after a dial error without a SIP status (the leg may connect late)."""
    ctx = FakeCtx(json.dumps(VALID_METADATA), exc)
    asyncio.run(agent_mod.entrypoint(ctx))  # type: ignore[arg-type]
    [event] = _events(job_env)
    assert event["event_type"] == "call_failed" and event["failure"]["retryable"] is True
    assert ctx.deleted_rooms == 1 and ctx.shutdowns == ["call not connected"]


def test_the_shutdown_window_outlasts_the_worst_report_delivery() -> None:
    from duecall_agent.webhook_client import WebhookClient

    client = WebhookClient("http://127.0.0.1/", TEST_SECRET)
    one = client.worst_case_delivery_secs()
    assert one >= 3 * 5.0 + 2 * 30.0  # three tries at 5 s each and two Retry-After waits of 30 s
    # call_answered, then the terminal report, then a late opt-out: one after the other
    assert worker_options().shutdown_process_timeout > 3 * one


def test_job_with_bad_metadata_reports_a_permanent_failure(job_env: Receiver) -> None:
    ctx = FakeCtx(json.dumps({**VALID_METADATA, "phone_number": "0800 FLOWERS"}), RuntimeError("not dialled"))
    asyncio.run(agent_mod.entrypoint(ctx))  # type: ignore[arg-type]
    [event] = _events(job_env)
    assert event["event_type"] == "call_failed"
    assert event["failure"] == {"reason": "invalid call metadata: phone_number", "retryable": False}
    assert ctx.api.sip.requests == [] and not ctx.connected


def test_job_without_webhook_config_does_not_dial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUECALL_WEBHOOK_URL", raising=False)
    ctx = FakeCtx(json.dumps(VALID_METADATA), RuntimeError("x"))
    asyncio.run(agent_mod.entrypoint(ctx))  # type: ignore[arg-type]
    assert ctx.api.sip.requests == [] and ctx.shutdowns == ["misconfigured"]


def test_job_retries_its_report_when_the_service_hiccups(job_env: Receiver) -> None:
    job_env.replies = [Reply(503), Reply(200)]
    ctx = FakeCtx(json.dumps(VALID_METADATA), _sip_error("486"))
    asyncio.run(agent_mod.entrypoint(ctx))  # type: ignore[arg-type]
    events = _events(job_env)
    assert len(events) == 2 and events[0] == events[1]
    assert job_env.received[0].headers["webhook-id"] == job_env.received[1].headers["webhook-id"]


# ---- the endings of an answered call (fake session history, real reporting over loopback) -------


def answered_call(receiver: Receiver) -> tuple[Any, FakeCtx, OutcomeRecorder]:
    from duecall_agent.report import CallReporter
    from duecall_agent.webhook_client import WebhookClient

    ctx = FakeCtx(json.dumps(VALID_METADATA), RuntimeError("unused"))
    call = agent_mod._Call(ctx, MD, CallReporter.for_call(WebhookClient(receiver.url, TEST_SECRET), MD))  # type: ignore[arg-type]
    chat = ChatContext.empty()
    chat.add_message(role="assistant", content="Hello, am I speaking with Ada Lovelace?")
    chat.add_message(role="user", content="Yes. I will pay 120 dollars on December 1st.")
    call.session = types.SimpleNamespace(history=chat)
    rec = OutcomeRecorder(customer_name=MD.customer_name, amount_due_minor=MD.amount_due_minor, currency=MD.currency,
                          due_date=MD.due_date, call_date=TODAY)
    call.recorder = rec
    call.answered_at = __import__("time").monotonic() - 42
    return call, ctx, rec


def test_hang_up_reports_the_outcome_once_then_ends_the_room(receiver: Receiver) -> None:
    call, ctx, rec = answered_call(receiver)
    rec.confirm_identity()
    rec.record_promise(12000, "2026-12-01", "I will pay 120 dollars on December 1st")

    async def main() -> None:
        call.reporter.answered()
        await call.hang_up("end_call")
        await call.hang_up("end_call")  # a second hang-up does nothing
        await call._closed(None)  # the session then closes: nothing new is sent
        await call.on_shutdown("room deleted")

    asyncio.run(main())
    events = _events(receiver)
    assert [e["event_type"] for e in events] == ["call_answered", "call_completed"]
    outcome = events[1]["outcome"]
    assert outcome["result"] == "payment_promised" and outcome["promised_amount_minor"] == 12000
    assert outcome["promised_date"] == "2026-12-01" and 41 <= outcome["duration_seconds"] <= 45
    assert outcome["transcript"] == (
        "Agent: Hello, am I speaking with Ada Lovelace?\nCustomer: Yes. I will pay 120 dollars on December 1st."
    )
    assert ctx.deleted_rooms == 1 and ctx.shutdowns == ["end_call"]


def test_customer_hangs_up_mid_call(receiver: Receiver) -> None:
    call, ctx, rec = answered_call(receiver)
    rec.confirm_identity()
    asyncio.run(call._closed(None))
    [event] = _events(receiver)
    assert event["event_type"] == "call_completed" and event["outcome"]["result"] == "other"
    assert ctx.deleted_rooms == 1 and ctx.shutdowns == ["session closed"]


def test_pipeline_error_without_outcome_is_a_retryable_failure(receiver: Receiver) -> None:
    call, _, _ = answered_call(receiver)
    asyncio.run(call._closed(RuntimeError("llm down")))
    [event] = _events(receiver)
    assert event["event_type"] == "call_failed"
    assert event["failure"] == {"reason": "agent error: RuntimeError", "retryable": True}


def test_pipeline_error_after_an_outcome_still_reports_the_outcome(receiver: Receiver) -> None:
    call, _, rec = answered_call(receiver)
    rec.record_opt_out()
    asyncio.run(call._closed(RuntimeError("tts down")))
    [event] = _events(receiver)
    assert event["event_type"] == "call_completed" and event["outcome"]["result"] == "opted_out"


def test_shutdown_before_answer_is_a_retryable_failure(receiver: Receiver) -> None:
    call, _, _ = answered_call(receiver)
    call.answered_at = None
    asyncio.run(call.on_shutdown("worker draining"))
    [event] = _events(receiver)
    assert event["event_type"] == "call_failed" and event["failure"]["retryable"] is True

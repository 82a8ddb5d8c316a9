"""The agent's conduct on the call (SPEC §10) in plain Python: the right party first (with a
second identifier), a neutral message and ``not_available`` for anyone else, the AI disclosure and
the notices, final outcomes reported at once, and a late opt-out never lost."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from conftest import VALID_METADATA
from test_report import RID, FakeSender

from duecall_agent.metadata import MetadataError, Verify, parse_metadata
from duecall_agent.outcomes import OutcomeConflict, OutcomeError, OutcomeRecorder, Result
from duecall_agent.report import CallReporter

TODAY = dt.date(2026, 11, 24)
DEBT_WORDS = ("123", "USD", "debt", "payment", "owe", "2026-12-01", "Acme")


def recorder(**kw: object) -> OutcomeRecorder:
    args: dict = dict(
        customer_name="Ada Lovelace", amount_due_minor=12345, currency="USD", due_date=dt.date(2026, 12, 1),
        call_date=TODAY, company_name="Acme Services", agent_name="Sam",
    )
    args.update(kw)
    return OutcomeRecorder(**args)


# ---- metadata --------------------------------------------------------------------------------


def test_metadata_carries_verify_and_disclosures() -> None:
    md = parse_metadata({**VALID_METADATA, "verify": {"label": "ZIP code", "value": " 02139 "}, "disclosures": ["collector"]})
    assert md.verify == Verify("ZIP code", "02139") and md.disclosures == frozenset({"collector"})
    assert "02139" not in repr(md)  # the answer is personal data
    plain = parse_metadata(VALID_METADATA)
    assert plain.verify is None and plain.disclosures == frozenset({"recording", "collector"})  # absent: both
    assert parse_metadata({**VALID_METADATA, "disclosures": []}).disclosures == frozenset()
    assert parse_metadata({**VALID_METADATA, "verify": None}).verify is None


@pytest.mark.parametrize(
    "extra,field",
    [
        ({"verify": "02139"}, "verify"),
        ({"verify": {"label": "ZIP code"}}, "verify.value"),
        ({"verify": {"label": "", "value": "1"}}, "verify.label"),
        ({"verify": {"label": "ZIP", "value": "x" * 101}}, "verify.value"),
        ({"disclosures": "recording"}, "disclosures"),
        ({"disclosures": ["recording", "mini-miranda"]}, "disclosures"),
    ],
)
def test_bad_verify_or_disclosures_name_the_field(extra: dict, field: str) -> None:
    with pytest.raises(MetadataError) as err:
        parse_metadata(json.dumps({**VALID_METADATA, **extra}))
    assert err.value.field == field and "02139" not in str(err.value)


# ---- the right party first --------------------------------------------------------------------


def test_second_identifier_is_checked_in_code() -> None:
    r = recorder(verify_label="ZIP code", verify_value="02139")
    with pytest.raises(OutcomeError, match="ask the person for their ZIP code"):
        r.confirm_identity()
    with pytest.raises(OutcomeError, match="does not match: ask once more") as err:
        r.confirm_identity("it's 90210")
    assert "02139" not in str(err.value) and not r.identity_confirmed
    told = r.confirm_identity("zero two one three nine")
    assert r.identity_confirmed and "123.45 USD" in told


def test_two_wrong_answers_end_in_not_available_without_a_word_about_the_debt() -> None:
    r = recorder(verify_label="birth year", verify_value="1984")
    with pytest.raises(OutcomeError):
        r.confirm_identity("1985")
    with pytest.raises(OutcomeError, match="customer_not_available"):
        r.confirm_identity("1983")
    with pytest.raises(OutcomeError, match="could not be confirmed"):
        r.confirm_identity("nineteen eighty four")  # no third try
    msg = r.record_not_available()
    assert r.result is Result.NOT_AVAILABLE and not r.identity_confirmed
    for word in DEBT_WORDS:
        assert word not in msg
    out = r.outcome()
    assert out.result is Result.NOT_AVAILABLE and out.callback_at is None
    assert "nothing about the debt was said" in (out.summary or "")


def test_not_available_is_for_anyone_but_the_confirmed_customer() -> None:
    r = recorder()
    r.confirm_identity()
    with pytest.raises(OutcomeError, match="request_callback"):
        r.record_not_available()
    assert r.result is None


def test_a_callback_asked_before_identity_is_not_available() -> None:
    """A third party's "call back later" is no conversation: the customer is tried again (§1)."""
    r = recorder(timezone="America/New_York", clock=lambda: dt.datetime(2026, 11, 24, 15, tzinfo=dt.timezone.utc))
    r.record_callback("her husband", when="tomorrow at 5 pm")
    assert r.outcome().result is Result.NOT_AVAILABLE and r.outcome().callback_at is None


# ---- disclosures -------------------------------------------------------------------------------


def test_opening_line_discloses_the_ai_and_the_recording_but_not_the_business() -> None:
    line = recorder().opening_line()
    assert line == "Hello, this is Sam, an automated AI assistant. This call is recorded. May I speak with Ada Lovelace?"
    assert "recorded" not in recorder(disclosures=frozenset({"collector"})).opening_line()
    es = recorder(language="es-MX").opening_line()
    assert "asistente automático de inteligencia artificial" in es and "se graba" in es and "Ada Lovelace" in es
    for word in DEBT_WORDS:
        assert word not in line and word not in es


def test_collector_notice_follows_the_right_party_check_only_when_asked() -> None:
    told = recorder().confirm_identity()
    assert told.startswith('First say, word for word: "This is Acme Services. This is an attempt to collect a debt')
    assert "123.45 USD" in told
    quiet = recorder(disclosures=frozenset({"recording"})).confirm_identity()
    assert "attempt to collect" not in quiet and "123.45 USD" in quiet
    assert "intenta cobrar una deuda" in recorder(language="es").confirm_identity()


def test_neutral_message_names_no_business_and_no_debt() -> None:
    for lang in ("en", "es"):
        msg = recorder(language=lang).neutral_message()
        assert "Ada" in msg
        for word in DEBT_WORDS + ("deuda", "pago"):
            assert word not in msg


# ---- reported at once ---------------------------------------------------------------------------


def test_a_reported_promise_is_not_revised_on_the_call() -> None:
    r = recorder(customer_said=None)
    r.confirm_identity()
    r.record_promise(12000, "2026-12-01", "120 dollars on December 1st")
    r.reported = True
    with pytest.raises(OutcomeConflict, match="already reported"):
        r.record_promise(10000, "2026-12-01", "100 dollars on December 1st", revise=True)
    assert r.outcome().promised_amount_minor == 12000


def test_an_opt_out_after_a_reported_outcome_is_sent_as_well() -> None:
    async def main() -> list[tuple]:
        s = FakeSender()
        rep = CallReporter(s, RID, 2)
        rep.answered()
        from duecall_agent.outcomes import Outcome

        first = asyncio.ensure_future(rep.completed(Outcome(Result.PAID)))
        await asyncio.sleep(0)  # the first report is under way
        await rep.opted_out_after(Outcome(Result.OPTED_OUT))
        await rep.opted_out_after(Outcome(Result.OPTED_OUT))  # once
        await first
        await rep.wait()
        return s.sent

    sent = asyncio.run(main())
    assert [(e[0], e[3] if len(e) > 3 else None) for e in sent] == [
        ("call_answered", None), ("call_completed", Result.PAID), ("call_completed", Result.OPTED_OUT),
    ]


def test_an_opt_out_before_any_report_is_the_one_report() -> None:
    async def main() -> list[tuple]:
        s = FakeSender()
        rep = CallReporter(s, RID, 2)
        from duecall_agent.outcomes import Outcome

        await rep.opted_out_after(Outcome(Result.OPTED_OUT))
        await rep.completed(Outcome(Result.OTHER))  # nothing more
        return s.sent

    assert [e[3] for e in asyncio.run(main())] == [Result.OPTED_OUT]


# ---- the local way in: LiveKit's console ----------------------------------------------------------


def test_console_talks_about_the_sample_reminder_without_dialling(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m duecall_agent console`: a fake job with no metadata uses the sample reminder,
    dials nobody, says the opening line, and prints the reports (no transcript) instead of sending."""
    import json as _json

    import duecall_agent.agent as agent_mod
    from test_agent import FakeCtx, text_only_start

    starts = text_only_start(monkeypatch)
    monkeypatch.setattr(agent_mod, "GREETING_WAIT_SECS", 0.05)
    monkeypatch.setattr(agent_mod.providers, "build_tts", lambda *a: None)  # text only: nothing to synthesise
    monkeypatch.setattr(agent_mod.providers, "build_stt", lambda *a: None)
    monkeypatch.delenv("DUECALL_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # loopback only
    monkeypatch.setenv("AGENT_VAD", "none")
    for key in ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "CARTESIA_API_KEY"):
        monkeypatch.setenv(key, "test-key-not-real")
    ctx = FakeCtx("", RuntimeError("the console dials nobody"))
    ctx.is_fake_job = lambda: True  # type: ignore[attr-defined]

    async def main() -> None:
        await agent_mod.entrypoint(ctx)  # type: ignore[arg-type]
        [start] = starts
        session = start["session"]
        await asyncio.sleep(0.05)
        first = [i for i in session.history.items if getattr(i, "role", None) == "assistant"][0]
        assert first.text_content.startswith("Hello, this is Alex, an automated AI assistant. This call is recorded.")
        await session.aclose()
        await asyncio.sleep(0.05)

    asyncio.run(main())
    assert ctx.api.sip.requests == []
    err = capsys.readouterr().err
    assert "[duecall console] call_answered" in err
    [done] = [line for line in err.splitlines() if "call_completed" in line]
    body = _json.loads(done.split("call_completed ", 1)[1])
    assert body["result"] == "no_answer" and "transcript" not in body


def test_console_metadata_can_be_given(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import pathlib

    import duecall_agent.agent as agent_mod
    from test_agent import FakeCtx

    path = pathlib.Path(str(tmp_path)) / "md.json"
    path.write_text(json.dumps({**VALID_METADATA, "customer_name": "Grace Hopper"}))
    monkeypatch.setenv("DUECALL_SAMPLE_METADATA", str(path))
    ctx = FakeCtx("", RuntimeError("unused"))
    ctx.is_fake_job = lambda: True  # type: ignore[attr-defined]
    assert agent_mod.load_call_metadata(ctx).customer_name == "Grace Hopper"  # type: ignore[arg-type]
    monkeypatch.setenv("DUECALL_SAMPLE_METADATA", json.dumps({**VALID_METADATA, "customer_name": "Alan Turing"}))
    assert agent_mod.load_call_metadata(ctx).customer_name == "Alan Turing"  # type: ignore[arg-type]
    real = FakeCtx("", RuntimeError("unused"))  # a real job with no metadata is still refused
    with pytest.raises(MetadataError):
        agent_mod.load_call_metadata(real)  # type: ignore[arg-type]


def test_voicemail_template_per_language(monkeypatch: pytest.MonkeyPatch) -> None:
    from duecall_agent.agent import Persona

    monkeypatch.setenv("DUECALL_COMPANY_NAME", "Acme Services")
    monkeypatch.setenv("DUECALL_CALLBACK_NUMBER", "+1 800 555 0199")
    monkeypatch.setenv("DUECALL_VOICEMAIL_MESSAGE_FR", "Bonjour, ici {contact} de {company}. Rappelez-moi au {callback}. Merci.")
    persona = Persona.from_env()
    fr = persona.recorder(parse_metadata({**VALID_METADATA, "language": "fr-CA"}), TODAY)
    assert fr.record_voicemail() == "Bonjour, ici Alex de Acme Services. Rappelez-moi au +1 800 555 0199. Merci."
    en = persona.recorder(parse_metadata(VALID_METADATA), TODAY)
    assert (en.record_voicemail() or "").startswith("Hi, this is Alex calling from Acme Services.")


def test_livekits_own_fake_job_is_the_console_and_gets_the_sample_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards: `_is_console` against livekit's real fake job (``livekit.agents.testing``), not only
    our stand-in — a job with no metadata is the console's, and gets the sample; one with metadata
    is parsed as any job's."""
    import duecall_agent.agent as agent_mod
    from livekit.agents.testing import fake_job_context

    monkeypatch.delenv("DUECALL_SAMPLE_METADATA", raising=False)

    async def main() -> None:
        with fake_job_context(job_metadata="") as ctx:
            assert agent_mod._is_console(ctx)
            assert agent_mod.load_call_metadata(ctx) == parse_metadata(agent_mod.SAMPLE_METADATA)
        given = {**VALID_METADATA, "customer_name": "Grace Hopper"}
        with fake_job_context(job_metadata=json.dumps(given)) as ctx:
            assert agent_mod.load_call_metadata(ctx).customer_name == "Grace Hopper"

    asyncio.run(main())

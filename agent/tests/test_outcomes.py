from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duecall_agent.outcomes import (
    Outcome,
    OutcomeConflict,
    OutcomeError,
    OutcomeRecorder,
    Result,
    format_amount,
    normalize_words,
)
from duecall_agent.transcript import quote_checker

TODAY = dt.date(2026, 11, 24)


def recorder(**kw: object) -> OutcomeRecorder:
    args: dict = dict(
        customer_name="Ada Lovelace",
        amount_due_minor=12345,
        currency="USD",
        due_date=dt.date(2026, 12, 1),
        call_date=TODAY,
        company_name="Acme Billing",
    )
    args.update(kw)
    return OutcomeRecorder(**args)


def confirmed(**kw: object) -> OutcomeRecorder:
    r = recorder(**kw)
    r.confirm_identity()
    return r


# ---- identity first -------------------------------------------------------------------------


def test_amount_is_revealed_only_after_identity_confirmation() -> None:
    r = recorder()
    with pytest.raises(OutcomeError, match="identity not confirmed"):
        r.debt_disclosure()
    text = r.confirm_identity()
    assert "123.45 USD" in text and "2026-12-01" in text
    assert r.identity_confirmed


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.record_promise(5000, "2026-12-01", "I'll pay fifty on December first"),
        lambda r: r.record_paid("paid last week"),
        lambda r: r.record_dispute("not mine"),
        lambda r: r.record_refusal(),
    ],
    ids=["promise", "paid", "dispute", "refusal"],
)
def test_debt_outcomes_need_identity(call) -> None:  # type: ignore[no-untyped-def]
    r = recorder()
    with pytest.raises(OutcomeError, match="identity not confirmed"):
        call(r)
    assert r.result is None


def test_promise_before_identity_leaks_nothing_about_the_amount() -> None:
    r = recorder()
    with pytest.raises(OutcomeError) as err:
        r.record_promise(10**9, "2026-12-01", "a billion")  # would exceed the amount due
    assert "more than" not in str(err.value) and "123" not in str(err.value)


def test_third_party_callback_keeps_no_details() -> None:
    """A "call back later" before the customer is confirmed is not a conversation: not_available."""
    r = recorder()
    r.record_callback("her husband said she owes you money, call Tuesday")
    out = r.outcome()
    assert out.result is Result.NOT_AVAILABLE and out.callback_at is None
    assert "husband" not in (out.summary or "") and "owes" not in (out.summary or "")
    assert "123.45" not in (out.summary or "")


def test_confirmed_callback_keeps_the_note() -> None:
    r = confirmed()
    r.record_callback("call after 6pm")
    assert "after 6pm" in (r.outcome().summary or "")


# ---- promises ----------------------------------------------------------------------------------


def test_valid_promise() -> None:
    r = confirmed()
    msg = r.record_promise(12000, "2026-12-01", "I can pay 120 dollars on December 1st")
    assert "120.00 USD" in msg and "2026-12-01" in msg
    out = r.outcome(transcript="t", duration_seconds=93)
    assert out == Outcome(Result.PAYMENT_PROMISED, 12000, dt.date(2026, 12, 1), out.summary, "t", 93)
    assert out.summary and "120.00 USD" in out.summary


@pytest.mark.parametrize(
    "amount,date,match",
    [
        (0, "2026-12-01", "greater than zero"),
        (-5, "2026-12-01", "greater than zero"),
        (12346, "2026-12-01", "more than the amount due"),
        (100, "2026-11-23", "in the past"),
        (100, "2027-11-26", "more than a year"),
        (100, "2026-02-30", "YYYY-MM-DD"),
        (100, "December 1st", "YYYY-MM-DD"),
        (100, "", "YYYY-MM-DD"),
        (True, "2026-12-01", "whole number"),
        (12.5, "2026-12-01", "whole number"),
        ("100", "2026-12-01", "whole number"),
    ],
)
def test_invalid_promises_are_refused(amount: object, date: str, match: str) -> None:
    r = confirmed()
    with pytest.raises(OutcomeError, match=match):
        r.record_promise(amount, date, "the customer's words")  # type: ignore[arg-type]
    assert r.result is None


def test_promise_today_and_full_amount_are_fine() -> None:
    r = confirmed()
    r.record_promise(12345, TODAY.isoformat(), "all of it today")
    assert r.outcome().promised_date == TODAY


def test_promise_needs_the_customers_words() -> None:
    said = ["Yes speaking.", "I can pay 120 dollars on the first of December."]
    r = confirmed(customer_said=quote_checker(lambda: said))
    with pytest.raises(OutcomeError, match="quote"):
        r.record_promise(12000, "2026-12-01", "   ")
    with pytest.raises(OutcomeError, match="did not say"):
        r.record_promise(12000, "2026-12-01", "I will pay 500 dollars tomorrow")
    assert r.result is None
    r.record_promise(12000, "2026-12-01", "I can pay 120 Dollars, on the first of December")
    assert r.result is Result.PAYMENT_PROMISED


def test_quote_checker_spans_consecutive_utterances() -> None:
    said = ["I can pay 120", "on Friday"]
    check = quote_checker(lambda: said)
    assert check("I can pay 120 on Friday")
    assert not check("I can pay 210 on Friday")
    assert not check("")


# ---- no silent overwrite; opt-out wins ------------------------------------------------------------


@pytest.mark.parametrize(
    "second",
    [
        lambda r: r.record_paid(),
        lambda r: r.record_refusal(),
        lambda r: r.record_dispute(),
        lambda r: r.record_callback(),
        lambda r: r.record_other(),
        lambda r: r.record_promise(100, "2026-12-02", "one dollar on the second"),
    ],
    ids=["paid", "refusal", "dispute", "callback", "other", "promise"],
)
def test_recorded_outcome_is_not_silently_replaced(second) -> None:  # type: ignore[no-untyped-def]
    r = confirmed()
    r.record_promise(12000, "2026-12-01", "120 on the first")
    with pytest.raises(OutcomeConflict, match="payment_promised is already recorded"):
        second(r)
    out = r.outcome()
    assert (out.result, out.promised_amount_minor, out.promised_date) == (Result.PAYMENT_PROMISED, 12000, dt.date(2026, 12, 1))
    assert any(not h.accepted for h in r.history), "the refused attempt is kept in the history"


def test_promise_can_be_revised_explicitly_and_the_summary_says_so() -> None:
    r = confirmed()
    r.record_promise(12000, "2026-12-01", "120 on the first")
    r.record_promise(10000, "2026-12-03", "actually 100 on the third", revise=True)
    out = r.outcome()
    assert (out.promised_amount_minor, out.promised_date) == (10000, dt.date(2026, 12, 3))
    assert "revised" in (out.summary or "")


def test_revise_does_not_replace_a_different_outcome() -> None:
    r = confirmed()
    r.record_refusal()
    with pytest.raises(OutcomeConflict):
        r.record_promise(100, "2026-12-01", "one dollar", revise=True)
    assert r.result is Result.REFUSED


@pytest.mark.parametrize(
    "first",
    [
        lambda r: (r.confirm_identity(), r.record_promise(12000, "2026-12-01", "120 dollars on December 1st")),
        lambda r: (r.confirm_identity(), r.record_paid()),
        lambda r: r.record_callback(),
        lambda r: r.record_wrong_number(),
        lambda r: r.record_voicemail(),
        lambda r: None,
    ],
    ids=["promise", "paid", "callback", "wrong_number", "voicemail", "nothing"],
)
def test_opt_out_always_wins(first) -> None:  # type: ignore[no-untyped-def]
    r = recorder()
    first(r)
    r.record_opt_out()
    out = r.outcome()
    assert out.result is Result.OPTED_OUT
    assert out.promised_amount_minor is None and out.promised_date is None


def test_nothing_replaces_an_opt_out() -> None:
    r = recorder()
    r.record_opt_out()
    for call in (r.record_callback, r.record_other, r.record_wrong_number, r.record_voicemail, r.confirm_identity):
        with pytest.raises(OutcomeConflict):
            call()
    r.record_opt_out()  # idempotent
    assert r.result is Result.OPTED_OUT


# ---- voicemail, wrong number ------------------------------------------------------------------------


def test_voicemail_message_has_no_amount_or_debt() -> None:
    r = recorder(company_name="Acme Services", callback_number="+1 800 555 0199", agent_name="Sam")
    msg = r.record_voicemail()
    assert msg == "Hi, this is Sam calling from Acme Services. Please call me back at +1 800 555 0199. Thank you."
    for word in ("123", "12345", "USD", "debt", "owe", "payment", "2026-12-01", "Ada", "Lovelace"):
        assert word not in msg
    assert r.outcome().result is Result.VOICEMAIL


@pytest.mark.parametrize(
    "persona",
    [
        {"company_name": "Acme Services"},  # no callback number
        {"company_name": "Acme Debt Recovery", "callback_number": "+1 800 555 0199"},
        {"company_name": "Acme Billing", "callback_number": "+1 800 555 0199"},
        {"company_name": "Acme Services", "callback_number": "+1 800 555 0199", "callback_contact": "Collections Desk"},
        {"company_name": "Cobranzas SA", "callback_number": "+1 800 555 0199", "language": "es"},
    ],
    ids=["no-number", "debt-name", "billing-name", "debt-contact", "spanish-debt-name"],
)
def test_no_voicemail_message_without_its_required_content(persona: dict) -> None:
    """Reg F 1006.2(j): a business name that does not suggest debt collection, a person's name
    and a callback number — missing any, no message is left at all."""
    r = recorder(**persona)
    assert r.record_voicemail() is None and r.result is Result.VOICEMAIL
    assert r.outcome().summary.startswith("Voicemail: no message was left.")


def test_a_machine_that_takes_no_message_is_a_voicemail_without_one() -> None:
    """An IVR or a full mailbox (leave_message=False): no message, and the summary says so."""
    r = recorder(company_name="Acme Services", callback_number="+1 800 555 0199")
    assert r.record_voicemail(leave_message=False) is None and r.result is Result.VOICEMAIL
    assert r.outcome().summary.startswith("Voicemail: no message was left.")


def test_a_voicemail_business_name_may_be_set_apart_from_the_company() -> None:
    r = recorder(company_name="Acme Debt Recovery", voicemail_business="Acme Services", callback_number="800 555 0199")
    assert "Acme Services" in (r.record_voicemail() or "")


def test_voicemail_in_spanish() -> None:
    r = recorder(company_name="Acme Servicios", callback_number="+1 800 555 0199", agent_name="Sam", language="es-MX")
    assert r.record_voicemail() == "Hola, soy Sam, de Acme Servicios. Por favor, llámeme al +1 800 555 0199. Gracias."


def test_voicemail_template_cannot_include_the_amount() -> None:
    base = dict(company_name="Acme Services", callback_number="+1 800 555 0199", agent_name="Sam")
    r = recorder(voicemail_template="Hi {first_name}, you owe {amount}. {company}", **base)
    msg = r.record_voicemail() or ""
    assert "123" not in msg and "{amount}" not in msg and "Ada" not in msg  # unknown placeholder: the built-in message
    assert msg.startswith("Hi, this is Sam")
    r2 = recorder(voicemail_template="Hallo, hier ist {contact} von {company}. Bitte rufen Sie {callback} zurück.", **base)
    assert r2.record_voicemail() == "Hallo, hier ist Sam von Acme Services. Bitte rufen Sie +1 800 555 0199 zurück."
    # a template without the callback number, or one that names a debt, is not used
    r3 = recorder(voicemail_template="Bitte rufen Sie {company} zurück.", **base)
    assert (r3.record_voicemail() or "").startswith("Hi, this is Sam")
    r4 = recorder(voicemail_template="About your overdue bill: call {callback}.", **base)
    assert (r4.record_voicemail() or "").startswith("Hi, this is Sam")


def test_no_voicemail_or_wrong_number_after_identity() -> None:
    r = confirmed()
    with pytest.raises(OutcomeError):
        r.record_voicemail()
    with pytest.raises(OutcomeError):
        r.record_wrong_number()
    assert r.result is None


def test_identity_cannot_be_confirmed_after_voicemail() -> None:
    r = recorder()
    r.record_voicemail()
    with pytest.raises(OutcomeConflict):
        r.confirm_identity()
    assert not r.identity_confirmed


# ---- the end ----------------------------------------------------------------------------------------


def test_nothing_recorded_and_nobody_identified_is_no_answer() -> None:
    assert recorder().outcome().result is Result.NO_ANSWER


def test_nothing_recorded_after_identity_is_other() -> None:
    assert confirmed().outcome(duration_seconds=5).result is Result.OTHER


def test_notes_are_scrubbed_of_numbers() -> None:
    r = confirmed()
    r.record_paid("paid with card 4111 1111 1111 1111 yesterday, call me at +1 415 555 0100")
    summary = r.outcome().summary or ""
    assert "4111" not in summary and "555" not in summary and "[number]" in summary


def test_outcome_to_json_matches_spec_shape() -> None:
    full = Outcome(Result.PAYMENT_PROMISED, 12000, dt.date(2026, 12, 1), "s", "t", 93)
    assert full.to_json() == {
        "result": "payment_promised",
        "promised_amount_minor": 12000,
        "promised_date": "2026-12-01",
        "summary": "s",
        "transcript": "t",
        "duration_seconds": 93,
    }
    assert Outcome(Result.BUSY).to_json() == {"result": "busy"}


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(result=Result.PAYMENT_PROMISED),
        dict(result=Result.PAYMENT_PROMISED, promised_amount_minor=0, promised_date=dt.date(2026, 1, 1)),
        dict(result=Result.PAID, promised_amount_minor=5),
        dict(result="made_up"),
        dict(result=Result.OTHER, duration_seconds=-1),
    ],
)
def test_outcome_rejects_inconsistent_fields(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Outcome(**kwargs)


@pytest.mark.parametrize(
    "amount,currency,text",
    [(12345, "USD", "123.45 USD"), (5, "EUR", "0.05 EUR"), (1200, "JPY", "1200 JPY"), (1234, "KWD", "1.234 KWD"), (0, "USD", "0.00 USD")],
)
def test_format_amount(amount: int, currency: str, text: str) -> None:
    assert format_amount(amount, currency) == text


def test_normalize_words() -> None:
    assert normalize_words("  I'll PAY  €120, on Dec. 1st!! ") == "i ll pay 120 on dec 1st"


# ---- property: any sequence of tool calls keeps the invariants --------------------------------------

ACTIONS = st.sampled_from(
    ["confirm", "promise", "revise", "paid", "dispute", "refuse", "callback", "wrong", "other", "voicemail", "optout"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ACTIONS, max_size=8), st.integers(-10, 20000), st.integers(-3, 400))
def test_property_tool_call_sequences(actions: list[str], amount: int, days: int) -> None:
    r = recorder()
    first_result: Result | None = None
    opted_out = False
    day = TODAY + dt.timedelta(days=days)
    words = f"{format_amount(amount, 'USD')} on {day.isoformat()}" if amount > 0 else "yes"
    for a in actions:
        call = {
            "confirm": r.confirm_identity,
            "promise": lambda: r.record_promise(amount, day.isoformat(), words),
            "revise": lambda: r.record_promise(amount, day.isoformat(), words, revise=True),
            "paid": r.record_paid,
            "dispute": r.record_dispute,
            "refuse": r.record_refusal,
            "callback": r.record_callback,
            "wrong": r.record_wrong_number,
            "other": r.record_other,
            "voicemail": r.record_voicemail,
            "optout": r.record_opt_out,
        }[a]
        try:
            call()
        except OutcomeError:
            pass
        if a == "optout":
            opted_out = True
        if first_result is None and r.result is not None:
            first_result = r.result
    out = r.outcome()
    if opted_out:
        assert out.result is Result.OPTED_OUT
    elif first_result is not None:
        assert out.result is first_result, "the first recorded outcome is never replaced"
    if out.result is Result.PAYMENT_PROMISED:
        assert r.identity_confirmed
        assert 0 < (out.promised_amount_minor or 0) <= 12345
        assert out.promised_date is not None and out.promised_date >= TODAY
    if out.result in (Result.PAID, Result.REFUSED, Result.DISPUTED, Result.PAYMENT_PROMISED):
        assert r.identity_confirmed
    if out.result is Result.VOICEMAIL or out.result is Result.WRONG_NUMBER:
        assert not r.identity_confirmed


# ---- callback_at and not_available on the wire (SPEC §1, §2) ---------------------------------


def test_callback_at_is_sent_in_utc_and_only_with_a_callback() -> None:
    five_pm_new_york = dt.datetime(2026, 11, 25, 17, 0, 30, 123, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    o = Outcome(Result.CALLBACK_REQUESTED, callback_at=five_pm_new_york)
    assert o.to_json() == {"result": "callback_requested", "callback_at": "2026-11-25T22:00:30Z"}
    assert "callback_at" not in Outcome(Result.CALLBACK_REQUESTED).to_json()
    with pytest.raises(ValueError, match="only callback_requested"):
        Outcome(Result.PAID, callback_at=five_pm_new_york)
    with pytest.raises(ValueError, match="aware"):
        Outcome(Result.CALLBACK_REQUESTED, callback_at=dt.datetime(2026, 11, 25, 17, 0))


def test_not_available_is_unreached() -> None:
    from duecall_agent.outcomes import REACHED, UNREACHED

    assert Result.NOT_AVAILABLE in UNREACHED and Result.NOT_AVAILABLE not in REACHED
    assert Outcome(Result.NOT_AVAILABLE).to_json() == {"result": "not_available"}


# ---- the quote states the amount and the date (issue 14) ------------------------------------------

FRIDAY = dt.date(2026, 11, 27)  # TODAY is a Tuesday


@pytest.mark.parametrize("quote", ["yes", "Yes.", "okay", "sure", "yes, that works for me", "OK sure"])
def test_a_bare_yes_is_no_promise(quote: str) -> None:
    r = confirmed(customer_said=quote_checker(lambda: [quote]))
    with pytest.raises(OutcomeError, match="no amount and no date; a bare yes") as err:
        r.record_promise(12000, "2026-12-01", quote)
    assert "say themselves how much they will pay and on which day" in str(err.value)
    assert r.result is None and not r.history[-1].accepted


def test_amount_in_words_on_a_weekday_is_accepted() -> None:
    said = ["Yes, speaking.", "I can do one hundred twenty dollars on Friday."]
    r = confirmed(customer_said=quote_checker(lambda: said))
    r.record_promise(12000, FRIDAY.isoformat(), "one hundred twenty dollars on Friday")
    out = r.outcome()
    assert (out.result, out.promised_amount_minor, out.promised_date) == (Result.PAYMENT_PROMISED, 12000, FRIDAY)


@pytest.mark.parametrize(
    "amount,date,quote,match",
    [
        (12000, "2026-11-27", "I can pay 100 dollars on Friday", r"say 100.00 USD, not 120.00 USD"),
        (12000, "2026-11-27", "a hundred dollars on Friday", r"say 100.00 USD, not 120.00 USD"),
        (12000, "2026-11-27", "one twenty on Friday", "not 120.00 USD"),  # ambiguous: read as 1 and 20
        (12000, "2026-12-01", "120 dollars on Friday", r"name 2026-11-27, not 2026-12-01"),
        (12000, "2026-11-27", "120 dollars", "state no date"),
        (12000, "2026-11-27", "on Friday", "state no amount"),
        (12000, "2026-11-27", "the full amount on Friday", r"say 123.45 USD, not 120.00 USD"),
        (12000, "2026-11-27", "120 euros on Friday", "state no amount"),
        (12000, "2026-11-27", "120 on the first of December", "not 2026-11-27"),
    ],
)
def test_the_quote_must_state_the_tools_amount_and_date(amount: int, date: str, quote: str, match: str) -> None:
    r = confirmed()
    with pytest.raises(OutcomeError, match=match):
        r.record_promise(amount, date, quote)
    assert r.result is None


@pytest.mark.parametrize(
    "amount,date,quote",
    [
        (12345, "2026-11-27", "the full amount on Friday"),
        (12345, "2026-11-27", "Yes, all of it this Friday"),
        (12345, "2026-11-24", "everything today"),
        (12000, "2026-11-27", "next Friday, a hundred and twenty"),  # "next Friday": either reading
        (12000, "2026-12-04", "next Friday, a hundred and twenty"),
        (12050, "2026-12-01", "a hundred twenty dollars and fifty cents on the first"),
        (5000, "2026-12-08", "fifty bucks in two weeks"),
        (10000, "2026-11-30", "$100 at the end of the month"),
        (6172, "2026-11-25", "half of it tomorrow"),
        (12000, "2026-12-01", "not 100, 120 on 12/1"),
    ],
)
def test_amounts_and_dates_as_people_say_them(amount: int, date: str, quote: str) -> None:
    r = confirmed()
    r.record_promise(amount, date, quote)
    assert (r.outcome().promised_amount_minor, r.outcome().promised_date) == (amount, dt.date.fromisoformat(date))


def test_amount_and_date_across_two_utterances() -> None:
    said = ["Yes it's me.", "I can do a hundred twenty", "on Friday"]
    r = confirmed(customer_said=quote_checker(lambda: said))
    r.record_promise(12000, FRIDAY.isoformat(), "a hundred twenty on Friday")
    assert r.result is Result.PAYMENT_PROMISED

    said2 = ["Yes it's me.", "I can do a hundred twenty", "hmm let me check", "on Friday"]
    r2 = confirmed(customer_said=quote_checker(lambda: said2))
    with pytest.raises(OutcomeError, match="did not say"):
        r2.record_promise(12000, FRIDAY.isoformat(), "a hundred twenty on Friday")
    r2.record_promise(12000, FRIDAY.isoformat(), "a hundred twenty ... on Friday")  # quoted in parts, in order
    assert r2.result is Result.PAYMENT_PROMISED


def test_spanish_promise() -> None:
    r = confirmed(language="es-MX", currency="MXN")
    with pytest.raises(OutcomeError, match="bare yes"):
        r.record_promise(12000, FRIDAY.isoformat(), "sí, está bien")
    r.record_promise(12000, FRIDAY.isoformat(), "le pago ciento veinte pesos el viernes")
    assert r.outcome().promised_amount_minor == 12000


def test_other_languages_need_the_amount_in_digits() -> None:
    r = confirmed(language="de-DE", currency="EUR")
    with pytest.raises(OutcomeError, match="bare yes"):
        r.record_promise(12000, FRIDAY.isoformat(), "ja, gut")
    with pytest.raises(OutcomeError, match="only amounts in digits"):
        r.record_promise(12000, FRIDAY.isoformat(), "hundertzwanzig Euro am Freitag")
    with pytest.raises(OutcomeError, match="not 2026-11-27"):
        r.record_promise(12000, FRIDAY.isoformat(), "120 Euro am 1.12.2026")
    r.record_promise(12000, FRIDAY.isoformat(), "120 Euro am Freitag")  # the day word is not read here
    assert r.result is Result.PAYMENT_PROMISED


def test_a_conflict_is_reported_before_the_words_are_checked() -> None:
    r = confirmed()
    r.record_refusal()
    with pytest.raises(OutcomeConflict, match="refused is already recorded"):
        r.record_promise(12000, FRIDAY.isoformat(), "yes")


def test_quote_checker_matches_whole_words() -> None:
    check = quote_checker(lambda: ["I can pay 200 on Friday"])
    assert not check("I can pay 20"), "20 is not what was said"
    assert not check("pay 200 on Fri")
    assert check("pay 200 on friday")
    assert not quote_checker(lambda: ["on Friday", "I can do 120"])("120 ... on Friday"), "parts in the order said"


# ---- callback_at from the customer's words (SPEC §1) ------------------------------------------------

CALL_NOW = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.timezone.utc)  # 10:00 in New York, 15:00 in London


def callback_recorder(zone: str | None = "America/New_York", **kw: object) -> OutcomeRecorder:
    return confirmed(timezone=zone, clock=lambda: CALL_NOW, **kw)


def test_callback_tomorrow_at_5pm_for_a_new_york_customer() -> None:
    r = callback_recorder()
    msg = r.record_callback("prefers evenings", when="tomorrow at 5 pm")
    assert "Wednesday, 2026-11-25 at 17:00" in msg
    out = r.outcome()
    assert out.to_json()["callback_at"] == "2026-11-25T22:00:00Z"
    assert out.callback_at is not None and out.callback_at > CALL_NOW
    assert "2026-11-25 at 17:00" in (out.summary or "") and "prefers evenings" in (out.summary or "")


@pytest.mark.parametrize(
    "zone,when,utc",
    [
        ("Europe/London", "tomorrow at 5 pm", "2026-11-25T17:00:00Z"),
        ("America/New_York", "in an hour", "2026-11-24T16:00:00Z"),
        ("America/New_York", "after 6", "2026-11-24T23:00:00Z"),
        ("America/New_York", "Monday at 10", "2026-11-30T15:00:00Z"),
        ("America/New_York", "tomorrow morning", "2026-11-25T15:00:00Z"),
        ("America/Los_Angeles", "this evening", "2026-11-25T02:00:00Z"),
    ],
)
def test_callback_times_in_the_customers_zone(zone: str, when: str, utc: str) -> None:
    r = callback_recorder(zone)
    r.record_callback(when=when)
    assert r.outcome().to_json()["callback_at"] == utc


@pytest.mark.parametrize("when", ["later today", "whenever", "some other time", "later"])
def test_callback_without_an_understood_time_is_no_error(when: str) -> None:
    r = callback_recorder()
    msg = r.record_callback(when=when)
    out = r.outcome()
    assert out.result is Result.CALLBACK_REQUESTED and out.callback_at is None
    assert "without a time" in msg
    assert "no time was understood" in (out.summary or "") and when in (out.summary or "")


def test_callback_with_no_time_given() -> None:
    r = callback_recorder()
    r.record_callback("busy now")
    out = r.outcome()
    assert out.callback_at is None and "no time was given" in (out.summary or "")


def test_a_third_partys_callback_time_is_not_kept() -> None:
    r = recorder(timezone="America/New_York", clock=lambda: CALL_NOW)
    msg = r.record_callback("her husband answered", when="tomorrow at 5 pm")
    out = r.outcome()
    assert out.callback_at is None and "callback_at" not in out.to_json()
    assert "17:00" not in (out.summary or "") and "tomorrow" not in (out.summary or "") and "17:00" not in msg


def test_callback_time_needs_the_customers_zone() -> None:
    r = callback_recorder(zone=None)
    r.record_callback(when="tomorrow at 5 pm")
    assert r.outcome().callback_at is None


def test_callback_time_is_after_the_call_clock_at_the_time_of_the_request() -> None:
    clock = [CALL_NOW]
    r = confirmed(timezone="America/New_York", clock=lambda: clock[0])
    clock[0] = CALL_NOW + dt.timedelta(hours=8)  # 18:00 in New York when the tool is called
    r.record_callback(when="at 5 pm")
    assert r.outcome().to_json()["callback_at"] == "2026-11-25T22:00:00Z"  # 5 pm has passed: tomorrow's


def test_an_opt_out_drops_the_callback_time() -> None:
    r = callback_recorder()
    r.record_callback(when="tomorrow at 5 pm")
    r.record_opt_out()
    out = r.outcome()
    assert out.result is Result.OPTED_OUT and out.callback_at is None

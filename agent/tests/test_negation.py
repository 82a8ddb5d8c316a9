"""A promise the customer's words negate ("I can't pay 120 on Friday") is refused."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duecall_agent.outcomes import OutcomeError, OutcomeRecorder, Result
from duecall_agent.transcript import QuoteContext, quote_checker

TODAY = dt.date(2026, 11, 24)  # a Tuesday
FRIDAY = dt.date(2026, 11, 27)
NOT_PAYING = "will NOT pay that"


def confirmed(said: list[str] | None = None, **kw: object) -> OutcomeRecorder:
    args: dict = dict(
        customer_name="Ada Lovelace",
        amount_due_minor=12345,
        currency="USD",
        due_date=dt.date(2026, 12, 1),
        call_date=TODAY,
        customer_said=quote_checker(lambda: said) if said is not None else None,
    )
    args.update(kw)
    r = OutcomeRecorder(**args)
    r.confirm_identity()
    return r


@pytest.mark.parametrize(
    "quote",
    [
        "I can't pay one hundred twenty dollars next Friday",
        "I can’t pay 120 on Friday",  # a typographic apostrophe
        "I cannot pay 120 dollars on Friday",
        "I can not pay 120 on Friday",
        "I cant pay 120 on Friday",  # no apostrophe from the STT
        "I won't pay 120 on Friday",
        "I will not pay a hundred twenty on Friday",
        "I don't have 120 for Friday",
        "I do not pay 120 on Friday",
        "I'm unable to pay 120 on Friday",
        "I'm not able to pay 120 by Friday",
        "I'm not paying 120 on Friday",
        "I never pay 120 on Friday",
        "No way I pay 120 on Friday",
        "I can pay 120, but not on Friday",  # the day is negated
    ],
)
def test_english_negations_are_refused(quote: str) -> None:
    """Guards: an English negation of the promised amount or day is no promise."""
    r = confirmed([quote])
    with pytest.raises(OutcomeError, match=NOT_PAYING) as err:
        r.record_promise(12000, FRIDAY.isoformat(), quote)
    assert "ask the customer whether they can pay" in str(err.value)
    assert r.result is None and not r.history[-1].accepted


@pytest.mark.parametrize(
    "quote",
    [
        "No puedo pagar ciento veinte pesos el viernes",
        "no le puedo pagar 120 pesos el viernes",
        "No voy a pagar ciento veinte pesos el viernes",
        "No podré pagar 120 pesos el viernes",
        "Nunca le pago ciento veinte pesos el viernes",
        "Jamás pagaré 120 pesos el viernes",
    ],
)
def test_spanish_negations_are_refused(quote: str) -> None:
    """Guards: a Spanish negation ("no puedo", "nunca", …) of the promise is no promise."""
    r = confirmed([quote], language="es-MX", currency="MXN")
    with pytest.raises(OutcomeError, match=NOT_PAYING):
        r.record_promise(12000, FRIDAY.isoformat(), quote)
    assert r.result is None


@pytest.mark.parametrize(
    "said,quote",
    [
        (["I can't pay one hundred twenty dollars next Friday"], "pay one hundred twenty dollars next Friday"),
        (["Sorry, I really can't pay one hundred twenty dollars next Friday."], "one hundred twenty dollars next Friday"),
        (["I won't be able to pay 120 dollars on Friday"], "120 ... on Friday"),  # a quote in parts
        (["I can't pay a hundred twenty", "on Friday"], "a hundred twenty on Friday"),  # across two utterances
    ],
)
def test_a_fragment_does_not_hide_the_negation_before_it(said: list[str], quote: str) -> None:
    """Guards: quoting the words after "I can't" is refused: the customer's utterance is read."""
    r = confirmed(["Yes, this is Ada.", *said])
    with pytest.raises(OutcomeError, match=NOT_PAYING):
        r.record_promise(12000, FRIDAY.isoformat(), quote)
    assert r.result is None


@pytest.mark.parametrize(
    "amount,quote",
    [
        (12000, "No problem, I'll pay 120 on Friday"),
        (12000, "Yes — one hundred twenty dollars, no later than Friday"),
        (12000, "one hundred twenty dollars not later than Friday"),
        (12000, "I'll pay 120 Friday, not Thursday"),
        (12000, "I'll pay 120 Friday not Thursday"),  # a correction after the promise
        (12000, "not 100, 120 on Friday"),
        (5000, "I can't pay it all, but I can pay fifty dollars on Friday"),
        (12000, "I can't pay it today, but I can pay 120 on Friday"),
        (12000, "Don't worry. I'll pay 120 on Friday"),
        (12000, "Never mind the letter, I can do 120 on Friday"),
    ],
)
def test_ordinary_promises_still_pass(amount: int, quote: str) -> None:
    """Guards: a negation outside the promise's clause, or a correction, does not refuse it."""
    r = confirmed([quote])
    r.record_promise(amount, FRIDAY.isoformat(), quote)
    assert (r.result, r.outcome().promised_amount_minor) == (Result.PAYMENT_PROMISED, amount)


@pytest.mark.parametrize(
    "quote",
    [
        "Le pago ciento veinte pesos el viernes",
        "No hay problema, le pago 120 pesos el viernes",
        "Ciento veinte pesos, no más tarde del viernes",
        "No puedo pagar todo, pero puedo pagar 120 pesos el viernes",
    ],
)
def test_ordinary_spanish_promises_still_pass(quote: str) -> None:
    """Guards: a bare Spanish "no" or a negated other clause does not refuse a promise."""
    r = confirmed([quote], language="es-MX", currency="MXN")
    r.record_promise(12000, FRIDAY.isoformat(), quote)
    assert r.result is Result.PAYMENT_PROMISED


def test_the_clause_stating_the_promised_amount_decides() -> None:
    """Guards: "I can't pay 120, but I can pay fifty on Friday" promises 50, never 120."""
    said = ["I can't pay 120, but I can pay fifty dollars on Friday"]
    r = confirmed(said)
    with pytest.raises(OutcomeError, match=NOT_PAYING):
        r.record_promise(12000, FRIDAY.isoformat(), said[0])
    r.record_promise(5000, FRIDAY.isoformat(), said[0])
    assert r.outcome().promised_amount_minor == 5000


def test_the_customers_latest_words_count() -> None:
    """Guards: a promise said after a negated one is accepted (the latest occurrence is read)."""
    r = confirmed(["I can't pay 120 on Friday.", "Well, okay, I can pay 120 on Friday."])
    r.record_promise(12000, FRIDAY.isoformat(), "pay 120 on Friday")
    assert r.result is Result.PAYMENT_PROMISED
    r2 = confirmed(["I can pay 120 on Friday.", "Actually no, I can't pay 120 on Friday."])
    with pytest.raises(OutcomeError, match=NOT_PAYING):
        r2.record_promise(12000, FRIDAY.isoformat(), "pay 120 on Friday")


def test_without_a_transcript_the_quote_alone_is_read() -> None:
    """Guards: with customer_said=None a negated quote is still refused (and a fragment cannot be checked)."""
    r = confirmed()
    with pytest.raises(OutcomeError, match=NOT_PAYING):
        r.record_promise(12000, FRIDAY.isoformat(), "I can't pay 120 on Friday")
    r.record_promise(12000, FRIDAY.isoformat(), "I'll pay 120 on Friday")
    assert r.result is Result.PAYMENT_PROMISED


def test_quote_context_is_the_utterance_around_the_quote() -> None:
    """Guards: QuoteChecker.context gives the utterance(s) the quote is in and its span there."""
    check = quote_checker(lambda: ["Yes.", "Hmm, I CAN'T pay 120", "on Friday", "bye"])
    where = check.context("pay 120 ... Friday")
    assert where == QuoteContext("hmm, i can't pay 120 on friday", 13, 30)
    assert where.text[where.start : where.end] == "pay 120 on friday"
    assert check.context("pay 210") is None and not check("pay 210")
    assert check("pay 120 on Friday")


ACCEPTED = ["pay 120 on Friday", "one hundred twenty dollars on Friday", "120 dollars this Friday", "$120 on Friday"]


@settings(max_examples=60, deadline=None)
@given(
    quote=st.sampled_from(ACCEPTED),
    negation=st.sampled_from(["I can't", "I cannot", "I won't", "I will not", "I don't", "I'm unable to", "I never"]),
    before=st.sampled_from(["", "Sorry. ", "Well, ", "Look, honestly "]),
    fragment=st.booleans(),
)
def test_any_accepted_promise_negated_in_the_utterance_is_refused(
    quote: str, negation: str, before: str, fragment: bool
) -> None:
    """Guards: a quote accepted alone is refused once "I can't" precedes it in the utterance, quoted whole or not."""
    confirmed([quote]).record_promise(12000, FRIDAY.isoformat(), quote)  # accepted as said
    said = f"{before}{negation} {quote}"
    r = confirmed(["Yes, it's me.", said])
    with pytest.raises(OutcomeError, match=NOT_PAYING):
        r.record_promise(12000, FRIDAY.isoformat(), quote if fragment else said)

"""What a call achieved, recorded by the agent's function tools, as plain testable Python.

The LLM never writes an outcome directly: its tools call the methods of :class:`OutcomeRecorder`,
which enforce the compliance rules in code:

- the debt (amount, due date) is revealed only by :meth:`OutcomeRecorder.confirm_identity`, and
  the outcomes that presuppose a discussion of the debt (promise, paid, dispute, refusal) are
  refused before identity was confirmed;
- a promise to pay needs an amount > 0 (and not above what is due) and a date that is not in the
  past at the customer's place; the customer's quoted words must themselves state that amount and
  that date (read by :mod:`duecall_agent.spoken`: "one hundred twenty dollars on Friday"; a bare
  "yes" is no promise), and with a transcript checker they must be words the customer said
  (amounts and dates are never invented); the clause of their utterance the quote is part of must
  not negate them ("I can't pay 120 on Friday", "no puedo pagar…"), even when only a fragment
  ("pay 120 on Friday") is quoted;
- a callback carries ``callback_at`` only for the confirmed customer: their words for the time,
  resolved in their zone (a third party's words are not kept);
- a voicemail gets a limited-content message without any amount or mention of a debt;
- once an outcome is recorded, another tool call cannot silently replace it (it raises
  :class:`OutcomeConflict`); a promise may be *revised* explicitly, and the revision is kept in
  the history; an opt-out always wins, and nothing replaces it.

Refusals raise :class:`OutcomeError`; the agent turns the message into the tool's error output so
the LLM learns why and can ask the customer again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
import unicodedata
from collections.abc import Callable
from typing import Any

__all__ = [
    "Result",
    "REACHED",
    "UNREACHED",
    "Outcome",
    "OutcomeError",
    "OutcomeConflict",
    "OutcomeRecorder",
    "format_amount",
    "normalize_words",
    "fold",
]

MAX_PROMISE_HORIZON_DAYS = 366
MAX_CALLBACK_HORIZON_DAYS = 366
# Wrong answers to the second identifier before the call is treated as not reaching the customer.
MAX_VERIFY_FAILURES = 2


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Result(str, enum.Enum):
    PAYMENT_PROMISED = "payment_promised"
    PAID = "paid"
    REFUSED = "refused"
    DISPUTED = "disputed"
    CALLBACK_REQUESTED = "callback_requested"
    WRONG_NUMBER = "wrong_number"
    OTHER = "other"
    OPTED_OUT = "opted_out"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"
    # Someone other than the customer answered; nothing about the debt was said (SPEC §1).
    NOT_AVAILABLE = "not_available"


REACHED = frozenset(
    {
        Result.PAYMENT_PROMISED,
        Result.PAID,
        Result.REFUSED,
        Result.DISPUTED,
        Result.CALLBACK_REQUESTED,
        Result.WRONG_NUMBER,
        Result.OTHER,
        Result.OPTED_OUT,
    }
)
UNREACHED = frozenset({Result.NO_ANSWER, Result.BUSY, Result.VOICEMAIL, Result.NOT_AVAILABLE})

# Results that presuppose the debt was discussed with the confirmed customer.
_NEEDS_IDENTITY = frozenset({Result.PAYMENT_PROMISED, Result.PAID, Result.REFUSED, Result.DISPUTED})


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The ``outcome`` object of a ``call_completed`` event (SPEC §2)."""

    result: Result
    promised_amount_minor: int | None = None
    promised_date: dt.date | None = None
    summary: str | None = None
    transcript: str | None = None
    duration_seconds: int | None = None
    # For callback_requested: when the customer asked to be called back (an aware datetime).
    callback_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "result", Result(self.result))
        if self.callback_at is not None:
            if self.result is not Result.CALLBACK_REQUESTED:
                raise ValueError("only callback_requested carries a callback_at")
            if self.callback_at.tzinfo is None or self.callback_at.utcoffset() is None:
                raise ValueError("callback_at must be an aware datetime (its zone known)")
        if self.result is Result.PAYMENT_PROMISED:
            if self.promised_amount_minor is None or self.promised_date is None:
                raise ValueError("payment_promised needs promised_amount_minor and promised_date")
        elif self.promised_amount_minor is not None or self.promised_date is not None:
            raise ValueError("only payment_promised carries a promised amount or date")
        if self.promised_amount_minor is not None and (
            isinstance(self.promised_amount_minor, bool) or self.promised_amount_minor <= 0
        ):
            raise ValueError("promised_amount_minor must be a positive integer")
        if self.duration_seconds is not None and self.duration_seconds < 0:
            raise ValueError("duration_seconds must not be negative")

    def to_json(self) -> dict[str, Any]:
        """The JSON object of SPEC §2, absent fields left out, in a fixed key order."""
        out: dict[str, Any] = {"result": self.result.value}
        if self.promised_amount_minor is not None:
            out["promised_amount_minor"] = self.promised_amount_minor
        if self.promised_date is not None:
            out["promised_date"] = self.promised_date.isoformat()
        if self.summary is not None:
            out["summary"] = self.summary
        if self.transcript is not None:
            out["transcript"] = self.transcript
        if self.duration_seconds is not None:
            out["duration_seconds"] = self.duration_seconds
        if self.callback_at is not None:
            at = self.callback_at.astimezone(dt.timezone.utc).replace(microsecond=0)
            out["callback_at"] = at.isoformat().replace("+00:00", "Z")
        return out


class OutcomeError(Exception):
    """A tool call the rules refuse. The message is meant for the LLM (no personal data)."""


class OutcomeConflict(OutcomeError):
    """Another outcome is already recorded; it is not silently replaced."""


# ISO 4217 currencies without minor units; everything else is shown with two decimals here.
_ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"})
_THREE_DECIMAL = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})


def minor_unit_digits(currency: str) -> int:
    if currency in _ZERO_DECIMAL:
        return 0
    if currency in _THREE_DECIMAL:
        return 3
    return 2


def format_amount(amount_minor: int, currency: str) -> str:
    """``12345, "USD"`` → ``"123.45 USD"`` (plain, unambiguous, easy for TTS)."""
    digits = minor_unit_digits(currency)
    if digits == 0:
        return f"{amount_minor} {currency}"
    major, minor = divmod(amount_minor, 10**digits)
    return f"{major}.{minor:0{digits}d} {currency}"


_WORD_RE = re.compile(r"[^\w]+", re.UNICODE)


def fold(text: str) -> str:
    """Case- and width-insensitive form of ``text``, its punctuation kept."""
    return unicodedata.normalize("NFKC", text).casefold()


def normalize_words(text: str) -> str:
    """Case-, accent-width- and punctuation-insensitive form used to match a quote to speech."""
    text = fold(text)
    return " ".join(w for w in _WORD_RE.split(text) if w)


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    action: str
    accepted: bool
    detail: str


@dataclasses.dataclass
class OutcomeRecorder:
    """The small state object the agent's tools write into, one per call."""

    customer_name: str
    amount_due_minor: int
    currency: str
    due_date: dt.date
    call_date: dt.date  # the customer's local date when the call was placed
    # Returns True when ``quote`` is something the customer said in this call. None: not checked.
    # With a ``context(quote)`` method too (transcript.QuoteChecker), the words the customer said
    # around a quoted fragment are read for a negation; otherwise the quote alone is.
    customer_said: Callable[[str], bool] | None = None
    company_name: str = "our company"
    callback_number: str | None = None
    # Operator's own voicemail text; placeholders {first_name}, {company}, {callback} only.
    voicemail_template: str | None = None
    # The call's language tag (metadata `language`): which words amounts and dates are read in.
    language: str = "en"
    # The customer's IANA zone (metadata `timezone`). None: callback times are not resolved.
    timezone: str | None = None
    # The call's clock (aware datetimes); callback times must come after its now.
    clock: Callable[[], dt.datetime] = _utc_now
    # A second identifier (metadata ``verify``): what to ask for, and the answer checked here.
    verify_label: str | None = None
    verify_value: str | None = dataclasses.field(default=None, repr=False)
    # Notices to give (metadata ``disclosures``): "recording" at the start, "collector" after
    # the right-party check.
    disclosures: frozenset[str] = frozenset({"recording", "collector"})
    # The name the agent gives (``DUECALL_AGENT_PERSONA``) and, for voicemail, the person the
    # customer may ask for when calling back (``DUECALL_CALLBACK_CONTACT``; default the persona).
    agent_name: str = "Alex"
    callback_contact: str | None = None
    # The business name a voicemail may give (``DUECALL_VOICEMAIL_BUSINESS_NAME``, else
    # ``company_name``); one that suggests debt collection is never said on a voicemail.
    voicemail_business: str | None = None

    identity_confirmed: bool = dataclasses.field(default=False, init=False)
    _result: Result | None = dataclasses.field(default=None, init=False)
    _promised_amount_minor: int | None = dataclasses.field(default=None, init=False)
    _promised_date: dt.date | None = dataclasses.field(default=None, init=False)
    _callback_at: dt.datetime | None = dataclasses.field(default=None, init=False)
    _callback_words: str | None = dataclasses.field(default=None, init=False)
    _notes: list[str] = dataclasses.field(default_factory=list, init=False)
    _verify_failures: int = dataclasses.field(default=0, init=False)
    _voicemail_left: bool = dataclasses.field(default=False, init=False)
    # Set once the outcome was reported to the service: it can no longer be revised.
    reported: bool = dataclasses.field(default=False, init=False)
    history: list[HistoryEntry] = dataclasses.field(default_factory=list, init=False)

    # ---- reading ----------------------------------------------------------------------------

    @property
    def result(self) -> Result | None:
        return self._result

    @property
    def is_final(self) -> bool:
        """True once the conversation has nothing left to achieve (an outcome is recorded)."""
        return self._result is not None

    def debt_disclosure(self) -> str:
        """The facts of the debt, for the confirmed customer only."""
        if not self.identity_confirmed:
            raise OutcomeError(
                "identity not confirmed: do not mention any debt, amount or date; "
                "first confirm you are speaking with the named customer (confirm_identity)"
            )
        return (
            f"The amount due is {format_amount(self.amount_due_minor, self.currency)}, "
            f"due on {self.due_date.isoformat()} ({self.due_date.strftime('%A, %B %d, %Y')})."
        )

    # ---- identity ---------------------------------------------------------------------------

    def confirm_identity(self, answer: str = "") -> str:
        """The person on the line said they are the named customer. With a second identifier
        (``verify``) ``answer`` must match it too. Returns the collector notice (when asked
        for) and the debt facts, which may be told to this person only."""
        if self._result is Result.OPTED_OUT:
            raise OutcomeConflict("the customer opted out: end the call politely, say nothing else")
        if self._result is not None:
            raise OutcomeConflict(
                f"outcome {self._result.value} is already recorded for this call; "
                "identity cannot be confirmed afterwards"
            )
        if self.identity_confirmed:
            return self.debt_disclosure()
        if self.verify_value is not None:
            label = self.verify_label or "second identifier"
            if self._verify_failures >= MAX_VERIFY_FAILURES:
                raise self._refuse(
                    "confirm_identity",
                    f"the {label} could not be confirmed: say nothing about the reason for the call, "
                    "call customer_not_available, say goodbye politely and end the call",
                )
            if not isinstance(answer, str) or not normalize_words(answer):
                raise self._refuse(
                    "confirm_identity",
                    f"before anything else, ask the person for their {label}, then call "
                    "confirm_identity again with their answer as verify_answer; do not say what it is",
                )
            if not identifier_matches(answer, self.verify_value):
                self._verify_failures += 1
                left = MAX_VERIFY_FAILURES - self._verify_failures
                if left > 0:
                    raise self._refuse(
                        "confirm_identity",
                        f"that {label} does not match: ask once more, without hinting at the right "
                        "answer or at the reason for the call",
                    )
                raise self._refuse(
                    "confirm_identity",
                    f"the {label} does not match: say nothing about the reason for the call, call "
                    "customer_not_available, say goodbye politely and end the call",
                )
        self.identity_confirmed = True
        self._log("confirm_identity", True, "")
        notice = (self.collector_notice() + " ") if "collector" in self.disclosures else ""
        return notice + self.debt_disclosure()

    def collector_notice(self) -> str:
        """The notice given to the confirmed customer when ``disclosures`` asks for it."""
        if _spanish(self.language):
            return (
                f"Diga primero, tal cual: \"{self.company_name} intenta cobrar una deuda y cualquier "
                "información obtenida se usará con ese fin.\""
            )
        return (
            f"First say, word for word: \"This is {self.company_name}. This is an attempt to collect "
            "a debt, and any information obtained will be used for that purpose.\""
        )

    def opening_line(self) -> str:
        """The first words to whoever answers: who is calling, that it is an automated (AI)
        assistant, the recording notice (when asked for), and for whom the call is. Nothing
        about the debt and not the creditor's business: the person may not be the customer."""
        recorded = "recording" in self.disclosures
        if _spanish(self.language):
            line = f"Hola, soy {self.agent_name}, un asistente automático de inteligencia artificial."
            if recorded:
                line += " Esta llamada se graba."
            return line + f" ¿Hablo con {self.customer_name}?"
        line = f"Hello, this is {self.agent_name}, an automated AI assistant."
        if recorded:
            line += " This call is recorded."
        return line + f" May I speak with {self.customer_name}?"

    def neutral_message(self) -> str:
        """What anyone but the confirmed customer hears at the end: no debt, no business."""
        first = self.customer_name.split()[0] if self.customer_name.split() else ""
        if _spanish(self.language):
            return f"Gracias. Volveré a llamar a {first} en otro momento. Adiós."
        return f"Thank you, I will try {first} another time. Goodbye."

    # ---- outcomes ---------------------------------------------------------------------------

    def record_promise(
        self,
        amount_minor: int,
        date: str | dt.date,
        customer_quote: str,
        *,
        revise: bool = False,
    ) -> str:
        """The confirmed customer promised to pay ``amount_minor`` on ``date``."""
        if self._result is Result.OPTED_OUT:
            raise self._refuse("record_promise", "the customer opted out; nothing else can be recorded", conflict=True)
        if not self.identity_confirmed:
            # checked first, so that not even a validation message hints at the debt
            raise self._refuse(
                "record_promise",
                "identity not confirmed: confirm you are speaking with the named customer first "
                "(confirm_identity); never discuss the debt with anyone else",
            )
        if self._result is not None and not (revise and self._result is Result.PAYMENT_PROMISED):
            # before the words are checked: asking the customer again would change nothing
            raise self._refuse(
                "record_promise",
                f"outcome {self._result.value} is already recorded for this call and is not "
                "replaced; if the customer asks not to be called again use opt_out",
                conflict=True,
            )
        if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
            raise self._refuse("record_promise", "amount_minor must be a whole number of minor units (e.g. cents)")
        if amount_minor <= 0:
            raise self._refuse("record_promise", "the promised amount must be greater than zero")
        if amount_minor > self.amount_due_minor:
            raise self._refuse(
                "record_promise",
                "the promised amount is more than the amount due; repeat the amount back to the "
                "customer and ask again",
            )
        when = self._parse_date(date, "record_promise")
        if when < self.call_date:
            raise self._refuse(
                "record_promise",
                f"the promised date {when.isoformat()} is in the past (today is "
                f"{self.call_date.isoformat()}); ask the customer for a date from today on",
            )
        if when > self.call_date + dt.timedelta(days=MAX_PROMISE_HORIZON_DAYS):
            raise self._refuse("record_promise", "the promised date is more than a year away; confirm it with the customer")
        self._check_quote("record_promise", customer_quote)
        self._check_promise_words(customer_quote, amount_minor, when)
        self._check_not_negated(customer_quote, amount_minor, when)
        if revise and self._result is Result.PAYMENT_PROMISED and self.reported:
            raise self._refuse(
                "record_promise",
                "the promise was already reported and cannot be changed on this call; tell the "
                "customer they can call back to change it",
                conflict=True,
            )
        if revise and self._result is Result.PAYMENT_PROMISED:
            before = f"{self._promised_amount_minor} on {self._promised_date}"
            self._promised_amount_minor, self._promised_date = amount_minor, when
            self._log("record_promise", True, f"revised (was {before})")
        else:
            self._set(Result.PAYMENT_PROMISED, "record_promise")
            self._promised_amount_minor, self._promised_date = amount_minor, when
        return (
            f"Recorded: {format_amount(amount_minor, self.currency)} on {when.isoformat()}. "
            "Thank the customer, repeat the amount and date once, and say goodbye."
        )

    def record_paid(self, note: str = "") -> str:
        self._set(Result.PAID, "record_paid", note)
        return "Recorded that the customer says they already paid. Thank them and say goodbye."

    def record_dispute(self, note: str = "") -> str:
        self._set(Result.DISPUTED, "record_dispute", note)
        return "Recorded the dispute. Tell the customer it will be reviewed, and say goodbye."

    def record_refusal(self, note: str = "") -> str:
        self._set(Result.REFUSED, "record_refusal", note)
        return "Recorded. Do not pressure the customer; thank them and say goodbye."

    def record_callback(self, note: str = "", when: str | None = None) -> str:
        """Callback requested: the customer asked for later, or someone else answered.

        ``when`` is the customer's words for the time ("tomorrow at 5 pm"), resolved in their zone
        to ``callback_at`` (:func:`duecall_agent.spoken.parse_callback_time`); words that name no
        time that can be told give a callback without a time, which is no error. With a third
        party nothing about the debt is said, so no details — note or time — are kept either."""
        if not self.identity_confirmed:
            # someone else, or not yet confirmed: the customer was not reached (SPEC §1)
            return self.record_not_available()
        confirmed = True
        raw = " ".join(when.split())[:300] if confirmed and isinstance(when, str) else ""
        words = _clean_note(raw)  # what the summary keeps
        at = self._resolve_callback(raw) if raw else None
        self._set(Result.CALLBACK_REQUESTED, "record_callback", note if confirmed else "")
        self._callback_at, self._callback_words = at, (words or None)
        if not confirmed:
            return "Recorded. Say you will call back another time, without any further details, and say goodbye."
        if at is not None:
            return (
                f"Recorded a callback for {_local_text(at)} (the customer's time). Repeat that time to "
                "the customer once and say goodbye."
            )
        if words:
            return (
                "Recorded a callback without a time: those words name no day or time that could be "
                "understood. Say you will call back another time, and say goodbye."
            )
        return "Recorded. Say you will call back another time, and say goodbye."

    def record_not_available(self, note: str = "") -> str:
        """Someone other than the customer answered (or could not be verified) and the customer
        cannot come to the phone. Nothing about the debt was said; the customer is tried again.
        A third party's words are not kept."""
        if self.identity_confirmed:
            raise self._refuse(
                "record_not_available",
                "the customer confirmed their identity in this call: use request_callback instead",
            )
        self._set(Result.NOT_AVAILABLE, "record_not_available")
        return (
            "Recorded. Say nothing about the reason for the call; say only this and end the call: "
            + self.neutral_message()
        )

    def record_wrong_number(self) -> str:
        if self.identity_confirmed:
            raise self._refuse(
                "record_wrong_number", "the customer already confirmed their identity in this call"
            )
        self._set(Result.WRONG_NUMBER, "record_wrong_number")
        return "Recorded. Apologise for the trouble and say goodbye. Do not mention any debt."

    def record_other(self, note: str = "") -> str:
        self._set(Result.OTHER, "record_other", note)
        return "Recorded. Say goodbye politely."

    def record_voicemail(self, *, leave_message: bool = True) -> str | None:
        """An answering machine picked up. Returns the limited-content message to leave, or None
        when none may be left (no callback number, or no business name that is safe to say) or
        ``leave_message`` is False (a machine that takes no message: an IVR, a full mailbox)."""
        if self.identity_confirmed:
            raise self._refuse("record_voicemail", "a person confirmed their identity: this is no voicemail")
        self._set(Result.VOICEMAIL, "record_voicemail")
        message = self.voicemail_message() if leave_message else None
        self._voicemail_left = message is not None
        return message

    def record_opt_out(self) -> str:
        """The customer asked not to be called again. Always wins, replaces anything else."""
        if self._result is not Result.OPTED_OUT:
            replaced = f" (replaced {self._result.value})" if self._result else ""
            self._result = Result.OPTED_OUT
            self._promised_amount_minor = self._promised_date = None
            self._callback_at = self._callback_words = None
            self._log("record_opt_out", True, "opt-out" + replaced)
        return (
            "Recorded: the customer will not be called again. Confirm that briefly and politely, "
            "and end the call."
        )

    def voicemail_business_name(self) -> str | None:
        """The business name a voicemail may say: one that does not suggest debt collection."""
        name = " ".join((self.voicemail_business or self.company_name or "").split())
        if not name or suggests_debt(name):
            return None
        return name

    def voicemail_message(self) -> str | None:
        """A limited-content message (12 CFR 1006.2(j)): a business name that does not suggest
        debt collection, a request to call back, a person's name to ask for, and the callback
        number — nothing else (not the customer's name: whoever hears the tape learns nothing).
        None when the required content cannot be given: then no message is left."""
        business = self.voicemail_business_name()
        number = (self.callback_number or "").strip()
        contact = " ".join((self.callback_contact or self.agent_name or "").split())
        if not business or not number or not contact or suggests_debt(contact):
            return None
        template = self.voicemail_template
        if template:
            try:
                text = template.format_map(_OnlyKeys(company=business, callback=number, contact=contact))
            except (KeyError, ValueError, IndexError, AttributeError):
                text = None  # an unknown placeholder: the built-in message is used instead
            if text and number in text and not suggests_debt(text):
                return text
        if _spanish(self.language):
            return (
                f"Hola, soy {contact}, de {business}. Por favor, llámeme al {number}. Gracias."
            )
        return f"Hi, this is {contact} calling from {business}. Please call me back at {number}. Thank you."

    # ---- the end ------------------------------------------------------------------------------

    def outcome(
        self,
        *,
        transcript: str | None = None,
        duration_seconds: int | None = None,
        answered: bool = True,
    ) -> Outcome:
        """The outcome to report when the call ends.

        With nothing recorded: ``other`` when the customer was identified and talked, else
        ``no_answer`` (hung up before anyone was identified: nobody was reached, so the service
        may try again rather than close the reminder on a guess)."""
        result = self._result
        if result is None:
            result = Result.OTHER if self.identity_confirmed else Result.NO_ANSWER
        return Outcome(
            result=result,
            promised_amount_minor=self._promised_amount_minor if result is Result.PAYMENT_PROMISED else None,
            promised_date=self._promised_date if result is Result.PAYMENT_PROMISED else None,
            summary=self.summary(result, answered=answered),
            transcript=transcript or None,
            duration_seconds=duration_seconds,
            callback_at=self._callback_at if result is Result.CALLBACK_REQUESTED else None,
        )

    def summary(self, result: Result | None = None, *, answered: bool = True) -> str:
        result = result or self._result
        ident = "identity confirmed" if self.identity_confirmed else "identity not confirmed"
        match result:
            case Result.PAYMENT_PROMISED:
                text = (
                    f"Customer promised to pay {format_amount(self._promised_amount_minor or 0, self.currency)} "
                    f"on {self._promised_date.isoformat() if self._promised_date else '?'}."
                )
            case Result.PAID:
                text = "Customer says the amount is already paid."
            case Result.REFUSED:
                text = "Customer refused to pay."
            case Result.DISPUTED:
                text = "Customer disputes the debt."
            case Result.CALLBACK_REQUESTED:
                if not self.identity_confirmed:
                    text = "The customer was not available; no details were given to the person who answered."
                elif self._callback_at is not None:
                    text = f"A callback was requested for {_local_text(self._callback_at)} (customer's time)."
                elif self._callback_words:
                    text = f'A callback was requested; no time was understood from "{self._callback_words}".'
                else:
                    text = "A callback was requested; no time was given."
            case Result.WRONG_NUMBER:
                text = "Wrong number: the person who answered is not the customer."
            case Result.OPTED_OUT:
                text = "Customer asked not to be called again."
            case Result.VOICEMAIL:
                text = (
                    "Voicemail: a limited-content message was left, without amount or debt details."
                    if self._voicemail_left
                    else "Voicemail: no message was left."
                )
            case Result.NOT_AVAILABLE:
                text = "The customer was not available; nothing about the debt was said to the person who answered."
            case Result.NO_ANSWER:
                text = "The call ended before anyone was identified." if answered else "No answer."
            case _:
                text = "The call ended without a specific outcome."
        notes = [n for n in self._notes if n]
        if notes and result in (Result.PAID, Result.REFUSED, Result.DISPUTED, Result.CALLBACK_REQUESTED, Result.OTHER):
            text += " Note: " + "; ".join(notes)
        revisions = sum(1 for h in self.history if h.accepted and h.detail.startswith("revised"))
        if revisions:
            text += f" (promise revised {revisions}x during the call)"
        return f"{text} [{ident}]"

    # ---- internals ----------------------------------------------------------------------------

    def _set(self, result: Result, action: str, note: str = "") -> None:
        if self._result is Result.OPTED_OUT:
            raise self._refuse(action, "the customer opted out; nothing else can be recorded", conflict=True)
        if result in _NEEDS_IDENTITY and not self.identity_confirmed:
            raise self._refuse(
                action,
                "identity not confirmed: confirm you are speaking with the named customer first "
                "(confirm_identity); never discuss the debt with anyone else",
            )
        if self._result is not None:
            raise self._refuse(
                action,
                f"outcome {self._result.value} is already recorded for this call and is not "
                "replaced; if the customer asks not to be called again use opt_out",
                conflict=True,
            )
        self._result = result
        note = _clean_note(note)
        if note:
            self._notes.append(note)
        self._log(action, True, result.value)

    def _check_quote(self, action: str, quote: str) -> None:
        if not isinstance(quote, str) or not normalize_words(quote):
            raise self._refuse(action, "quote the customer's own words that state the amount and date")
        if self.customer_said is not None and not self.customer_said(quote):
            raise self._refuse(
                action,
                "the customer did not say that in this call; never invent an amount or a date: ask "
                "the customer to state how much they will pay and when",
            )

    def _check_promise_words(self, quote: str, amount_minor: int, when: dt.date) -> None:
        """The quote itself must state the amount and the date, and they must be the tool's."""
        from . import spoken  # spoken reads currencies through this module

        said = spoken.read_promise(
            quote, self.currency, amount_due_minor=self.amount_due_minor, today=self.call_date, language=self.language
        )
        ask = (
            "ask the customer to say themselves how much they will pay and on which day, repeat "
            "both back, and quote the customer's words that state them"
        )
        digits = "" if said.words_understood else " (in this language only amounts in digits are read)"
        if not said.amounts and not said.dates:
            raise self._refuse(
                "record_promise",
                f"the customer's words state no amount and no date{digits}; a bare yes, okay or sure "
                f"is not a promise: {ask}",
            )
        if not said.amounts:
            raise self._refuse("record_promise", f"the customer's words state no amount{digits}: {ask}")
        if not said.dates and said.words_understood:
            raise self._refuse("record_promise", f"the customer's words state no date: {ask}")
        if amount_minor not in said.amounts:
            heard = " or ".join(format_amount(a, self.currency) for a in sorted(said.amounts))
            raise self._refuse(
                "record_promise",
                f"the customer's words say {heard}, not {format_amount(amount_minor, self.currency)}: "
                "record the amount the customer said, or ask them again",
            )
        if said.dates and when not in said.dates:
            heard = " or ".join(d.isoformat() for d in sorted(said.dates))
            raise self._refuse(
                "record_promise",
                f"the customer's words name {heard}, not {when.isoformat()}: record the day the "
                "customer said, or ask them again",
            )

    def _check_not_negated(self, quote: str, amount_minor: int, when: dt.date) -> None:
        """No clause the quote is part of may negate the promised amount or day ("I can't pay 120
        on Friday"), read in what the customer said around the quote when the checker knows it (a
        quoted fragment, "pay 120 on Friday", does not hide the "I can't" said before it)."""
        context = getattr(self.customer_said, "context", None)
        where = context(quote) if context is not None else None
        if where is not None:
            text, start, end = where.text, where.start, where.end
        else:
            text = fold(quote)
            start, end = 0, len(text)
        for clause in _clauses(text, start, end):
            if self._negates(clause, amount_minor, when):
                raise self._refuse(
                    "record_promise",
                    "the customer's words say they will NOT pay that: this is no promise, do not "
                    "record one from these words; ask the customer whether they can pay anything, "
                    "and if so how much and on which day",
                )

    def _negates(self, clause: str, amount_minor: int, when: dt.date) -> bool:
        """``clause`` negates the promised amount or day: a negation ("can't", "no puedo") anywhere
        in it, or a bare "not" before them ("120 on Friday, not Thursday" is a correction)."""
        from . import spoken

        def states_promise(text: str) -> bool:
            said = spoken.read_promise(
                text, self.currency, amount_due_minor=self.amount_due_minor, today=self.call_date, language=self.language
            )
            return amount_minor in said.amounts or when in said.dates

        words = " " + normalize_words(clause) + " "
        if _NEGATION.search(words):
            return states_promise(clause)
        return any(states_promise(words[m.end() :]) for m in _BARE_NOT.finditer(words))

    def _resolve_callback(self, words: str) -> dt.datetime | None:
        if self.timezone is None:
            return None
        from . import spoken

        now = self.clock()
        try:
            at = spoken.parse_callback_time(words, now, self.timezone, language=self.language)
        except (ValueError, LookupError):
            return None
        if at is None or at <= now or at - now > dt.timedelta(days=MAX_CALLBACK_HORIZON_DAYS):
            return None
        return at

    def _parse_date(self, value: str | dt.date, action: str) -> dt.date:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.strip()):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise self._refuse(action, "the date must be a calendar date written YYYY-MM-DD")

    def _refuse(self, action: str, why: str, *, conflict: bool = False) -> OutcomeError:
        self._log(action, False, why)
        return (OutcomeConflict if conflict else OutcomeError)(why)

    def _log(self, action: str, accepted: bool, detail: str) -> None:
        self.history.append(HistoryEntry(action, accepted, detail))


class _OnlyKeys(dict):
    """format_map mapping that knows only its own keys (so ``{amount}`` cannot be templated in)."""

    def __missing__(self, key: str) -> str:
        raise KeyError(key)


_PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{6,}\d")


def _local_text(at: dt.datetime) -> str:
    """``Wednesday, 2026-11-25 at 17:00`` on the wall clock of ``at``'s own zone."""
    return f"{at.strftime('%A')}, {at.date().isoformat()} at {at.strftime('%H:%M')}"


def _clean_note(note: str) -> str:
    """Notes are free text from the LLM: keep them short and strip anything like a number."""
    if not isinstance(note, str):
        return ""
    note = " ".join(note.split())[:300]
    return _PHONE_LIKE.sub("[number]", note)


# Negations of a promise, matched in normalize_words form (so "can't" and "can’t" are "can t"):
# English and Spanish in every call (customers switch). A bare Spanish "no" is none of them ("no
# más tarde del viernes" is a promise); a bare English "not" is _BARE_NOT.
_NEGATION = re.compile(
    r" (?:(?:can|won|don|doesn|didn|couldn|wouldn|shouldn|isn|aren|ain|wasn) t"
    r"|cannot|cant|wont|dont|couldnt|wouldnt|didnt|unable|never|no way|no chance"
    r"|(?:can|could|will|would|do|does|did|shall|should|am|m|is|are|re) not"
    r"|nunca|jamás|jamas|de ninguna manera|ni modo"
    r"|no (?:(?:me|le|les|lo|la|se|te|los|las) )?(?:puedo|podré|podre|podría|podria|podemos|podremos|voy|vamos"
    r"|pienso|quiero|pagaré|pagare|pago|pagamos|tengo|tenemos|alcanza|alcanzará|alcanzara|es posible)) "
)
_BARE_NOT = re.compile(r" not(?! (?:later|after|past|beyond|more)\b)")
# Where a clause ends: punctuation, a dash, or a "but" (the words of the customer, folded).
_CLAUSE_END = re.compile(r"[,;.!?:…¿¡]+|\s[-–—]+\s|[–—]+|\b(?:but|though|although|however|pero|aunque|sino)\b")


def _clauses(text: str, start: int, end: int) -> list[str]:
    """The clauses of ``text`` that overlap ``text[start:end]`` (where the quote is)."""
    out, pos = [], 0
    for m in [*_CLAUSE_END.finditer(text), None]:
        stop = m.start() if m is not None else len(text)
        if pos < end and stop > start and text[pos:stop].strip():
            out.append(text[pos:stop])
        if m is not None:
            pos = m.end()
    return out


def _spanish(language: str) -> bool:
    return language.split("-")[0].lower() == "es"


# Words a voicemail's business name or template must not contain: they would tell whoever hears
# the message that it is about a debt (12 CFR 1006.2(j)(1)(i)).
_DEBT_WORDS = re.compile(
    r"\b(debt\w*|collect\w*|recover\w*|owe[sd]?|owing|arrears?|delinquen\w*|overdue|past due|"
    r"outstanding|balance|bill\w*|invoice\w*|payment\w*|pay|credit\w*|deuda\w*|cobr\w*|"
    r"factura\w*|pago\w*|saldo\w*|mora\w*)\b",
    re.IGNORECASE,
)


def suggests_debt(text: str) -> bool:
    """True when ``text`` names a debt, a collection, a bill or a payment (English, Spanish)."""
    return bool(_DEBT_WORDS.search(unicodedata.normalize("NFKC", text)))


_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
    "cero": "0", "uno": "1", "una": "1", "dos": "2", "tres": "3", "cuatro": "4", "cinco": "5",
    "seis": "6", "siete": "7", "ocho": "8", "nueve": "9",
}


_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}


def _grouped(words: list[str]) -> str:
    """Words read as groups of digits, as years and codes are said: "nineteen eighty four" →
    "1984", "oh two one three nine" → "02139"."""
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in _TENS:
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if nxt in _DIGIT_WORDS and _DIGIT_WORDS[nxt] != "0" and nxt not in ("o", "oh"):
                out.append(str(_TENS[w] + int(_DIGIT_WORDS[nxt])))
                i += 2
                continue
            out.append(str(_TENS[w]))
        elif w in _TEENS:
            out.append(str(_TEENS[w]))
        else:
            out.append(_DIGIT_WORDS.get(w, w))
        i += 1
    return "".join(out)


def _identifier_forms(text: str) -> set[str]:
    """Comparable forms of a spoken identifier: letters and digits only, digit words as digits
    ("zero two one three nine" = "02139"), and numbers as people say them ("nineteen eighty
    four", "two thousand five")."""
    words = normalize_words(text).split()
    forms = {"".join(_DIGIT_WORDS.get(w, w) for w in words), _grouped(words)}
    from . import spoken  # numbers in words ("two thousand five")

    try:
        number = spoken.parse_amount(" ".join(words), "JPY")  # a currency without minor units
    except Exception:
        number = None
    if number is not None:
        forms.add(str(number))
    return {f for f in forms if f}


def identifier_matches(answer: str, expected: str) -> bool:
    """The person's answer states the expected identifier, alone or within a sentence ("it's
    zero two one three nine"); case, spacing, punctuation and digit words do not matter. An answer
    that also states another value of its shape ("02138 02139 02140") is no match: a list of
    guesses would get round the limit of tries. Compared in code: the model never learns the value."""
    want = "".join(normalize_words(expected).split())
    words = normalize_words(answer).split()[:40]
    if not want:
        return False
    # every place the answer states the identifier (it may be said twice): the shortest windows
    # that state it ("1984" in "1983 1984", not the whole), and then the words between them
    found = [(i, j) for i, j in _windows(len(words), want) if want in _identifier_forms(" ".join(words[i:j]))]
    shortest = sorted(w for w in found if not any(o != w and w[0] <= o[0] and o[1] <= w[1] for o in found))
    spans: list[tuple[int, int]] = []
    for i, j in shortest:
        if not spans or i >= spans[-1][1]:
            spans.append((i, j))
    if not spans:
        return False
    # a list of guesses is no answer: two tries must not allow any number of them
    edges = [0] + [k for span in spans for k in span] + [len(words)]
    return not any(_states_another(words[a:b], want) for a, b in zip(edges[::2], edges[1::2]))


def _states_another(words: list[str], want: str) -> bool:
    """``words`` state a different value of the identifier's shape (as many digits as ``want``)."""
    if not want.isdigit():
        return False
    for i, j in _windows(len(words), want):
        if any(f.isdigit() and len(f) == len(want) and f != want for f in _identifier_forms(" ".join(words[i:j]))):
            return True
    return False


def _windows(n: int, want: str) -> list[tuple[int, int]]:
    """The runs of words that can state an identifier as long as ``want``: a word per character at
    most, and a few that say none ("two thousand and five", "nineteen hundred and eighty four")."""
    longest = len(want) + 4
    return [(i, j) for i in range(n) for j in range(i + 1, min(n, i + longest) + 1)]

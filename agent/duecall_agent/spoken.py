"""Amounts, dates and callback times as people say them, as plain testable Python (no network).

What the customer said (as the speech-to-text wrote it, or as the LLM quotes it) is read against the
reminder: its currency (amounts become whole minor units), the customer's local *today* (dates),
and the customer's IANA zone (callback times become aware datetimes, DST-correct with zoneinfo).

- :func:`read_promise` — every amount and every date a promise quote states, each as the set of
  its readings (``"next Friday"`` is read both as the coming Friday and the one a week later);
- :func:`amounts_in` / :func:`parse_amount`, :func:`dates_in` / :func:`parse_date` — the same,
  one kind at a time (``parse_*`` give the main reading of the *last* mention: people correct
  themselves, "a hundred, no, a hundred twenty");
- :func:`parse_callback_time` — when to call back, or ``None`` when no time can be told.

English number and date words are understood for every ``en*`` language; ``es*`` adds Spanish
ones (and keeps the English, for code-switching). Any other language: digits, ISO and numeric
dates only (:func:`understands_words` is False). The decisions on ambiguous phrases are listed in
README.md ("How the agent understands amounts, dates and times"); the constants below hold them.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import re
import unicodedata
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction

from .outcomes import minor_unit_digits

__all__ = [
    "PromiseReading",
    "understands_words",
    "month_first",
    "read_promise",
    "amounts_in",
    "parse_amount",
    "dates_in",
    "parse_date",
    "parse_callback_time",
    "MORNING_HOUR",
    "NOON_HOUR",
    "AFTERNOON_HOUR",
    "EVENING_HOUR",
    "NIGHT_HOUR",
    "DAY_DEFAULT_HOUR",
    "RECENT_PAST_DAYS",
]

# Default hours of the parts of the day, and of a named day without a time ("call me Monday").
MORNING_HOUR = 10
NOON_HOUR = 12
AFTERNOON_HOUR = 14
EVENING_HOUR = 18
NIGHT_HOUR = 19
DAY_DEFAULT_HOUR = 10
# A month and day without a year means the next one from today, unless it passed within this many
# days: then it is this year's (a past date, which the promise check refuses as such).
RECENT_PAST_DAYS = 31

_PART_HOURS = {"morning": MORNING_HOUR, "afternoon": AFTERNOON_HOUR, "evening": EVENING_HOUR, "night": NIGHT_HOUR}

# ---- vocabulary -----------------------------------------------------------------------------------

_EN_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_EN_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_EN_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_EN_SCALES = {"thousand": 1000, "million": 10**6}
_EN_SMALL = _EN_UNITS.keys() | _EN_TEENS.keys() | _EN_TENS.keys()
_EN_DIGIT_WORDS = {"zero": 0, "oh": 0, "o": 0, **_EN_UNITS}
_EN_ORD_UNITS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
}
_EN_ORD_OTHER = {
    "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14, "fifteenth": 15,
    "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}
# "the first time", "the second payment": an ordinal before these words is no day of the month
_NOT_A_DAY_AFTER = frozenset(
    {"time", "times", "week", "weeks", "thing", "one", "payment", "payments", "installment", "part", "half", "month", "step", "vez", "semana", "pago"}
)

_ES_UNITS = {"un": 1, "uno": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8, "nueve": 9}
_ES_TEENS = {
    "diez": 10, "once": 11, "doce": 12, "trece": 13, "catorce": 14, "quince": 15, "dieciseis": 16,
    "diecisiete": 17, "dieciocho": 18, "diecinueve": 19, "veintiun": 21, "veintiuno": 21, "veintiuna": 21,
    "veintidos": 22, "veintitres": 23, "veinticuatro": 24, "veinticinco": 25, "veintiseis": 26,
    "veintisiete": 27, "veintiocho": 28, "veintinueve": 29,
}
_ES_TENS = {"veinte": 20, "treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60, "setenta": 70, "ochenta": 80, "noventa": 90}
_ES_HUNDREDS = {
    "cien": 100, "ciento": 100, "doscientos": 200, "doscientas": 200, "trescientos": 300, "trescientas": 300,
    "cuatrocientos": 400, "cuatrocientas": 400, "quinientos": 500, "quinientas": 500, "seiscientos": 600,
    "seiscientas": 600, "setecientos": 700, "setecientas": 700, "ochocientos": 800, "ochocientas": 800,
    "novecientos": 900, "novecientas": 900,
}
_ES_DIGIT_WORDS = {"cero": 0, **{k: v for k, v in _ES_UNITS.items() if k not in ("un", "una")}}

_MONTHS_EN = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4, "may": 5,
    "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sep": 9, "sept": 9,
    "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}
# month names that are also common words: only a day in digits or an ordinal makes them a date
_MONTHS_ALSO_WORDS = frozenset({"may", "march", "mar"})
_MONTHS_ES = {
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7, "agosto": 8,
    "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
}
_WEEKDAYS_EN = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}
_WEEKDAYS_ES = {"lunes": 0, "martes": 1, "miercoles": 2, "jueves": 3, "viernes": 4, "sabado": 5, "domingo": 6}

_DOLLARS = frozenset({"USD", "CAD", "AUD", "NZD", "SGD", "HKD", "TWD", "JMD", "BSD", "BZD", "TTD", "XCD", "LRD", "FJD"})
_PESOS = frozenset({"MXN", "COP", "CLP", "ARS", "UYU", "DOP", "CUP", "PHP", "BOB"})
_MAJOR_WORDS: dict[str, frozenset[str]] = {
    **dict.fromkeys(("dollar", "dollars", "buck", "bucks", "dolar", "dolares"), _DOLLARS),
    **dict.fromkeys(("euro", "euros"), frozenset({"EUR"})),
    **dict.fromkeys(("pound", "pounds", "quid", "libra", "libras"), frozenset({"GBP"})),
    **dict.fromkeys(("peso", "pesos"), _PESOS),
    "yen": frozenset({"JPY"}),
}
_MINOR_WORDS: dict[str, frozenset[str]] = {
    **dict.fromkeys(("cent", "cents"), _DOLLARS | {"EUR"}),
    **dict.fromkeys(("centavo", "centavos"), _PESOS | _DOLLARS),
    **dict.fromkeys(("centimo", "centimos"), frozenset({"EUR"})),
    **dict.fromkeys(("penny", "pence", "pennies"), frozenset({"GBP"}) | _DOLLARS),
}
_SYMBOLS: dict[str, frozenset[str]] = {
    "$": _DOLLARS | _PESOS,
    "€": frozenset({"EUR"}),
    "£": frozenset({"GBP"}),
    "¥": frozenset({"JPY", "CNY"}),
}
# ISO codes recognised when spoken/written as a word ("120 usd"). Not e.g. ALL or TRY: English words.
_ISO_WORDS = frozenset({"usd", "eur", "gbp", "mxn", "jpy", "cad", "aud", "nzd", "chf", "cop", "clp", "ars", "brl", "pen", "cny", "inr"})

_FULL_AMOUNT = [
    ("the", "full", "amount"), ("full", "amount"), ("the", "whole", "amount"), ("whole", "amount"),
    ("the", "entire", "amount"), ("entire", "amount"), ("the", "total", "amount"), ("total", "amount"),
    ("the", "full", "balance"), ("full", "balance"), ("the", "whole", "balance"), ("whole", "balance"),
    ("the", "whole", "thing"), ("whole", "thing"), ("all", "of", "it"), ("all", "of", "that"),
    ("everything",), ("in", "full"), ("the", "total"), ("it", "all"), ("all", "i", "owe"), ("what", "i", "owe"),
    ("the", "balance"),
]
_FULL_AMOUNT_ES = [
    ("todo",), ("la", "totalidad"), ("el", "total"), ("el", "monto", "completo"), ("el", "monto", "total"),
    ("el", "importe", "total"), ("la", "cantidad", "completa"), ("la", "deuda", "completa"), ("completo",),
    ("el", "saldo", "completo"), ("lo", "que", "debo"),
]
_HALF_AMOUNT = [
    ("half", "of", "it"), ("half", "the", "amount"), ("half", "of", "the", "amount"), ("half", "the", "balance"),
    ("half", "of", "what", "i", "owe"), ("half",),
]
_HALF_AMOUNT_ES = [("la", "mitad", "de", "lo", "que", "debo"), ("la", "mitad"), ("mitad",)]

_MONTH_END_EN = [
    (("end", "of", "the", "month"), 0), (("end", "of", "this", "month"), 0), (("end", "of", "month"), 0),
    (("end", "of", "next", "month"), 1), (("end", "of", "the", "next", "month"), 1),
    (("last", "day", "of", "the", "month"), 0), (("last", "day", "of", "this", "month"), 0),
    (("last", "day", "of", "next", "month"), 1), (("month", "end"), 0),
]
_MONTH_END_ES = [
    (("fin", "de", "mes"), 0), (("fin", "del", "mes"), 0), (("finales", "de", "mes"), 0), (("finales", "del", "mes"), 0),
    (("fin", "de", "este", "mes"), 0), (("finales", "de", "este", "mes"), 0), (("ultimo", "dia", "del", "mes"), 0),
    (("ultimo", "dia", "de", "este", "mes"), 0), (("fin", "del", "proximo", "mes"), 1),
    (("finales", "del", "proximo", "mes"), 1), (("fin", "del", "mes", "que", "viene"), 1),
    (("finales", "del", "mes", "que", "viene"), 1), (("ultimo", "dia", "del", "proximo", "mes"), 1),
    (("ultimo", "dia", "del", "mes", "que", "viene"), 1),
]
_OF_MONTH_EN = [(("of", "next", "month"), 1), (("next", "month"), 1), (("of", "this", "month"), 0), (("this", "month"), 0)]
_OF_MONTH_ES = [(("del", "proximo", "mes"), 1), (("del", "mes", "que", "viene"), 1), (("de", "este", "mes"), 0)]

# ---- text to tokens ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Tok:
    kind: str  # iso | slash | dotted | clock | num | sym | word
    text: str
    suffix: str = ""  # for num: st nd rd th o (ordinal), am pm


_TOKEN_RE = re.compile(
    r"(?P<iso>\d{4}-\d{1,2}-\d{1,2})(?![\d-])"
    r"|(?P<slash>\d{1,2}/\d{1,2}(?:/(?:\d{4}|\d{2}))?)(?![\d/])"
    r"|(?P<dotted>\d{1,2}\.\d{1,2}\.\d{4})(?!\d)"
    r"|(?P<clock>\d{1,2}:\d{2})(?!\d)"
    r"|(?P<num>\d+(?:[.,]\d+)*)(?:(?P<suffix>st|nd|rd|th|am|pm|o)(?![a-z]))?"
    r"|(?P<sym>[$€£¥])"
    r"|(?P<word>[a-z]+)"
)
_MERIDIEM_RE = re.compile(r"\b([ap])\.\s?m\b\.?")
_OCLOCK_RE = re.compile(r"\bo\s?['\u2019]?\s?clock\b")


def _fold(text: str) -> str:
    """Case-folded, accents removed (``miércoles`` → ``miercoles``, ``mañana`` → ``manana``)."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(c for c in text if not unicodedata.combining(c)).replace("\u2019", "'")


def _tokenize(text: str) -> list[_Tok]:
    text = _fold(text if isinstance(text, str) else "")
    text = _MERIDIEM_RE.sub(r" \1m ", text)
    text = _OCLOCK_RE.sub(" oclock ", text)
    out: list[_Tok] = []
    for m in _TOKEN_RE.finditer(text):
        if m.group("num") is not None:
            out.append(_Tok("num", m.group("num"), m.group("suffix") or ""))
            continue
        for kind in ("iso", "slash", "dotted", "clock", "sym", "word"):
            if m.group(kind) is not None:
                out.append(_Tok(kind, m.group(kind)))
                break
    return out


def understands_words(language: str) -> bool:
    """True when amounts and dates said in words are understood in ``language`` (en*, es*)."""
    return _base(language) in ("en", "es")


def month_first(language: str) -> bool:
    """Numeric dates ``12/1``: month first for ``en``, ``en-US`` and any ``-US`` tag; day first otherwise."""
    tag = (language or "").strip().lower().replace("_", "-")
    return tag in ("en", "en-us") or tag.endswith("-us")


def _base(language: str) -> str:
    return (language or "").strip().lower().replace("_", "-").split("-")[0]


# ---- the mentions a text makes ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _DateM:
    start: int
    end: int
    primary: dt.date
    cands: frozenset[dt.date]
    explicit: bool = False  # names a calendar day (not a weekday alone)


@dataclasses.dataclass(frozen=True)
class _TimeM:
    start: int
    kind: str  # offset | clock | part | later
    offset: dt.timedelta | None = None
    hour: int | None = None
    minute: int = 0
    meridiem: str | None = None  # am | pm | None (not said)
    part: str | None = None  # morning | afternoon | evening | night
    this: bool = False  # "this evening", "tonight": today only


@dataclasses.dataclass(frozen=True)
class _AmountM:
    start: int
    primary: int
    cands: frozenset[int]


@dataclasses.dataclass(frozen=True)
class PromiseReading:
    """What a promise quote states: every reading of every amount (minor units) and date."""

    amounts: frozenset[int]
    dates: frozenset[dt.date]
    words_understood: bool  # False: the language's words are not read, only digits


_WordAt = Callable[[int], "str | None"]  # the free word at a token index, or None


class _Scan:
    """Tokens of one text, each consumed at most once by the date, time and amount passes."""

    def __init__(self, text: str, language: str) -> None:
        self.toks = _tokenize(text)
        self.n = len(self.toks)
        self.used = [False] * self.n
        base = _base(language)
        self.es = base == "es"
        self.en = base in ("en", "es")
        self.en_digits = base == "en"  # "1,200.50"; other languages also read "1.200,50"
        self.month_first = month_first(language)
        self.months = {**(_MONTHS_EN if self.en else {}), **(_MONTHS_ES if self.es else {})}
        self.weekdays = {**(_WEEKDAYS_EN if self.en else {}), **(_WEEKDAYS_ES if self.es else {})}

    # -- access --

    def t(self, j: int) -> _Tok | None:
        return self.toks[j] if 0 <= j < self.n and not self.used[j] else None

    def w(self, j: int) -> str | None:
        tok = self.t(j)
        return tok.text if tok is not None and tok.kind == "word" else None

    def raw_w(self, j: int) -> str | None:
        """A word token whether consumed or not (to look at context)."""
        return self.toks[j].text if 0 <= j < self.n and self.toks[j].kind == "word" else None

    def seq(self, j: int, words: Sequence[str]) -> int | None:
        for k, word in enumerate(words):
            if self.w(j + k) != word:
                return None
        return j + len(words)

    def seq_any(self, j: int, options: Iterable[Sequence[str]]) -> int | None:
        best = None
        for words in options:
            end = self.seq(j, words)
            if end is not None and (best is None or end > best):
                best = end
        return best

    def take(self, i: int, j: int) -> None:
        for k in range(max(i, 0), min(j, self.n)):
            self.used[k] = True

    def int_num(self, j: int) -> int | None:
        tok = self.t(j)
        if tok is not None and tok.kind == "num" and not tok.suffix and tok.text.isdigit():
            return int(tok.text)
        return None

    # -- numbers --

    def cardinal(self, j: int) -> tuple[int, int] | None:
        """An integer said in digits or words at ``j``: ``(value, end)``."""
        n = self.int_num(j)
        if n is not None:
            return n, j + 1
        best = _en_cardinal(self.w, j) if self.en else None
        if self.es:
            es = _es_cardinal(self.w, j)
            if es is not None and (best is None or es[1] > best[1]):
                best = es
        return best

    def day(self, j: int) -> tuple[int, int, bool] | None:
        """A day of the month at ``j``: ``(day, end, ordinal)``."""
        tok = self.t(j)
        if tok is None:
            return None
        if tok.kind == "num" and tok.text.isdigit() and tok.suffix in ("st", "nd", "rd", "th", "o"):
            return (int(tok.text), j + 1, True) if 1 <= int(tok.text) <= 31 else None
        word = tok.text if tok.kind == "word" else None
        if word is not None and self.en:
            nxt = self.w(j + 1)
            if word in ("twenty", "thirty") and nxt in _EN_ORD_UNITS:
                return _EN_TENS[word] + _EN_ORD_UNITS[nxt], j + 2, True
            if word in _EN_ORD_UNITS:
                return _EN_ORD_UNITS[word], j + 1, True
            if word in _EN_ORD_OTHER:
                return _EN_ORD_OTHER[word], j + 1, True
        if word is not None and self.es and word in ("primero", "primer"):
            return 1, j + 1, True
        card = self.cardinal(j)
        if card is not None and 1 <= card[0] <= 31:
            return card[0], card[1], False
        return None

    def year(self, j: int) -> tuple[int, int] | None:
        k = j + 1 if self.w(j) in ("of", "de", "del") else j
        n = self.int_num(k)
        if n is not None and 1900 <= n <= 2100 and len(self.toks[k].text) == 4:
            return n, k + 1
        return None

    def currency_word(self, j: int, currency: str) -> tuple[frozenset[str], str, int] | None:
        """A currency named at ``j``: ``(currencies, 'major' | 'minor', end)``."""
        word = self.w(j)
        if word in ("us", "u") and self.w(j + 1) in ("dollar", "dollars", "dolar", "dolares"):
            j, word = j + 1, self.w(j + 1)
        if word is None:
            return None
        if word in _MAJOR_WORDS:
            return _MAJOR_WORDS[word], "major", j + 1
        if word in _MINOR_WORDS:
            return _MINOR_WORDS[word], "minor", j + 1
        if word in _ISO_WORDS or (len(word) == 3 and word == currency.lower()):
            return frozenset({word.upper()}), "major", j + 1
        return None


def _en_cardinal(w: _WordAt, i: int) -> tuple[int, int] | None:
    """English cardinal words up to the millions at ``i``: ``(value, end)``.

    Adjacent small numbers are *separate* numbers ("one twenty" is 1 then 20, never 120);
    "twenty five hundred" is 2500; "a" counts only before hundred/thousand/million."""
    j, total, group, last = i, 0, 0, None
    has_hundred, last_scale = False, 10**12
    while True:
        x = w(j)
        if x is None:
            break
        if x == "a" and last is None and w(j + 1) in ("hundred", "thousand", "million"):
            group, last = 1, "unit"
        elif x == "and" and last in ("hundred", "scale") and w(j + 1) in _EN_SMALL:
            pass
        elif x == "zero":
            if last is None:
                return 0, j + 1
            break
        elif x in _EN_UNITS:
            if last not in (None, "hundred", "scale", "ten"):
                break
            group, last = group + _EN_UNITS[x], "unit"
        elif x in _EN_TEENS or x in _EN_TENS:
            if last not in (None, "hundred", "scale"):
                break
            group += _EN_TEENS.get(x) or _EN_TENS[x]
            last = "teen" if x in _EN_TEENS else "ten"
        elif x == "hundred":
            if last not in ("unit", "teen", "ten") or has_hundred or not 1 <= group < 100:
                break
            group, has_hundred, last = group * 100, True, "hundred"
        elif x in _EN_SCALES:
            scale = _EN_SCALES[x]
            if last not in ("unit", "teen", "ten", "hundred") or scale >= last_scale or group <= 0:
                break
            total += group * scale
            group, has_hundred, last_scale, last = 0, False, scale, "scale"
        else:
            break
        j += 1
    if last is None:
        return None
    return total + group, j


def _es_cardinal(w: _WordAt, i: int) -> tuple[int, int] | None:
    """Spanish cardinal words up to the millions at ``i``: ``(value, end)``."""
    j, total, group, last = i, 0, 0, None
    last_scale = 10**12
    while True:
        x = w(j)
        if x is None:
            break
        if x in _ES_HUNDREDS:
            if last not in (None, "scale") or group:
                break
            group, last = group + _ES_HUNDREDS[x], ("cien" if x == "cien" else "hundreds")
        elif x in _ES_TENS:
            if last not in (None, "hundreds", "scale"):
                break
            group, last = group + _ES_TENS[x], "tens"
        elif x == "y" and last == "tens" and w(j + 1) in _ES_UNITS:
            last = "y"
        elif x in _ES_UNITS:
            if last not in (None, "hundreds", "scale", "y"):
                break
            group, last = group + _ES_UNITS[x], "unit"
        elif x in _ES_TEENS:
            if last not in (None, "hundreds", "scale"):
                break
            group, last = group + _ES_TEENS[x], "teen"
        elif x == "cero":
            if last is None:
                return 0, j + 1
            break
        elif x == "mil":
            if last == "scale" or last_scale <= 1000:
                break
            total += (group or 1) * 1000
            group, last, last_scale = 0, "scale", 1000
        elif x in ("millon", "millones"):
            if group <= 0 or last == "scale" or last_scale <= 10**6:
                break
            total += group * 10**6
            group, last, last_scale = 0, "scale", 10**6
        else:
            break
        j += 1
    if last is None:
        return None
    return total + group, j


def _digit_values(text: str, en_style: bool) -> list[Fraction]:
    """The readings of a number written in digits, most likely first.

    English: ``1,200.50`` (comma groups thousands, the point is decimal). Other languages also
    ``1.200,50``; where a single separator could be either (``1.200``), both readings count."""
    out: list[Fraction] = []

    def add(whole: str, frac: str | None) -> None:
        v = Fraction(int(whole.replace(",", "").replace(".", "")))
        if frac:
            v += Fraction(int(frac), 10 ** len(frac))
        if v not in out:
            out.append(v)

    if text.isdigit():
        return [Fraction(int(text))]
    if m := re.fullmatch(r"(\d{1,3}(?:,\d{3})+)(?:\.(\d+))?", text):
        add(m.group(1), m.group(2))
    if not en_style and (m := re.fullmatch(r"(\d{1,3}(?:\.\d{3})+)(?:,(\d+))?", text)):
        add(m.group(1), m.group(2))
    if m := re.fullmatch(r"(\d+)\.(\d+)", text):
        add(m.group(1), m.group(2))
    if m := re.fullmatch(r"(\d+),(\d{1,2})", text):
        add(m.group(1), m.group(2))
    if not en_style and (m := re.fullmatch(r"(\d+),(\d+)", text)):
        add(m.group(1), m.group(2))
    return out


# ---- dates ------------------------------------------------------------------------------------------


def _add_months(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _month_day(month: int, day: int, year: int | None, today: dt.date) -> dt.date | None:
    if year is not None:
        try:
            return dt.date(year, month, day)
        except ValueError:
            return None
    floor = today - dt.timedelta(days=RECENT_PAST_DAYS)
    for y in range(today.year - 1, today.year + 5):
        try:
            d = dt.date(y, month, day)
        except ValueError:
            continue
        if d >= floor:
            return d
    return None


def _day_only(day: int, today: dt.date, months_ahead: int | None) -> dt.date | None:
    """"the 15th": this month's if still to come, else the next month that has that day."""
    first = today.replace(day=1)
    offsets: Iterable[int] = [months_ahead] if months_ahead is not None else range(0, 13)
    for k in offsets:
        m = _add_months(first, k)
        if day > calendar.monthrange(m.year, m.month)[1]:
            continue
        d = m.replace(day=day)
        if months_ahead is not None or d >= today:
            return d
    return None


def _weekday(today: dt.date, wd: int, mod: str | None) -> tuple[dt.date, frozenset[dt.date]]:
    ahead = (wd - today.weekday()) % 7
    coming = today + dt.timedelta(days=ahead or 7)  # strictly after today
    next_monday = today + dt.timedelta(days=7 - today.weekday())
    in_next_week = next_monday + dt.timedelta(days=wd)
    if mod == "this":
        d = today if ahead == 0 else coming
        return d, frozenset({d})
    if mod == "next":
        return in_next_week, frozenset({coming, coming + dt.timedelta(days=7)})
    if mod == "nextweek":
        return in_next_week, frozenset({in_next_week})
    return coming, frozenset({coming, today} if ahead == 0 else {coming})


def _date_pass(s: _Scan, today: dt.date) -> list[_DateM]:
    out: list[_DateM] = []
    i = 0
    while i < s.n:
        if s.used[i]:
            i += 1
            continue
        hit, explicit = None, False
        for matcher, names_a_day in _DATE_MATCHERS:
            hit = matcher(s, i, today)
            if hit is not None:
                explicit = names_a_day
                break
        if hit is None:
            i += 1
            continue
        end, primary, cands = hit
        s.take(i, end)
        if primary is not None:
            out.append(_DateM(i, end, primary, frozenset(cands) | {primary}, explicit=explicit))
        i = end
    # weekdays last, so that "Friday the 4th" / "Friday, December 4th" is the explicit date
    for i in range(s.n):
        word = s.w(i)
        if word not in s.weekdays:
            continue
        start, end, mod = i, i + 1, None
        prev, prev2 = s.w(i - 1), s.w(i - 2)
        if prev in ("next", "proximo", "proxima", "siguiente"):
            mod, start = "next", i - 1
        elif prev in ("this", "este", "esta"):
            mod, start = "this", i - 1
        elif prev == "coming":
            start = i - 2 if prev2 == "this" else i - 1
        if prev2 == "el" and start == i - 1:
            start = i - 2
        after = s.seq_any(i + 1, [("next", "week"), ("of", "next", "week"), ("de", "la", "proxima", "semana"), ("de", "la", "semana", "que", "viene")])
        if after is not None:
            mod, end = "nextweek", after
        elif (after := s.seq_any(i + 1, [("proximo",), ("que", "viene")])) is not None:
            mod, end = "next", after
        s.take(start, end)
        if any(m.explicit and (start - 2 <= m.end <= start or end <= m.start <= end + 1) for m in out):
            continue  # the weekday of an explicit date
        primary, cands = _weekday(today, s.weekdays[word], mod)
        out.append(_DateM(start, end, primary, cands))
    out.sort(key=lambda m: m.start)
    return out


_Hit = tuple[int, dt.date | None, Iterable[dt.date]]


def _iso_date(s: _Scan, i: int, today: dt.date) -> _Hit | None:
    tok = s.t(i)
    if tok is None or tok.kind not in ("iso", "dotted"):
        return None
    parts = [int(p) for p in re.split(r"[-.]", tok.text)]
    y, m, d = parts if tok.kind == "iso" else parts[::-1]
    try:
        return i + 1, dt.date(y, m, d), ()
    except ValueError:
        return i + 1, None, ()


def _numeric_date(s: _Scan, i: int, today: dt.date) -> _Hit | None:
    tok = s.t(i)
    if tok is None or tok.kind != "slash":
        return None
    parts = [int(p) for p in tok.text.split("/")]
    a, b = parts[0], parts[1]
    year = None
    if len(parts) == 3:
        year = parts[2] + 2000 if parts[2] < 100 else parts[2]
    month, day = (a, b) if s.month_first else (b, a)
    if month > 12 and day <= 12:
        month, day = day, month
    if not 1 <= month <= 12:
        return i + 1, None, ()
    return i + 1, _month_day(month, day, year, today), ()


def _relative_day(s: _Scan, i: int, today: dt.date) -> _Hit | None:
    word = s.w(i)
    if word is None:
        return None
    days = None
    end = i + 1
    if s.en:
        if word == "today":
            days = 0
        elif word == "tomorrow":
            days = 1
        elif (e := s.seq_any(i, [("the", "day", "after", "tomorrow"), ("day", "after", "tomorrow")])) is not None:
            days, end = 2, e
    if s.es and days is None:
        if word == "hoy":
            days = 0
        elif (e := s.seq(i, ("pasado", "manana"))) is not None:
            days, end = 2, e
        elif word == "manana" and s.raw_w(i - 1) not in ("la", "esta"):
            days = 1  # "la mañana", "esta mañana": the morning
    if days is None:
        return None
    return end, today + dt.timedelta(days=days), ()


def _day_of_month(s: _Scan, i: int, today: dt.date) -> _Hit | None:
    """"the first of December", "1st of December", "15 de diciembre", "the 15th", "el 15"."""
    k, lead = i, False
    if s.w(k) in ("the", "el"):
        k, lead = k + 1, True
    if s.es and s.w(k) == "dia":
        k += 1
    got = s.day(k)
    if got is None:
        return None
    day, k2, ordinal = got
    k3 = k2 + 1 if s.w(k2) in ("of", "de") else k2
    month = s.months.get(s.w(k3) or "")
    if month is not None:
        end = k3 + 1
        yr = s.year(end)
        year = None
        if yr is not None:
            year, end = yr
        return end, _month_day(month, day, year, today), ()
    rel = s.seq_any(k2, [w for w, _ in (_OF_MONTH_EN if s.en else [])] + [w for w, _ in (_OF_MONTH_ES if s.es else [])])
    if rel is not None and (ordinal or lead):
        words = tuple(s.toks[j].text for j in range(k2, rel))
        ahead = dict(_OF_MONTH_EN + _OF_MONTH_ES)[words]
        return rel, _day_only(day, today, ahead), ()
    if s.w(k2) in _NOT_A_DAY_AFTER:
        return None
    tok = s.toks[k]
    if ordinal and (lead or tok.kind == "num"):
        return k2, _day_only(day, today, None), ()
    if s.es and s.w(i) == "el" and not ordinal:  # "el 15", "el día quince"
        if s.currency_word(k2, "") is None and s.w(k2) not in ("mil", "millones", "por", "porciento"):
            return k2, _day_only(day, today, None), ()
    return None


def _month_then_day(s: _Scan, i: int, today: dt.date) -> _Hit | None:
    """"December 1st", "December the first", "Dec 1, 2026", "diciembre 1"."""
    word = s.w(i)
    month = s.months.get(word or "")
    if month is None:
        return None
    k = i + 1
    if s.w(k) in ("the", "el"):
        k += 1
    got = s.day(k)
    if got is None:
        return None
    day, end, ordinal = got
    if word in _MONTHS_ALSO_WORDS and not ordinal and s.int_num(k) is None:
        return None  # "I may one day…": only "May 5" / "May 5th" / "May the fifth" are dates
    yr = s.year(end)
    year = None
    if yr is not None:
        year, end = yr
    return end, _month_day(month, day, year, today), ()


_UNITS_EN = {"day": 1, "days": 1, "week": 7, "weeks": 7, "fortnight": 14, "month": 0, "months": 0}
_UNITS_ES = {"dia": 1, "dias": 1, "semana": 7, "semanas": 7, "mes": 0, "meses": 0}


def _in_units(s: _Scan, i: int, today: dt.date) -> _Hit | None:
    """"in two weeks", "in a month", "three days from now", "en quince días", "dentro de una semana"."""
    units = {**(_UNITS_EN if s.en else {}), **(_UNITS_ES if s.es else {})}
    word = s.w(i)
    if word == "in" and s.en:
        k = i + 1
    elif word == "en" and s.es:
        k = i + 1
    elif s.es and s.seq(i, ("dentro", "de")) is not None:
        k = i + 2
    else:
        k, word = i, None  # "two weeks from now"
    count = None
    if s.w(k) in ("a", "an", "un", "una") and s.w(k + 1) in units:
        count, k2 = 1, k + 1
    elif (e := s.seq(k, ("a", "couple", "of"))) is not None:
        count, k2 = 2, e
    else:
        card = s.cardinal(k)
        if card is not None:
            count, k2 = card
    if count is None or s.w(k2) not in units:
        return None
    unit = s.w(k2) or ""
    end = k2 + 1
    if word is None:
        e = s.seq_any(end, [("from", "now"), ("from", "today")])
        if e is None:
            return None
        end = e
    if count > 1000:
        return end, None, ()
    if units[unit] == 0:
        return end, _add_months(today, count), ()
    days = count * units[unit]
    cands = set()
    if s.es and unit in ("dias",) and count in (8, 15):
        cands.add(today + dt.timedelta(days=count - 1))  # "en ocho días" is a week, "en quince días" two
    return end, today + dt.timedelta(days=days), cands


def _month_end(s: _Scan, i: int, today: dt.date) -> _Hit | None:
    table = (_MONTH_END_EN if s.en else []) + (_MONTH_END_ES if s.es else [])
    best: tuple[int, int] | None = None
    for words, ahead in table:
        e = s.seq(i, words)
        if e is not None and (best is None or e > best[0]):
            best = (e, ahead)
    if best is None:
        return None
    m = _add_months(today.replace(day=1), best[1])
    return best[0], m.replace(day=calendar.monthrange(m.year, m.month)[1]), ()


# (matcher, names a calendar day: a weekday next to it is that day's name, not another date)
_DATE_MATCHERS = [
    (_iso_date, True),
    (_numeric_date, True),
    (_relative_day, False),
    (_day_of_month, True),
    (_month_then_day, True),
    (_in_units, False),
    (_month_end, False),
]

# ---- times -----------------------------------------------------------------------------------------


# Words that make a bare number a time of day ("at 5"). Not "about" / "from": "about 20 on Friday"
# is an amount.
_CUES_EN = [("at",), ("around",), ("after",), ("any", "time", "after"), ("anytime", "after")]
_CUES_ES = [
    ("a", "las"), ("a", "la"), ("despues", "de", "las"), ("despues", "de", "la"), ("desde", "las"), ("sobre", "las"),
    ("hacia", "las"), ("a", "eso", "de", "las"), ("como", "a", "las"), ("las",), ("la",),
]
_PARTS_EN = {"morning": "morning", "afternoon": "afternoon", "evening": "evening", "night": "night"}
_PARTS_ES = {"manana": "morning", "tarde": "afternoon", "noche": "night", "madrugada": "morning"}


def _time_pass(s: _Scan) -> list[_TimeM]:
    out: list[_TimeM] = []
    i = 0
    while i < s.n:
        if s.used[i]:
            i += 1
            continue
        hit = _offset(s, i) or _clock_time(s, i) or _part_of_day(s, i) or _later(s, i)
        if hit is None:
            i += 1
            continue
        end, m = hit
        s.take(i, end)
        out.append(m)
        i = end
    return out


def _offset(s: _Scan, i: int) -> tuple[int, _TimeM] | None:
    """"in an hour", "in half an hour", "in 20 minutes", "en una hora", "dentro de media hora"."""
    if s.en and s.w(i) == "in":
        k = i + 1
        if (e := s.seq(k, ("half", "an", "hour"))) is not None:
            return e, _TimeM(i, "offset", offset=dt.timedelta(minutes=30))
        if (e := s.seq_any(k, [("an", "hour", "and", "a", "half"), ("one", "and", "a", "half", "hours")])) is not None:
            return e, _TimeM(i, "offset", offset=dt.timedelta(minutes=90))
        count, k2 = _count(s, k, ("a", "an"))
        if count is None:
            return None
        unit = s.w(k2)
        if unit in ("hour", "hours"):
            return k2 + 1, _TimeM(i, "offset", offset=dt.timedelta(hours=count))
        if unit in ("minute", "minutes", "min", "mins"):
            return k2 + 1, _TimeM(i, "offset", offset=dt.timedelta(minutes=count))
        return None
    if s.es and s.w(i) in ("en", "dentro"):
        k = i + 1 if s.w(i) == "en" else (i + 2 if s.w(i + 1) == "de" else None)
        if k is None:
            return None
        if (e := s.seq(k, ("media", "hora"))) is not None:
            return e, _TimeM(i, "offset", offset=dt.timedelta(minutes=30))
        if (e := s.seq_any(k, [("una", "hora", "y", "media"), ("hora", "y", "media")])) is not None:
            return e, _TimeM(i, "offset", offset=dt.timedelta(minutes=90))
        if (e := s.seq_any(k, [("un", "rato"), ("un", "ratito")])) is not None:
            return e, _TimeM(i, "later")
        count, k2 = _count(s, k, ("una", "un"))
        if count is None:
            return None
        unit = s.w(k2)
        if unit in ("hora", "horas"):
            return k2 + 1, _TimeM(i, "offset", offset=dt.timedelta(hours=count))
        if unit in ("minuto", "minutos"):
            return k2 + 1, _TimeM(i, "offset", offset=dt.timedelta(minutes=count))
    return None


def _count(s: _Scan, k: int, articles: tuple[str, ...]) -> tuple[int | None, int]:
    if s.w(k) in articles:
        return 1, k + 1
    if (e := s.seq(k, ("a", "couple", "of"))) is not None:
        return 2, e
    card = s.cardinal(k)
    if card is not None and 0 < card[0] <= 48 * 60:
        return card
    return None, k


def _hour_word(s: _Scan, k: int) -> tuple[int, int] | None:
    """An hour 0..23 at ``k`` in digits or words."""
    n = s.int_num(k)
    if n is not None:
        return (n, k + 1) if 0 <= n <= 23 else None
    if s.es and s.w(k) == "una":
        return 1, k + 1
    card = s.cardinal(k)
    if card is not None and 1 <= card[0] <= 12:
        return card
    return None


def _clock_time(s: _Scan, i: int) -> tuple[int, _TimeM] | None:
    """"at 5 pm", "5:30", "five o'clock", "after 6", "half past five", "a las cinco y media de la tarde", "noon"."""
    cues = (_CUES_EN if s.en else []) + (_CUES_ES if s.es else [])
    k = s.seq_any(i, cues)
    cued = k is not None
    if k is None:
        k = i
    if s.w(k) in ("noon", "midday", "mediodia", "lunchtime"):
        return k + 1, _TimeM(i, "clock", hour=12, minute=0, meridiem="pm")
    if s.w(k) == "el" and s.w(k + 1) == "mediodia":
        return k + 2, _TimeM(i, "clock", hour=12, minute=0, meridiem="pm")
    hour = minute = None
    meridiem = None
    tok = s.t(k)
    if tok is None:
        return None
    end = k + 1
    if s.en and (e := s.seq_any(k, [("half", "past"), ("quarter", "past"), ("quarter", "to")])) is not None:
        h = _hour_word(s, e)
        if h is None or not 1 <= h[0] <= 12:
            return None
        kind = s.toks[k].text + " " + s.toks[k + 1].text
        hour, end = h
        minute = {"half past": 30, "quarter past": 15, "quarter to": 45}[kind]
        if kind == "quarter to":
            hour = 12 if hour == 1 else hour - 1
        cued = True
    elif tok.kind == "clock":
        hour, minute = (int(p) for p in tok.text.split(":"))
        cued = True
    elif tok.kind == "num" and tok.suffix in ("am", "pm") and tok.text.isdigit():
        hour, minute, meridiem = int(tok.text), 0, tok.suffix
    else:
        h = _hour_word(s, k)
        if h is None:
            return None
        hour, end = h
        minute = 0
        # minutes: "five thirty", "five oh five", "cinco y media", "cinco y cuarto", "5 y 20"
        if s.en and s.w(end) is not None:
            if s.w(end) in ("oh", "o") and s.w(end + 1) in _EN_UNITS:
                minute, end = _EN_UNITS[s.w(end + 1) or ""], end + 2
            elif (card := _en_cardinal(s.w, end)) is not None and 10 <= card[0] <= 59 and s.w(end) not in ("a",):
                minute, end = card
        if s.es and s.w(end) == "y":
            if s.w(end + 1) == "media":
                minute, end = 30, end + 2
            elif s.w(end + 1) == "cuarto":
                minute, end = 15, end + 2
            elif (card := s.cardinal(end + 1)) is not None and 1 <= card[0] <= 59:
                minute, end = card[0], card[1]
        elif s.es and s.seq(end, ("menos", "cuarto")) is not None:
            hour, minute, end = (hour - 1) % 24, 45, end + 2
    # what follows: am/pm, o'clock, part of the day
    part, this = None, False
    if meridiem is None and s.w(end) in ("am", "pm"):
        meridiem, end = s.w(end), end + 1
    marked = meridiem is not None
    if (e := s.seq_any(end, [("oclock",), ("en", "punto")])) is not None:
        end, marked = e, True
    for words, p, th in _PART_AFTER_EN if s.en else []:
        if (e := s.seq(end, words)) is not None:
            end, part, this, marked = e, p, th, True
            break
    if part is None and s.es:
        for words, p in _PART_AFTER_ES:
            if (e := s.seq(end, words)) is not None:
                end, part, marked = e, p, True
                break
    if not (cued or marked):
        return None
    if s.currency_word(end, "") is not None:
        return None  # "around 20 dollars" is an amount
    if hour is None or minute is None or not 0 <= minute <= 59:
        return None
    if meridiem is not None and not 1 <= hour <= 12:
        return None
    return end, _TimeM(i, "clock", hour=hour, minute=minute, meridiem=meridiem, part=part, this=this)


_PART_AFTER_EN = [
    (("in", "the", "morning"), "morning", False), (("in", "the", "afternoon"), "afternoon", False),
    (("in", "the", "evening"), "evening", False), (("at", "night"), "night", False), (("tonight",), "night", True),
    (("this", "morning"), "morning", True), (("this", "afternoon"), "afternoon", True), (("this", "evening"), "evening", True),
]
_PART_AFTER_ES = [
    (("de", "la", "manana"), "morning"), (("de", "la", "tarde"), "afternoon"), (("de", "la", "noche"), "night"),
    (("de", "la", "madrugada"), "morning"), (("por", "la", "manana"), "morning"), (("por", "la", "tarde"), "afternoon"),
    (("por", "la", "noche"), "night"), (("en", "la", "manana"), "morning"), (("en", "la", "tarde"), "afternoon"),
    (("en", "la", "noche"), "night"),
]


def _part_of_day(s: _Scan, i: int) -> tuple[int, _TimeM] | None:
    """"tomorrow morning", "this evening", "tonight", "in the afternoon", "por la tarde", "esta noche"."""
    if s.en:
        if s.w(i) == "tonight":
            return i + 1, _TimeM(i, "part", part="night", this=True)
        if s.w(i) == "this" and s.w(i + 1) in _PARTS_EN and s.w(i + 1) != "night":
            return i + 2, _TimeM(i, "part", part=_PARTS_EN[s.w(i + 1) or ""], this=True)
        if (e := s.seq(i, ("at", "night"))) is not None:
            return e, _TimeM(i, "part", part="night")
        k = i + 2 if s.seq(i, ("in", "the")) is not None else i
        if s.w(k) in _PARTS_EN:
            return k + 1, _TimeM(i, "part", part=_PARTS_EN[s.w(k) or ""])
    if s.es:
        if s.w(i) == "esta" and s.w(i + 1) in _PARTS_ES:
            return i + 2, _TimeM(i, "part", part=_PARTS_ES[s.w(i + 1) or ""], this=True)
        k = i
        if s.w(k) in ("por", "en", "de", "a") and s.w(k + 1) == "la":
            k += 1
        if s.w(k) == "la" and s.w(k + 1) in _PARTS_ES:
            return k + 2, _TimeM(i, "part", part=_PARTS_ES[s.w(k + 1) or ""])
    return None


def _later(s: _Scan, i: int) -> tuple[int, _TimeM] | None:
    if s.en and s.w(i) == "later":
        return i + 1, _TimeM(i, "later")
    if s.es:
        if (e := s.seq(i, ("mas", "tarde"))) is not None:
            return e, _TimeM(i, "later")
        if s.w(i) == "luego":
            return i + 1, _TimeM(i, "later")
        if (e := s.seq(i, ("al", "rato"))) is not None:
            return e, _TimeM(i, "later")
    return None


# ---- amounts ----------------------------------------------------------------------------------------


def _amount_pass(s: _Scan, currency: str, due: int | None) -> list[_AmountM]:
    digits = minor_unit_digits(currency)
    per_major = 10**digits
    out: list[_AmountM] = []
    full = (_FULL_AMOUNT if s.en else []) + (_FULL_AMOUNT_ES if s.es else [])
    half = (_HALF_AMOUNT if s.en else []) + (_HALF_AMOUNT_ES if s.es else [])
    i = 0
    while i < s.n:
        if s.used[i]:
            i += 1
            continue
        if (end := s.seq_any(i, full)) is not None:
            s.take(i, end)
            if due is not None and due > 0:
                out.append(_AmountM(i, due, frozenset({due})))
            i = end
            continue
        if (end := s.seq_any(i, half)) is not None:
            s.take(i, end)
            if due is not None and due > 1:
                out.append(_AmountM(i, due // 2, frozenset({due // 2, (due + 1) // 2})))
            i = end
            continue
        tok = s.toks[i]
        sym = _SYMBOLS.get(tok.text) if tok.kind == "sym" else None
        k = i + 1 if sym is not None else i
        num = _number_value(s, k, currency)
        if num is None:
            i += 1
            continue
        values, end = num
        foreign = sym is not None and currency not in sym
        minor_said = False
        extra: Fraction | None = None
        unit = s.currency_word(end, currency)
        if unit is not None:
            currs, kind, end = unit
            if currency not in currs:
                foreign = True
            elif kind == "minor":
                minor_said = True
            else:
                # "120 dollars and 50 cents", "120 dollars 50", "ciento veinte dólares con cincuenta"
                j = end + 1 if s.w(end) in ("and", "y", "con") else end
                extra_end = _minor_part(s, j, currency, per_major)
                if extra_end is not None:
                    extra, end = extra_end
        elif s.es and s.w(end) == "con":
            extra_end = _minor_part(s, end + 1, currency, per_major)
            if extra_end is not None:
                extra, end = extra_end
        s.take(i, end)
        if not foreign:
            cands: list[int] = []
            for v in values:
                minor = v if minor_said else v * per_major + (extra or 0)
                if minor.denominator == 1 and minor >= 0 and int(minor) not in cands:
                    cands.append(int(minor))
            if cands:
                out.append(_AmountM(i, cands[0], frozenset(cands)))
        i = end
    return out


def _minor_part(s: _Scan, j: int, currency: str, per_major: int) -> tuple[Fraction, int] | None:
    if per_major == 1:
        return None
    card = s.cardinal(j)
    if card is None or not 0 <= card[0] < per_major:
        return None
    value, end = card
    unit = s.currency_word(end, currency)
    if unit is not None:
        currs, kind, uend = unit
        if kind != "minor" or currency not in currs:
            return None
        end = uend
    return Fraction(value), end


def _number_value(s: _Scan, k: int, currency: str) -> tuple[list[Fraction], int] | None:
    """A number at ``k`` as amounts are said: digits (``1,200.50``, ``120 thousand``) or words
    (``a hundred and twenty``, ``one twenty point five``, ``two and a half thousand``)."""
    tok = s.t(k)
    if tok is None:
        return None
    scales = {"hundred": 100, "thousand": 1000, "million": 10**6} if s.en else {}
    if s.es:
        scales |= {"mil": 1000, "millones": 10**6, "millon": 10**6}
    if tok.kind == "num":
        if tok.suffix:
            return None
        values = _digit_values(tok.text, s.en_digits)
        if not values:
            return None
        end = k + 1
        if s.w(end) in scales:
            values, end = [v * scales[s.w(end) or ""] for v in values], end + 1
        return values, end
    if tok.kind != "word":
        return None
    card = s.cardinal(k)
    if card is None:
        return None
    n, end = card
    value = Fraction(n)
    if end == k + 1 and tok.text in ("un", "una") and s.currency_word(end, currency) is None:
        return None  # the article, not the number
    point = "point" if s.en and s.w(end) == "point" else "punto" if s.es and s.w(end) == "punto" else None
    if point is not None:
        words = _EN_DIGIT_WORDS if point == "point" else _ES_DIGIT_WORDS
        j, frac = end + 1, ""
        while True:
            d = s.int_num(j)
            if d is not None and not frac:
                frac, j = s.toks[j].text, j + 1
                break
            if s.w(j) in words:
                frac, j = frac + str(words[s.w(j) or ""]), j + 1
                continue
            break
        if frac:
            value += Fraction(int(frac), 10 ** len(frac))
            end = j
    elif s.en and (e := s.seq(end, ("and", "a", "half"))) is not None:
        value, end = value + Fraction(1, 2), e
        if s.w(end) in ("thousand", "million"):
            value, end = value * scales[s.w(end) or ""], end + 1
    return [value], end


# ---- the public functions -----------------------------------------------------------------------


def _analyse(
    text: str, language: str, today: dt.date, currency: str | None = None, due: int | None = None
) -> tuple[list[_DateM], list[_TimeM], list[_AmountM]]:
    s = _Scan(text, language)
    dates = _date_pass(s, today)
    times = _time_pass(s)
    amounts = _amount_pass(s, currency, due) if currency is not None else []
    return dates, times, amounts


def _all_dates(dates: list[_DateM], times: list[_TimeM], today: dt.date) -> frozenset[dt.date]:
    out: set[dt.date] = set()
    for m in dates:
        out |= m.cands
    if any(t.this for t in times):
        out.add(today)  # "tonight", "this evening"
    return frozenset(out)


def read_promise(
    text: str, currency: str, *, amount_due_minor: int | None, today: dt.date, language: str = "en"
) -> PromiseReading:
    """Every amount (whole minor units of ``currency``) and every date ``text`` states.

    "the full amount", "all of it", "everything" (es: "todo", "el total") are ``amount_due_minor``;
    "half of it" is half of it (either rounding). Numbers that are dates or clock times ("December
    1st", "at 5 pm", "in two weeks") are not amounts. An amount in another currency ("120 euros" on
    a USD reminder) is no amount of this reminder."""
    dates, times, amounts = _analyse(text, language, today, currency, amount_due_minor)
    all_amounts: set[int] = set()
    for m in amounts:
        all_amounts |= m.cands
    return PromiseReading(frozenset(all_amounts), _all_dates(dates, times, today), understands_words(language))


def amounts_in(text: str, currency: str, *, amount_due_minor: int | None = None, language: str = "en") -> frozenset[int]:
    """Every reading of every amount ``text`` states, in minor units of ``currency``."""
    _, _, amounts = _analyse(text, language, dt.date(2000, 1, 1), currency, amount_due_minor)
    out: set[int] = set()
    for m in amounts:
        out |= m.cands
    return frozenset(out)


def parse_amount(text: str, currency: str, *, amount_due_minor: int | None = None, language: str = "en") -> int | None:
    """The amount ``text`` states (its last one, main reading), in minor units; ``None`` if none."""
    _, _, amounts = _analyse(text, language, dt.date(2000, 1, 1), currency, amount_due_minor)
    return amounts[-1].primary if amounts else None


def dates_in(text: str, today: dt.date, *, language: str = "en") -> frozenset[dt.date]:
    """Every reading of every date ``text`` states, ``today`` being the customer's local date."""
    dates, times, _ = _analyse(text, language, today)
    return _all_dates(dates, times, today)


def parse_date(text: str, today: dt.date, *, language: str = "en") -> dt.date | None:
    """The date ``text`` states (its last one, main reading), or ``None``."""
    dates, times, _ = _analyse(text, language, today)
    if dates:
        return dates[-1].primary
    return today if any(t.this for t in times) else None


def _wall(day: dt.date, hour: int, minute: int, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """``day hour:minute`` on the wall clocks of ``zone``; a time that does not exist (the hour
    skipped when DST starts) is moved forward by the gap; a repeated one is its first occurrence."""
    local = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    return local.astimezone(dt.timezone.utc).astimezone(zone)


def _hour_24(t: _TimeM, part: str | None) -> int | None:
    hour = t.hour
    if hour is None:
        return None
    if t.meridiem == "am":
        return 0 if hour == 12 else hour
    if t.meridiem == "pm":
        return hour if hour == 12 else hour + 12
    if part == "morning":
        return 0 if hour == 12 else hour
    if part in ("afternoon", "evening", "night"):
        return hour + 12 if hour < 12 else hour
    if 1 <= hour <= 7:
        return hour + 12  # "at 5", "5 o'clock": people are called in the afternoon, not at dawn
    return hour  # 8..11 morning, 12 noon, 0 and 13..23 as said


def parse_callback_time(text: str, now: dt.datetime, zone: str, *, language: str = "en") -> dt.datetime | None:
    """When the customer asked to be called back: an aware datetime in ``zone``, after ``now``;
    ``None`` when the words name no time that can be told ("later", "later today", "whenever")
    or only one that has passed ("today at 9" said at 10).

    The last day and the last time said count. A day without a time is that day at
    ``DAY_DEFAULT_HOUR``; a part of the day is its default hour (morning 10, afternoon 14,
    evening 18, tonight 19); a time of day without a day is today's, or tomorrow's once it has
    passed; "this evening" / "tonight" that has begun gives ``None`` (call again later)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    z = zoneinfo.ZoneInfo(zone)
    local_now = now.astimezone(z)
    today = local_now.date()
    dates, times, _ = _analyse(text, language, today)
    offsets = [t for t in times if t.kind == "offset" and t.offset]
    if offsets:
        at = (now + (offsets[-1].offset or dt.timedelta())).astimezone(z)
        return at if at > now else None
    clocks = [t for t in times if t.kind == "clock"]
    parts = [t for t in times if t.kind == "part"]
    clock = clocks[-1] if clocks else None
    part = parts[-1] if parts else None
    day = dates[-1].primary if dates else None
    this = bool((clock and clock.this) or (part and part.this))
    part_name = (clock.part if clock and clock.part else None) or (part.part if part else None)
    hour: int | None
    minute = 0
    if clock is not None:
        hour, minute = _hour_24(clock, part_name), clock.minute
    elif part is not None:
        hour = _PART_HOURS[part.part or "morning"]
    else:
        hour = None
    if hour is None or not 0 <= hour <= 23:
        if day is None or day <= today:
            return None  # "later", "later today", "today": no time to tell
        hour, minute = DAY_DEFAULT_HOUR, 0
    if day is None and this:
        day = today
    if day is None:
        at = _wall(today, hour, minute, z)
        if at <= now:
            at = _wall(today + dt.timedelta(days=1), hour, minute, z)
    else:
        at = _wall(day, hour, minute, z)
    return at if at > now else None

"""The job / room metadata the service hands to the agent (SPEC §3), parsed once at the edge.

The service writes the same JSON into the room's metadata and into the agent dispatch:

    {"reminder_id", "attempt", "phone_number", "customer_name", "amount_due_minor",
     "currency", "due_date", "language", "timezone", "sip_trunk_id"}

and, for the agent's conduct (SPEC §10; where they come from is in docs/DECISIONS.md):

    "verify": {"label": "ZIP code", "value": "02139"}   # optional second identifier
    "disclosures": ["recording", "collector"]            # which notices to give

``parse_metadata`` turns it into a frozen :class:`CallMetadata` or raises :class:`MetadataError`
naming the offending field. Nothing else escapes it, whatever the input (a property test holds it
to that). Unknown keys are ignored, so the service may add fields without breaking old agents.

Decisions where SPEC §3 is silent (also in README.md):
- ``language`` and ``timezone`` may be missing or null: they default to ``"en"`` and to the
  agent's ``DEFAULT_TIMEZONE`` (``America/New_York``, like the service). Present but malformed is
  an error.
- ``sip_trunk_id`` may be missing, null or empty when the agent has its own
  ``SIP_OUTBOUND_TRUNK_ID``; without either it is an error.
- ``verify`` missing or null: no second identifier is asked. Present, it must be an object with a
  non-empty ``label`` (what to ask for) and ``value`` (the answer the agent checks in code; the
  model never sees it).
- ``disclosures`` missing or null: both notices (``recording`` and ``collector``) are given — a
  notice is dropped only when the service says so. Present, it is a list of those words; an
  unknown word is an error (a notice the agent does not know how to give must not be skipped
  silently).

The phone number and the customer's name are personal data: they never appear in ``repr``, in
log lines or in error messages.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import uuid
import zoneinfo
from collections.abc import Mapping
from typing import Any

__all__ = ["CallMetadata", "MetadataError", "Verify", "parse_metadata", "MAX_METADATA_BYTES", "DISCLOSURES"]

# The notices the agent knows how to give (SPEC §10).
DISCLOSURES = ("recording", "collector")
MAX_VERIFY_LABEL_CHARS = 60
MAX_VERIFY_VALUE_CHARS = 100

MAX_METADATA_BYTES = 64 * 1024
MAX_AMOUNT_MINOR = 2**63 - 1  # the service stores amounts as i64
MAX_NAME_CHARS = 200

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_E164_RE = re.compile(r"^\+[1-9][0-9]{1,14}$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# BCP 47-ish: "en", "en-US", "es-419", "zh-Hant-TW".
_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_TZ_RE = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")


class MetadataError(ValueError):
    """The metadata is not what SPEC §3 promises. ``field`` names the culprit (or ``"metadata"``)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"invalid call metadata: {field}: {problem}")


@dataclasses.dataclass(frozen=True)
class Verify:
    """A second identifier: the agent asks for ``label`` and checks the answer against ``value``."""

    label: str
    value: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class CallMetadata:
    reminder_id: str  # canonical lower-case hyphenated UUID
    attempt: int
    phone_number: str = dataclasses.field(repr=False)
    customer_name: str = dataclasses.field(repr=False)
    amount_due_minor: int
    currency: str
    due_date: dt.date
    language: str
    timezone: str
    sip_trunk_id: str
    verify: Verify | None = None
    disclosures: frozenset[str] = frozenset(DISCLOSURES)

    @property
    def room_name(self) -> str:
        """The room the service creates for this attempt: ``reminder-{reminder_id}-{attempt}``."""
        return f"reminder-{self.reminder_id}-{self.attempt}"

    def log_fields(self) -> dict[str, Any]:
        """What may go into a log line: ids only, no personal data."""
        return {"reminder_id": self.reminder_id, "attempt": self.attempt}

    def local_today(self, now: dt.datetime) -> dt.date:
        """The calendar date at the customer's place at ``now`` (an aware datetime)."""
        return now.astimezone(zoneinfo.ZoneInfo(self.timezone)).date()


def parse_metadata(
    raw: str | bytes | bytearray | Mapping[str, Any],
    *,
    default_sip_trunk_id: str | None = None,
    default_timezone: str = "America/New_York",
    default_language: str = "en",
) -> CallMetadata:
    """Parse and validate SPEC §3 metadata. Raises :class:`MetadataError` and nothing else."""
    try:
        obj = _load(raw)
        return _build(obj, default_sip_trunk_id, default_timezone, default_language)
    except MetadataError:
        raise
    except Exception as exc:  # defensive: a bug here must still read as bad metadata
        raise MetadataError("metadata", f"could not be parsed ({type(exc).__name__})") from None


def extract_ids(raw: str | bytes | bytearray | Mapping[str, Any]) -> tuple[str, int | None] | None:
    """Best effort: the reminder id (and attempt) of metadata that failed validation elsewhere,
    so the agent can still report the failure. ``None`` when not even the id is usable."""
    try:
        obj = _load(raw)
        rid = _reminder_id(obj.get("reminder_id"))
    except Exception:
        return None
    try:
        attempt: int | None = _attempt(obj.get("attempt"))
    except Exception:
        attempt = None
    return rid, attempt


def _load(raw: str | bytes | bytearray | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, (bytes, bytearray)):
        if len(raw) > MAX_METADATA_BYTES:
            raise MetadataError("metadata", f"larger than {MAX_METADATA_BYTES} bytes")
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise MetadataError("metadata", "not UTF-8") from None
    if not isinstance(raw, str):
        raise MetadataError("metadata", f"expected a JSON string, got {type(raw).__name__}")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES:
        raise MetadataError("metadata", f"larger than {MAX_METADATA_BYTES} bytes")
    if not raw.strip():
        raise MetadataError("metadata", "empty")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise MetadataError("metadata", "not valid JSON") from None
    if not isinstance(obj, dict):
        raise MetadataError("metadata", f"expected a JSON object, got {_json_type(obj)}")
    return obj


def _build(
    obj: Mapping[str, Any], default_trunk: str | None, default_tz: str, default_lang: str
) -> CallMetadata:
    language = obj.get("language")
    timezone = obj.get("timezone")
    trunk = obj.get("sip_trunk_id")
    return CallMetadata(
        reminder_id=_reminder_id(obj.get("reminder_id", _MISSING)),
        attempt=_attempt(obj.get("attempt", _MISSING)),
        phone_number=_phone(obj.get("phone_number", _MISSING)),
        customer_name=_name(obj.get("customer_name", _MISSING)),
        amount_due_minor=_amount(obj.get("amount_due_minor", _MISSING)),
        currency=_currency(obj.get("currency", _MISSING)),
        due_date=_date(obj.get("due_date", _MISSING)),
        language=default_lang if language is None else _language(language),
        timezone=_timezone(default_tz if timezone is None else timezone, "timezone"),
        sip_trunk_id=_trunk(trunk, default_trunk),
        verify=_verify(obj.get("verify")),
        disclosures=_disclosures(obj.get("disclosures")),
    )


class _Missing:
    pass


_MISSING: Any = _Missing()


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _require_str(v: Any, field: str) -> str:
    if v is _MISSING:
        raise MetadataError(field, "missing")
    if not isinstance(v, str):
        raise MetadataError(field, f"expected a string, got {_json_type(v)}")
    return v


def _require_int(v: Any, field: str) -> int:
    if v is _MISSING:
        raise MetadataError(field, "missing")
    # bool is an int in Python, never in JSON; 2.0 is a float, not an integer.
    if isinstance(v, bool) or not isinstance(v, int):
        raise MetadataError(field, f"expected an integer, got {_json_type(v)}")
    return v


def _reminder_id(v: Any) -> str:
    s = _require_str(v, "reminder_id")
    if not _UUID_RE.match(s):
        raise MetadataError("reminder_id", "not a UUID")
    return str(uuid.UUID(s))


def _attempt(v: Any) -> int:
    n = _require_int(v, "attempt")
    if n < 1:
        raise MetadataError("attempt", "must be at least 1")
    if n > 2**31 - 1:
        raise MetadataError("attempt", "too large")
    return n


def _phone(v: Any) -> str:
    s = _require_str(v, "phone_number")
    if not _E164_RE.match(s):
        # the value is personal data: never echo it
        raise MetadataError("phone_number", "not an E.164 number (+ then 2 to 15 digits)")
    return s


def _name(v: Any) -> str:
    s = _require_str(v, "customer_name").strip()
    if not s:
        raise MetadataError("customer_name", "empty")
    if len(s) > MAX_NAME_CHARS:
        raise MetadataError("customer_name", f"longer than {MAX_NAME_CHARS} characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in s):
        raise MetadataError("customer_name", "contains control characters")
    return s


def _amount(v: Any) -> int:
    n = _require_int(v, "amount_due_minor")
    if n < 0:
        raise MetadataError("amount_due_minor", "must not be negative")
    if n > MAX_AMOUNT_MINOR:
        raise MetadataError("amount_due_minor", "too large")
    return n


def _currency(v: Any) -> str:
    s = _require_str(v, "currency")
    if not _CURRENCY_RE.match(s):
        raise MetadataError("currency", "expected 3 upper-case letters (ISO 4217)")
    return s


def _date(v: Any) -> dt.date:
    s = _require_str(v, "due_date")
    if not _DATE_RE.match(s):
        raise MetadataError("due_date", "expected YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise MetadataError("due_date", "not a calendar date") from None


def _language(v: Any) -> str:
    s = _require_str(v, "language")
    if not _LANGUAGE_RE.match(s) or len(s) > 35:
        raise MetadataError("language", "expected a language tag such as en or en-US")
    return s


def _timezone(v: Any, field: str) -> str:
    s = _require_str(v, field)
    if not s or len(s) > 64 or not _TZ_RE.match(s) or ".." in s:
        raise MetadataError(field, "expected an IANA time zone such as America/New_York")
    try:
        zoneinfo.ZoneInfo(s)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise MetadataError(field, "unknown IANA time zone") from None
    return s


def _trunk(v: Any, default: str | None) -> str:
    if v is None or v == "":
        if default:
            return default
        raise MetadataError("sip_trunk_id", "missing (and no SIP_OUTBOUND_TRUNK_ID on the agent)")
    s = _require_str(v, "sip_trunk_id").strip()
    if not s:
        if default:
            return default
        raise MetadataError("sip_trunk_id", "empty")
    if len(s) > 128 or any(c.isspace() for c in s):
        raise MetadataError("sip_trunk_id", "not a trunk id")
    return s


def _plain_text(v: Any, field: str, limit: int) -> str:
    s = _require_str(v, field).strip()
    if not s:
        raise MetadataError(field, "empty")
    if len(s) > limit:
        raise MetadataError(field, f"longer than {limit} characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in s):
        raise MetadataError(field, "contains control characters")
    return s


def _verify(v: Any) -> Verify | None:
    if v is None:
        return None
    if not isinstance(v, Mapping):
        raise MetadataError("verify", f"expected an object with label and value, got {_json_type(v)}")
    return Verify(
        label=_plain_text(v.get("label", _MISSING), "verify.label", MAX_VERIFY_LABEL_CHARS),
        value=_plain_text(v.get("value", _MISSING), "verify.value", MAX_VERIFY_VALUE_CHARS),
    )


def _disclosures(v: Any) -> frozenset[str]:
    if v is None:
        return frozenset(DISCLOSURES)
    if not isinstance(v, list):
        raise MetadataError("disclosures", f"expected a list, got {_json_type(v)}")
    out = set()
    for item in v:
        if not isinstance(item, str) or item not in DISCLOSURES:
            raise MetadataError("disclosures", f"each item one of {', '.join(DISCLOSURES)}")
        out.add(item)
    return frozenset(out)

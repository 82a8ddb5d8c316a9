from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from conftest import VALID_METADATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duecall_agent.metadata import CallMetadata, MetadataError, extract_ids, parse_metadata


def with_(**changes: object) -> str:
    d = dict(VALID_METADATA)
    for k, v in changes.items():
        if v is _DROP:
            d.pop(k, None)
        else:
            d[k] = v
    return json.dumps(d)


_DROP = object()


def test_valid_metadata_parses() -> None:
    md = parse_metadata(json.dumps(VALID_METADATA))
    assert md == CallMetadata(
        reminder_id="6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10",
        attempt=2,
        phone_number="+14155550100",
        customer_name="Ada Lovelace",
        amount_due_minor=12345,
        currency="USD",
        due_date=dt.date(2026, 12, 1),
        language="en",
        timezone="America/New_York",
        sip_trunk_id="ST_abc123",
    )
    assert md.room_name == "reminder-6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10-2"


def test_accepts_bytes_and_mappings_and_ignores_unknown_keys() -> None:
    raw = with_(future_field={"x": 1})
    assert parse_metadata(raw.encode()) == parse_metadata(raw) == parse_metadata(json.loads(raw))


def test_metadata_is_frozen() -> None:
    md = parse_metadata(with_())
    with pytest.raises(Exception):
        md.attempt = 3  # type: ignore[misc]


def test_uppercase_uuid_is_canonicalised() -> None:
    md = parse_metadata(with_(reminder_id="6F1C1D52-8A6E-4C47-9B8E-1F6F3C2A9B10"))
    assert md.reminder_id == "6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10"


@pytest.mark.parametrize(
    "field,value",
    [
        ("reminder_id", _DROP),
        ("reminder_id", "not-a-uuid"),
        ("reminder_id", 42),
        ("reminder_id", "{6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10}"),
        ("reminder_id", "6f1c1d528a6e4c479b8e1f6f3c2a9b10"),
        ("attempt", _DROP),
        ("attempt", 0),
        ("attempt", -1),
        ("attempt", "2"),
        ("attempt", 2.0),
        ("attempt", True),
        ("attempt", None),
        ("phone_number", _DROP),
        ("phone_number", "4155550100"),
        ("phone_number", "+0415555"),
        ("phone_number", "+1 415 555 0100"),
        ("phone_number", "+1234567890123456"),
        ("phone_number", 14155550100),
        ("customer_name", _DROP),
        ("customer_name", "   "),
        ("customer_name", "Ada\nLovelace"),
        ("customer_name", "x" * 201),
        ("customer_name", None),
        ("amount_due_minor", _DROP),
        ("amount_due_minor", -1),
        ("amount_due_minor", 12.5),
        ("amount_due_minor", "12345"),
        ("amount_due_minor", 2**63),
        ("amount_due_minor", False),
        ("currency", _DROP),
        ("currency", "usd"),
        ("currency", "US"),
        ("currency", "USDD"),
        ("currency", 840),
        ("due_date", _DROP),
        ("due_date", "2026-02-30"),
        ("due_date", "01/12/2026"),
        ("due_date", "2026-12-01T00:00:00Z"),
        ("due_date", 20261201),
        ("language", "english please"),
        ("language", 7),
        ("language", ""),
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "../../etc/passwd"),
        ("timezone", 5),
        ("timezone", ""),
        ("sip_trunk_id", _DROP),
        ("sip_trunk_id", None),
        ("sip_trunk_id", "has space"),
        ("sip_trunk_id", 12),
    ],
)
def test_each_malformed_field_is_named(field: str, value: object) -> None:
    with pytest.raises(MetadataError) as err:
        parse_metadata(with_(**{field: value}))
    assert err.value.field == field
    assert field in str(err.value)


@pytest.mark.parametrize(
    "raw,why",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("not json", "JSON"),
        ("[1,2]", "object"),
        ("null", "object"),
        ('"a string"', "object"),
        (b"\xff\xfe", "UTF-8"),
        ("[" * 50_000, "JSON"),  # deep nesting: RecursionError inside json
        ("{" + '"a":1,' * 20_000 + '"b":2}', "larger"),
    ],
)
def test_malformed_documents(raw: str | bytes, why: str) -> None:
    with pytest.raises(MetadataError) as err:
        parse_metadata(raw)
    assert err.value.field == "metadata"
    assert why in str(err.value)


def test_defaults_for_language_timezone_and_trunk() -> None:
    md = parse_metadata(
        with_(language=_DROP, timezone=None, sip_trunk_id=""),
        default_sip_trunk_id="ST_env",
        default_timezone="Europe/Berlin",
    )
    assert (md.language, md.timezone, md.sip_trunk_id) == ("en", "Europe/Berlin", "ST_env")
    # metadata wins over the agent's default trunk
    assert parse_metadata(with_(), default_sip_trunk_id="ST_env").sip_trunk_id == "ST_abc123"


def test_phone_number_never_shows() -> None:
    md = parse_metadata(with_())
    assert "4155550100" not in repr(md) and "4155550100" not in str(md)
    assert "Lovelace" not in repr(md)
    assert "4155550100" not in json.dumps(md.log_fields())
    with pytest.raises(MetadataError) as err:
        parse_metadata(with_(phone_number="+1 415 555 0100"))
    assert "415" not in str(err.value)


def test_parsing_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    parse_metadata(with_())
    with pytest.raises(MetadataError):
        parse_metadata(with_(phone_number="bad"))
    assert "4155550100" not in caplog.text


def test_local_today_uses_the_customers_zone() -> None:
    md = parse_metadata(with_(timezone="Pacific/Kiritimati"))  # UTC+14
    now = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
    assert md.local_today(now) == dt.date(2026, 11, 25)
    md2 = parse_metadata(with_(timezone="Pacific/Pago_Pago"))  # UTC-11
    assert md2.local_today(now) == dt.date(2026, 11, 24)
    assert md2.local_today(dt.datetime(2026, 11, 24, 5, 0, tzinfo=dt.timezone.utc)) == dt.date(2026, 11, 23)


def test_extract_ids_for_failure_reports() -> None:
    assert extract_ids(with_(phone_number="bad")) == ("6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10", 2)
    assert extract_ids(with_(attempt="x")) == ("6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10", None)
    assert extract_ids(with_(reminder_id="nope")) is None
    assert extract_ids("garbage") is None


# ---- property: whatever arrives, only MetadataError (or a valid CallMetadata) comes out ----

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
field_values = st.sampled_from(list(VALID_METADATA)).flatmap(lambda k: st.tuples(st.just(k), json_values))


def _only_metadata_error(raw: object) -> None:
    try:
        md = parse_metadata(raw)  # type: ignore[arg-type]
    except MetadataError as err:
        assert err.field in set(VALID_METADATA) | {"metadata"}
    else:
        assert isinstance(md, CallMetadata)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_property_arbitrary_json_values(value: object) -> None:
    _only_metadata_error(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.lists(field_values, max_size=5))
def test_property_valid_document_with_arbitrary_fields_replaced(changes: list[tuple[str, object]]) -> None:
    d = dict(VALID_METADATA)
    d.update(dict(changes))
    _only_metadata_error(json.dumps(d))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_property_arbitrary_text_and_bytes(raw: str | bytes) -> None:
    _only_metadata_error(raw)

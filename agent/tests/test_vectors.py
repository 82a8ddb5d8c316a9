"""The shared vectors in spec/vectors/ are right: the PyPI library and an independent HMAC agree
with every case's ``valid``, and the generator reproduces the files byte for byte."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import AGENT_DIR, VECTORS_DIR, _hmac_sha256, independent_verify, library_verify, load_vectors

STANDARD = load_vectors("standard-webhooks.json")
CALL_STATUS = load_vectors("call-status.json")
CASE_KEYS = {"name", "secret", "msg_id", "timestamp", "now", "payload", "signature", "valid", "note"}


def test_independent_hmac_matches_rfc4231() -> None:
    """The helper itself (RFC 4231 test case 2), so a broken helper cannot bless a wrong vector."""
    got = _hmac_sha256(b"Jefe", b"what do ya want for nothing?").hex()
    assert got == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def _ids(cases: list[dict]) -> list[str]:
    return [c["name"] for c in cases]


@pytest.mark.parametrize("case", STANDARD["cases"], ids=_ids(STANDARD["cases"]))
def test_standard_case_with_library(case: dict) -> None:
    args = (case["secret"], case["msg_id"], case["timestamp"], case["payload"], case["signature"], case["now"])
    assert library_verify(*args) is case["valid"]


@pytest.mark.parametrize("case", STANDARD["cases"], ids=_ids(STANDARD["cases"]))
def test_standard_case_with_independent_hmac(case: dict) -> None:
    args = (case["secret"], case["msg_id"], case["timestamp"], case["payload"], case["signature"], case["now"])
    assert independent_verify(*args) is case["valid"]


@pytest.mark.parametrize("case", CALL_STATUS["cases"], ids=_ids(CALL_STATUS["cases"]))
def test_call_status_case_with_both_checkers(case: dict) -> None:
    args = (case["secret"], case["msg_id"], case["timestamp"], case["payload"], case["signature"], case["now"])
    assert case["valid"] is True
    assert library_verify(*args)
    assert independent_verify(*args)
    # and it stops verifying when anything signed changes
    tampered_body = case["payload"].replace('"attempt":2', '"attempt":3') if '"attempt":2' in case["payload"] else case["payload"] + " "
    assert not library_verify(args[0], args[1], args[2], tampered_body, args[4], args[5])
    assert not independent_verify(args[0], args[1], args[2], tampered_body, args[4], args[5])
    assert not independent_verify(args[0], args[1] + "x", *args[2:])
    assert not independent_verify(args[0], args[1], args[2] + 1, args[3], args[4], args[2] + 1)


def test_official_signature_is_in_the_file() -> None:
    first = STANDARD["cases"][0]
    assert first["name"] == "official_signature"
    assert first["secret"] == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert first["msg_id"] == "msg_p5jXN8AQM9LWM0D4loKWxJek"
    assert first["timestamp"] == 1614265330
    assert first["payload"] == '{"test": 2432232314}'
    assert first["signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert first["valid"] is True


@pytest.mark.parametrize("doc", [STANDARD, CALL_STATUS], ids=["standard", "call-status"])
def test_case_shape(doc: dict) -> None:
    names = [c["name"] for c in doc["cases"]]
    assert len(names) == len(set(names)), "case names are unique"
    for c in doc["cases"]:
        assert CASE_KEYS <= set(c), c["name"]
        assert c["secret"].startswith("whsec_")
        assert isinstance(c["timestamp"], int) and isinstance(c["now"], int)
        assert isinstance(c["valid"], bool)


def test_standard_file_has_both_kinds() -> None:
    valid = [c for c in STANDARD["cases"] if c["valid"]]
    invalid = [c for c in STANDARD["cases"] if not c["valid"]]
    assert len(valid) >= 5 and len(invalid) >= 10


def test_call_status_covers_every_event_and_result() -> None:
    results = set()
    events = set()
    for c in CALL_STATUS["cases"]:
        body = json.loads(c["payload"])
        events.add(body["event_type"])
        assert c["event_type"] == body["event_type"]
        if body["event_type"] == "call_completed":
            results.add(body["outcome"]["result"])
    assert events == {"call_answered", "call_completed", "call_failed"}
    assert results == {
        "payment_promised", "paid", "refused", "disputed", "callback_requested", "wrong_number",
        "other", "opted_out", "no_answer", "busy", "voicemail", "not_available",
    }
    callbacks = [json.loads(c["payload"])["outcome"] for c in CALL_STATUS["cases"] if c["name"].startswith("completed_callback")]
    assert any("callback_at" in o for o in callbacks) and any("callback_at" not in o for o in callbacks)
    failures = [json.loads(c["payload"]).get("failure") for c in CALL_STATUS["cases"] if c["event_type"] == "call_failed"]
    assert None in failures and any(f and f["retryable"] is False for f in failures)
    assert any(f and f.get("sip_status") == 503 and f["retryable"] for f in failures)
    assert any(not c["payload"].isascii() for c in CALL_STATUS["cases"]), "a raw UTF-8 body is included"


def test_generator_reproduces_the_files() -> None:
    spec = importlib.util.spec_from_file_location("gen_vectors", AGENT_DIR / "scripts" / "gen_vectors.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    docs = gen.documents()
    assert set(p.name for p in docs) == {"standard-webhooks.json", "call-status.json"}
    for path, text in docs.items():
        assert (VECTORS_DIR / path.name).read_text(encoding="utf-8") == text, f"{path.name} is stale: run scripts/gen_vectors.py"
    assert gen.documents() == docs, "deterministic"

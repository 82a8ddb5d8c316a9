#!/usr/bin/env python3
"""Write spec/vectors/standard-webhooks.json and spec/vectors/call-status.json.

Deterministic: no clock, no randomness; running it again writes byte-identical files.
Every signature is produced by the PyPI ``standardwebhooks`` package, and every case's
``valid`` flag is checked against that package's own ``Webhook.verify`` with its clock pinned to
the case's ``now`` before anything is written (the script fails instead of writing a wrong case).

    agent/.venv/bin/python agent/scripts/gen_vectors.py          # write both files
    agent/.venv/bin/python agent/scripts/gen_vectors.py --check  # exit 1 if they differ
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any
from unittest import mock

AGENT_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = AGENT_DIR.parent
VECTORS_DIR = REPO_DIR / "spec" / "vectors"
sys.path.insert(0, str(AGENT_DIR))

import standardwebhooks.webhooks as swh  # noqa: E402

from duecall_agent.outcomes import Outcome, Result  # noqa: E402
from duecall_agent.sip import Failure  # noqa: E402
from duecall_agent.webhook_client import build_body, encode_body  # noqa: E402

UTC = dt.timezone.utc

# ---- the official Standard Webhooks test data ---------------------------------------------------
# standard-webhooks/standard-webhooks: libraries/python/tests/test_webhooks.py (test_sign_function,
# test_invalid_signature_raises_error, test_multi_sig_payload_is_valid) and
# libraries/javascript/src/webhook.test.ts ("sign function works", "invalid signature throws
# error", "partial signature throws error", "multi sig payload is valid").
OFFICIAL_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OFFICIAL_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
OFFICIAL_TIMESTAMP = 1614265330
OFFICIAL_PAYLOAD = '{"test": 2432232314}'
OFFICIAL_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OFFICIAL_WRONG_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="
OFFICIAL_DECOY = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
OFFICIAL_GARBAGE = "v1,dawfeoifkpqwoekfpqoekf"

# Test-only keys made up for these files. Never use them anywhere real.
OTHER_SECRET = "whsec_" + base64.b64encode(b"not-the-right-key-for-this-test!").decode()
OLD_ROTATED_SECRET = "whsec_" + base64.b64encode(b"an-older-key-still-being-rotated").decode()
DUECALL_TEST_KEY = b"duecall-test-only-webhook-key-01"
DUECALL_TEST_SECRET = "whsec_" + base64.b64encode(DUECALL_TEST_KEY).decode()
assert len(DUECALL_TEST_KEY) == 32


class _PinnedClock(dt.datetime):
    pinned: dt.datetime

    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
        return cls.pinned if tz is None else cls.pinned.astimezone(tz)


def library_verifies(secret: str, msg_id: str, timestamp: int, payload: str, signature: str, now: int) -> bool:
    """The PyPI library's own verify, with its clock pinned to ``now``. Any exception = invalid
    (the library raises ValueError / binascii.Error, not only its own error, on malformed input)."""
    clock = type("Clock", (_PinnedClock,), {"pinned": dt.datetime.fromtimestamp(now, tz=UTC)})
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
    with mock.patch.object(swh, "datetime", clock):
        try:
            swh.Webhook(secret).verify(payload, headers, json_parse=False)
        except Exception:
            return False
    return True


def library_sign(secret: str, msg_id: str, timestamp: int, payload: str) -> str:
    return swh.Webhook(secret).sign(msg_id, dt.datetime.fromtimestamp(timestamp, tz=UTC), payload)


def case(
    name: str,
    note: str,
    *,
    valid: bool,
    secret: str = OFFICIAL_SECRET,
    msg_id: str = OFFICIAL_MSG_ID,
    timestamp: int = OFFICIAL_TIMESTAMP,
    payload: str = OFFICIAL_PAYLOAD,
    signature: str | None = None,
    now: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    if signature is None:
        signature = library_sign(secret, msg_id, timestamp, payload)
    now = timestamp if now is None else now
    got = library_verifies(secret, msg_id, timestamp, payload, signature, now)
    if got != valid:
        raise SystemExit(f"case {name}: the library says valid={got}, the case says {valid}")
    out = {
        "name": name,
        **extra,
        "secret": secret,
        "msg_id": msg_id,
        "timestamp": timestamp,
        "now": now,
        "payload": payload,
        "signature": signature,
        "valid": valid,
        "note": note,
    }
    return out


def standard_cases() -> list[dict[str, Any]]:
    sig_b64 = OFFICIAL_SIGNATURE.split(",", 1)[1]
    if library_sign(OFFICIAL_SECRET, OFFICIAL_MSG_ID, OFFICIAL_TIMESTAMP, OFFICIAL_PAYLOAD) != OFFICIAL_SIGNATURE:
        raise SystemExit("the library no longer reproduces the official signature")
    truncated = "v1," + base64.b64encode(base64.b64decode(sig_b64)[:16]).decode()
    T = OFFICIAL_TIMESTAMP
    old_key_sig = library_sign(OLD_ROTATED_SECRET, OFFICIAL_MSG_ID, T, OFFICIAL_PAYLOAD)
    unicode_payload = '{"name":"Zoë Ñúñez","note":"日本語 ✓ 👍","amount":12000}'
    return [
        case("official_signature", "official: the sign test of the python and javascript libraries",
             valid=True, signature=OFFICIAL_SIGNATURE),
        case("official_wrong_signature", "official: last base64 character changed (python library test)",
             valid=False, signature=OFFICIAL_WRONG_SIGNATURE),
        case("official_multiple_signatures_one_matches",
             "official: decoys around the right one, including an unknown v2 entry (multi-sig test)",
             valid=True, signature=f"v1,{OFFICIAL_DECOY} v2,{OFFICIAL_DECOY} {OFFICIAL_SIGNATURE} v1,{OFFICIAL_DECOY}"),
        case("official_garbage_signature", "official: v1 entry that is not even base64 of a digest (javascript test)",
             valid=False, signature=OFFICIAL_GARBAGE),
        case("official_partial_signature", "official: the header cut after 8 characters (javascript test)",
             valid=False, signature=OFFICIAL_SIGNATURE[:8]),
        case("official_empty_v1_signature", "official: 'v1,' with nothing after it (javascript test)",
             valid=False, signature="v1,"),
        case("wrong_secret", "the official message checked with another key",
             valid=False, secret=OTHER_SECRET, signature=OFFICIAL_SIGNATURE),
        case("tampered_payload", "one digit of the body changed", valid=False,
             payload='{"test": 2432232315}', signature=OFFICIAL_SIGNATURE),
        case("reserialized_payload", "same JSON value, whitespace removed: the raw bytes are signed, not the value",
             valid=False, payload='{"test":2432232314}', signature=OFFICIAL_SIGNATURE),
        case("tampered_msg_id", "last character of webhook-id changed", valid=False,
             msg_id="msg_p5jXN8AQM9LWM0D4loKWxJel", signature=OFFICIAL_SIGNATURE),
        case("tampered_timestamp", "webhook-timestamp one second later than signed (clock follows it)",
             valid=False, timestamp=T + 1, signature=OFFICIAL_SIGNATURE),
        case("missing_v1_prefix", "the bare base64 digest without 'v1,'", valid=False, signature=sig_b64),
        case("uppercase_version", "'V1,' is not the version identifier 'v1'", valid=False, signature="V1," + sig_b64),
        case("asymmetric_version", "a v1a (ed25519) entry is not an HMAC signature", valid=False,
             signature="v1a," + sig_b64),
        case("right_digest_wrong_version", "the right digest only under an unknown version, next to a wrong v1",
             valid=False, signature=f"v1,{OFFICIAL_DECOY} v2,{sig_b64}"),
        case("truncated_digest", "first 16 bytes of the right digest", valid=False, signature=truncated),
        case("rotation_old_and_new_key", "signed with an older key and with this key, space-separated",
             valid=True, signature=f"{old_key_sig} {OFFICIAL_SIGNATURE}"),
        case("rotation_only_old_key", "signed with another (older) key only", valid=False, signature=old_key_sig),
        case("tolerance_300s_old", "clock 300 s after the timestamp: still inside the 5-minute tolerance",
             valid=True, signature=OFFICIAL_SIGNATURE, now=T + 300),
        case("tolerance_301s_old", "clock 301 s after the timestamp: too old", valid=False,
             signature=OFFICIAL_SIGNATURE, now=T + 301),
        case("tolerance_300s_new", "clock 300 s before the timestamp: still inside the tolerance", valid=True,
             signature=OFFICIAL_SIGNATURE, now=T - 300),
        case("tolerance_301s_new", "clock 301 s before the timestamp: too new", valid=False,
             signature=OFFICIAL_SIGNATURE, now=T - 301),
        case("unicode_payload", "non-ASCII body: the UTF-8 bytes are signed (signature computed by the library)",
             valid=True, msg_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp=1674087231, payload=unicode_payload),
        case("empty_object_payload", "smallest JSON body (signature computed by the library)", valid=True,
             msg_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp=1674087231, payload="{}"),
    ]


# ---- duecall call-status events (SPEC §2) ---------------------------------------------------------

REMINDER_ID = "6f1c1d52-8a6e-4c47-9b8e-1f6f3c2a9b10"
ATTEMPT = 2
BASE = int(dt.datetime(2026, 11, 24, 10, 15, tzinfo=UTC).timestamp())

TRANSCRIPT = (
    "Agent: Hello, this is Alex calling from Acme Billing. Am I speaking with Ada Lovelace?\n"
    "Customer: Yes, speaking.\n"
    "Agent: Thank you. The amount due is 120.00 USD, due on 2026-12-01. Can you pay it?\n"
    "Customer: I can pay the full 120 dollars on December 1st.\n"
    "Agent: So 120.00 USD on Tuesday, December 1, 2026. Is that right?\n"
    "Customer: Yes.\n"
    "Agent: Thank you, goodbye."
)
UNICODE_TRANSCRIPT = (
    "Agent: Guten Tag, spreche ich mit Zoë Müller?\n"
    "Customer: Ja, am Apparat — ich zahle 120 € am 1. Dezember. 👍\n"
    "Agent: 了解しました。ありがとうございます。\n"
    "Customer: \"Danke\" \\ tschüss"
)


def _event_cases() -> list[tuple[str, str, dict[str, Any] | str]]:
    """(name, note, body dict or exact raw body string)."""
    occurred = lambda i: dt.datetime.fromtimestamp(BASE + 7 * i - 2, tz=UTC)  # noqa: E731

    def completed(i: int, outcome: Outcome) -> dict[str, Any]:
        return build_body("call_completed", REMINDER_ID, ATTEMPT, occurred(i), outcome=outcome)

    R = Result
    items: list[tuple[str, str, dict[str, Any] | str]] = [
        ("call_answered", "the customer picked up", build_body("call_answered", REMINDER_ID, ATTEMPT, occurred(0))),
        ("completed_payment_promised", "every outcome field set", completed(1, Outcome(
            R.PAYMENT_PROMISED, 12000, dt.date(2026, 12, 1),
            "Customer promised to pay 120.00 USD on 2026-12-01. [identity confirmed]", TRANSCRIPT, 93))),
        ("completed_payment_promised_minimal", "only what payment_promised needs", completed(2, Outcome(
            R.PAYMENT_PROMISED, 5000, dt.date(2026, 11, 30)))),
        ("completed_paid", "reached", completed(3, Outcome(
            R.PAID, summary="Customer says the amount is already paid. Note: paid by bank transfer on Nov 20 [identity confirmed]",
            duration_seconds=41))),
        ("completed_refused", "reached", completed(4, Outcome(
            R.REFUSED, summary="Customer refused to pay. [identity confirmed]", duration_seconds=58))),
        ("completed_disputed", "reached", completed(5, Outcome(
            R.DISPUTED, summary="Customer disputes the debt. Note: says the invoice was cancelled [identity confirmed]",
            duration_seconds=77))),
        ("completed_callback_requested", "reached; the customer asked to be called back and named no time (the retry delay applies)",
         completed(6, Outcome(
            R.CALLBACK_REQUESTED, summary="A callback was requested. [identity confirmed]", duration_seconds=25))),
        ("completed_wrong_number", "reached", completed(7, Outcome(
            R.WRONG_NUMBER, summary="Wrong number: the person who answered is not the customer. [identity not confirmed]",
            duration_seconds=19))),
        ("completed_other", "reached", completed(8, Outcome(
            R.OTHER, summary="The call ended without a specific outcome. [identity confirmed]", duration_seconds=64))),
        ("completed_opted_out", "reached; the service cancels the reminder", completed(9, Outcome(
            R.OPTED_OUT, summary="Customer asked not to be called again. [identity confirmed]", duration_seconds=12))),
        ("completed_no_answer", "unreached; as reported after SIP 480", completed(10, Outcome(
            R.NO_ANSWER, summary="Not reached: no answer."))),
        ("completed_busy", "unreached; as reported after SIP 486", completed(11, Outcome(
            R.BUSY, summary="Not reached: busy."))),
        ("completed_voicemail", "unreached; a limited-content message was left", completed(12, Outcome(
            R.VOICEMAIL, summary="Voicemail: a limited-content message was left, without amount or debt details. [identity not confirmed]",
            duration_seconds=31))),
        ("failed_without_failure", "failure is optional", build_body("call_failed", REMINDER_ID, ATTEMPT, occurred(13))),
        ("failed_retryable", "trunk error, retry", build_body("call_failed", REMINDER_ID, ATTEMPT, occurred(14), failure=Failure(
            "sip trunk error (sip 503 service unavailable)", 503, True))),
        ("failed_permanent", "invalid number: no retry", build_body("call_failed", REMINDER_ID, ATTEMPT, occurred(15), failure=Failure(
            "invalid number (sip 404 not found)", 404, False))),
        ("failed_without_sip_status", "failure without sip_status", build_body("call_failed", REMINDER_ID, ATTEMPT, occurred(16), failure=Failure(
            "livekit api error: unavailable", None, True))),
        ("failed_without_attempt", "attempt omitted: applies to the current attempt (agent could not read it)",
         build_body("call_failed", REMINDER_ID, None, occurred(17), failure=Failure("invalid call metadata: phone_number", None, False))),
        ("completed_unicode_transcript", "non-ASCII, escapes and an emoji in the transcript, sent as raw UTF-8",
         completed(18, Outcome(R.PAYMENT_PROMISED, 12000, dt.date(2026, 12, 1),
                               "Kundin verspricht 120,00 EUR am 2026-12-01 — “bestätigt”.", UNICODE_TRANSCRIPT, 88))),
    ]
    extra = build_body("call_answered", REMINDER_ID, ATTEMPT, occurred(19))
    raw_extra = json.dumps(
        {**extra, "agent_version": "0.9.0", "room_name": f"reminder-{REMINDER_ID}-{ATTEMPT}",
         "debug": {"nested": [1, 2.5, None, True], "note": "ignored"}},
        ensure_ascii=False, separators=(",", ":"),
    )
    items.append(("answered_with_unknown_fields", "unknown fields must be ignored", raw_extra))
    pretty = json.dumps(
        build_body("call_completed", REMINDER_ID, ATTEMPT, occurred(20), outcome=Outcome(R.BUSY)), indent=2
    ) + "\n"
    items.append(("completed_pretty_printed", "indented JSON with a trailing newline: the raw bytes are what is signed", pretty))
    # Appended, so the earlier cases keep their timestamps and bytes.
    items += [
        ("completed_callback_requested_at", "reached; called back at the time asked (callback_at, UTC)", completed(21, Outcome(
            R.CALLBACK_REQUESTED, summary="Customer asked to be called back at 5 pm. [identity confirmed]", duration_seconds=33,
            callback_at=dt.datetime(2026, 11, 25, 17, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))))),
        ("completed_not_available", "unreached; someone else answered, nothing about the debt was said, tried again",
         completed(22, Outcome(
            R.NOT_AVAILABLE,
            summary="Someone else answered; the customer could not come to the phone. [identity not confirmed]",
            duration_seconds=21))),
    ]
    return items


def call_status_cases() -> list[dict[str, Any]]:
    out = []
    for i, (name, note, body) in enumerate(_event_cases()):
        raw = body if isinstance(body, str) else encode_body(body)
        event_type = json.loads(raw)["event_type"]
        msg_id = "msg_" + hashlib.sha256(f"duecall-vector-{name}".encode()).hexdigest()[:32]
        out.append(case(name, note, valid=True, secret=DUECALL_TEST_SECRET, msg_id=msg_id,
                        timestamp=BASE + 7 * i, payload=raw, event_type=event_type))
    return out


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def documents() -> dict[Path, str]:
    lib = f"standardwebhooks=={importlib.metadata.version('standardwebhooks')} (PyPI)"
    standard = {
        "description": "Standard Webhooks signature verification vectors. A case is valid when a receiver "
                       "holding `secret`, with its clock at `now` (Unix seconds) and a tolerance of 300 s either "
                       "way, accepts body `payload` with headers webhook-id=`msg_id`, "
                       "webhook-timestamp=`timestamp`, webhook-signature=`signature`. See README.md.",
        "source": "standard-webhooks/standard-webhooks: libraries/python/tests/test_webhooks.py and "
                  "libraries/javascript/src/webhook.test.ts; derived cases computed and every case checked with "
                  + lib,
        "generated_by": "agent/scripts/gen_vectors.py",
        "cases": standard_cases(),
    }
    call_status = {
        "description": "duecall call-status events (SPEC §2) as the agent sends them, signed with a TEST-ONLY "
                       "secret. All cases are valid at now = timestamp. See README.md.",
        "test_only_secret": DUECALL_TEST_SECRET,
        "test_only_key_ascii": DUECALL_TEST_KEY.decode(),
        "generated_by": "agent/scripts/gen_vectors.py (bodies from duecall_agent.webhook_client.build_body/encode_body)",
        "signed_with": lib,
        "cases": call_status_cases(),
    }
    return {
        VECTORS_DIR / "standard-webhooks.json": render(standard),
        VECTORS_DIR / "call-status.json": render(call_status),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    args = parser.parse_args()
    docs = documents()
    if args.check:
        stale = [p for p, text in docs.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        for p in stale:
            print(f"out of date: {p.relative_to(REPO_DIR)}", file=sys.stderr)
        return 1 if stale else 0
    VECTORS_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in docs.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO_DIR)} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

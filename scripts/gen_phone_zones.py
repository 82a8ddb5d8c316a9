#!/usr/bin/env python3
"""Generate duecall's phone number -> calling zones table and its test vectors.

Source: the PyPI package `phonenumbers` (the Python port of Google's libphonenumber), at the
version pinned in scripts/phone-zones-requirements.txt. Its time-zone data is the dict
`phonenumbers.tzdata.TIMEZONE_DATA` (prefix of the E.164 digits, without "+", -> tuple of
IANA zone names) and `TIMEZONE_LONGEST_PREFIX` (the longest key's length);
`phonenumbers.timezone.time_zones_for_geographical_number` answers with the entry of the longest
key that prefixes the number's E.164 digits, or ("Etc/Unknown",) when none does.

Writes, deterministically (running it again rewrites both byte for byte):

- src/phone_zones/table.rs: the zone names, the distinct zone sets (as indexes into the names),
  and the sorted prefixes (as integers: no key starts with 0, so a key's value and length are one
  fact) with each one's set;
- spec/vectors/phone_zones.json: sample numbers with what the package answers for each (see
  spec/vectors/README.md, "phone_zones.json").

Usage (a venv of its own; PyPI only):

    python3 -m venv .venv-zones
    .venv-zones/bin/pip install -r scripts/phone-zones-requirements.txt
    .venv-zones/bin/python scripts/gen_phone_zones.py          # write both files
    .venv-zones/bin/python scripts/gen_phone_zones.py --check  # exit 1 when either is stale
"""

import argparse
import hashlib
import json
import os
import sys

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat, PhoneNumberType
from phonenumbers import timezone as pn_tz
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

UNKNOWN = pn_tz.UNKNOWN_TIMEZONE  # "Etc/Unknown"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = os.path.join(ROOT, "scripts", "phone-zones-requirements.txt")
TABLE = os.path.join(ROOT, "src", "phone_zones", "table.rs")
VECTORS = os.path.join(ROOT, "spec", "vectors", "phone_zones.json")

# Countries whose numbers the package maps to more than one zone somewhere: sampled more densely.
MULTI_ZONE_CCS = [1, 7, 55, 52, 61, 62, 54, 56, 86, 351, 34, 45, 33, 31, 593, 57, 64, 976, 380,
                  995, 77, 850, 243, 44]
TYPES = [
    PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.TOLL_FREE, PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP, PhoneNumberType.PERSONAL_NUMBER, PhoneNumberType.PAGER,
    PhoneNumberType.UAN, PhoneNumberType.VOICEMAIL,
]
TYPE_NAMES = {v: k for k, v in vars(PhoneNumberType).items() if k.isupper()}


def digits(seed, n):
    """n decimal digits drawn from SHA-256 of seed: the same on every Python version."""
    out = ""
    counter = 0
    while len(out) < n:
        block = hashlib.sha256(f"duecall-phone-zones:{seed}:{counter}".encode()).digest()
        out += "".join(str(b % 10) for b in block if b < 250)  # 250 = 25 * 10: no bias
        counter += 1
    return out[:n]


def country_code_of(d):
    """The country calling code that prefixes the digits d, or None."""
    for n in (1, 2, 3):
        if int(d[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return int(d[:n])
    return None


def numobj_for(e164):
    """The PhoneNumber whose E.164 form is exactly e164 (parse would strip a national prefix such
    as the 0 of +44 020..., and so answer for another string), or None without a country code."""
    d = e164[1:]
    cc = country_code_of(d)
    if cc is None:
        return None
    national = d[len(str(cc)):]
    if not national:
        return None
    num = PhoneNumber(country_code=cc, national_number=int(national))
    zeros = len(national) - len(national.lstrip("0"))
    if zeros:
        if zeros == len(national):
            return None  # all zeros: national_number 0 cannot say how many
        num.italian_leading_zero = True
        num.number_of_leading_zeros = zeros
    if phonenumbers.format_number(num, PhoneNumberFormat.E164) != e164:
        raise SystemExit(f"{e164}: the PhoneNumber built for it formats differently")
    return num


def zones_list(tup):
    return [] if tuple(tup) == (UNKNOWN,) else list(tup)


def answer(e164):
    """What the package answers for e164: the prefix lookup, time_zones_for_number, validity, type."""
    num = numobj_for(e164)
    if num is None:  # no country code: no key can prefix it
        return {"zones": [], "checked": [], "valid": False, "type": "UNKNOWN"}
    return {
        "zones": zones_list(pn_tz.time_zones_for_geographical_number(num)),
        "checked": zones_list(pn_tz.time_zones_for_number(num)),
        "valid": phonenumbers.is_valid_number(num),
        "type": TYPE_NAMES[phonenumbers.number_type(num)],
    }


def typical_length(cc):
    """Digits (country code included) of the main region's example fixed-line number, else 11."""
    region = phonenumbers.region_code_for_country_code(cc)
    ex = phonenumbers.example_number_for_type(region, PhoneNumberType.FIXED_LINE) if region else None
    if ex is None:
        return 11
    return len(phonenumbers.format_number(ex, PhoneNumberFormat.E164)) - 1


def sample():
    """(number, why) pairs, deterministic, deduplicated by number, in a fixed order."""
    out = {}

    def add(d, why):
        if 7 <= len(d) <= 15 and d[0] != "0":
            out.setdefault("+" + d, why)

    keys = sorted(TIMEZONE_DATA)
    # 1. Every key of the data, filled to its country's usual length (every NANP area code and
    #    every finer NANP prefix is a key), and again at the shortest and longest E.164 lengths.
    for i, key in enumerate(keys):
        cc = country_code_of(key)
        length = max(typical_length(cc) if cc else 11, len(key))
        add(key + digits(key, length - len(key)), "key")
        if i % 8 == 0:
            add(key + digits(key + "/7", 7 - len(key)), "key, 7 digits")
        if i % 8 == 4:
            add(key + digits(key + "/15", 15 - len(key)), "key, 15 digits")
        # A sibling of a long key (its last digit changed): often no key, so a shorter one answers.
        if len(key) >= 5 and i % 6 == 0:
            sib = key[:-1] + str((int(key[-1]) + 5) % 10)
            add(sib + digits(sib, max(typical_length(cc) if cc else 11, len(sib)) - len(sib)),
                "sibling of a key")
    # 2. The package's example numbers, every region and every type.
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for ty in TYPES:
            ex = phonenumbers.example_number_for_type(region, ty)
            if ex is not None:
                add(phonenumbers.format_number(ex, PhoneNumberFormat.E164)[1:],
                    f"example {region} {TYPE_NAMES[ty]}")
    # 3. Non-geographic entities (+800, +882, ...): no data, so unknown.
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        ex = phonenumbers.example_number_for_non_geo_entity(cc)
        if ex is not None:
            add(phonenumbers.format_number(ex, PhoneNumberFormat.E164)[1:], f"example non-geo {cc}")
        add(str(cc) + digits(f"ng{cc}", 8), f"non-geo {cc}")
    # 4. Multi-zone countries: random numbers of every length.
    for cc in MULTI_ZONE_CCS:
        for j in range(27):
            length = 7 + j % 9
            add(str(cc) + digits(f"mz{cc}/{j}", length - len(str(cc))), f"multi-zone {cc}")
    # 5. Every country code, a few random numbers each.
    for cc in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        for j in range(2):
            length = typical_length(cc) + (0, 2)[j]
            add(str(cc) + digits(f"cc{cc}/{j}", length - len(str(cc))), f"country {cc}")
    # 6. Digits that start with no country code at all (+28..., +999...).
    for n in range(100, 1000, 7):
        if country_code_of(str(n)) is None:
            add(str(n) + digits(f"nocc{n}", 8), "no country code")
    # 7. National numbers with leading zeros (the package keeps them in E.164).
    for cc in (44, 39, 49, 7, 1, 61):
        add(str(cc) + "0" + digits(f"lz{cc}", 9), "leading zero")
    return sorted(out.items())


def rust_table():
    entries = sorted(TIMEZONE_DATA.items(), key=lambda kv: (int(kv[0]), kv[0]))
    for key, _ in entries:
        # At most 9 digits: the lookup computes each prefix's value in a u32.
        if not key.isdigit() or key[0] == "0" or len(key) > min(9, TIMEZONE_LONGEST_PREFIX):
            raise SystemExit(f"unexpected key {key!r}")
    names = sorted({z for _, zs in entries for z in zs if z != UNKNOWN})
    sets = sorted({tuple(zones_list(zs)) for _, zs in entries})
    name_ix = {n: i for i, n in enumerate(names)}
    set_ix = {s: i for i, s in enumerate(sets)}
    if len(names) > 65535 or len(sets) > 65535 or sum(map(len, sets)) > 65535:
        raise SystemExit("the table outgrew u16 indexes")

    out = []
    w = out.append
    w("// @generated by scripts/gen_phone_zones.py: do not edit; change the script and run it again.")
    w(f"// Source: the PyPI package `phonenumbers` {phonenumbers.__version__} (libphonenumber's")
    w("// time-zone data, phonenumbers.tzdata.TIMEZONE_DATA), Apache-2.0, (C) The Libphonenumber Authors.")
    w(f"// {len(entries)} prefixes, {len(sets)} zone sets, {len(names)} zone names.")
    w("")
    w("/// The package and version this table was generated from.")
    w(f'pub(super) const SOURCE: &str = "phonenumbers {phonenumbers.__version__}";')
    w("")
    w("/// The longest prefix in the table, in digits.")
    w(f"pub(super) const LONGEST_PREFIX: usize = {max(len(k) for k, _ in entries)};")
    w("")
    w("/// IANA zone names, sorted.")
    w(f"pub(super) static NAMES: [&str; {len(names)}] = [")
    line = "   "
    for n in names:
        item = f' "{n}",'
        if len(line) + len(item) > 99:
            w(line)
            line = "   "
        line += item
    w(line)
    w("];")
    w("")
    w("/// Zone set `i` is `SET_ZONES[SET_START[i]..SET_START[i + 1]]`, indexes into `NAMES`.")
    flat, starts = [], [0]
    for s in sets:
        flat.extend(name_ix[z] for z in s)
        starts.append(len(flat))
    for label, arr in (("SET_START", starts), ("SET_ZONES", flat)):
        w(f"pub(super) static {label}: [u16; {len(arr)}] = [")
        emit_numbers(w, arr)
        w("];")
    w("")
    w("/// The data's keys as integers, ascending; `PREFIX_SET[i]` is the zone set of `PREFIXES[i]`.")
    w(f"pub(super) static PREFIXES: [u32; {len(entries)}] = [")
    emit_numbers(w, [int(k) for k, _ in entries])
    w("];")
    w(f"pub(super) static PREFIX_SET: [u16; {len(entries)}] = [")
    emit_numbers(w, [set_ix[tuple(zones_list(zs))] for _, zs in entries])
    w("];")
    return "\n".join(out) + "\n"


def emit_numbers(w, arr):
    line = "   "
    for v in arr:
        item = f" {v},"
        if len(line) + len(item) > 99:
            w(line)
            line = "   "
        line += item
    if line.strip():
        w(line)


def vectors_json():
    cases = []
    for number, why in sample():
        a = answer(number)
        case = {"number": number, "zones": a["zones"]}
        if a["checked"] != a["zones"]:
            case["checked"] = a["checked"]
        case["valid"] = a["valid"]
        case["type"] = a["type"]
        case["why"] = why
        cases.append(case)
    check_documented_differences(cases)
    head = {
        "source": f"phonenumbers {phonenumbers.__version__}",
        "generator": "scripts/gen_phone_zones.py",
        "zones": "phonenumbers.timezone.time_zones_for_geographical_number, Etc/Unknown as []",
        "checked": "time_zones_for_number, only where it differs from zones",
        "count": len(cases),
    }
    lines = ["{", f'  "about": {json.dumps(head, ensure_ascii=False)},', '  "cases": [']
    for i, c in enumerate(cases):
        sep = "," if i + 1 < len(cases) else ""
        lines.append("    " + json.dumps(c, ensure_ascii=False) + sep)
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def check_documented_differences(cases):
    """docs/DECISIONS.md ("Calling zones") says time_zones_for_number differs from the prefix
    lookup only for numbers that are not valid (it answers unknown) and for valid numbers of a
    type it does not geo-locate (it answers the country code's entry). Hold it to that."""
    for c in cases:
        if "checked" not in c:
            continue
        if not c["valid"]:
            assert c["checked"] == [], c
        else:
            cc = country_code_of(c["number"][1:])
            assert not phonenumbers.is_number_type_geographical(
                getattr(PhoneNumberType, c["type"]), cc), c
            assert c["checked"] == zones_list(TIMEZONE_DATA.get(str(cc), (UNKNOWN,))), c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a written file is stale")
    args = ap.parse_args()
    with open(REQUIREMENTS, encoding="utf-8") as f:
        pinned = [ln.split("==", 1)[1].strip() for ln in f if ln.startswith("phonenumbers==")]
    if pinned != [phonenumbers.__version__]:
        sys.exit(f"phonenumbers {phonenumbers.__version__} installed, {pinned} pinned")
    stale = []
    for path, text in ((TABLE, rust_table()), (VECTORS, vectors_json())):
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if old == text:
            continue
        if args.check:
            stale.append(os.path.relpath(path, ROOT))
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            print(f"wrote {os.path.relpath(path, ROOT)}")
    if stale:
        sys.exit("stale (run scripts/gen_phone_zones.py): " + ", ".join(stale))


if __name__ == "__main__":
    main()

//! The value types that are only built by parsing (so the inside never
//! re-checks): field errors, ids, phone numbers, currencies, zones, languages,
//! and the times and dates that come in and go out.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Field errors: one bad value, named once, at the edge.

/// A value that failed to parse: which field, and why, in words a client can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

// ---------------------------------------------------------------------------
// Ids

/// The id of a reminder. A UUID (v7 for new ones, so they sort by creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReminderId(Uuid);

impl ReminderId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// Parse the textual form; anything that is not a UUID is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Uuid::try_parse(s).ok().map(Self)
    }
}

impl Default for ReminderId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ReminderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

// Parsed value types

/// A phone number in E.164: `+`, a non-zero digit, then 6 to 14 more digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let bad = || {
            FieldError::new(
                "phone_number",
                "must be an E.164 number: '+', country code and number, digits only, like +14155550100",
            )
        };
        let digits = s.strip_prefix('+').ok_or_else(bad)?;
        let ok = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// ISO 4217 codes a debt can be owed in (funds, metals and test codes excluded).
#[rustfmt::skip]
const CURRENCIES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP",
    "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF",
    "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR",
    "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB",
    "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD",
    "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD",
    "UYU", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER",
    "ZAR", "ZMW", "ZWG", "ZWL",
];

/// An ISO 4217 currency code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(&'static str);

impl Currency {
    /// Accepts the code in either case (`usd` is `USD`): unambiguous, and what
    /// several billing systems send.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let upper = s.to_ascii_uppercase();
        // Sorted (a test holds it): every reminder read parses its currency.
        CURRENCIES
            .binary_search(&upper.as_str())
            .ok()
            .map(|i| Self(CURRENCIES[i]))
            .ok_or_else(|| {
                FieldError::new(
                    "currency",
                    "must be an ISO 4217 currency code, like USD or EUR",
                )
            })
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// Digits after the decimal point of the currency's minor unit (ISO 4217):
    /// 2 for most, 0 for JPY and friends, 3 for the dinars, 4 for the unidades.
    pub fn minor_digits(&self) -> u32 {
        match self.0 {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        }
    }

    /// An amount in minor units as people read it: `USD 123.45`, `JPY 500`.
    pub fn format_minor(&self, minor: i64) -> String {
        let digits = self.minor_digits();
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        if digits == 0 {
            return format!("{} {sign}{abs}", self.0);
        }
        let unit = 10u64.pow(digits);
        format!(
            "{} {sign}{}.{:0width$}",
            self.0,
            abs / unit,
            abs % unit,
            width = digits as usize
        )
    }
}

/// An IANA time zone, like `America/New_York`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        s.parse::<chrono_tz::Tz>().map(Self).map_err(|_| {
            FieldError::new(
                "timezone",
                "must be an IANA time zone name, like America/New_York or Europe/Berlin",
            )
        })
    }

    pub fn from_tz(tz: chrono_tz::Tz) -> Self {
        Self(tz)
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.0
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

/// A language tag (BCP 47 shape: `en`, `es-MX`), what the agent speaks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Language(String);

impl Language {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let mut parts = s.split('-');
        let primary = parts.next().unwrap_or("");
        let ok = (2..=3).contains(&primary.len())
            && primary.bytes().all(|b| b.is_ascii_alphabetic())
            && parts.all(|p| {
                (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            && s.len() <= 35;
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(FieldError::new(
                "language",
                "must be a language tag like en or es-MX",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// ---------------------------------------------------------------------------
// ---------------------------------------------------------------------------
// Times

/// Serialise a time as RFC 3339 UTC with a `Z`, sub-seconds only when present.
pub fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

pub fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_time(t, s),
        None => s.serialize_none(),
    }
}

/// A time for a log line: RFC 3339, or `none`.
pub fn describe_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "none".to_owned(), format_time)
}

pub fn format_time(t: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(30);
    push_time(&mut out, t, false);
    out
}

/// Append `t` as RFC 3339 UTC with a `Z`: exactly what chrono's
/// `to_rfc3339_opts(AutoSi, true)` writes, or with `millis`, `(Millis, true)`.
/// Written by hand for the years 0000–9999 because it runs for every time of
/// every JSON body (a notification renders a dozen, on the SQLite writer's
/// thread); chrono's formatter, through `fmt`, cost several times as much.
/// Other years (never a real one here) go through chrono.
pub fn push_time(out: &mut String, t: DateTime<Utc>, millis: bool) {
    use chrono::{Datelike, SecondsFormat, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) {
        let format = if millis {
            SecondsFormat::Millis
        } else {
            SecondsFormat::AutoSi
        };
        out.push_str(&t.to_rfc3339_opts(format, true));
        return;
    }
    // A leap second is carried as nanoseconds ≥ 1e9 on second 59; chrono
    // prints it as second 60 with the rest as the fraction.
    let (second, nanos) = match t.nanosecond() {
        n if n >= 1_000_000_000 => (t.second() + 1, n - 1_000_000_000),
        n => (t.second(), n),
    };
    let mut buf = [0u8; 30];
    let digits = |buf: &mut [u8], mut v: u32| {
        for b in buf.iter_mut().rev() {
            *b = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(&mut buf[0..4], year as u32);
    buf[4] = b'-';
    digits(&mut buf[5..7], t.month());
    buf[7] = b'-';
    digits(&mut buf[8..10], t.day());
    buf[10] = b'T';
    digits(&mut buf[11..13], t.hour());
    buf[13] = b':';
    digits(&mut buf[14..16], t.minute());
    buf[16] = b':';
    digits(&mut buf[17..19], second);
    let mut end = 19;
    let places = if millis {
        3
    } else if nanos == 0 {
        0
    } else if nanos % 1_000_000 == 0 {
        3
    } else if nanos % 1_000 == 0 {
        6
    } else {
        9
    };
    if places > 0 {
        buf[end] = b'.';
        digits(
            &mut buf[end + 1..end + 1 + places],
            nanos / 10u32.pow(9 - places as u32),
        );
        end += 1 + places;
    }
    buf[end] = b'Z';
    // Only ASCII digits and punctuation were written.
    out.push_str(std::str::from_utf8(&buf[..=end]).unwrap_or_default());
}

/// A calendar date, `YYYY-MM-DD`.
pub fn parse_date(s: &str, field: &str) -> Result<NaiveDate, FieldError> {
    if s.len() != 10 {
        return Err(FieldError::new(field, "must be a date like 2026-12-01"));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| FieldError::new(field, "must be a date like 2026-12-01"))
}

/// An RFC 3339 time with an offset, returned in UTC. Its UTC form must lie in
/// years 0000–9999 (`9999-12-31T23:59:59-23:59` is in year 10000 in UTC): the
/// service writes every time back in RFC 3339, which has four-digit years.
pub fn parse_time(s: &str, field: &str) -> Result<DateTime<Utc>, FieldError> {
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            FieldError::new(field, "must be an RFC 3339 time like 2026-11-24T10:15:00Z")
        })?;
    if !is_storable(t) {
        return Err(FieldError::new(
            field,
            "must lie in years 0000 to 9999 once converted to UTC",
        ));
    }
    Ok(t)
}

/// Whether `t` lies in years 0000–9999 (UTC): the times RFC 3339 can write
/// and both databases store. Anything outside is refused where it comes in.
pub fn is_storable(t: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    (0..=9999).contains(&t.year())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_currency_list_is_sorted_for_its_binary_search() {
        assert!(CURRENCIES.windows(2).all(|w| w[0] < w[1]));
        for code in CURRENCIES {
            assert_eq!(Currency::parse(code).unwrap().as_str(), *code);
            assert_eq!(
                Currency::parse(&code.to_lowercase()).unwrap().as_str(),
                *code
            );
        }
        for bad in ["", "US", "USDD", "XXX", "ZZZ", "AAA"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }
}

//! The hand-written RFC 3339 formatter (`domain::format_time`, `push_time`)
//! writes exactly what chrono writes, for any instant: whole seconds,
//! milliseconds, micro- and nanoseconds, leap seconds, and years outside
//! 0000–9999 (which it hands to chrono).

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use duecall::domain::{format_time, push_time};
use proptest::prelude::*;

fn millis_text(t: DateTime<Utc>) -> String {
    let mut out = String::from("prefix:");
    push_time(&mut out, t, true);
    out
}

/// Instants with each kind of fraction: none, ms, µs, ns.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (
        -62_135_596_800i64..253_402_300_799, // 0001-01-01 .. 9999-12-31
        prop_oneof![
            Just(0u32),
            (0u32..1000).prop_map(|ms| ms * 1_000_000),
            (0u32..1_000_000).prop_map(|us| us * 1_000),
            0u32..1_000_000_000,
        ],
    )
        .prop_map(|(secs, nanos)| Utc.timestamp_opt(secs, nanos).unwrap())
}

proptest! {
    #[test]
    fn format_time_is_chronos_auto_si(t in instant()) {
        prop_assert_eq!(format_time(t), t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }

    #[test]
    fn push_time_with_millis_is_chronos_millis(t in instant()) {
        prop_assert_eq!(millis_text(t), format!("prefix:{}", t.to_rfc3339_opts(SecondsFormat::Millis, true)));
    }

    #[test]
    fn years_outside_four_digits_are_chronos(days in prop_oneof![-800_000i64..-719_163, 2_932_897i64..3_000_000]) {
        let t = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(days);
        prop_assert_eq!(format_time(t), t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        prop_assert_eq!(millis_text(t), format!("prefix:{}", t.to_rfc3339_opts(SecondsFormat::Millis, true)));
    }
}

#[test]
fn the_edges_read_as_chrono_writes_them() {
    let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
        .unwrap()
        .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
        .unwrap()
        .and_utc();
    for t in [
        DateTime::<Utc>::UNIX_EPOCH,
        Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
        Utc.timestamp_millis_opt(1_765_000_000_123).unwrap(),
        leap,
    ] {
        assert_eq!(
            format_time(t),
            t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        );
        assert_eq!(
            millis_text(t),
            format!("prefix:{}", t.to_rfc3339_opts(SecondsFormat::Millis, true))
        );
    }
    assert_eq!(
        format_time(Utc.timestamp_millis_opt(1_765_000_000_120).unwrap()),
        "2025-12-06T05:46:40.120Z"
    );
}

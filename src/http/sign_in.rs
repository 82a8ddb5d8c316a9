//! The dashboard sign-in's brute-force guard: GCRA rate limits (`governor`) per
//! client address and overall, checked before a password is, and a log that
//! stays quiet under a flood — the first refusal of an interval is logged with
//! its client address, the rest are counted into one summary line per interval.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::SignInLimits;

/// Addresses remembered by name in one interval's summary; more are counted.
const SUMMARY_ADDRESSES: usize = 1000;
/// Addresses named in a summary line (the busiest).
const SUMMARY_NAMED: usize = 5;

/// What the guard says about one sign-in attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check the password.
    Allowed,
    /// Do not look at the password: too many attempts; try again after this.
    Limited {
        retry_after: Duration,
        /// `address` (this client's limit) or `total` (every client's).
        scope: &'static str,
    },
}

/// Why a sign-in was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    WrongPassword,
    RateLimited,
}

#[derive(Default)]
struct Tally {
    wrong_password: u64,
    rate_limited: u64,
    by_address: HashMap<IpAddr, u64>,
    unnamed: u64,
}

impl Tally {
    fn is_empty(&self) -> bool {
        self.wrong_password == 0 && self.rate_limited == 0
    }
}

pub struct SignInGuard {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    total: DefaultDirectRateLimiter,
    clock: DefaultClock,
    log_interval: Duration,
    /// Refusals since the last line was logged; `None` when that line was the
    /// summary of a quiet interval (the next refusal is logged at once).
    tally: Mutex<Option<Tally>>,
}

/// The key of an address: IPv4 as it is; IPv6 by its /64, which one client
/// usually holds whole (so it cannot rotate through them).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl SignInGuard {
    pub fn new(limits: &SignInLimits) -> Self {
        Self {
            per_address: RateLimiter::keyed(per_minute(limits.per_address_per_minute)),
            total: RateLimiter::direct(per_minute(limits.total_per_minute)),
            clock: DefaultClock::default(),
            log_interval: limits.log_interval,
            tally: Mutex::new(None),
        }
    }

    /// How often [`Self::flush`] should run.
    pub fn log_interval(&self) -> Duration {
        self.log_interval
    }

    /// Take one attempt from `addr`'s allowance, then from everyone's. An
    /// attempt over either limit must not be checked at all: a guesser would
    /// learn from a right password let through.
    pub fn admit(&self, addr: Option<IpAddr>) -> Admission {
        if let Some(ip) = addr {
            if let Err(not_until) = self.per_address.check_key(&client_key(ip)) {
                return Admission::Limited {
                    retry_after: not_until.wait_time_from(self.clock.now()),
                    scope: "address",
                };
            }
        }
        match self.total.check() {
            Ok(()) => Admission::Allowed,
            Err(not_until) => Admission::Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
                scope: "total",
            },
        }
    }

    /// Note a refused sign-in: logged at once (with the client's address) when
    /// it is the first since the last line, otherwise counted for the summary.
    pub fn refused(&self, addr: Option<IpAddr>, why: Refusal) {
        let reason = match why {
            Refusal::WrongPassword => "wrong password",
            Refusal::RateLimited => "too many attempts",
        };
        let client = addr.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        match tally.as_mut() {
            None => {
                tracing::warn!(
                    %client,
                    reason,
                    "dashboard sign-in refused (more refusals in the next {} s are summed up in one line)",
                    self.log_interval.as_secs()
                );
                *tally = Some(Tally::default());
            }
            Some(t) => {
                match why {
                    Refusal::WrongPassword => t.wrong_password += 1,
                    Refusal::RateLimited => t.rate_limited += 1,
                }
                let key = addr.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
                if let Some(n) = t.by_address.get_mut(&key) {
                    *n += 1;
                } else if t.by_address.len() < SUMMARY_ADDRESSES {
                    t.by_address.insert(key, 1);
                } else {
                    t.unnamed += 1;
                }
            }
        }
    }

    /// Log the summary of the refusals counted since the last line (nothing
    /// when there were none), and forget addresses whose allowance is whole again.
    pub fn flush(&self) {
        self.per_address.retain_recent();
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        match tally.take() {
            None => {}
            Some(t) if t.is_empty() => {}
            Some(t) => {
                let mut busiest: Vec<(IpAddr, u64)> = t.by_address.into_iter().collect();
                busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let addresses = busiest.len() as u64 + u64::from(t.unnamed > 0);
                let named = busiest
                    .iter()
                    .take(SUMMARY_NAMED)
                    .map(|(ip, n)| format!("{ip} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ");
                tracing::warn!(
                    wrong_password = t.wrong_password,
                    rate_limited = t.rate_limited,
                    addresses,
                    busiest = %named,
                    interval_secs = self.log_interval.as_secs(),
                    "dashboard sign-ins refused in the last interval"
                );
                // This interval was not quiet: the next refusal is counted too.
                *tally = Some(Tally::default());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(per_address: u32, total: u32) -> SignInGuard {
        SignInGuard::new(&SignInLimits {
            per_address_per_minute: per_address,
            total_per_minute: total,
            log_interval: Duration::from_secs(60),
        })
    }

    #[test]
    fn an_address_gets_its_allowance_and_then_waits() {
        let g = guard(3, 100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(g.admit(Some(a)), Admission::Allowed);
        }
        match g.admit(Some(a)) {
            Admission::Limited { retry_after, scope } => {
                assert_eq!(scope, "address");
                // One attempt comes back every 20 s.
                assert!(retry_after > Duration::from_secs(15), "{retry_after:?}");
                assert!(retry_after <= Duration::from_secs(20), "{retry_after:?}");
            }
            other => panic!("{other:?}"),
        }
        // Another address is not held back by this one.
        assert_eq!(
            g.admit(Some("192.0.2.2".parse().unwrap())),
            Admission::Allowed
        );
    }

    #[test]
    fn every_address_shares_the_total() {
        let g = guard(10, 4);
        for i in 0..4 {
            let ip: IpAddr = format!("192.0.2.{i}").parse().unwrap();
            assert_eq!(g.admit(Some(ip)), Admission::Allowed);
        }
        assert!(matches!(
            g.admit(Some("192.0.2.200".parse().unwrap())),
            Admission::Limited { scope: "total", .. }
        ));
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let g = guard(2, 100);
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2"] {
            assert_eq!(g.admit(Some(host.parse().unwrap())), Admission::Allowed);
        }
        assert!(matches!(
            g.admit(Some("2001:db8:1:2:ffff::3".parse().unwrap())),
            Admission::Limited { .. }
        ));
        assert_eq!(
            g.admit(Some("2001:db8:1:3::1".parse().unwrap())),
            Admission::Allowed
        );
    }
}

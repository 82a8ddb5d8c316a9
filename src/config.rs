//! Every setting, read once from the environment (and an optional `.env`),
//! validated at start. A bad value is one clear error naming the variable.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};
use secrecy::SecretString;

use crate::domain::{describe_span, parse_span, Frequency, Region, TimeZone, ZonePolicy};
pub use crate::policy::CallingWindow;
use crate::webhook::WebhookSecrets;

/// A configuration error: the variable and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The dashboard's password is at least this long.
pub const DASHBOARD_PASSWORD_MIN: usize = 12;

/// `DUECALL_API_KEY` and `CRON_SECRET` are at least this long (`duecall init`
/// writes 35 and 37 characters).
pub const BEARER_SECRET_MIN: usize = 32;

/// How the HTTP server guards its connections (issue 12, item 11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's head must have arrived this long after the connection
    /// started waiting for it (also how long an idle keep-alive connection lives).
    pub header_read_timeout: Duration,
    /// One request, from its head to its answer, at most this long (then 503).
    pub request_timeout: Duration,
    /// A request body that sends nothing for this long is cut off.
    pub idle_timeout: Duration,
    /// Connections open at once, at most (lowered to fit the open-file limit).
    pub max_connections: usize,
    /// On SIGTERM, requests in flight get this long to finish; then they are cut.
    pub shutdown_timeout: Duration,
}

/// The brute-force limits of the dashboard's sign-in (issue 12, item 12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInLimits {
    /// Sign-in attempts per client address per minute (a burst of this many).
    pub per_address_per_minute: u32,
    /// Sign-in attempts per minute from all addresses together.
    pub total_per_minute: u32,
    /// Refused sign-ins are logged as one summary line per this interval.
    pub log_interval: Duration,
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// Who places the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialerKind {
    /// LiveKit rooms and agent dispatch.
    LiveKit,
    /// Nobody is called; reminders are kept.
    None,
    /// Fake agents that report over real signed HTTP: demo and tests only.
    Simulated,
}

#[derive(Debug, Clone)]
pub struct LiveKitConfig {
    pub url: String,
    pub api_key: String,
    pub api_secret: SecretString,
}

/// The whole configuration. Secrets are wrapped so they never print.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub database_max_connections: u32,
    pub bind_addr: SocketAddr,
    pub webhook_secrets: Option<WebhookSecrets>,
    pub api_key: Option<SecretString>,
    pub cron_secret: Option<SecretString>,
    /// The dashboard's sign-in password, kept only as its Argon2id hash;
    /// `None` switches the dashboard off.
    pub dashboard_password: Option<crate::http::session::PasswordHash>,
    /// Mark the dashboard's session cookie `Secure` (and name it `__Host-…`):
    /// by default unless `BIND_ADDR` is a loopback address (plain local HTTP).
    pub dashboard_cookie_secure: bool,
    pub sign_in_limits: SignInLimits,
    pub http: HttpLimits,
    pub dialer: DialerKind,
    pub livekit: Option<LiveKitConfig>,
    pub agent_name: String,
    pub sip_outbound_trunk_id: Option<String>,
    /// `CALL_DISCLOSURES`: the notices the agent gives (SPEC §10).
    pub call_disclosures: crate::dialer::Disclosures,
    pub scheduler_interval: Duration,
    pub dispatch_timeout: Duration,
    /// One dial (room + agent dispatch) may take this long before it fails.
    pub dial_timeout: Duration,
    pub call_timeout: Duration,
    pub max_concurrent_calls: u32,
    pub retry_delay: Duration,
    pub calling_window: CallingWindow,
    pub default_timezone: TimeZone,
    pub default_max_attempts: u32,
    /// `PROMISE_GRACE_DAYS` (SPEC §8): days after a promised date before an
    /// unpaid promise is broken (default 3).
    pub promise_grace_days: u32,
    /// `ZONE_POLICY`.
    pub zone_policy: ZonePolicy,
    /// `CALL_FREQUENCY`.
    pub call_frequency: Frequency,
    /// `REGION_CALL_FREQUENCY`.
    pub region_call_frequency: Vec<(Region, Frequency)>,
    /// `QUIET_AFTER_CONVERSATION`.
    pub quiet_after_conversation: chrono::Duration,
    /// `NOTIFY_URL` and `NOTIFY_SECRET` (SPEC §9): where outcome notifications
    /// go, and what signs them; `None`: none are written or sent.
    pub notify: Option<NotifyConfig>,
}

/// The business system's webhook endpoint (SPEC §9).
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub url: reqwest::Url,
    /// Every secret signs each notification (rotation).
    pub secrets: WebhookSecrets,
}

/// `NOTIFY_URL` needs a valid `NOTIFY_SECRET`, and a secret alone is a
/// half-done setting: both or neither.
fn notify_config(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<NotifyConfig>, ConfigError> {
    match (get("NOTIFY_URL"), get("NOTIFY_SECRET")) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(err(
            "NOTIFY_SECRET",
            "is set but NOTIFY_URL is not: set both to send notifications, or neither",
        )),
        (Some(_), None) => Err(err(
            "NOTIFY_SECRET",
            "is required when NOTIFY_URL is set: one or more whsec_… secrets, comma-separated",
        )),
        (Some(url), Some(secret)) => {
            let url = reqwest::Url::parse(&url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| err("NOTIFY_URL", "must be an http:// or https:// URL"))?;
            let secrets = WebhookSecrets::parse(&secret).map_err(|m| err("NOTIFY_SECRET", m))?;
            Ok(Some(NotifyConfig { url, secrets }))
        }
    }
}

impl Config {
    /// Read the process environment (after loading `.env` if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read configuration through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let database_url = get("DATABASE_URL").unwrap_or_else(|| "sqlite://duecall.db".to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(err(
                "DATABASE_URL",
                "must start with sqlite:// (a file) or postgres:// (a server)",
            ));
        }
        let database_max_connections =
            parse_num(&get, "DATABASE_MAX_CONNECTIONS", 10, 1, 1000)? as u32;

        let bind_addr = get("BIND_ADDR")
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
            .parse()
            .map_err(|_| err("BIND_ADDR", "must be host:port, like 127.0.0.1:8080"))?;

        let webhook_secrets = get("WEBHOOK_SECRET")
            .map(|s| WebhookSecrets::parse(&s).map_err(|m| err("WEBHOOK_SECRET", m)))
            .transpose()?;
        let notify = notify_config(&get)?;
        let api_key = bearer_secret(&get, "DUECALL_API_KEY")?;
        let cron_secret = bearer_secret(&get, "CRON_SECRET")?;
        let dashboard_password = match get("DASHBOARD_PASSWORD") {
            None => None,
            Some(p) if p.chars().count() < DASHBOARD_PASSWORD_MIN => {
                return Err(err(
                    "DASHBOARD_PASSWORD",
                    format!(
                        "must be at least {DASHBOARD_PASSWORD_MIN} characters (the dashboard shows phone numbers and amounts)"
                    ),
                ))
            }
            Some(p) => Some(crate::http::session::PasswordHash::of(&SecretString::from(p))),
        };
        let dashboard_cookie_secure = match get("DASHBOARD_COOKIE_SECURE").as_deref() {
            // Plain HTTP is only safe enough on the machine itself.
            None => !bind_addr_is_loopback(&bind_addr),
            Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(err(
                    "DASHBOARD_COOKIE_SECURE",
                    format!("must be true or false, got {other:?}"),
                ))
            }
        };
        let sign_in_limits = SignInLimits {
            per_address_per_minute: parse_num(
                &get,
                "DASHBOARD_SIGN_IN_LIMIT_PER_ADDRESS",
                10,
                1,
                100_000,
            )? as u32,
            total_per_minute: parse_num(&get, "DASHBOARD_SIGN_IN_LIMIT_TOTAL", 60, 1, 1_000_000)?
                as u32,
            log_interval: Duration::from_secs(parse_num(
                &get,
                "DASHBOARD_SIGN_IN_LOG_SECS",
                60,
                1,
                86_400,
            )?),
        };
        let http = HttpLimits {
            header_read_timeout: Duration::from_secs(parse_num(
                &get,
                "HTTP_HEADER_READ_TIMEOUT_SECS",
                10,
                1,
                3600,
            )?),
            request_timeout: Duration::from_secs(parse_num(
                &get,
                "HTTP_REQUEST_TIMEOUT_SECS",
                60,
                1,
                86_400,
            )?),
            idle_timeout: Duration::from_secs(parse_num(
                &get,
                "HTTP_IDLE_TIMEOUT_SECS",
                30,
                1,
                3600,
            )?),
            max_connections: parse_num(&get, "HTTP_MAX_CONNECTIONS", 1024, 1, 1_000_000)? as usize,
            shutdown_timeout: Duration::from_secs(parse_num(
                &get,
                "SHUTDOWN_TIMEOUT_SECS",
                30,
                1,
                3600,
            )?),
        };

        let livekit = match get("LIVEKIT_URL") {
            None => None,
            Some(url) => {
                if !(url.starts_with("http://")
                    || url.starts_with("https://")
                    || url.starts_with("ws://")
                    || url.starts_with("wss://"))
                {
                    return Err(err("LIVEKIT_URL", "must be an http(s):// or ws(s):// URL"));
                }
                let api_key = get("LIVEKIT_API_KEY")
                    .ok_or_else(|| err("LIVEKIT_API_KEY", "is required when LIVEKIT_URL is set"))?;
                let api_secret = get("LIVEKIT_API_SECRET").ok_or_else(|| {
                    err("LIVEKIT_API_SECRET", "is required when LIVEKIT_URL is set")
                })?;
                Some(LiveKitConfig {
                    url,
                    api_key,
                    api_secret: SecretString::from(api_secret),
                })
            }
        };

        let dialer = match get("DIALER").as_deref() {
            None if livekit.is_some() => DialerKind::LiveKit,
            None => DialerKind::None,
            Some("livekit") => {
                if livekit.is_none() {
                    return Err(err("DIALER", "is livekit, but LIVEKIT_URL is not set"));
                }
                DialerKind::LiveKit
            }
            Some("none") => DialerKind::None,
            Some("simulated") => {
                if webhook_secrets.is_none() {
                    return Err(err(
                        "DIALER",
                        "is simulated, which needs WEBHOOK_SECRET (its agents sign their reports)",
                    ));
                }
                DialerKind::Simulated
            }
            Some(_) => return Err(err("DIALER", "must be livekit, none or simulated")),
        };

        let agent_name = get("AGENT_NAME").unwrap_or_else(|| "payment-reminder".to_owned());
        let sip_outbound_trunk_id = get("SIP_OUTBOUND_TRUNK_ID");
        let call_disclosures = match get("CALL_DISCLOSURES") {
            None => crate::dialer::Disclosures::default(),
            Some(v) => {
                crate::dialer::Disclosures::parse(&v).map_err(|m| err("CALL_DISCLOSURES", m))?
            }
        };

        let scheduler_interval =
            Duration::from_secs(parse_num(&get, "SCHEDULER_INTERVAL_SECS", 15, 0, 86_400)?);
        let dispatch_timeout =
            Duration::from_secs(parse_num(&get, "DISPATCH_TIMEOUT_SECS", 600, 1, 86_400)?);
        let dial_timeout = Duration::from_secs(parse_num(&get, "DIAL_TIMEOUT_SECS", 30, 1, 600)?);
        let call_timeout =
            Duration::from_secs(parse_num(&get, "CALL_TIMEOUT_SECS", 1800, 1, 86_400)?);
        let max_concurrent_calls = parse_num(&get, "MAX_CONCURRENT_CALLS", 10, 1, 100_000)? as u32;
        let retry_delay =
            Duration::from_secs(parse_num(&get, "RETRY_DELAY_SECS", 7200, 1, 30 * 86_400)?);

        let (start, end, to_midnight) =
            parse_window(get("CALLING_WINDOW").as_deref().unwrap_or("08:00-21:00")).ok_or_else(
                || {
                    err(
                        "CALLING_WINDOW",
                        "must be HH:MM-HH:MM with the start before the end (the end may be 24:00), like 08:00-21:00",
                    )
                },
            )?;
        let blackout = match get("CALLING_BLACKOUT_DATES") {
            None => BTreeSet::new(),
            Some(list) => list
                .split(',')
                .map(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok())
                .collect::<Option<BTreeSet<_>>>()
                .ok_or_else(|| {
                    err(
                        "CALLING_BLACKOUT_DATES",
                        "must be dates like 2026-12-25,2027-01-01 (YYYY-MM-DD, comma separated)",
                    )
                })?,
        };
        let zone_policy = match get("ZONE_POLICY") {
            None => ZonePolicy::All,
            Some(v) => v
                .parse()
                .map_err(|()| err("ZONE_POLICY", "must be all or given"))?,
        };
        let call_frequency = match get("CALL_FREQUENCY") {
            None => Frequency::parse("7/7d").expect("the default parses"),
            Some(v) => Frequency::parse(&v).ok_or_else(|| {
                err(
                    "CALL_FREQUENCY",
                    "must be attempts/period, like 7/7d or 3/24h (at least 1 attempt)",
                )
            })?,
        };
        let region_call_frequency = parse_region_caps(
            get("REGION_CALL_FREQUENCY")
                .as_deref()
                .unwrap_or("US-MA=2/7d"),
        )
        .ok_or_else(|| {
            err(
                "REGION_CALL_FREQUENCY",
                "must be REGION=attempts/period pairs, comma separated, like US-MA=2/7d (or none)",
            )
        })?;
        let quiet_after_conversation = match get("QUIET_AFTER_CONVERSATION") {
            None => chrono::Duration::days(7),
            Some(v) => parse_span(&v).ok_or_else(|| {
                err(
                    "QUIET_AFTER_CONVERSATION",
                    "must be a span like 7d or 36h, or 0 for none",
                )
            })?,
        };
        let days =
            parse_days(get("CALLING_DAYS").as_deref().unwrap_or("Mon-Sat")).ok_or_else(|| {
                err(
                "CALLING_DAYS",
                "must be days like Mon-Sat, Mon-Fri or Mon,Wed,Fri (Mon Tue Wed Thu Fri Sat Sun)",
            )
            })?;

        let default_timezone = TimeZone::parse(
            get("DEFAULT_TIMEZONE")
                .as_deref()
                .unwrap_or("America/New_York"),
        )
        .map_err(|_| {
            err(
                "DEFAULT_TIMEZONE",
                "must be an IANA time zone, like America/New_York",
            )
        })?;

        let default_max_attempts = parse_num(
            &get,
            "DEFAULT_MAX_ATTEMPTS",
            3,
            1,
            u64::from(crate::domain::MAX_ATTEMPTS_LIMIT),
        )? as u32;

        let promise_grace_days = parse_num(
            &get,
            "PROMISE_GRACE_DAYS",
            u64::from(crate::domain::DEFAULT_PROMISE_GRACE_DAYS),
            0,
            u64::from(crate::domain::MAX_PROMISE_GRACE_DAYS),
        )? as u32;

        Ok(Self {
            notify,
            database_url,
            database_max_connections,
            bind_addr,
            webhook_secrets,
            api_key,
            cron_secret,
            dashboard_password,
            dashboard_cookie_secure,
            sign_in_limits,
            http,
            dialer,
            livekit,
            agent_name,
            sip_outbound_trunk_id,
            call_disclosures,
            scheduler_interval,
            dispatch_timeout,
            dial_timeout,
            call_timeout,
            max_concurrent_calls,
            retry_delay,
            calling_window: CallingWindow {
                start,
                end,
                to_midnight,
                days,
                blackout,
            },
            default_timezone,
            default_max_attempts,
            promise_grace_days,
            zone_policy,
            call_frequency,
            region_call_frequency,
            quiet_after_conversation,
        })
    }

    /// What `serve` needs beyond parsing: the secrets its routes check.
    pub fn check_serve(&self) -> Result<(), ConfigError> {
        if self.webhook_secrets.is_none() {
            return Err(err(
                "WEBHOOK_SECRET",
                "is required to accept call-status webhooks (whsec_ followed by base64; see .env.example)",
            ));
        }
        if self.api_key.is_none() {
            return Err(err(
                "DUECALL_API_KEY",
                "is required to serve the reminders API (any long random string)",
            ));
        }
        Ok(())
    }
}

fn bind_addr_is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// A bearer secret: unset, or at least [`BEARER_SECRET_MIN`] characters (a short
/// one could be guessed; the value itself is never printed).
fn bearer_secret(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Option<SecretString>, ConfigError> {
    match get(var) {
        None => Ok(None),
        Some(v) if v.chars().count() < BEARER_SECRET_MIN => Err(err(
            var,
            format!(
                "must be at least {BEARER_SECRET_MIN} characters, got {} (`duecall init` writes a random one)",
                v.chars().count()
            ),
        )),
        Some(v) => Ok(Some(SecretString::from(v))),
    }
}

fn parse_num(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                err(
                    var,
                    format!("must be a whole number from {min} to {max}, got {v:?}"),
                )
            }),
    }
}

/// `HH:MM-HH:MM`, the end after the start; `24:00` as the end runs the
/// window to midnight. The third value says so.
fn parse_window(s: &str) -> Option<(NaiveTime, NaiveTime, bool)> {
    let (a, b) = s.split_once('-')?;
    let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?;
    if b.trim() == "24:00" {
        return Some((start, NaiveTime::MIN, true));
    }
    let end = NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?;
    (start < end).then_some((start, end, false))
}

/// `US-MA=2/7d,CA-QC=3/7d`; `none` (or nothing) for no regional caps.
fn parse_region_caps(s: &str) -> Option<Vec<(Region, Frequency)>> {
    let s = s.trim();
    if s.is_empty() || s.eq_ignore_ascii_case("none") {
        return Some(Vec::new());
    }
    s.split(',')
        .map(|pair| {
            let (region, cap) = pair.split_once('=')?;
            Some((Region::parse(region).ok()?, Frequency::parse(cap)?))
        })
        .collect()
}

/// One rule set looser than the floor the law sets (SPEC §7): what, and why
/// that is the floor. Warned about at every start and shown on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LooserThanLaw {
    pub variable: &'static str,
    pub value: String,
    pub floor: &'static str,
    pub source: &'static str,
}

impl Config {
    /// Every limit set looser than its default, the floor for a third-party
    /// debt collector in the United States.
    pub fn looser_than_law(&self) -> Vec<LooserThanLaw> {
        let mut out = Vec::new();
        let w = &self.calling_window;
        let eight = NaiveTime::from_hms_opt(8, 0, 0).expect("08:00");
        let nine_pm = NaiveTime::from_hms_opt(21, 0, 0).expect("21:00");
        if w.start < eight || w.to_midnight || w.end > nine_pm {
            out.push(LooserThanLaw {
                variable: "CALLING_WINDOW",
                value: format!(
                    "{}-{}",
                    w.start.format("%H:%M"),
                    if w.to_midnight {
                        "24:00".to_owned()
                    } else {
                        w.end.format("%H:%M").to_string()
                    }
                ),
                floor: "08:00-21:00",
                source: "12 CFR 1006.6(b)(1)(i) (Regulation F): no call before 8 a.m. or after 9 p.m. local time",
            });
        }
        let default_cap = Frequency::parse("7/7d").expect("the default parses");
        if default_cap.stricter_than(&self.call_frequency) {
            out.push(LooserThanLaw {
                variable: "CALL_FREQUENCY",
                value: self.call_frequency.to_string(),
                floor: "7/7d",
                source: "12 CFR 1006.14(b)(2)(i) (Regulation F): at most seven calls about a debt in seven days",
            });
        }
        let ma = Region::parse("US-MA").expect("a region");
        let ma_floor = Frequency::parse("2/7d").expect("the default parses");
        let ma_cap = self
            .region_call_frequency
            .iter()
            .filter(|(r, _)| *r == ma)
            .map(|(_, f)| *f)
            .chain([self.call_frequency])
            .reduce(|a, b| if a.stricter_than(&b) { a } else { b });
        if ma_cap.is_some_and(|cap| ma_floor.stricter_than(&cap)) {
            out.push(LooserThanLaw {
                variable: "REGION_CALL_FREQUENCY",
                value: ma_cap.map(|c| format!("US-MA={c}")).unwrap_or_default(),
                floor: "US-MA=2/7d",
                source: "940 CMR 7.04(1)(f) (Massachusetts): at most two calls about a debt in seven days",
            });
        }
        if self.zone_policy == ZonePolicy::Given {
            out.push(LooserThanLaw {
                variable: "ZONE_POLICY",
                value: "given".to_owned(),
                floor: "all",
                source: "12 CFR 1006.6(b)(1)(i) (Regulation F): where the consumer's location is unknown or conflicting, only times convenient in every zone they may be in",
            });
        }
        // Sunday (6; Monday is 0) is not in the default Mon-Sat.
        if self.calling_window.days.contains(&6) {
            out.push(LooserThanLaw {
                variable: "CALLING_DAYS",
                value: days_label(&self.calling_window.days),
                floor: "Mon-Sat",
                source: "duecall's default (Regulation F names no days; several states restrict Sunday collection calls)",
            });
        }
        if !self.call_disclosures.collector {
            out.push(LooserThanLaw {
                variable: "CALL_DISCLOSURES",
                value: self.call_disclosures.to_string(),
                floor: "recording,collector",
                source: "15 U.S.C. 1692e(11) (FDCPA): a debt collector says in its first communication that it is attempting to collect a debt",
            });
        }
        if !self.call_disclosures.recording {
            out.push(LooserThanLaw {
                variable: "CALL_DISCLOSURES",
                value: self.call_disclosures.to_string(),
                floor: "recording,collector",
                source: "all-party-consent states (e.g. Cal. Penal Code 632): every party is told a call is recorded",
            });
        }
        if self.quiet_after_conversation < chrono::Duration::days(7) {
            out.push(LooserThanLaw {
                variable: "QUIET_AFTER_CONVERSATION",
                value: describe_span(self.quiet_after_conversation),
                floor: "7d",
                source: "12 CFR 1006.14(b)(2)(ii) (Regulation F): no call for seven days after a telephone conversation about the debt",
            });
        }
        out
    }

    /// Logs one WARN line per limit set looser than the law (SPEC §7): at
    /// every start of `serve` and `tick`.
    pub fn warn_looser_than_law(&self) {
        for l in self.looser_than_law() {
            tracing::warn!(
                variable = l.variable,
                value = %l.value,
                floor = l.floor,
                source = l.source,
                "{}={} is looser than the law's floor {}: {}",
                l.variable,
                l.value,
                l.floor,
                l.source
            );
        }
    }

    /// The rules every claim is held to (SPEC §7).
    pub fn calling_rules(&self) -> crate::domain::Rules {
        crate::domain::Rules {
            window: self.calling_window.clone(),
            frequency: self.call_frequency,
            region_frequency: self.region_call_frequency.clone(),
            quiet_after_conversation: self.quiet_after_conversation,
        }
    }
}

fn parse_day(s: &str) -> Option<u8> {
    let d = match s.trim().to_ascii_lowercase().as_str() {
        "mon" => 0,
        "tue" => 1,
        "wed" => 2,
        "thu" => 3,
        "fri" => 4,
        "sat" => 5,
        "sun" => 6,
        _ => return None,
    };
    Some(d)
}

/// `Mon-Sat`, `Mon,Wed,Fri`, `Mon-Wed,Sat`; a range wraps (`Sat-Mon`).
fn parse_days(s: &str) -> Option<BTreeSet<u8>> {
    let mut days = BTreeSet::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_day(a)?, parse_day(b)?);
                let mut d = a;
                loop {
                    days.insert(d);
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => {
                days.insert(parse_day(part)?);
            }
        }
    }
    (!days.is_empty()).then_some(days)
}

/// `0,1,6` → `Mon,Tue,Sun` (the days as set, Monday first).
fn days_label(days: &BTreeSet<u8>) -> String {
    const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    days.iter()
        .filter_map(|d| NAMES.get(usize::from(*d)).copied())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.database_url, "sqlite://duecall.db");
        assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.dialer, DialerKind::None);
        assert_eq!(c.agent_name, "payment-reminder");
        assert_eq!(c.scheduler_interval, Duration::from_secs(15));
        assert_eq!(c.dispatch_timeout, Duration::from_secs(600));
        assert_eq!(c.call_timeout, Duration::from_secs(1800));
        assert_eq!(c.max_concurrent_calls, 10);
        assert_eq!(c.retry_delay, Duration::from_secs(7200));
        assert_eq!(
            c.calling_window.start,
            NaiveTime::from_hms_opt(8, 0, 0).unwrap()
        );
        assert_eq!(
            c.calling_window.end,
            NaiveTime::from_hms_opt(21, 0, 0).unwrap()
        );
        assert_eq!(c.calling_window.days, (0..6).collect());
        assert_eq!(c.default_timezone.name(), "America/New_York");
        assert!(c.check_serve().is_err(), "serve needs its secrets");
    }

    #[test]
    fn notifications_need_both_a_url_and_a_valid_secret() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert!(cfg(&[]).unwrap().notify.is_none(), "off by default");
        let c = cfg(&[
            ("NOTIFY_URL", "https://ar.example.com/hooks/duecall"),
            ("NOTIFY_SECRET", &format!("{secret},{secret}")),
        ])
        .unwrap();
        let n = c.notify.expect("on");
        assert_eq!(n.url.as_str(), "https://ar.example.com/hooks/duecall");
        assert_eq!(n.secrets.keys().count(), 2, "every secret signs");
        for (vars, var, says) in [
            (
                vec![("NOTIFY_URL", "https://x.example")],
                "NOTIFY_SECRET",
                "is required",
            ),
            (
                vec![("NOTIFY_SECRET", secret)],
                "NOTIFY_SECRET",
                "NOTIFY_URL is not",
            ),
            (
                vec![
                    ("NOTIFY_URL", "https://x.example"),
                    ("NOTIFY_SECRET", "hunter2"),
                ],
                "NOTIFY_SECRET",
                "whsec_",
            ),
            (
                vec![("NOTIFY_URL", "ftp://x.example"), ("NOTIFY_SECRET", secret)],
                "NOTIFY_URL",
                "http",
            ),
            (
                vec![("NOTIFY_URL", "not a url"), ("NOTIFY_SECRET", secret)],
                "NOTIFY_URL",
                "http",
            ),
        ] {
            let e = cfg(&vars).expect_err(var);
            assert_eq!(e.var, var, "{vars:?}");
            assert!(e.message.contains(says), "{vars:?}: {e}");
        }
    }

    #[test]
    fn livekit_url_turns_the_livekit_dialer_on() {
        let c = cfg(&[
            ("LIVEKIT_URL", "https://example.livekit.cloud"),
            ("LIVEKIT_API_KEY", "k"),
            ("LIVEKIT_API_SECRET", "s"),
        ])
        .unwrap();
        assert_eq!(c.dialer, DialerKind::LiveKit);
        let e = cfg(&[("LIVEKIT_URL", "https://x")]).unwrap_err();
        assert_eq!(e.var, "LIVEKIT_API_KEY");
        let e = cfg(&[("DIALER", "livekit")]).unwrap_err();
        assert_eq!(e.var, "DIALER");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("DATABASE_URL", "mysql://x"),
            ("BIND_ADDR", "localhost"),
            ("WEBHOOK_SECRET", "not-a-secret"),
            ("DIALER", "carrier-pigeon"),
            ("SCHEDULER_INTERVAL_SECS", "-1"),
            ("DISPATCH_TIMEOUT_SECS", "0"),
            ("MAX_CONCURRENT_CALLS", "ten"),
            ("CALLING_WINDOW", "21:00-08:00"),
            ("CALLING_WINDOW", "8-21"),
            ("CALLING_DAYS", "Weekdays"),
            ("DEFAULT_TIMEZONE", "EST5EDT-ish"),
            ("DASHBOARD_PASSWORD", "short"),
            ("DASHBOARD_COOKIE_SECURE", "yes please"),
            ("DASHBOARD_SIGN_IN_LIMIT_PER_ADDRESS", "0"),
            ("DASHBOARD_SIGN_IN_LIMIT_TOTAL", "many"),
            ("DASHBOARD_SIGN_IN_LOG_SECS", "0"),
            ("HTTP_HEADER_READ_TIMEOUT_SECS", "0"),
            ("HTTP_REQUEST_TIMEOUT_SECS", "1.5"),
            ("HTTP_IDLE_TIMEOUT_SECS", "-3"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("SHUTDOWN_TIMEOUT_SECS", "forever"),
        ] {
            let e = cfg(&[(var, value)]).expect_err(var);
            assert_eq!(e.var, var, "{value}");
        }
    }

    #[test]
    fn secrets_of_any_length_are_accepted_no_more() {
        // Issue 12, item 15: at least 32 characters, as `duecall init` writes.
        for var in ["DUECALL_API_KEY", "CRON_SECRET"] {
            for short in ["x", "0123456789abcdef0123456789abcde"] {
                let e = cfg(&[(var, short)]).expect_err(var);
                assert_eq!(e.var, var);
                assert!(e.message.contains("at least 32 characters"), "{e}");
                assert!(
                    !e.to_string().contains(short),
                    "the value is never printed: {e}"
                );
            }
            let ok = "0123456789abcdef0123456789abcdef";
            assert!(cfg(&[(var, ok)]).is_ok(), "{var}");
        }
        let c = cfg(&[("DUECALL_API_KEY", "k".repeat(32).as_str())]).unwrap();
        assert!(c.api_key.is_some());
    }

    #[test]
    fn the_session_cookie_is_secure_unless_served_on_loopback() {
        assert!(!cfg(&[]).unwrap().dashboard_cookie_secure);
        assert!(
            !cfg(&[("BIND_ADDR", "[::1]:8080")])
                .unwrap()
                .dashboard_cookie_secure
        );
        for addr in ["0.0.0.0:8080", "10.0.0.5:8080", "[::]:8080"] {
            assert!(
                cfg(&[("BIND_ADDR", addr)]).unwrap().dashboard_cookie_secure,
                "{addr}"
            );
        }
        let c = cfg(&[
            ("BIND_ADDR", "0.0.0.0:8080"),
            ("DASHBOARD_COOKIE_SECURE", "false"),
        ]);
        assert!(!c.unwrap().dashboard_cookie_secure);
    }

    #[test]
    fn connection_and_sign_in_limits_have_defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(
            c.http,
            HttpLimits {
                header_read_timeout: Duration::from_secs(10),
                request_timeout: Duration::from_secs(60),
                idle_timeout: Duration::from_secs(30),
                max_connections: 1024,
                shutdown_timeout: Duration::from_secs(30),
            }
        );
        assert_eq!(
            c.sign_in_limits,
            SignInLimits {
                per_address_per_minute: 10,
                total_per_minute: 60,
                log_interval: Duration::from_secs(60),
            }
        );
    }

    #[test]
    fn calling_days_ranges_and_lists() {
        let days = |s| parse_days(s).unwrap().into_iter().collect::<Vec<_>>();
        assert_eq!(days("Mon-Fri"), vec![0, 1, 2, 3, 4]);
        assert_eq!(days("mon,wed,FRI"), vec![0, 2, 4]);
        assert_eq!(days("Sat-Mon"), vec![0, 5, 6]);
        assert_eq!(days("Mon-Tue,Sun"), vec![0, 1, 6]);
    }

    #[test]
    fn secrets_do_not_print() {
        let c = cfg(&[
            ("DUECALL_API_KEY", "super-secret-key-123-0123456789abcdef"),
            ("DASHBOARD_PASSWORD", "dashboard-pass-456"),
        ])
        .unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("super-secret-key-123"));
        assert!(
            !printed.contains("dashboard-pass"),
            "the password is kept only as a hash"
        );
        assert!(!printed.contains("dashboard-pass-456"));
    }

    #[test]
    fn the_dashboard_is_off_without_a_password() {
        let c = cfg(&[]).unwrap();
        assert!(c.dashboard_password.is_none());
        assert!(!c.dashboard_cookie_secure);
        let c = cfg(&[
            ("DASHBOARD_PASSWORD", "twelve-chars"),
            ("DASHBOARD_COOKIE_SECURE", "true"),
        ])
        .unwrap();
        assert!(c.dashboard_password.is_some());
        assert!(c.dashboard_cookie_secure);
    }

    fn looser(vars: &[(&str, &str)]) -> Vec<&'static str> {
        cfg(vars)
            .unwrap()
            .looser_than_law()
            .iter()
            .map(|l| l.variable)
            .collect()
    }

    #[test]
    fn the_defaults_are_not_looser_than_the_law_and_stricter_settings_are_not_either() {
        assert!(looser(&[]).is_empty());
        assert!(looser(&[
            ("CALLING_WINDOW", "09:00-20:00"),
            ("CALLING_DAYS", "Mon-Fri"),
            ("CALL_FREQUENCY", "3/7d"),
            ("REGION_CALL_FREQUENCY", "US-MA=1/7d,US-NY=2/7d"),
            ("QUIET_AFTER_CONVERSATION", "14d"),
            ("ZONE_POLICY", "all"),
        ])
        .is_empty());
        // Exactly the floor is not looser.
        assert!(looser(&[
            ("CALLING_WINDOW", "08:00-21:00"),
            ("CALL_FREQUENCY", "7/7d"),
            ("QUIET_AFTER_CONVERSATION", "7d")
        ])
        .is_empty());
    }

    #[test]
    fn every_looser_limit_is_named_with_its_floor_and_source() {
        assert_eq!(
            looser(&[("CALLING_WINDOW", "07:30-21:00")]),
            ["CALLING_WINDOW"]
        );
        assert_eq!(
            looser(&[("CALLING_WINDOW", "08:00-24:00")]),
            ["CALLING_WINDOW"]
        );
        assert_eq!(
            looser(&[("CALLING_WINDOW", "08:00-21:01")]),
            ["CALLING_WINDOW"]
        );
        assert_eq!(looser(&[("CALL_FREQUENCY", "8/7d")]), ["CALL_FREQUENCY"]);
        // Seven in six days is more calls than seven in seven.
        assert_eq!(looser(&[("CALL_FREQUENCY", "7/6d")]), ["CALL_FREQUENCY"]);
        assert_eq!(
            looser(&[("REGION_CALL_FREQUENCY", "US-MA=3/7d")]),
            ["REGION_CALL_FREQUENCY"]
        );
        // With no Massachusetts cap, the general cap applies there: 7/7d > 2/7d.
        assert_eq!(
            looser(&[("REGION_CALL_FREQUENCY", "none")]),
            ["REGION_CALL_FREQUENCY"]
        );
        // A general cap at the Massachusetts floor covers Massachusetts too.
        assert!(looser(&[
            ("REGION_CALL_FREQUENCY", "none"),
            ("CALL_FREQUENCY", "2/7d")
        ])
        .is_empty());
        assert_eq!(
            looser(&[("QUIET_AFTER_CONVERSATION", "6d")]),
            ["QUIET_AFTER_CONVERSATION"]
        );
        assert_eq!(looser(&[("ZONE_POLICY", "given")]), ["ZONE_POLICY"]);
        assert_eq!(looser(&[("CALLING_DAYS", "Mon-Sun")]), ["CALLING_DAYS"]);

        let all = cfg(&[
            ("CALLING_WINDOW", "00:00-24:00"),
            ("CALLING_DAYS", "Mon-Sun"),
            ("CALL_FREQUENCY", "100/1d"),
            ("QUIET_AFTER_CONVERSATION", "0"),
            ("ZONE_POLICY", "given"),
        ])
        .unwrap()
        .looser_than_law();
        let names: Vec<_> = all.iter().map(|l| l.variable).collect();
        assert_eq!(
            names,
            [
                "CALLING_WINDOW",
                "CALL_FREQUENCY",
                "ZONE_POLICY",
                "CALLING_DAYS",
                "QUIET_AFTER_CONVERSATION"
            ]
        );
        let window = &all[0];
        assert_eq!(window.value, "00:00-24:00");
        assert_eq!(window.floor, "08:00-21:00");
        assert!(window.source.starts_with("12 CFR 1006.6(b)(1)(i)"));
        assert_eq!(all[1].value, "100/1d");
        assert!(all[1].source.starts_with("12 CFR 1006.14(b)(2)(i)"));
        // The Massachusetts default still holds there: the strictest cap wins.
        assert_eq!(all[3].value, "Mon,Tue,Wed,Thu,Fri,Sat,Sun");
        assert!(all[4].source.starts_with("12 CFR 1006.14(b)(2)(ii)"));
        let ma = cfg(&[("REGION_CALL_FREQUENCY", "US-MA=5/7d")])
            .unwrap()
            .looser_than_law();
        assert_eq!(ma[0].value, "US-MA=5/7d");
        assert!(ma[0].source.starts_with("940 CMR 7.04(1)(f)"));
    }

    #[test]
    fn call_disclosures_default_to_both_and_dropping_one_is_looser_than_the_law() {
        let d = |v: &str| cfg(&[("CALL_DISCLOSURES", v)]).map(|c| c.call_disclosures);
        assert_eq!(
            cfg(&[]).unwrap().call_disclosures.words(),
            ["recording", "collector"]
        );
        assert_eq!(
            d(" Collector , recording ").unwrap().words(),
            ["recording", "collector"]
        );
        assert_eq!(d("recording").unwrap().words(), ["recording"]);
        assert!(d("none").unwrap().words().is_empty());
        assert_eq!(d("NONE").unwrap().to_string(), "none");
        // Empty is unset, as for every variable: both.
        assert_eq!(d("  ").unwrap().words(), ["recording", "collector"]);
        for bad in [
            "recording,",
            "recordings",
            "recording,recording",
            "none,collector",
        ] {
            let e = d(bad).expect_err(bad);
            assert_eq!(e.var, "CALL_DISCLOSURES", "{bad}");
        }

        assert!(looser(&[("CALL_DISCLOSURES", "collector,recording")]).is_empty());
        let only_recording = cfg(&[("CALL_DISCLOSURES", "recording")])
            .unwrap()
            .looser_than_law();
        assert_eq!(only_recording.len(), 1);
        assert_eq!(only_recording[0].variable, "CALL_DISCLOSURES");
        assert_eq!(only_recording[0].value, "recording");
        assert!(only_recording[0].source.starts_with("15 U.S.C. 1692e(11)"));
        let only_collector = cfg(&[("CALL_DISCLOSURES", "collector")])
            .unwrap()
            .looser_than_law();
        assert_eq!(only_collector.len(), 1);
        assert!(only_collector[0].source.contains("Cal. Penal Code 632"));
        assert_eq!(looser(&[("CALL_DISCLOSURES", "none")]).len(), 2);
    }
}

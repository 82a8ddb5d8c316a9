//! `GET /glance?period=7|30|90` — the dashboard at a glance: the figures a
//! collections manager reads first and two charts, for the last N days in
//! the dashboard's zone (`DEFAULT_TIMEZONE`), today included. Definitions:
//! docs/DECISIONS.md ("The dashboard at a glance"); the page says them too.
//!
//! One store read ([`crate::store::Store::glance`]) of the counts the
//! database keeps per 15-minute slot, summed per local day; the rates and
//! charts are made here.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;

use super::dashboard::{html, message, storage_failed, time, Operator, Who, REFRESH_SECS};
use super::AppState;
use crate::config::LooserThanLaw;
use crate::domain::Currency;

pub mod figures;
pub mod svg;

use figures::{parse_period, period_days, rate, Amount, Bucket, Figures, PERIODS};

struct PeriodLink {
    days: u32,
    href: String,
    current: bool,
}

struct LegendItem {
    key: &'static str,
    label: &'static str,
    fill: &'static str,
    stroke: &'static str,
}

impl From<svg::Swatch> for LegendItem {
    fn from(s: svg::Swatch) -> Self {
        Self {
            key: s.key,
            label: s.label,
            fill: s.fill,
            stroke: s.stroke,
        }
    }
}

#[derive(Template)]
#[template(path = "glance.html")]
struct GlancePage {
    who: Who,
    refresh_secs: u32,
    now: String,
    looser: Vec<LooserThanLaw>,
    days: u32,
    zone: &'static str,
    first_day: String,
    last_day: String,
    periods: Vec<PeriodLink>,
    attempts: u64,
    right_party: u64,
    contact_rate: String,
    promises: u64,
    promise_rate: String,
    promised: Vec<AmountView>,
    kept: u64,
    broken: u64,
    open: u64,
    paid_after_call: Vec<AmountView>,
    paid_count: u64,
    opt_outs: u64,
    attempts_svg: String,
    promises_svg: String,
    attempts_legend: Vec<LegendItem>,
    promises_legend: Vec<LegendItem>,
    day_count: usize,
    week_count: usize,
}

fn percent(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

struct AmountView {
    currency: String,
    minor: i64,
    text: String,
}

/// `USD 12.50` for each currency, the largest first; a currency the service
/// does not know (it cannot be stored) is shown in minor units.
fn amounts(list: &[Amount]) -> Vec<AmountView> {
    list.iter()
        .map(|a| AmountView {
            currency: a.currency.clone(),
            minor: a.minor,
            text: match Currency::parse(&a.currency) {
                Ok(c) => c.format_minor(a.minor),
                Err(_) => format!("{} {} (minor units)", a.minor, a.currency),
            },
        })
        .collect()
}

/// The dashboard at a glance.
#[utoipa::path(get, path = "/glance", tag = "dashboard",
    security(("session" = []), ()),
    params(("period" = Option<u32>, Query, description = "The last 7, 30 (the default) or 90 days, today included, in `DEFAULT_TIMEZONE`")),
    responses(
        (status = 200, description = "The figures and charts of the period", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to `/login?next=…`"),
        (status = 400, description = "A period other than 7, 30 or 90", body = String, content_type = "text/html"),
        (status = 503, description = "The database did not answer", body = String, content_type = "text/html"),
    ))]
pub async fn glance(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return message(
            StatusCode::BAD_REQUEST,
            "Bad address",
            "The address has a malformed query string.",
        );
    };
    let days = match parse_period(q.get("period").map(String::as_str)) {
        Ok(d) => d,
        Err(why) => return message(StatusCode::BAD_REQUEST, "Unknown period", &why),
    };
    let zone = state.config.default_timezone.tz();
    let now = state.clock.now();
    let (dates, bounds) = period_days(days, now, zone);
    let rows = match state.store.glance(&bounds).await {
        Ok(r) => r,
        Err(e) => return storage_failed(e),
    };
    let f = Figures::of(&rows, &dates);
    html(
        StatusCode::OK,
        GlancePage {
            who: Who::of(&operator),
            refresh_secs: REFRESH_SECS,
            now: time(Some(now)),
            looser: state.config.looser_than_law(),
            days,
            zone: zone.name(),
            first_day: dates[0].to_string(),
            last_day: dates[dates.len() - 1].to_string(),
            periods: PERIODS
                .iter()
                .map(|d| PeriodLink {
                    days: *d,
                    href: format!("/glance?period={d}"),
                    current: *d == days,
                })
                .collect(),
            attempts: f.attempts,
            right_party: f.right_party,
            contact_rate: percent(rate(f.right_party, f.attempts)),
            promises: f.promises,
            promise_rate: percent(rate(f.promises, f.right_party)),
            promised: amounts(&f.promised),
            kept: f.kept,
            broken: f.broken,
            open: f.open,
            paid_count: f.paid_after_call.iter().map(|a| a.count).sum(),
            paid_after_call: amounts(&f.paid_after_call),
            opt_outs: f.opt_outs,
            attempts_svg: svg::attempts_chart(&f.by_day),
            promises_svg: svg::promises_chart(&f.by_week),
            attempts_legend: Bucket::ALL
                .iter()
                .map(|b| svg::bucket_swatch(*b).into())
                .collect(),
            promises_legend: svg::PROMISE_SWATCHES
                .into_iter()
                .map(LegendItem::from)
                .collect(),
            day_count: f.by_day.len(),
            week_count: f.by_week.len(),
        }
        .render(),
    )
}

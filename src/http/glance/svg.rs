//! The glance's two charts as inline SVG, drawn here so the page needs no
//! script. Every bar is a `<g>` and every non-empty segment a `<rect>` with
//! `data-` attributes (what a test counts); the colours step from dark to
//! light, so the segments stay apart in greyscale, and the lightest has an
//! outline. Nothing interpolated here comes from a user: dates, numbers and
//! fixed words only.

use std::fmt::Write as _;

use super::figures::{Bucket, DayAttempts, WeekPromises};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 28.0;

/// A segment's fill and outline, darkest first.
pub struct Swatch {
    pub key: &'static str,
    pub label: &'static str,
    pub fill: &'static str,
    pub stroke: &'static str,
}

pub fn bucket_swatch(b: Bucket) -> Swatch {
    let (fill, stroke) = match b {
        Bucket::Promised => ("#0b4f8a", "#0b4f8a"),
        Bucket::Conversation => ("#3d8fd6", "#3d8fd6"),
        Bucket::WrongNumber => ("#e3a33a", "#e3a33a"),
        Bucket::Unreached => ("#d5d9e0", "#d5d9e0"),
        Bucket::NoOutcome => ("#ffffff", "#5d6675"),
    };
    Swatch {
        key: b.as_str(),
        label: b.label(),
        fill,
        stroke,
    }
}

pub const PROMISE_SWATCHES: [Swatch; 3] = [
    Swatch {
        key: "kept",
        label: "kept",
        fill: "#1b5e20",
        stroke: "#1b5e20",
    },
    Swatch {
        key: "broken",
        label: "broken",
        fill: "#e57373",
        stroke: "#e57373",
    },
    Swatch {
        key: "open",
        label: "open",
        fill: "#ffffff",
        stroke: "#5d6675",
    },
];

/// A y-axis top that is a round number at or above `max`.
fn nice_top(max: u64) -> u64 {
    let max = max.max(1);
    let mut step = 1;
    while step * 10 < max {
        step *= 10;
    }
    for m in [1, 2, 5, 10] {
        if step * m >= max {
            return step * m;
        }
    }
    step * 10
}

struct Frame {
    top: u64,
    n: usize,
}

impl Frame {
    fn plot_h() -> f64 {
        HEIGHT - TOP - BOTTOM
    }

    fn slot_w(&self) -> f64 {
        (WIDTH - LEFT - RIGHT) / self.n.max(1) as f64
    }

    fn x(&self, i: usize) -> f64 {
        LEFT + self.slot_w() * i as f64
    }

    fn h(&self, count: u64) -> f64 {
        Frame::plot_h() * count as f64 / self.top as f64
    }

    /// The axes: a baseline, the top value and half of it.
    fn axes(&self, out: &mut String) {
        let base = HEIGHT - BOTTOM;
        let _ = write!(
            out,
            r##"<g class="axis" aria-hidden="true"><line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" stroke="#5d6675"/>"##,
            WIDTH - RIGHT
        );
        for (value, y) in [(self.top, TOP), (self.top / 2, TOP + Frame::plot_h() / 2.0)] {
            if value == 0 || (value == self.top / 2 && self.top % 2 == 1) {
                continue;
            }
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#dde1e8"/><text x="{}" y="{}" text-anchor="end" font-size="11" fill="#5d6675">{value}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0
            );
        }
        out.push_str("</g>");
    }

    fn x_label(&self, out: &mut String, i: usize, text: &str) {
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11" fill="#5d6675" aria-hidden="true">{text}</text>"##,
            self.x(i) + self.slot_w() / 2.0,
            HEIGHT - BOTTOM + 16.0
        );
    }

    /// One stacked bar: its segments bottom up, the empty ones left out.
    fn bar(&self, out: &mut String, i: usize, segments: &[(&Swatch, u64)]) {
        let w = (self.slot_w() * 0.78).max(1.0);
        let x = self.x(i) + (self.slot_w() - w) / 2.0;
        let mut y = HEIGHT - BOTTOM;
        for (s, count) in segments.iter().filter(|(_, c)| *c > 0) {
            let h = self.h(*count);
            y -= h;
            let _ = write!(
                out,
                r#"<rect class="segment" data-key="{}" data-count="{count}" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{}" stroke="{}" stroke-width="1"/>"#,
                s.key, s.fill, s.stroke
            );
        }
    }
}

fn open_svg(out: &mut String, id: &str, title: &str, desc: &str) {
    let _ = write!(
        out,
        r#"<svg id="{id}" class="chart" role="img" aria-label="{title}" aria-describedby="{id}-desc" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg"><title>{title}</title><desc id="{id}-desc">{desc}</desc>"#
    );
}

/// Whether day `i` of `n` gets a date under its bar (about eight do).
fn labelled(i: usize, n: usize) -> bool {
    let every = n.div_ceil(8).max(1);
    i == n - 1 || (n - 1 - i) % every == 0
}

/// Attempts per local day, stacked by outcome.
pub fn attempts_chart(days: &[DayAttempts]) -> String {
    let frame = Frame {
        top: nice_top(days.iter().map(DayAttempts::total).max().unwrap_or(0)),
        n: days.len(),
    };
    let total: u64 = days.iter().map(DayAttempts::total).sum();
    let mut out = String::with_capacity(600 + days.len() * 400);
    open_svg(
        &mut out,
        "attempts-chart",
        &format!("Attempts per day by outcome, last {} days", days.len()),
        &format!(
            "{total} attempts over {} days; the busiest day had {}.",
            days.len(),
            days.iter().map(DayAttempts::total).max().unwrap_or(0)
        ),
    );
    frame.axes(&mut out);
    let swatches: Vec<Swatch> = Bucket::ALL.iter().map(|b| bucket_swatch(*b)).collect();
    for (i, d) in days.iter().enumerate() {
        let _ = write!(
            out,
            r#"<g class="bar" data-day="{}" data-total="{}"><title>{}: {} attempts</title>"#,
            d.date,
            d.total(),
            d.date,
            d.total()
        );
        let segments: Vec<(&Swatch, u64)> = swatches.iter().zip(d.counts).collect();
        frame.bar(&mut out, i, &segments);
        out.push_str("</g>");
        if labelled(i, days.len()) {
            frame.x_label(&mut out, i, &d.date.format("%b %-d").to_string());
        }
    }
    out.push_str("</svg>");
    out
}

/// Promises opened per week, stacked kept / broken / open.
pub fn promises_chart(weeks: &[WeekPromises]) -> String {
    let frame = Frame {
        top: nice_top(weeks.iter().map(WeekPromises::total).max().unwrap_or(0)),
        n: weeks.len(),
    };
    let total: u64 = weeks.iter().map(WeekPromises::total).sum();
    let mut out = String::with_capacity(600 + weeks.len() * 500);
    open_svg(
        &mut out,
        "promises-chart",
        "Promises by week opened: kept, broken, open",
        &format!("{total} promises over {} weeks.", weeks.len()),
    );
    frame.axes(&mut out);
    for (i, w) in weeks.iter().enumerate() {
        let _ = write!(
            out,
            r#"<g class="bar" data-week="{}" data-kept="{}" data-broken="{}" data-open="{}"><title>Week from {}: {} kept, {} broken, {} open</title>"#,
            w.start, w.kept, w.broken, w.open, w.start, w.kept, w.broken, w.open
        );
        let segments = [
            (&PROMISE_SWATCHES[0], w.kept),
            (&PROMISE_SWATCHES[1], w.broken),
            (&PROMISE_SWATCHES[2], w.open),
        ];
        frame.bar(&mut out, i, &segments);
        out.push_str("</g>");
        frame.x_label(&mut out, i, &w.start.format("%b %-d").to_string());
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tops_are_round() {
        assert_eq!(nice_top(0), 1);
        assert_eq!(nice_top(7), 10);
        assert_eq!(nice_top(11), 20);
        assert_eq!(nice_top(1234), 2000);
        assert_eq!(nice_top(5000), 5000);
    }
}

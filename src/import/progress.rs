//! An import's progress and its row reports, on one stream (stderr).
//!
//! On a terminal, indicatif's bar redrawn in place (at most 20 times a
//! second), each report printed above it through the bar (`println`), so a
//! report is never cut by a redraw. Elsewhere (a file, a pipe, CI's log) a
//! bar would be a pile of `\r` redraws: plain lines instead, one at the start
//! and one at each quarter, the reports between them.

use std::io::{IsTerminal, Stderr, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::rows_word;

/// The bar's look: `importing f.csv [#####>----] 50% 8/16 rows`.
const TEMPLATE: &str = "importing {prefix} [{bar:30}] {percent:>3}% {pos}/{len} rows";

/// Progress and row reports of one import: see the module's doc.
pub struct Progress<W: Write = Stderr> {
    out: Out<W>,
    label: String,
    total: u64,
    done: u64,
    /// Plain lines: the last quarter reported.
    quarter: u64,
}

enum Out<W> {
    /// A terminal: the bar draws itself and prints the reports.
    Bar(ProgressBar),
    /// Anything else: plain lines written here.
    Lines(W),
}

impl Progress<Stderr> {
    /// On stderr: a bar if it is a terminal, plain lines otherwise.
    pub fn stderr(label: impl Into<String>) -> Self {
        let err = std::io::stderr();
        if err.is_terminal() {
            Self::bar(ProgressDrawTarget::stderr(), label)
        } else {
            Self::lines(err, label)
        }
    }

    /// A bar drawn on `target` (stderr's terminal; a recorder in tests).
    pub fn bar(target: ProgressDrawTarget, label: impl Into<String>) -> Self {
        let label = label.into();
        let style = ProgressStyle::with_template(TEMPLATE)
            .expect("the template is valid")
            .progress_chars("#>-");
        let bar = ProgressBar::with_draw_target(Some(0), target)
            .with_style(style)
            .with_prefix(label.clone());
        Self {
            out: Out::Bar(bar),
            label,
            total: 0,
            done: 0,
            quarter: 0,
        }
    }
}

impl<W: Write> Progress<W> {
    /// Plain lines on `out`.
    pub fn lines(out: W, label: impl Into<String>) -> Self {
        Self {
            out: Out::Lines(out),
            label: label.into(),
            total: 0,
            done: 0,
            quarter: 0,
        }
    }

    /// The stream of plain lines (`None` for a bar).
    pub fn into_inner(self) -> Option<W> {
        match self.out {
            Out::Lines(w) => Some(w),
            Out::Bar(_) => None,
        }
    }

    /// `total` rows to go.
    pub fn start(&mut self, total: u64) {
        self.total = total;
        self.done = 0;
        self.quarter = 0;
        match &mut self.out {
            Out::Bar(bar) => {
                bar.set_length(total);
                bar.set_position(0);
                bar.tick();
            }
            Out::Lines(out) => {
                let rows = rows_word(total);
                let _ = writeln!(out, "importing {total} {rows} from {}", self.label);
            }
        }
    }

    /// One more row done.
    pub fn advance(&mut self) {
        self.done += 1;
        match &mut self.out {
            Out::Bar(bar) => bar.inc(1),
            Out::Lines(out) => {
                if let Some(quarter) = (self.done * 4).checked_div(self.total) {
                    if quarter > self.quarter {
                        self.quarter = quarter;
                        let _ = writeln!(
                            out,
                            "progress: {}/{} rows ({}%)",
                            self.done,
                            self.total,
                            self.done * 100 / self.total
                        );
                    }
                }
            }
        }
    }

    /// A line of its own (a refused row): above the bar, whole.
    pub fn say(&mut self, line: &str) {
        match &mut self.out {
            Out::Bar(bar) => bar.println(line),
            Out::Lines(out) => {
                let _ = writeln!(out, "{line}");
            }
        }
    }

    /// Leave the bar as it stands (where an aborted import stopped, too)
    /// and move below it.
    pub fn finish(&mut self) {
        match &mut self.out {
            // `abandon`, not `finish`: indicatif's finish would fill the bar.
            Out::Bar(bar) => bar.abandon(),
            Out::Lines(out) => {
                let _ = out.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A terminal that keeps what was written: lines, and the bar's redraws.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl Screen {
        fn writes(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(format!("{s}\n"));
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(s.to_owned());
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.0.lock().unwrap().push("\r".to_owned());
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_terminal_gets_a_bar_with_the_reports_above_it_whole() {
        let screen = Screen::default();
        let target = ProgressDrawTarget::term_like(Box::new(screen.clone()));
        let mut p = Progress::bar(target, "f.csv");
        p.start(2);
        p.advance();
        p.say("line 3: currency: bad");
        p.advance();
        p.finish();
        let writes = screen.writes();
        // The report is written whole, once, not pieced into a redraw.
        assert_eq!(
            writes
                .iter()
                .filter(|w| w.contains("currency"))
                .collect::<Vec<_>>(),
            ["line 3: currency: bad"],
            "{writes:?}"
        );
        let last_bar = writes
            .iter()
            .rev()
            .find(|w| w.starts_with("importing f.csv ["))
            .expect("a bar was drawn");
        assert!(last_bar.contains("100% 2/2 rows"), "{writes:?}");
        assert!(last_bar.contains(&"#".repeat(30)), "{writes:?}");
    }

    #[test]
    fn a_stopped_import_leaves_the_bar_where_it_stopped() {
        let screen = Screen::default();
        let target = ProgressDrawTarget::term_like(Box::new(screen.clone()));
        let mut p = Progress::bar(target, "f.csv");
        p.start(4);
        p.advance();
        p.finish();
        let writes = screen.writes();
        let last_bar = writes
            .iter()
            .rev()
            .find(|w| w.starts_with("importing f.csv ["))
            .expect("a bar was drawn");
        assert!(last_bar.contains(" 25% 1/4 rows"), "{writes:?}");
    }

    #[test]
    fn elsewhere_plain_lines_at_the_start_and_each_quarter() {
        let mut p = Progress::lines(Vec::new(), "f.csv");
        p.start(8);
        for i in 0..8 {
            p.advance();
            if i == 2 {
                p.say("line 5: currency: bad");
            }
        }
        p.finish();
        let out = String::from_utf8(p.into_inner().unwrap()).unwrap();
        assert!(!out.contains('\r'));
        assert_eq!(
            out,
            "importing 8 rows from f.csv\nprogress: 2/8 rows (25%)\nline 5: currency: bad\n\
             progress: 4/8 rows (50%)\nprogress: 6/8 rows (75%)\nprogress: 8/8 rows (100%)\n"
        );
        let mut p = Progress::lines(Vec::new(), "empty.csv");
        p.start(0);
        p.finish();
        assert_eq!(
            String::from_utf8(p.into_inner().unwrap()).unwrap(),
            "importing 0 rows from empty.csv\n"
        );
    }
}

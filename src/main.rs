//! The command line: argument wiring only.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine;
use clap::{Parser, Subcommand};
use duecall::clock::SystemClock;
use duecall::config::{Config, DialerKind};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "duecall",
    version,
    about = "Payment-reminder calls by a LiveKit voice agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch the whole lifecycle in under a minute: the service on SQLite with
    /// simulated agents, a batch of reminders, live progress and a summary.
    Demo {
        /// Where the demo's database goes (replaced on each run).
        #[arg(long, default_value = "duecall-demo")]
        dir: PathBuf,
        /// After the summary, keep the service up with its dashboard open (until Ctrl-C).
        #[arg(long)]
        serve: bool,
    },
    /// Run the HTTP service (configuration from the environment and .env).
    Serve,
    /// Run one scheduler tick (timeouts, then claims and calls) and print its counts.
    Tick,
    /// Import reminders from a CSV file whose header names the API's fields:
    /// bad rows are reported by line and skipped, rows whose external_id is
    /// already stored are skipped, a summary is printed.
    ///
    /// With --suppressions: put the numbers of a do-not-call list (header
    /// phone_number,reason; reason optional) on the suppression list, all or
    /// nothing; numbers already there are counted and left as they are.
    ///
    /// With --payments: record payments (header reminder_id or external_id,
    /// amount_minor, paid_at, reference; the last two optional), each as the
    /// API would; bad rows are reported by line and skipped, a reference
    /// already recorded is counted and left as it is.
    Import {
        /// The CSV file (UTF-8; first line: customer_name,phone_number,…, or
        /// phone_number,reason with --suppressions, or
        /// external_id,amount_minor,… with --payments).
        path: PathBuf,
        /// The file is a do-not-call list, not reminders.
        #[arg(long, conflicts_with = "payments")]
        suppressions: bool,
        /// The file is payments, not reminders.
        #[arg(long)]
        payments: bool,
    },
    /// Write a .env with freshly generated secrets, for a first run.
    Init {
        /// Where to write it.
        #[arg(long, default_value = ".env")]
        path: PathBuf,
    },
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("duecall: {message}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    duecall::install_crypto();
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            return fail(format!("cannot read .env: {e}"));
        }
    }
    // Logs go to stderr: stdout carries what a command prints (`tick`'s counts).
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // The demo prints its own story; its service only speaks up when something is wrong.
        EnvFilter::new(match cli.command {
            Command::Demo { .. } => "error",
            _ => "info",
        })
    });
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match std::env::var("LOG_FORMAT").ok().as_deref() {
        // One JSON object per line, for log collectors.
        Some("json") => logs.json().with_current_span(false).init(),
        // Colours for a person at a terminal; plain text for files and journald.
        None | Some("" | "text") => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        Some(other) => {
            return fail(format!(
                "invalid configuration: LOG_FORMAT: must be text or json, not {other:?}"
            ))
        }
    }

    match cli.command {
        Command::Init { path } => init(&path),
        Command::Demo { dir, serve } => block_on(async move {
            let mut out = std::io::stdout();
            let until = serve.then(shutdown_signal);
            match duecall::demo::run(&dir, std::time::Duration::from_secs(90), &mut out, until)
                .await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format!("demo failed: {e:#}")),
            }
        }),
        Command::Serve => match Config::from_env().and_then(|c| c.check_serve().map(|()| c)) {
            Ok(config) => block_on(serve(config)),
            Err(e) => fail(format!("invalid configuration: {e}")),
        },
        Command::Import {
            path,
            suppressions,
            payments,
        } => match Config::from_env() {
            Ok(config) if suppressions => {
                block_on(async move { duecall::import::suppressions::command(config, &path).await })
            }
            Ok(config) if payments => {
                block_on(async move { duecall::import::payments::command(config, &path).await })
            }
            Ok(config) => block_on(async move { duecall::import::command(config, &path).await }),
            Err(e) => fail(format!("invalid configuration: {e}")),
        },
        Command::Tick => match Config::from_env() {
            Ok(config) => block_on(tick(config)),
            Err(e) => fail(format!("invalid configuration: {e}")),
        },
    }
}

/// Run a command's future on a fresh multi-threaded runtime.
fn block_on(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(command),
        Err(e) => fail(format!("cannot start the runtime: {e}")),
    }
}

async fn tick(config: Config) -> ExitCode {
    let db = duecall::store::redact_url(&config.database_url);
    warn_at_start(&config);
    let state = match duecall::build_state(config, Arc::new(SystemClock)).await {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot open the database {db}: {e}")),
    };
    let ticked = state.scheduler.tick().await;
    // Simulated calls report over HTTP to a running `serve`: let them finish.
    state
        .scheduler
        .drain(std::time::Duration::from_secs(30))
        .await;
    match ticked {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string(&report).unwrap_or_else(|_| format!("{report:?}"))
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("tick failed: {e}")),
    }
}

/// What every start of `serve` and `tick` warns about: no real dialer, and
/// each calling rule set looser than the law (SPEC §7).
fn warn_at_start(config: &Config) {
    config.warn_looser_than_law();
    match config.dialer {
        DialerKind::None => tracing::warn!(
            "DIALER is none: reminders are stored but nobody is called (set LIVEKIT_URL to call)"
        ),
        DialerKind::Simulated => tracing::warn!(
            "DIALER is simulated: fake agents report made-up outcomes; nobody is really called"
        ),
        DialerKind::LiveKit => {}
    }
}

async fn serve(config: Config) -> ExitCode {
    let db = duecall::store::redact_url(&config.database_url);
    let bind = config.bind_addr;
    warn_at_start(&config);
    let every = config.scheduler_interval;
    let state = match duecall::build_state(config, Arc::new(SystemClock)).await {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot open the database {db}: {e}")),
    };
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {bind}: {e}")),
    };
    tracing::info!(
        database = %db,
        addr = %bind,
        dialer = state.scheduler.dialer_name(),
        tick_secs = every.as_secs(),
        "duecall is serving"
    );
    if let Some(lk) = &state.config.livekit {
        use secrecy::ExposeSecret;
        if lk.api_secret.expose_secret().chars().count() < duecall::config::BEARER_SECRET_MIN {
            tracing::warn!(
                "LIVEKIT_API_SECRET is shorter than {} characters: anyone who guesses it can sign LiveKit webhooks",
                duecall::config::BEARER_SECRET_MIN
            );
        }
    }
    match &state.config.notify {
        // The host only: a path or query may carry the receiver's token.
        Some(n) => tracing::info!(
            host = n.url.host_str().unwrap_or_default(),
            "outcome notifications on (NOTIFY_URL): every change is notified"
        ),
        None => tracing::info!(
            "outcome notifications off: set NOTIFY_URL and NOTIFY_SECRET (on every instance of a shared database) to turn them on"
        ),
    }
    if state.config.dashboard_password.is_some() {
        tracing::info!("dashboard at http://{bind}/ (sign in with DASHBOARD_PASSWORD)");
    } else {
        tracing::warn!(
            "the dashboard is off: set DASHBOARD_PASSWORD (12 characters or more) to turn it on"
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ticker = (!every.is_zero())
        .then(|| tokio::spawn(std::sync::Arc::clone(&state.scheduler).run(every, stop_rx)));
    let served = duecall::serve(listener, state, shutdown_signal()).await;
    // Let a tick in progress finish its dials, so no claimed attempt is left waiting.
    let _ = stop_tx.send(true);
    if let Some(ticker) = ticker {
        let _ = ticker.await;
    }

    match served {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("server error: {e}")),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

fn random_bytes(n: usize) -> Vec<u8> {
    // uuid's v4 draws from the operating system's generator: 122 random bits each.
    (0..n.div_ceil(16))
        .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
        .take(n)
        .collect()
}

fn init(path: &std::path::Path) -> ExitCode {
    if path.exists() {
        // Re-running the README's first command must not rotate live secrets.
        println!(
            "{} already exists: keeping it (delete it to generate new secrets)",
            path.display()
        );
        return ExitCode::SUCCESS;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let text = format!(
        "# Written by `duecall init`. Keep this file private. Every variable is in .env.example.\n\
         DATABASE_URL=sqlite://duecall.db\n\
         BIND_ADDR=127.0.0.1:8080\n\
         WEBHOOK_SECRET=whsec_{}\n\
         DUECALL_API_KEY=dk_{}\n\
         CRON_SECRET=cron_{}\n\
         DASHBOARD_PASSWORD={}\n",
        b64.encode(random_bytes(32)),
        url.encode(random_bytes(24)),
        url.encode(random_bytes(24)),
        url.encode(random_bytes(15)),
    );
    if let Err(e) = std::fs::write(path, text) {
        return fail(format!("cannot write {}: {e}", path.display()));
    }
    println!(
        "wrote {} with new WEBHOOK_SECRET, DUECALL_API_KEY, CRON_SECRET and DASHBOARD_PASSWORD (the dashboard's sign-in, at http://127.0.0.1:8080/); now run: duecall serve",
        path.display()
    );
    ExitCode::SUCCESS
}

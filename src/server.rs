//! The HTTP server under the router: hyper's HTTP/1 connections with a timer,
//! so that every connection is bounded in time and in number.
//!
//! - a request's head must arrive within `HTTP_HEADER_READ_TIMEOUT_SECS` of the
//!   connection waiting for it (hyper starts that timer for every request, so an
//!   idle keep-alive connection is closed after the same time);
//! - a request body that sends nothing for `HTTP_IDLE_TIMEOUT_SECS` is cut off
//!   (tower-http's `TimeoutBody`), and one request takes at most
//!   `HTTP_REQUEST_TIMEOUT_SECS` (the router's `TimeoutLayer`, a 503);
//! - at most `HTTP_MAX_CONNECTIONS` connections are open at once, fewer when the
//!   open-file limit is lower, so the database, the log and outgoing calls always
//!   have file descriptors left: beyond the cap, new connections wait in the
//!   listen queue until one closes;
//! - on shutdown no new connection is taken, open ones finish their request in
//!   flight, and after `SHUTDOWN_TIMEOUT_SECS` whatever is left is cut.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower_http::timeout::TimeoutBody;

use crate::config::HttpLimits;
use crate::http::sign_in::SignInGuard;

/// File descriptors kept free of connections: at most this many, or half the
/// limit when it is low.
const RESERVED_FILES: u64 = 256;

/// The soft limit on open files, where the platform tells it.
fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct it is given.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        if rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY {
            // `rlim_t` is u64 on Linux, but not on every Unix.
            #[allow(clippy::unnecessary_cast)]
            return Some(limit.rlim_cur as u64);
        }
        None
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// How many connections may be open at once: `configured`, lowered so that
/// connections never take more than the open-file limit minus its reserve.
pub fn connection_cap(configured: usize, file_limit: Option<u64>) -> usize {
    let Some(limit) = file_limit else {
        return configured;
    };
    let room = limit.saturating_sub(RESERVED_FILES.min(limit / 2)).max(1);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// Accept errors (out of file descriptors, mostly) are logged at most once a second.
struct AcceptErrors {
    last_logged: Option<Instant>,
    since: u64,
}

impl AcceptErrors {
    fn note(&mut self, e: &std::io::Error) {
        self.since += 1;
        if self
            .last_logged
            .map_or(true, |t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::warn!(error = %e, errors = self.since, "cannot accept connections");
            self.last_logged = Some(Instant::now());
            self.since = 0;
        }
    }
}

/// Serve `app` on `listener` until `shutdown` resolves (see the module's notes).
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: &HttpLimits,
    sign_in: Arc<SignInGuard>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cap = connection_cap(limits.max_connections, open_file_limit());
    if cap < limits.max_connections {
        tracing::info!(
            configured = limits.max_connections,
            cap,
            "HTTP_MAX_CONNECTIONS lowered to leave file descriptors free under the open-file limit (ulimit -n)"
        );
    }
    let permits = Arc::new(Semaphore::new(cap));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut accept_errors = AcceptErrors {
        last_logged: None,
        since: 0,
    };
    // The refused sign-ins' summary line, once per interval.
    let summary = tokio::spawn(async move {
        let mut every = tokio::time::interval(sign_in.log_interval());
        every.tick().await;
        loop {
            every.tick().await;
            sign_in.flush();
        }
    });

    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_errors.note(&e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let body_idle = limits.idle_timeout;
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            let req = req.map(|body| TimeoutBody::new(body_idle, body));
            let mut app = app.clone();
            async move { tower_service::Service::call(&mut app, req).await }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    summary.abort();
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            deadline_secs = limits.shutdown_timeout.as_secs(),
            "shutdown deadline passed: cutting the requests still in flight"
        );
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::connection_cap;

    #[test]
    fn the_cap_leaves_room_under_the_file_limit() {
        assert_eq!(connection_cap(1024, None), 1024);
        assert_eq!(connection_cap(1024, Some(1_048_576)), 1024);
        assert_eq!(connection_cap(1024, Some(1024)), 768);
        assert_eq!(connection_cap(1024, Some(256)), 128);
        assert_eq!(connection_cap(10, Some(256)), 10);
        assert_eq!(connection_cap(1024, Some(1)), 1);
    }
}

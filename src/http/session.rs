//! The dashboard's sign-in: one operator password (`DASHBOARD_PASSWORD`, kept in
//! memory only as its Argon2id hash), and revocable sessions.
//!
//! Sessions are `tower-sessions` records kept in duecall's own database (both
//! backends, shared by every instance): the cookie carries a random session id,
//! signed with a random key that the first instance stores and every instance
//! reads (`service_keys`). Nothing in a cookie is derived from the password, so
//! a cookie tells nothing about it; signing out deletes the record, so a copy of
//! the cookie opens nothing afterwards, wherever it was copied to.

use std::net::SocketAddr;
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use async_trait::async_trait;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tower_sessions::cookie::{Key, SameSite};
use tower_sessions::service::SignedCookie;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::clock::Clock;
use crate::store::{Store, StoreError};

/// The cookie's name over plain loopback HTTP.
pub const COOKIE: &str = "duecall_session";
/// The cookie's name when it is `Secure`: the `__Host-` prefix makes browsers
/// refuse it unless it is `Secure`, for this host only, with `Path=/`.
pub const SECURE_COOKIE: &str = "__Host-duecall_session";

/// How long a sign-in lasts.
pub const LIFETIME_SECS: i64 = 12 * 60 * 60;

/// The name of the cookie-signing key in `service_keys`.
pub const SIGNING_KEY: &str = "dashboard_session_signing_key";

/// The session field that says who signed in when (unix seconds, service clock).
pub const SIGNED_IN_AT: &str = "signed_in_at";

/// The session field with the name the operator gave at sign-in: the actor
/// of every action they take.
pub const OPERATOR: &str = "operator";

/// The session field with its anti-forgery token: every state-changing form
/// of the dashboard carries it (hidden field [`CSRF_FIELD`]).
pub const CSRF: &str = "csrf";

/// The form field that carries the session's anti-forgery token.
pub const CSRF_FIELD: &str = "csrf_token";

/// A new anti-forgery token: 32 random bytes from the operating system,
/// base64url. One per sign-in, kept in the session record (never in a cookie
/// of its own), so a page of this site is the only place to learn it.
pub fn new_csrf_token() -> String {
    use argon2::password_hash::rand_core::RngCore;
    use base64::Engine;
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a form's token is the session's, compared in constant time (how
/// much of a guess was right must not show in how long the answer takes).
/// A missing or empty token never matches.
pub fn csrf_matches(expected: &str, presented: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    match presented {
        Some(p) if !p.is_empty() && !expected.is_empty() => {
            bool::from(expected.as_bytes().ct_eq(p.as_bytes()))
        }
        _ => false,
    }
}

// --- The password ----------------------------------------------------------------

/// The dashboard's password as an Argon2id hash (PHC string, random salt): the
/// plain text is dropped once hashed.
#[derive(Clone)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(argon2id, ..)")
    }
}

impl PasswordHash {
    /// Hash `password` with Argon2id (RustCrypto's defaults: 19 MiB, 2 passes).
    pub fn of(password: &SecretString) -> Self {
        let salt = SaltString::generate(&mut OsRng);
        let phc = Argon2::default()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .expect("Argon2id hashes any password with its default parameters")
            .to_string();
        Self(phc)
    }

    /// The PHC string (`$argon2id$v=19$…`).
    pub fn as_phc(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is the password (slow on purpose: run it off the
    /// async threads).
    pub fn verify(&self, presented: &str) -> bool {
        argon2::password_hash::PasswordHash::new(&self.0).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(presented.as_bytes(), &hash)
                .is_ok()
        })
    }
}

// --- The stored sessions ---------------------------------------------------------

/// The cookie-signing key: the one stored in the database, or a new random one
/// stored now (the first instance's wins; every instance reads the same).
pub async fn signing_key(store: &dyn Store, now: DateTime<Utc>) -> Result<Key, StoreError> {
    let fresh = Key::generate();
    let bytes = store.service_key(SIGNING_KEY, fresh.master(), now).await?;
    Key::try_from(bytes.as_slice())
        .map_err(|e| StoreError::Corrupt(format!("the stored session signing key: {e}")))
}

/// What the database keeps for a session id: its SHA-256, so the table opens
/// no session by itself.
fn stored_id(id: &Id) -> String {
    Sha256::digest(id.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// tower-sessions' store over duecall's [`Store`]: a session lasts
/// [`LIFETIME_SECS`] from its sign-in by the service's own clock.
#[derive(Clone)]
pub struct DbSessions {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DbSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbSessions")
    }
}

impl DbSessions {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    fn expires(&self) -> DateTime<Utc> {
        self.clock.now() + chrono::Duration::seconds(LIFETIME_SECS)
    }
}

fn backend(e: StoreError) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

fn encode(record: &Record) -> session_store::Result<String> {
    serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))
}

#[async_trait]
impl SessionStore for DbSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let now = self.clock.now();
        // Sign-ins are rare: the moment to forget the expired ones.
        self.store
            .delete_expired_sessions(now)
            .await
            .map_err(backend)?;
        let data = encode(record)?;
        // A random 128-bit id is taken only by astronomical luck; draw again then.
        while !self
            .store
            .insert_session(&stored_id(&record.id), &data, self.expires())
            .await
            .map_err(backend)?
        {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = encode(record)?;
        self.store
            .save_session(&stored_id(&record.id), &data, self.expires())
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some((data, expires)) = self
            .store
            .load_session(&stored_id(id), self.clock.now())
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let data =
            serde_json::from_str(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let expiry_date = time::OffsetDateTime::from_unix_timestamp(expires.timestamp())
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store
            .delete_session(&stored_id(id))
            .await
            .map_err(backend)
    }
}

/// The session layer: a signed cookie, `HttpOnly`, `SameSite=Strict`, `Path=/`;
/// `Secure` and `__Host-` named when `secure`.
pub fn layer(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    key: Key,
    secure: bool,
) -> SessionManagerLayer<DbSessions, SignedCookie> {
    SessionManagerLayer::new(DbSessions::new(store, clock))
        .with_name(if secure { SECURE_COOKIE } else { COOKIE })
        .with_secure(secure)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(LIFETIME_SECS)))
        .with_signed(key)
}

// --- Requests --------------------------------------------------------------------

/// The client's address, from the connection (`None` when the router runs
/// without one, as in a test that calls it directly).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// Whether a state-changing request (`POST /login`, `POST /logout`) comes from
/// this site's own pages. Browsers say where a request comes from in
/// `Sec-Fetch-Site` (and, older ones, in `Origin`): anything but `same-origin`
/// (or `none`, a person's own action) is refused. A request with neither header
/// is not from a browser, and cross-site forgery needs one.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    // `Origin` is scheme://host[:port]; it must name the host this request was sent to.
    origin.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https") && rest.eq_ignore_ascii_case(host)
    })
}

/// The value of cookie `name` in a `Cookie` header, if present.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Where to go after signing in: only a path on this site (`/…`, never `//host`
/// or `/\host`, which browsers read as another site); anything else is `/`.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control()) =>
        {
            n
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_password_is_kept_only_as_an_argon2id_hash() {
        let p = SecretString::from("correct horse battery".to_owned());
        let hash = PasswordHash::of(&p);
        assert!(
            hash.as_phc().starts_with("$argon2id$v=19$"),
            "{}",
            hash.as_phc()
        );
        assert!(!hash.as_phc().contains("correct horse battery"));
        assert!(!format!("{hash:?}").contains("argon2id$"));
        assert!(hash.verify("correct horse battery"));
        assert!(!hash.verify("correct horse batter"));
        assert!(!hash.verify(""));
        // A fresh salt each time: two hashes of one password differ.
        assert_ne!(PasswordHash::of(&p).as_phc(), hash.as_phc());
    }

    #[test]
    fn stored_ids_are_hashes_of_the_session_id() {
        let id = Id::default();
        let stored = stored_id(&id);
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains(&id.to_string()));
        assert_eq!(stored, stored_id(&id));
        assert_ne!(stored, stored_id(&Id::default()));
    }

    #[test]
    fn only_same_origin_requests_pass() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let host = ("host", "127.0.0.1:8080");
        for ok in [
            vec![host],
            vec![host, ("sec-fetch-site", "same-origin")],
            vec![host, ("sec-fetch-site", "none")],
            vec![host, ("origin", "http://127.0.0.1:8080")],
            vec![("host", "dash.example"), ("origin", "https://dash.example")],
        ] {
            assert!(same_origin(&headers(&ok)), "{ok:?}");
        }
        for bad in [
            vec![host, ("sec-fetch-site", "cross-site")],
            vec![host, ("sec-fetch-site", "same-site")],
            vec![
                host,
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://127.0.0.1:8080"),
            ],
            vec![host, ("origin", "http://evil.example")],
            vec![host, ("origin", "http://127.0.0.1:8081")],
            vec![host, ("origin", "null")],
            vec![("origin", "http://127.0.0.1:8080")],
        ] {
            assert!(!same_origin(&headers(&bad)), "{bad:?}");
        }
    }

    #[test]
    fn csrf_tokens_are_random_and_compared_whole() {
        let a = new_csrf_token();
        assert_eq!(a.len(), 43, "{a}");
        assert_ne!(a, new_csrf_token());
        assert!(csrf_matches(&a, Some(&a)));
        assert!(!csrf_matches(&a, Some(&a[..42])));
        assert!(!csrf_matches(&a, Some(&format!("{a}x"))));
        assert!(!csrf_matches(&a, Some("")));
        assert!(!csrf_matches(&a, None));
        assert!(!csrf_matches("", Some("")));
    }

    #[test]
    fn cookie_parsing() {
        let h = "a=1; duecall_session=v1.2.xyz; b=3";
        assert_eq!(cookie_value(h, COOKIE), Some("v1.2.xyz"));
        assert_eq!(cookie_value("duecall_sessionx=1", COOKIE), None);
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/reminders/abc?x=1")), "/reminders/abc?x=1");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "",
            "x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(Some("/\nSet-Cookie: x")), "/");
        assert_eq!(safe_next(None), "/");
    }
}

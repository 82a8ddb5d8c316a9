//! The dashboard's sign-in: one operator password (`DASHBOARD_PASSWORD`), and a
//! signed, expiring session cookie.
//!
//! The cookie is `v1.<expires, unix seconds>.<HMAC-SHA256 of that, base64url>`,
//! keyed by a hash of the password: nothing is stored server-side, any instance
//! accepts a cookie another issued, and changing the password signs everyone out.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "duecall_session";

/// How long a sign-in lasts.
pub const LIFETIME_SECS: i64 = 12 * 60 * 60;

/// The signing key of sessions under one password.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    pub fn from_password(password: &SecretString) -> Self {
        let mut h = Sha256::new();
        h.update(b"duecall dashboard session v1\0");
        h.update(password.expose_secret().as_bytes());
        Self(h.finalize().into())
    }

    fn mac(&self, payload: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A session valid until `now + LIFETIME_SECS`.
    pub fn issue(&self, now: DateTime<Utc>) -> String {
        let payload = format!("v1.{}", now.timestamp() + LIFETIME_SECS);
        let tag = URL_SAFE_NO_PAD.encode(self.mac(&payload));
        format!("{payload}.{tag}")
    }

    /// Whether `token` is a session this key signed that has not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> bool {
        let Some((payload, tag)) = token.rsplit_once('.') else {
            return false;
        };
        let Some(expires) = payload
            .strip_prefix("v1.")
            .and_then(|s| s.parse::<i64>().ok())
        else {
            return false;
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        let signed: bool = tag.ct_eq(&self.mac(payload)).into();
        signed && now.timestamp() < expires
    }
}

/// Whether `presented` is the password, compared in constant time over its hash.
pub fn password_matches(presented: &str, password: &SecretString) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(password.expose_secret().as_bytes());
    a.ct_eq(&b).into()
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

    fn key(p: &str) -> SessionKey {
        SessionKey::from_password(&SecretString::from(p.to_owned()))
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_session_lasts_its_lifetime_and_no_longer() {
        let k = key("correct horse battery");
        let now = t("2026-11-24T10:00:00Z");
        let token = k.issue(now);
        assert!(k.verify(&token, now));
        assert!(k.verify(&token, now + chrono::Duration::seconds(LIFETIME_SECS - 1)));
        assert!(!k.verify(&token, now + chrono::Duration::seconds(LIFETIME_SECS)));
    }

    #[test]
    fn a_session_is_bound_to_the_password_and_cannot_be_edited() {
        let k = key("correct horse battery");
        let now = t("2026-11-24T10:00:00Z");
        let token = k.issue(now);
        assert!(
            !key("another password!").verify(&token, now),
            "a new password signs everyone out"
        );
        // Pushing the expiry out breaks the signature.
        let (payload, tag) = token.rsplit_once('.').unwrap();
        let later: i64 = payload.strip_prefix("v1.").unwrap().parse().unwrap();
        let forged = format!("v1.{}.{tag}", later + 86_400);
        assert!(!k.verify(&forged, now));
        for junk in [
            "",
            "v1",
            "v1.",
            "v1.x.y",
            "v2.1.abc",
            "garbage.token",
            &token[1..],
        ] {
            assert!(!k.verify(junk, now), "{junk:?}");
        }
    }

    #[test]
    fn password_and_cookie_parsing() {
        let p = SecretString::from("correct horse battery".to_owned());
        assert!(password_matches("correct horse battery", &p));
        assert!(!password_matches("correct horse batter", &p));
        assert!(!password_matches("", &p));
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

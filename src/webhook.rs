//! The wire: Standard Webhooks signing secrets (and, with the call-status
//! webhook, verification and payload parsing).

use std::fmt;

use base64::Engine;

/// One or more `whsec_` secrets (comma-separated for rotation), decoded to key bytes.
#[derive(Clone)]
pub struct WebhookSecrets {
    keys: Vec<Vec<u8>>,
}

impl WebhookSecrets {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, part) in s.split(',').map(str::trim).enumerate() {
            let b64 = part.strip_prefix("whsec_").ok_or_else(|| {
                format!(
                    "secret #{} must start with whsec_ (then base64 of the key)",
                    i + 1
                )
            })?;
            let key = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| format!("secret #{} is not valid base64 after whsec_", i + 1))?;
            if key.len() < 16 {
                return Err(format!(
                    "secret #{} must decode to at least 16 bytes",
                    i + 1
                ));
            }
            keys.push(key);
        }
        Ok(Self { keys })
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(Vec::as_slice)
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecrets([REDACTED; {}])", self.keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_several_secrets_and_refuses_bad_ones() {
        let s = WebhookSecrets::parse(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
        )
        .unwrap();
        assert_eq!(s.keys().count(), 2);
        assert!(WebhookSecrets::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecrets::parse("whsec_!!!").is_err());
        assert!(WebhookSecrets::parse("whsec_c2hvcnQ=").is_err());
        assert!(!format!("{s:?}").contains("MfKQ"));
    }
}

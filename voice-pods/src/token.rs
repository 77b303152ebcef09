//! Media stream tokens: proof that a `/twilio/media` stream follows a voice
//! webhook this pod fleet verified.
//!
//! The webhook signs the call's identity (CallSid, pinned config version,
//! caller, callee) and an expiry with the pods' shared stream secret and
//! hands the token to Twilio as a `<Parameter>`; the media handler accepts a
//! stream only when its `start` message carries a token that matches the
//! other parameters and has not expired. Without the secret nobody can open
//! a media stream, pick a config version or impersonate a caller.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How long a token stays valid: Twilio opens the stream within a second or
/// two of our TwiML answer; a minute leaves room for slow networks without
/// making a leaked token useful for long.
pub const TOKEN_TTL_SECONDS: i64 = 60;

/// The shortest stream secret accepted.
pub const MIN_SECRET_BYTES: usize = 16;

/// What a token vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamClaims<'a> {
    /// Twilio's CallSid.
    pub call_sid: &'a str,
    /// The config version pinned for the call.
    pub config_version: &'a str,
    /// The caller's number (`From`).
    pub caller: &'a str,
    /// The called number (`To`).
    pub callee: &'a str,
    /// The campaign attempt of an outbound call; empty for an inbound one.
    pub attempt: &'a str,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `<expiry>.<mac>`.
    #[error("malformed stream token")]
    Malformed,
    /// The MAC does not match the claims.
    #[error("stream token does not match the call")]
    Mismatch,
    /// Past its expiry.
    #[error("stream token expired")]
    Expired,
}

/// A stream secret: the key of every token (kept as a keyed HMAC, cloned
/// per token).
#[derive(Clone)]
pub struct StreamSecret(HmacSha256);

impl std::fmt::Debug for StreamSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamSecret(<redacted>)")
    }
}

/// Why a secret cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the stream secret must be at least {MIN_SECRET_BYTES} bytes (got {0})")]
pub struct WeakSecret(pub usize);

impl StreamSecret {
    /// A secret from its bytes (surrounding whitespace, as left by a file
    /// editor or a Secret volume, is not part of it).
    pub fn new(bytes: &[u8]) -> Result<Self, WeakSecret> {
        let text = String::from_utf8_lossy(bytes);
        let trimmed = text.trim();
        if trimmed.len() < MIN_SECRET_BYTES {
            return Err(WeakSecret(trimmed.len()));
        }
        // HMAC accepts keys of any length; the error cannot happen here.
        HmacSha256::new_from_slice(trimmed.as_bytes())
            .map(Self)
            .map_err(|_| WeakSecret(trimmed.len()))
    }

    fn mac(&self, claims: &StreamClaims<'_>, expires: i64) -> HmacSha256 {
        let mut mac = self.0.clone();
        // Length-prefixed fields: no value can shift bytes into another.
        for field in [
            claims.call_sid,
            claims.config_version,
            claims.caller,
            claims.callee,
            claims.attempt,
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac.update(&expires.to_be_bytes());
        mac
    }

    /// A token for `claims`, valid until `now + TOKEN_TTL_SECONDS` (Unix
    /// seconds).
    pub fn issue(&self, claims: &StreamClaims<'_>, now: i64) -> String {
        let expires = now + TOKEN_TTL_SECONDS;
        let tag = self.mac(claims, expires).finalize().into_bytes();
        format!("{expires}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks `token` against `claims` at `now` (Unix seconds), in constant
    /// time for the MAC.
    pub fn verify(
        &self,
        token: &str,
        claims: &StreamClaims<'_>,
        now: i64,
    ) -> Result<(), TokenError> {
        let (expires, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        self.mac(claims, expires)
            .verify_slice(&tag)
            .map_err(|_| TokenError::Mismatch)?;
        if now > expires {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> StreamClaims<'static> {
        StreamClaims {
            call_sid: "CA123",
            config_version: "sha256:abc",
            caller: "+61400000000",
            callee: "+61290001234",
            attempt: "",
        }
    }

    #[test]
    fn a_token_verifies_for_its_call_only() {
        let secret = StreamSecret::new(b"0123456789abcdef-secret").unwrap();
        let token = secret.issue(&claims(), 1_000);
        assert_eq!(secret.verify(&token, &claims(), 1_030), Ok(()));
        let other = StreamClaims {
            config_version: "sha256:def",
            ..claims()
        };
        assert_eq!(
            secret.verify(&token, &other, 1_030),
            Err(TokenError::Mismatch)
        );
        let shifted = StreamClaims {
            call_sid: "CA12",
            config_version: "3sha256:abc",
            ..claims()
        };
        assert_eq!(
            secret.verify(&token, &shifted, 1_030),
            Err(TokenError::Mismatch)
        );
        // An inbound call's token cannot be passed off as a campaign's.
        let outbound = StreamClaims {
            attempt: "5f0c6c1e-8c1a-4c55-9b8e-0b4f7d1c2a3b",
            ..claims()
        };
        assert_eq!(
            secret.verify(&token, &outbound, 1_030),
            Err(TokenError::Mismatch)
        );
    }

    #[test]
    fn tokens_expire_and_need_the_secret() {
        let secret = StreamSecret::new(b"0123456789abcdef-secret").unwrap();
        let token = secret.issue(&claims(), 1_000);
        assert_eq!(
            secret.verify(&token, &claims(), 1_000 + TOKEN_TTL_SECONDS + 1),
            Err(TokenError::Expired)
        );
        let other = StreamSecret::new(b"another-secret-of-16-bytes").unwrap();
        assert_eq!(
            other.verify(&token, &claims(), 1_000),
            Err(TokenError::Mismatch)
        );
        // Moving the expiry invalidates the MAC.
        let (_, tag) = token.split_once('.').unwrap();
        assert_eq!(
            secret.verify(&format!("999999.{tag}"), &claims(), 1_000),
            Err(TokenError::Mismatch)
        );
        assert_eq!(
            secret.verify("garbage", &claims(), 1_000),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn short_secrets_are_refused_and_never_printed() {
        assert_eq!(StreamSecret::new(b" short \n").unwrap_err(), WeakSecret(5));
        let secret = StreamSecret::new(b"0123456789abcdef-secret\n").unwrap();
        assert_eq!(format!("{secret:?}"), "StreamSecret(<redacted>)");
    }
}

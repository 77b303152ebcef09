//! Media stream tickets: proof that a `/twilio/media` stream follows a
//! voice webhook this pod fleet verified.
//!
//! The webhook signs the call's identity (CallSid, pinned config version,
//! caller, callee, campaign attempt) and an expiry with the pods' shared
//! stream secret and puts the ticket, claims included, in the stream URL's
//! path (Twilio allows no query string there). The media handler checks the
//! ticket before it upgrades the connection, so an outsider without the
//! secret never gets a WebSocket, and it trusts nothing from the stream's
//! `customParameters`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How long a ticket stays valid: Twilio opens the stream within a second
/// or two of our TwiML answer; a minute leaves room for slow networks
/// without making a leaked ticket useful for long.
pub const TOKEN_TTL_SECONDS: i64 = 60;

/// The shortest stream secret accepted.
pub const MIN_SECRET_BYTES: usize = 16;

/// The longest ticket read: real ones are about 300 bytes; anything longer
/// is refused before it is decoded.
pub const MAX_TICKET_BYTES: usize = 1024;

/// What a ticket vouches for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamClaims {
    /// Twilio's CallSid.
    #[serde(rename = "s")]
    pub call_sid: String,
    /// The config version pinned for the call.
    #[serde(rename = "v")]
    pub config_version: String,
    /// The caller's number (`From`).
    #[serde(rename = "f")]
    pub caller: String,
    /// The called number (`To`).
    #[serde(rename = "t")]
    pub callee: String,
    /// The campaign attempt of an outbound call; empty for an inbound one.
    #[serde(rename = "a", default, skip_serializing_if = "String::is_empty")]
    pub attempt: String,
}

/// A ticket that verified: its claims and when it expires (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// What it vouches for.
    pub claims: StreamClaims,
    /// Its expiry.
    pub expires: i64,
}

/// Why a ticket was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `<claims>.<expiry>.<mac>`, or too long.
    #[error("malformed stream ticket")]
    Malformed,
    /// The MAC does not match the claims.
    #[error("stream ticket does not match its claims")]
    Mismatch,
    /// Past its expiry.
    #[error("stream ticket expired")]
    Expired,
}

/// A stream secret: the key of every ticket (kept as a keyed HMAC, cloned
/// per ticket).
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

    fn mac(&self, claims: &StreamClaims, expires: i64) -> HmacSha256 {
        let mut mac = self.0.clone();
        // Length-prefixed fields: no value can shift bytes into another.
        for field in [
            &claims.call_sid,
            &claims.config_version,
            &claims.caller,
            &claims.callee,
            &claims.attempt,
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac.update(&expires.to_be_bytes());
        mac
    }

    /// A ticket for `claims`, valid until `now + TOKEN_TTL_SECONDS` (Unix
    /// seconds); URL-safe, for a path segment.
    pub fn issue(&self, claims: &StreamClaims, now: i64) -> String {
        let expires = now + TOKEN_TTL_SECONDS;
        let tag = self.mac(claims, expires).finalize().into_bytes();
        // Serialising plain strings cannot fail.
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        format!(
            "{}.{expires}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Opens `ticket` at `now` (Unix seconds): its claims when the MAC
    /// matches (checked in constant time) and it has not expired.
    pub fn open(&self, ticket: &str, now: i64) -> Result<Ticket, TokenError> {
        if ticket.len() > MAX_TICKET_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = ticket.split('.');
        let (Some(payload), Some(expires), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        let claims: StreamClaims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Malformed)?;
        self.mac(&claims, expires)
            .verify_slice(&tag)
            .map_err(|_| TokenError::Mismatch)?;
        if now > expires {
            return Err(TokenError::Expired);
        }
        Ok(Ticket { claims, expires })
    }
}

/// The most tickets remembered as spent: a minute of tickets at a rate no
/// pod reaches; when full, new streams are refused rather than a ticket
/// forgotten early.
pub const MAX_SPENT_TICKETS: usize = 100_000;

/// Tickets already used on this pod, until they expire: a ticket opens one
/// stream, so one copied off the wire within its minute is worthless here.
#[derive(Debug, Default)]
pub struct SpentTickets(std::sync::Mutex<Spent>);

#[derive(Debug, Default)]
struct Spent {
    calls: std::collections::HashSet<String>,
    /// The same CallSids by expiry; tickets live a fixed TTL, so spending
    /// order is expiry order (near enough: a ticket forgotten a moment late
    /// costs nothing, one forgotten early would be replayable, and cannot
    /// be, since it has expired).
    by_expiry: std::collections::VecDeque<(i64, String)>,
}

impl SpentTickets {
    /// Marks `ticket` spent at `now`; false when it already was (or the set
    /// is full of live tickets). Expired tickets are forgotten first: they
    /// no longer open a stream anyway.
    pub fn spend(&self, ticket: &Ticket, now: i64) -> bool {
        let mut spent = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while spent
            .by_expiry
            .front()
            .is_some_and(|(expires, _)| *expires < now)
        {
            if let Some((_, call)) = spent.by_expiry.pop_front() {
                spent.calls.remove(&call);
            }
        }
        let call = &ticket.claims.call_sid;
        if spent.calls.len() >= MAX_SPENT_TICKETS || spent.calls.contains(call) {
            return false;
        }
        spent.calls.insert(call.clone());
        spent.by_expiry.push_back((ticket.expires, call.clone()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> StreamClaims {
        StreamClaims {
            call_sid: "CA123".to_owned(),
            config_version: "sha256:abc".to_owned(),
            caller: "+61400000000".to_owned(),
            callee: "+61290001234".to_owned(),
            attempt: String::new(),
        }
    }

    fn secret() -> StreamSecret {
        StreamSecret::new(b"0123456789abcdef-secret").unwrap()
    }

    /// `ticket` with its claims replaced by `claims`, MAC kept.
    fn with_claims(ticket: &str, claims: &StreamClaims) -> String {
        let (_, rest) = ticket.split_once('.').unwrap();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
        format!("{payload}.{rest}")
    }

    #[test]
    fn a_ticket_opens_to_its_own_claims_only() {
        let ticket = secret().issue(&claims(), 1_000);
        assert!(ticket.len() < MAX_TICKET_BYTES);
        assert!(
            ticket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{ticket} fits a path segment"
        );
        assert_eq!(
            secret().open(&ticket, 1_030),
            Ok(Ticket {
                claims: claims(),
                expires: 1_000 + TOKEN_TTL_SECONDS
            })
        );
        let other = StreamClaims {
            config_version: "sha256:def".to_owned(),
            ..claims()
        };
        assert_eq!(
            secret().open(&with_claims(&ticket, &other), 1_030),
            Err(TokenError::Mismatch)
        );
        let shifted = StreamClaims {
            call_sid: "CA12".to_owned(),
            config_version: "3sha256:abc".to_owned(),
            ..claims()
        };
        assert_eq!(
            secret().open(&with_claims(&ticket, &shifted), 1_030),
            Err(TokenError::Mismatch)
        );
        // An inbound call's ticket cannot be passed off as a campaign's.
        let outbound = StreamClaims {
            attempt: "5f0c6c1e-8c1a-4c55-9b8e-0b4f7d1c2a3b".to_owned(),
            ..claims()
        };
        assert_eq!(
            secret().open(&with_claims(&ticket, &outbound), 1_030),
            Err(TokenError::Mismatch)
        );
    }

    #[test]
    fn tickets_expire_need_the_secret_and_are_bounded() {
        let ticket = secret().issue(&claims(), 1_000);
        assert_eq!(
            secret().open(&ticket, 1_000 + TOKEN_TTL_SECONDS + 1),
            Err(TokenError::Expired)
        );
        let other = StreamSecret::new(b"another-secret-of-16-bytes").unwrap();
        assert_eq!(other.open(&ticket, 1_000), Err(TokenError::Mismatch));
        // Moving the expiry invalidates the MAC.
        let parts: Vec<&str> = ticket.split('.').collect();
        assert_eq!(
            secret().open(&format!("{}.999999.{}", parts[0], parts[2]), 1_000),
            Err(TokenError::Mismatch)
        );
        for garbage in ["garbage", "a.b", "a.1.c.d", "!!.1.AAAA", &"A".repeat(5_000)] {
            assert_eq!(
                secret().open(garbage, 1_000),
                Err(TokenError::Malformed),
                "{garbage}"
            );
        }
    }

    #[test]
    fn a_ticket_is_spent_once() {
        let spent = SpentTickets::default();
        let ticket = secret()
            .open(&secret().issue(&claims(), 1_000), 1_000)
            .unwrap();
        assert!(spent.spend(&ticket, 1_001));
        assert!(!spent.spend(&ticket, 1_002), "replayed");
        let another = Ticket {
            claims: StreamClaims {
                call_sid: "CA456".to_owned(),
                ..claims()
            },
            expires: 1_060,
        };
        assert!(spent.spend(&another, 1_002));
        // Past its expiry the first is forgotten (opening it fails first).
        assert!(spent.spend(&ticket, ticket.expires + 1));
        assert_eq!(
            spent.0.lock().unwrap().calls.len(),
            1,
            "expired ones dropped"
        );
    }

    #[test]
    fn short_secrets_are_refused_and_never_printed() {
        assert_eq!(StreamSecret::new(b" short \n").unwrap_err(), WeakSecret(5));
        let secret = StreamSecret::new(b"0123456789abcdef-secret\n").unwrap();
        assert_eq!(format!("{secret:?}"), "StreamSecret(<redacted>)");
    }
}

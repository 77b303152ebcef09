//! The pod: what every request handler and call shares.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dialtone_crds::objective::Primitive;
use dialtone_spine::writer::EventSink;
use prometheus_client::registry::Registry;

use crate::drain::Drain;
use crate::metrics::Metrics;
use crate::session::CallContext;
use crate::store::Store;
use crate::token::{SpentTickets, StreamSecret};
use crate::vendors::VendorCache;

/// Settings of a pod, from its flags. `Debug` leaves the secrets out.
#[derive(Clone)]
pub struct Settings {
    /// The base URL Twilio reaches this pod at, e.g.
    /// `https://voice.example.com`; webhook signatures are computed over it.
    pub public_url: String,
    /// Where provider credentials are mounted.
    pub credentials_dir: PathBuf,
    /// The key of media stream tokens, shared by every pod of a pool.
    pub stream_secret: StreamSecret,
    /// How long calls may take to finish after SIGTERM.
    pub drain: Duration,
    /// The platform's Twilio auth token, used to verify webhooks for
    /// numbers that route nowhere (no Agent, so no Provider to take a token
    /// from).
    pub default_twilio_token: Option<String>,
    /// Calls this pod carries at once, all tenants together.
    pub max_calls: usize,
    /// TCP connections this pod holds open at once (calls, webhooks,
    /// probes and scrapes).
    pub max_connections: usize,
    /// How long a text call may go without a message before it is closed.
    pub text_idle: Duration,
    /// How long a caller may stay silent, on both channels.
    pub silence: Silence,
}

/// How long a caller may stay silent after the agent finished speaking
/// before the engine gets a silence timeout (the objective's silence policy
/// decides what that does). The Voice Core owns turn-taking, on the phone
/// and on the text channel alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Silence {
    /// Digits and addresses take longer to start saying than yes or no.
    #[default]
    PerPrimitive,
    /// The same for every step (operators tuning a line; tests).
    Fixed(Duration),
}

impl Silence {
    /// The timeout while the engine waits for `expect`.
    pub fn timeout(self, expect: Primitive) -> Duration {
        match self {
            Silence::Fixed(timeout) => timeout,
            Silence::PerPrimitive => Duration::from_secs(match expect {
                Primitive::YesNo | Primitive::Choice => 5,
                Primitive::Name | Primitive::Date | Primitive::Time | Primitive::DateTime => 6,
                Primitive::Phone
                | Primitive::Email
                | Primitive::Address
                | Primitive::Number
                | Primitive::Money => 8,
            }),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so a new field has to be considered here.
        let Settings {
            public_url,
            credentials_dir,
            stream_secret,
            drain,
            default_twilio_token,
            max_calls,
            max_connections,
            text_idle,
            silence,
        } = self;
        f.debug_struct("Settings")
            .field("public_url", public_url)
            .field("credentials_dir", credentials_dir)
            .field("stream_secret", stream_secret)
            .field("drain", drain)
            .field(
                "default_twilio_token",
                &default_twilio_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_calls", max_calls)
            .field("max_connections", max_connections)
            .field("text_idle", text_idle)
            .field("silence", silence)
            .finish()
    }
}

/// Everything shared by the pod's handlers and calls.
pub struct Pod {
    /// Settings.
    pub settings: Settings,
    /// Routes and versions.
    pub store: Store,
    /// The event writer.
    pub events: EventSink,
    /// Metrics.
    pub metrics: Metrics,
    /// The registry the metrics are in.
    pub registry: Registry,
    /// Admission and drain.
    pub drain: Arc<Drain>,
    /// Provider adapters by config version.
    pub vendors: VendorCache,
    /// Stream tickets already used here.
    pub spent_tickets: SpentTickets,
}

impl Pod {
    /// What a call reports to.
    pub fn call_context(&self) -> CallContext {
        CallContext {
            events: self.events.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_leaves_the_secrets_out() {
        let settings = Settings {
            public_url: "https://voice.example.com".to_owned(),
            credentials_dir: PathBuf::from("/var/run/dialtone/credentials"),
            stream_secret: StreamSecret::new(b"stream-secret-0123456789").expect("strong"),
            drain: Duration::from_secs(30),
            default_twilio_token: Some("platform-token-0123456789".to_owned()),
            max_calls: 500,
            max_connections: 2_000,
            text_idle: Duration::from_secs(300),
            silence: Silence::PerPrimitive,
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("platform-token"), "{printed}");
        assert!(!printed.contains("stream-secret"), "{printed}");
        assert!(
            printed.contains("default_twilio_token: Some(\"<redacted>\")"),
            "{printed}"
        );
        assert!(printed.contains("https://voice.example.com"), "{printed}");
    }
}

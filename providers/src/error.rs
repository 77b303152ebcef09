//! The one error type of every adapter.

use std::time::Duration;

use crate::credentials::CredentialsError;

/// What went wrong talking to a vendor. Messages come from the vendor's
/// error body or from the transport; secret values are removed from them
/// before they are stored here, so the error can be logged and put into
/// status conditions as it is.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The vendor rejected the credentials (HTTP 401 or 403).
    #[error("{vendor} rejected the credentials (HTTP {status}{}): {message}", code_suffix(.code))]
    Unauthorized {
        /// Vendor name as in specs (`deepgram`, `twilio` …).
        vendor: &'static str,
        /// 401 or 403.
        status: u16,
        /// The vendor's own error code, when its body carries one.
        code: Option<String>,
        /// The vendor's message.
        message: String,
    },
    /// The resource does not exist (HTTP 404).
    #[error("{vendor} has no such resource (HTTP 404{}): {message}", code_suffix(.code))]
    NotFound {
        /// Vendor name.
        vendor: &'static str,
        /// The vendor's own error code.
        code: Option<String>,
        /// The vendor's message.
        message: String,
    },
    /// Too many requests (HTTP 429); retry later.
    #[error("{vendor} is rate-limiting requests (HTTP 429{}): {message}", code_suffix(.code))]
    RateLimited {
        /// Vendor name.
        vendor: &'static str,
        /// The vendor's own error code.
        code: Option<String>,
        /// The vendor's message.
        message: String,
        /// The `Retry-After` the vendor asked for, when it did.
        retry_after: Option<Duration>,
    },
    /// The vendor failed (HTTP 5xx); usually transient.
    #[error("{vendor} failed (HTTP {status}{}): {message}", code_suffix(.code))]
    Server {
        /// Vendor name.
        vendor: &'static str,
        /// 500–599.
        status: u16,
        /// The vendor's own error code.
        code: Option<String>,
        /// The vendor's message.
        message: String,
    },
    /// The vendor refused the request for another reason (other HTTP 4xx,
    /// unexpected 3xx).
    #[error("{vendor} refused the request (HTTP {status}{}): {message}", code_suffix(.code))]
    Rejected {
        /// Vendor name.
        vendor: &'static str,
        /// The HTTP status.
        status: u16,
        /// The vendor's own error code.
        code: Option<String>,
        /// The vendor's message.
        message: String,
    },
    /// No answer in time.
    #[error("{vendor} did not answer within {after:?} ({during})")]
    Timeout {
        /// Vendor name.
        vendor: &'static str,
        /// What was being waited for.
        during: &'static str,
        /// The limit that ran out.
        after: Duration,
    },
    /// The vendor could not be reached or the connection broke.
    #[error("could not talk to {vendor}: {message}")]
    Transport {
        /// Vendor name.
        vendor: &'static str,
        /// What the transport reported.
        message: String,
    },
    /// The vendor answered something this adapter does not understand.
    #[error("{vendor} sent an unexpected response: {message}")]
    Protocol {
        /// Vendor name.
        vendor: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// The provider config cannot be used (wrong type for the role, a
    /// required setting missing, an unsupported vendor).
    #[error("{vendor} provider is not usable: {message}")]
    Config {
        /// Vendor name.
        vendor: &'static str,
        /// What is missing or wrong.
        message: String,
    },
    /// The provider's credentials could not be read.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The phone number is not an incoming number of the Twilio account.
    #[error("phone number {number} is not in the Twilio account")]
    NumberNotInAccount {
        /// The E.164 number looked up.
        number: String,
    },
}

impl ProviderError {
    /// The HTTP status the vendor answered, for errors that have one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Unauthorized { status, .. }
            | ProviderError::Server { status, .. }
            | ProviderError::Rejected { status, .. } => Some(*status),
            ProviderError::NotFound { .. } => Some(404),
            ProviderError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (rate limits, vendor
    /// failures, timeouts and broken connections).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Server { .. }
                | ProviderError::Timeout { .. }
                | ProviderError::Transport { .. }
        )
    }
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_deref()
        .map(|c| format!(", code {c}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_vendor_status_and_code() {
        let e = ProviderError::Unauthorized {
            vendor: "twilio",
            status: 401,
            code: Some("20003".into()),
            message: "Authenticate".into(),
        };
        assert_eq!(
            e.to_string(),
            "twilio rejected the credentials (HTTP 401, code 20003): Authenticate"
        );
        assert_eq!(e.status(), Some(401));
        assert!(!e.is_transient());
        let e = ProviderError::RateLimited {
            vendor: "openai",
            code: None,
            message: "slow down".into(),
            retry_after: None,
        };
        assert_eq!(
            e.to_string(),
            "openai is rate-limiting requests (HTTP 429): slow down"
        );
        assert!(e.is_transient());
    }
}

//! TwiML answers to Twilio's voice webhook. Pure string building: what the
//! caller hears and where the audio goes is decided here and nowhere else.

/// What an unknown number hears before the hang-up. Fixed on purpose: no
/// tenant is known, so nothing tenant-specific (or from the request) may be
/// said.
pub const UNKNOWN_NUMBER_MESSAGE: &str =
    "Sorry, this number is not in service. Please check the number and try again. Goodbye.";

/// What a caller hears when the number's Agent or Tenant is suspended.
pub const SUSPENDED_MESSAGE: &str =
    "Sorry, this service is temporarily unavailable. Please try again later. Goodbye.";

/// Escapes text for an XML attribute value or element body.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even escaped.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// `<Connect><Stream>` to the media WebSocket at `stream_url` (its ticket
/// in the path: nothing the stream's `customParameters` say is trusted, so
/// none are sent).
pub fn connect_stream(stream_url: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect><Stream url=\"{}\" /></Connect></Response>",
        escape(stream_url)
    )
}

/// The fixed message for a number that routes nowhere, then a hang-up.
pub fn say_and_hang_up() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{}</Say><Hangup/></Response>",
        escape(UNKNOWN_NUMBER_MESSAGE)
    )
}

/// `text` said, then a hang-up (a voicemail left by a campaign call).
pub fn say_then_hang_up(text: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{}</Say><Hangup/></Response>",
        escape(text)
    )
}

/// An immediate hang-up.
pub fn hang_up() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Hangup/></Response>".to_owned()
}

/// The media WebSocket URL of a stream ticket for a public base URL:
/// `https` becomes `wss`, `http` becomes `ws` (local development), and the
/// path is appended to whatever path prefix the base has.
pub fn media_url(public_url: &str, ticket: &str) -> String {
    let base = public_url.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{base}/twilio/media/{ticket}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_twiml_names_only_the_url() {
        let xml = connect_stream("wss://voice.example/twilio/media/e30.1.x?a=1&b=<2>");
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect>\
             <Stream url=\"wss://voice.example/twilio/media/e30.1.x?a=1&amp;b=&lt;2&gt;\" />\
             </Connect></Response>"
        );
    }

    #[test]
    fn unknown_numbers_hear_the_fixed_message() {
        let xml = say_and_hang_up();
        assert!(xml.contains("<Say>Sorry, this number is not in service."));
        assert!(xml.ends_with("</Say><Hangup/></Response>"));
    }

    #[test]
    fn media_urls_follow_the_scheme() {
        assert_eq!(
            media_url("https://voice.example/", "T"),
            "wss://voice.example/twilio/media/T"
        );
        assert_eq!(
            media_url("http://127.0.0.1:8080/pool-a", "T"),
            "ws://127.0.0.1:8080/pool-a/twilio/media/T"
        );
    }

    #[test]
    fn control_characters_are_dropped() {
        assert_eq!(escape("a\u{0}b\tc"), "ab\tc");
    }
}

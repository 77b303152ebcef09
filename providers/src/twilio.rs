//! Twilio: the `X-Twilio-Signature` of webhooks, and (in [`rest`]) the REST
//! call that points a phone number at a voice webhook.
//!
//! Twilio signs a webhook with HMAC-SHA1, keyed by the account's auth
//! token, over the full URL it requested followed by every POST parameter
//! name and value, sorted by name, with no separators; the header carries
//! the digest in base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;

pub mod rest;

type HmacSha1 = Hmac<Sha1>;

/// The header Twilio puts the signature in.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    // HMAC takes keys of any length (long ones are hashed), so the
    // length error of the generic constructor cannot happen here.
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(url.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name; repeated names by value, as Twilio's helper libraries do.
    sorted.sort();
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// The signature Twilio sends for a request to `url` (exactly as Twilio
/// requested it, query string included) with the form `params`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `signature` is Twilio's for this request. The comparison takes
/// the same time wherever the signatures differ. As Twilio's helper
/// libraries do, the URL is also tried with the default port added or
/// removed (`https://host/x` and `https://host:443/x`), since proxies in
/// front of the webhook change it.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(given) = BASE64.decode(signature.trim()) else {
        return false;
    };
    let mut candidates = vec![url.to_owned()];
    candidates.extend(port_variant(url));
    // Every candidate is checked, so the time does not depend on which one
    // matched.
    candidates.iter().fold(false, |ok, candidate| {
        mac(auth_token, candidate, params)
            .verify_slice(&given)
            .is_ok()
            | ok
    })
}

/// `url` with its port removed when it has one, else with the scheme's
/// default port added. `None` for URLs without an authority.
fn port_variant(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The host starts after any user info; an IPv6 host ends with ']'.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    let port_colon = host_port
        .rfind(':')
        .filter(|&i| !host_port[i..].contains(']'));
    let authority = match port_colon {
        Some(i) => format!("{}{}", &authority[..host_start], &host_port[..i]),
        None => {
            let port = match scheme.to_ascii_lowercase().as_str() {
                "https" | "wss" => 443,
                "http" | "ws" => 80,
                _ => return None,
            };
            format!("{authority}:{port}")
        }
    };
    Some(format!("{scheme}://{authority}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The worked example of Twilio's "Webhooks security" guide.
    const DOC_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const DOC_SIGNATURE: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
    fn doc_params() -> Vec<(String, String)> {
        // Deliberately not in sorted order.
        params(&[
            ("To", "+18005551212"),
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("Caller", "+12349013030"),
        ])
    }

    #[test]
    fn twilios_documented_example() {
        assert_eq!(signature("12345", DOC_URL, &doc_params()), DOC_SIGNATURE);
        assert!(verify("12345", DOC_URL, &doc_params(), DOC_SIGNATURE));
    }

    #[test]
    fn tampering_with_anything_fails_verification() {
        let mut tampered = doc_params();
        tampered[2].1 = "9999".into();
        assert!(!verify("12345", DOC_URL, &tampered, DOC_SIGNATURE));
        assert!(!verify(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &doc_params(),
            DOC_SIGNATURE
        ));
        assert!(!verify("54321", DOC_URL, &doc_params(), DOC_SIGNATURE));
        let mut extra = doc_params();
        extra.push(("Extra".into(), "1".into()));
        assert!(!verify("12345", DOC_URL, &extra, DOC_SIGNATURE));
        assert!(!verify(
            "12345",
            DOC_URL,
            &doc_params(),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ"
        ));
        assert!(!verify("12345", DOC_URL, &doc_params(), "not base64!"));
        assert!(!verify("12345", DOC_URL, &doc_params(), ""));
    }

    #[test]
    fn the_default_port_may_be_added_or_removed_by_a_proxy() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert!(verify("12345", with_port, &doc_params(), DOC_SIGNATURE));
        let signed_with_port = signature("12345", with_port, &doc_params());
        assert!(verify("12345", DOC_URL, &doc_params(), &signed_with_port));
        // Another host is still another URL.
        assert!(!verify(
            "12345",
            "https://mycompany.org/myapp.php?foo=1&bar=2",
            &doc_params(),
            DOC_SIGNATURE
        ));
    }

    #[test]
    fn port_variants() {
        assert_eq!(
            port_variant("https://a.example/x?y=1").as_deref(),
            Some("https://a.example:443/x?y=1")
        );
        assert_eq!(
            port_variant("http://a.example:8080").as_deref(),
            Some("http://a.example")
        );
        assert_eq!(
            port_variant("https://u:p@[::1]:8443/x").as_deref(),
            Some("https://u:p@[::1]/x")
        );
        assert_eq!(
            port_variant("https://u:p@[::1]/x").as_deref(),
            Some("https://u:p@[::1]:443/x")
        );
        assert_eq!(port_variant("mailto:x@example.com"), None);
    }

    #[test]
    fn repeated_names_are_ordered_by_value() {
        let a = params(&[("A", "2"), ("A", "1")]);
        let b = params(&[("A", "1"), ("A", "2")]);
        assert_eq!(
            signature("t", "https://x", &a),
            signature("t", "https://x", &b)
        );
        assert_ne!(
            signature("t", "https://x", &a),
            signature("t", "https://x", &[])
        );
    }
}

//! Names and labels of what the Agent controller creates. Agent names are
//! DNS subdomains of up to 253 characters; Services need DNS labels of at
//! most 63 and label values at most 63, so long or dotted names are
//! shortened with a hash of the full name (stable and collision-resistant).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::{MANAGED_BY, MANAGED_BY_LABEL, TENANT_LABEL};

/// The label naming the Agent an object belongs to.
pub const AGENT_LABEL: &str = "dialtone.io/agent";
/// The label naming the shared voice pool an object belongs to.
pub const POOL_LABEL: &str = "dialtone.io/voice-pool";
/// The label carrying the first 16 hex digits of a config version's hash.
pub const VERSION_LABEL: &str = "dialtone.io/config-version";
/// The annotation carrying a config version's full hash.
pub const VERSION_ANNOTATION: &str = "dialtone.io/config-version";
/// `app.kubernetes.io/name` of voice pods and their objects.
pub const VOICE_APP: &str = "dialtone-voice";
/// The standard name label.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The standard instance label.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// The standard component label.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..8])
}

/// Whether `s` is an RFC 1035 label (what a Service name must be).
pub fn is_dns1035_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `s` when it is a valid label value, else a prefix of it plus a hash.
pub fn label_value(s: &str) -> String {
    let valid = s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        return s.to_owned();
    }
    let prefix: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    let prefix = prefix.trim_matches('-');
    if prefix.is_empty() {
        format!("h{}", short_hash(s))
    } else {
        format!("{prefix}-{}", short_hash(s))
    }
}

/// The name of an Agent's Deployment, Service, PodDisruptionBudget and
/// HorizontalPodAutoscaler: `<agent>-voice`, or `voice-<hash>` when that
/// is not a DNS label.
pub fn voice_name(agent: &str) -> String {
    let name = format!("{agent}-voice");
    if is_dns1035_label(&name) {
        name
    } else {
        format!("voice-{}", short_hash(agent))
    }
}

/// The ConfigMap of a config version: `<agent>-<short hash>`.
pub fn configmap_name(agent: &str, short: &str) -> String {
    // A ConfigMap name is a DNS subdomain of at most 253 characters.
    let room = 253 - short.len() - 1;
    let agent = if agent.len() > room {
        agent[..room].trim_end_matches(['-', '.'])
    } else {
        agent
    };
    format!("{agent}-{short}")
}

/// The first 16 hex digits of a config version's hash.
pub fn short_version(hash: &str) -> &str {
    let hex = hash.strip_prefix("sha256:").unwrap_or(hash);
    &hex[..hex.len().min(16)]
}

/// The name of the pool's copy of a provider's credentials:
/// `<pool>-cred-<hash of scope/provider>`.
pub fn mirror_name(pool: &str, scope: &str, provider: &str) -> String {
    let hash = short_hash(&format!("{scope}/{provider}"));
    let pool = if pool.len() > 200 { &pool[..200] } else { pool };
    format!("{pool}-cred-{hash}")
}

/// Labels of every object made for the Agent `agent` of `tenant`.
pub fn agent_labels(tenant: &str, agent: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        (TENANT_LABEL.to_owned(), label_value(tenant)),
        (AGENT_LABEL.to_owned(), label_value(agent)),
    ])
}

/// Labels selecting the voice pods of a Deployment named `instance`.
pub fn voice_selector(instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_owned(), VOICE_APP.to_owned()),
        (INSTANCE_LABEL.to_owned(), label_value(instance)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_valid_names_are_kept() {
        assert_eq!(voice_name("reception"), "reception-voice");
        assert_eq!(label_value("reception"), "reception");
        assert_eq!(
            configmap_name("reception", "0123456789abcdef"),
            "reception-0123456789abcdef"
        );
        assert_eq!(
            short_version("sha256:0123456789abcdef99"),
            "0123456789abcdef"
        );
    }

    #[test]
    fn long_or_dotted_names_are_hashed_into_valid_ones() {
        let long = "a".repeat(80);
        let v = voice_name(&long);
        assert!(is_dns1035_label(&v), "{v}");
        assert_ne!(voice_name(&long), voice_name(&"a".repeat(81)));
        assert!(is_dns1035_label(&voice_name("front.desk")));
        assert!(is_dns1035_label(&voice_name("1st-line")));
        let l = label_value(&long);
        assert!(l.len() <= 63, "{l}");
        assert_ne!(l, label_value(&"a".repeat(81)));
        let cm = configmap_name(&"b".repeat(253), "0123456789abcdef");
        assert!(cm.len() <= 253);
        assert!(cm.ends_with("-0123456789abcdef"));
    }

    #[test]
    fn mirrors_are_named_per_scope_and_provider() {
        let a = mirror_name("dialtone-voice-pool", "tenant-a", "twilio");
        assert!(a.starts_with("dialtone-voice-pool-cred-"));
        assert_ne!(a, mirror_name("dialtone-voice-pool", "tenant-b", "twilio"));
        assert_ne!(
            a,
            mirror_name(
                "dialtone-voice-pool",
                super::super::resolve::CLUSTER_SCOPE,
                "twilio"
            )
        );
        // A tenant namespace called `cluster` gets its own copy, never the
        // platform's.
        assert_ne!(
            mirror_name("dialtone-voice-pool", "cluster", "twilio"),
            mirror_name(
                "dialtone-voice-pool",
                super::super::resolve::CLUSTER_SCOPE,
                "twilio"
            )
        );
    }
}

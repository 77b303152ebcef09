//! Kubernetes Events (`events.k8s.io/v1`) for the objects the operator
//! reconciles, with repeats folded into a series.
//!
//! kube's `Recorder` keeps every Event it published for six minutes, whole,
//! and scans them all on each publish: with thousands of Agents announcing
//! each pipeline stage that cache was most of the operator's memory and
//! grew its CPU per Event with the fleet. Here only a digest of each recent
//! Event is kept (its name and count), the set is bounded, and a repeat
//! within [`SERIES_WINDOW`] patches the first Event's series instead of
//! creating another object.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as KubeEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

pub use kube::runtime::events::{Event, EventType};

/// Repeats closer together than this extend the first Event's series, as
/// client-go's recorder does.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// How many recent Events are remembered for series. Beyond this the oldest
/// are forgotten, and a repeat of one becomes a new Event: more objects in
/// the API, never more memory here.
pub const RECENT_CAPACITY: usize = 4096;

/// Publishes Events as one controller of one operator instance. Clones
/// share the recent Events.
#[derive(Clone)]
pub struct EventRecorder {
    client: Client,
    controller: Arc<str>,
    instance: Arc<str>,
    recent: Arc<Mutex<Recent>>,
}

impl EventRecorder {
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        Self {
            client,
            controller: controller.into(),
            instance: instance.into(),
            recent: Arc::new(Mutex::new(Recent::new(RECENT_CAPACITY, SERIES_WINDOW))),
        }
    }

    /// Creates an Event about `regarding`, or counts a repeat of a recent
    /// one in its series.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), namespace);
        let key = digest(event, regarding);
        let repeat = self.lock().repeat(key, Instant::now());
        match repeat {
            Some(Repeat { name, count }) => {
                let series = serde_json::json!({
                    "series": EventSeries {
                        count,
                        last_observed_time: MicroTime(Timestamp::now()),
                    }
                });
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                    .await
                {
                    Ok(_) => Ok(()),
                    // Deleted meanwhile (Events expire): start a new one.
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        self.lock().forget(key);
                        self.create(&api, event, regarding, key).await
                    }
                    Err(err) => Err(err),
                }
            }
            None => self.create(&api, event, regarding, key).await,
        }
    }

    async fn create(
        &self,
        api: &Api<KubeEvent>,
        event: &Event,
        regarding: &ObjectReference,
        key: u64,
    ) -> Result<(), kube::Error> {
        let object = self.object(event, regarding, key);
        let created = api.create(&PostParams::default(), &object).await?;
        if let Some(name) = created.metadata.name {
            self.lock().record(key, name, Instant::now());
        }
        Ok(())
    }

    fn object(&self, event: &Event, regarding: &ObjectReference, key: u64) -> KubeEvent {
        let now = Timestamp::now();
        let name = event_name(
            regarding.name.as_deref().unwrap_or("object"),
            now.as_nanosecond(),
            key,
        );
        KubeEvent {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.controller.to_string()),
            reporting_instance: Some(self.instance.to_string()),
            ..KubeEvent::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        // The digests are only an optimisation: a panic elsewhere while
        // holding the lock leaves them usable.
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `<object>.<hex>`, as client-go names Events: the time in nanoseconds,
/// mixed with the occurrence so two Events in the same nanosecond differ.
/// (The apiserver rejects a `generateName` ending in a dot.) Within the 253
/// characters of a DNS subdomain, and ending alphanumeric.
fn event_name(subject: &str, nanos: i128, key: u64) -> String {
    const MAX: usize = 253;
    let suffix = format!("{:x}", (nanos as u64) ^ key.rotate_left(32));
    let room = MAX - 1 - suffix.len();
    let mut cut = subject.len().min(room);
    while !subject.is_char_boundary(cut) {
        cut -= 1;
    }
    let subject = subject[..cut].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{subject}.{suffix}")
}

/// What makes two Events the same occurrence.
fn digest(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = DefaultHasher::new();
    regarding.uid.hash(&mut h);
    regarding.namespace.hash(&mut h);
    regarding.name.hash(&mut h);
    regarding.kind.hash(&mut h);
    matches!(event.type_, EventType::Warning).hash(&mut h);
    event.reason.hash(&mut h);
    event.action.hash(&mut h);
    event.note.hash(&mut h);
    h.finish()
}

/// A repeat to record in an existing Event's series.
#[derive(Debug, PartialEq, Eq)]
struct Repeat {
    name: String,
    count: i32,
}

struct Seen {
    name: String,
    count: i32,
    last: Instant,
}

/// The recently published Events, by digest: bounded in number and age.
struct Recent {
    capacity: usize,
    window: Duration,
    seen: HashMap<u64, Seen>,
}

impl Recent {
    fn new(capacity: usize, window: Duration) -> Self {
        Self {
            capacity,
            window,
            seen: HashMap::new(),
        }
    }

    /// The Event to extend when `key` was published within the window.
    fn repeat(&mut self, key: u64, now: Instant) -> Option<Repeat> {
        let window = self.window;
        let seen = self
            .seen
            .get_mut(&key)
            .filter(|s| now.duration_since(s.last) < window)?;
        seen.count = seen.count.saturating_add(1);
        seen.last = now;
        Some(Repeat {
            name: seen.name.clone(),
            count: seen.count,
        })
    }

    fn record(&mut self, key: u64, name: String, now: Instant) {
        if self.seen.len() >= self.capacity && !self.seen.contains_key(&key) {
            let window = self.window;
            self.seen.retain(|_, s| now.duration_since(s.last) < window);
            if self.seen.len() >= self.capacity {
                // Still full of recent Events: forget the oldest. O(capacity),
                // only when full.
                if let Some(oldest) = self
                    .seen
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(k, _)| *k)
                {
                    self.seen.remove(&oldest);
                }
            }
        }
        self.seen.insert(
            key,
            Seen {
                name,
                count: 1,
                last: now,
            },
        );
    }

    fn forget(&mut self, key: u64) {
        self.seen.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(360);

    #[test]
    fn a_repeat_within_the_window_extends_the_series() {
        let mut recent = Recent::new(8, WINDOW);
        let t0 = Instant::now();
        assert_eq!(recent.repeat(1, t0), None, "never published");
        recent.record(1, "agent-a.x1".into(), t0);
        assert_eq!(
            recent.repeat(1, t0 + Duration::from_secs(10)),
            Some(Repeat {
                name: "agent-a.x1".into(),
                count: 2
            })
        );
        // The window runs from the last repeat, not the first Event.
        assert_eq!(
            recent.repeat(
                1,
                t0 + Duration::from_secs(10) + WINDOW - Duration::from_secs(1)
            ),
            Some(Repeat {
                name: "agent-a.x1".into(),
                count: 3
            })
        );
        assert_eq!(recent.repeat(2, t0), None, "another occurrence");
    }

    #[test]
    fn an_old_event_is_not_extended() {
        let mut recent = Recent::new(8, WINDOW);
        let t0 = Instant::now();
        recent.record(1, "agent-a.x1".into(), t0);
        assert_eq!(recent.repeat(1, t0 + WINDOW), None);
    }

    #[test]
    fn memory_is_bounded_by_capacity() {
        let mut recent = Recent::new(3, WINDOW);
        let t0 = Instant::now();
        for key in 0..10u64 {
            recent.record(key, format!("e{key}"), t0 + Duration::from_secs(key));
            assert!(recent.seen.len() <= 3);
        }
        // The newest three are kept, the oldest forgotten first.
        let later = t0 + Duration::from_secs(20);
        assert!(recent.repeat(9, later).is_some());
        assert!(recent.repeat(7, later).is_some());
        assert!(recent.repeat(6, later).is_none());
    }

    #[test]
    fn expired_events_make_room_before_recent_ones_are_forgotten() {
        let mut recent = Recent::new(2, WINDOW);
        let t0 = Instant::now();
        recent.record(1, "old".into(), t0);
        recent.record(2, "recent".into(), t0 + WINDOW);
        recent.record(3, "new".into(), t0 + WINDOW + Duration::from_secs(1));
        let now = t0 + WINDOW + Duration::from_secs(2);
        assert!(recent.repeat(2, now).is_some(), "recent one kept");
        assert!(recent.repeat(3, now).is_some());
        assert!(recent.repeat(1, now).is_none());
    }

    fn is_dns_subdomain(name: &str) -> bool {
        name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    }

    #[test]
    fn event_names_are_valid_and_distinct() {
        let nanos = 1_795_000_000_123_456_789_i128;
        let name = event_name("reception", nanos, 7);
        assert!(name.starts_with("reception."), "{name}");
        assert!(is_dns_subdomain(&name), "{name}");
        assert_ne!(name, event_name("reception", nanos, 8), "same instant");
        assert_ne!(name, event_name("reception", nanos + 1, 7), "next instant");
        // A name at the limit is cut, and never left ending in '-' or '.'.
        let long = format!("{}-b.{}", "a".repeat(230), "c".repeat(22));
        let cut = event_name(&long, nanos, u64::MAX);
        assert!(is_dns_subdomain(&cut), "{cut}");
        assert!(cut.len() <= 253);
    }

    #[test]
    fn the_digest_tells_occurrences_apart() {
        let regarding = ObjectReference {
            kind: Some("Agent".into()),
            namespace: Some("ns".into()),
            name: Some("a".into()),
            uid: Some("u1".into()),
            ..ObjectReference::default()
        };
        let compiled = |note: &str| Event {
            type_: EventType::Normal,
            reason: "Compiled".into(),
            note: Some(note.into()),
            action: "Compile".into(),
            secondary: None,
        };
        let event = compiled("compiled to sha256:1");
        let same = digest(&event, &regarding);
        assert_eq!(same, digest(&compiled("compiled to sha256:1"), &regarding));
        assert_ne!(same, digest(&compiled("compiled to sha256:2"), &regarding));
        let other_object = ObjectReference {
            uid: Some("u2".into()),
            ..regarding.clone()
        };
        assert_ne!(same, digest(&event, &other_object));
    }
}

//! Cached watches of what Agents depend on, emitting an object only when it
//! changed in a way that matters (its key) or was deleted. Unlike
//! `predicate_filter`, deletions always pass: an Agent must notice that an
//! Objective it names is gone.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// A watch of `api` into a store, whose stream yields objects whose `key`
/// changed, and deleted objects. `strip` removes what the operator never
/// reads before the object is cached.
pub fn dependency_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    key: fn(&K) -> u64,
    strip: fn(&mut K),
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let stream = watcher(api, config.page_size(100))
        .default_backoff()
        .modify(strip)
        .reflect(writer)
        .filter_map(move |event| {
            let out = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    let k = key(&o);
                    match seen.insert(identity(&o), k) {
                        Some(before) if before == k => None,
                        _ => Some(Ok(o)),
                    }
                }
                Ok(watcher::Event::Delete(o)) => {
                    seen.remove(&identity(&o));
                    Some(Ok(o))
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(out)
        })
        .boxed();
    (reader, stream)
}

fn identity<K: Resource>(o: &K) -> String {
    o.uid()
        .unwrap_or_else(|| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
}

/// Drops `managedFields` (most of an object's bytes; never read).
pub fn strip_managed<K: Resource>(o: &mut K) {
    o.managed_fields_mut().clear();
}

/// For Secret metadata: drops `managedFields` and every annotation but the
/// operator's own. `kubectl apply` keeps a Secret's whole data in the
/// `last-applied-configuration` annotation, and no secret value may be
/// cached.
pub fn strip_secret<K: Resource>(o: &mut K) {
    o.managed_fields_mut().clear();
    o.annotations_mut()
        .retain(|k, _| k.starts_with("dialtone.io/"));
}

/// The generation: spec changes only.
pub fn generation<K: Resource>(o: &K) -> u64 {
    o.meta()
        .generation
        .and_then(|g| u64::try_from(g).ok())
        .unwrap_or(0)
}

/// Any change at all.
pub fn resource_version<K: Resource>(o: &K) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    o.meta().resource_version.hash(&mut h);
    h.finish()
}

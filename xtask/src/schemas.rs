//! JSON schemas for kubeconform, generated from the test apiserver's
//! OpenAPI v2 document (built-in kinds plus every installed CRD).
//!
//! Layout: `<dir>/_definitions.json` holds every definition; each kind gets
//! `<dir>/<group>/<kind>-<version>.json` (the core group is `v1`), a `$ref`
//! into it — the layout kubeconform's `-schema-location` template
//! `{{ .Group }}/{{ .ResourceKind }}-{{ .ResourceAPIVersion }}.json` finds.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use crate::cmd;
use crate::testenv::Env;

/// The `-schema-location` template for a directory written by [`generate`].
pub fn location(dir: &Path) -> String {
    format!(
        "{}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}-{{{{ .ResourceAPIVersion }}}}.json",
        dir.display()
    )
}

pub fn generate(env: &Env, dir: &Path) -> Result<()> {
    let raw = cmd::output(env.kubectl()?.args(["get", "--raw=/openapi/v2"]))
        .context("fetching /openapi/v2 from the test apiserver")?;
    let openapi: Value = serde_json::from_str(&raw).context("parsing /openapi/v2")?;
    let definitions = openapi
        .get("definitions")
        .and_then(Value::as_object)
        .context("/openapi/v2 has no definitions")?;

    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let definitions_file = dir.join("_definitions.json");
    let base = format!("file://{}", definitions_file.display());

    let mut converted = Map::new();
    for (name, schema) in definitions {
        let mut schema = schema.clone();
        strict(&mut schema, &base);
        if name == "io.k8s.apimachinery.pkg.api.resource.Quantity" {
            schema = json!({"oneOf": [{"type": "string"}, {"type": "number"}]});
        }
        converted.insert(name.clone(), schema);
    }
    let text = serde_json::to_string(&json!({ "definitions": converted }))
        .context("serialising the definitions")?;
    fs::write(&definitions_file, text)
        .with_context(|| format!("writing {}", definitions_file.display()))?;

    let mut kinds = 0;
    for (name, schema) in definitions {
        let Some(gvks) = schema
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
        else {
            continue;
        };
        for gvk in gvks {
            let field = |key: &str| gvk.get(key).and_then(Value::as_str).unwrap_or_default();
            let (group, version, kind) = (field("group"), field("version"), field("kind"));
            if kind.is_empty() || version.is_empty() {
                continue;
            }
            // kubeconform's `.Group` is the apiVersion's group, or the version for core.
            let group_dir = if group.is_empty() { version } else { group };
            let file = dir
                .join(group_dir)
                .join(format!("{}-{version}.json", kind.to_lowercase()));
            if let Some(parent) = file.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let reference = json!({ "$ref": format!("{base}#/definitions/{name}") });
            fs::write(&file, reference.to_string())
                .with_context(|| format!("writing {}", file.display()))?;
            kinds += 1;
        }
    }
    println!("generated {kinds} kubeconform schemas in {}", dir.display());
    Ok(())
}

/// Makes a schema usable standalone and strict: refs point into the
/// definitions file, objects reject unknown fields, int-or-string accepts both.
fn strict(schema: &mut Value, base: &str) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref")
                && let Some(name) = reference.strip_prefix("#/definitions/")
            {
                *reference = format!("{base}#/definitions/{name}");
            }
            if map.get("format").and_then(Value::as_str) == Some("int-or-string") {
                map.remove("type");
                map.remove("format");
                map.insert(
                    "oneOf".into(),
                    json!([{"type": "string"}, {"type": "integer"}]),
                );
            }
            let preserves_unknown = map
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !preserves_unknown
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (key, value) in map.iter_mut() {
                match (key.as_str(), value) {
                    // Data, not schemas.
                    ("enum" | "example" | "default", _) => {}
                    // Keys are field names; only the values are schemas.
                    ("properties", Value::Object(fields)) => {
                        fields.values_mut().for_each(|field| strict(field, base));
                    }
                    (_, value) => strict(value, base),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| strict(item, base)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_rewrites_refs_and_closes_objects() {
        let mut schema = json!({
            "type": "object",
            "properties": {
                "spec": {"$ref": "#/definitions/a.B"},
                "port": {"type": "string", "format": "int-or-string"}
            }
        });
        strict(&mut schema, "file:///x/_definitions.json");
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(
            schema["properties"]["spec"]["$ref"],
            json!("file:///x/_definitions.json#/definitions/a.B")
        );
        assert!(schema["properties"]["port"].get("oneOf").is_some());
    }

    #[test]
    fn strict_keeps_open_objects_open() {
        let mut schema = json!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"a": {"type": "string"}}
        });
        strict(&mut schema, "file:///x");
        assert!(schema.get("additionalProperties").is_none());
    }
}

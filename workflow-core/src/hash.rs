//! Content hashing: the step input hash, sha256 over the step's canonical
//! definition and its upstream outputs.
//!
//! Canonical JSON here is serde_json's `Value` printed compactly: object keys
//! come out sorted (serde_json's map is a `BTreeMap` unless its
//! `preserve_order` feature is on, which this workspace does not enable).

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// sha256 (hex) over the canonical definition, then each upstream's name and
/// canonical output in name order, each part length-prefixed so no two
/// different inputs can concatenate to the same bytes.
pub fn input_hash(definition: &Value, upstream: &BTreeMap<String, Value>) -> String {
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    part(canonical(definition).as_bytes());
    for (name, out) in upstream {
        part(name.as_bytes());
        part(canonical(out).as_bytes());
    }
    hex::encode(h.finalize())
}

/// The canonical (sorted keys, compact) text of a JSON value.
pub fn canonical(v: &Value) -> String {
    // Round-tripping through Value sorts keys even if `v` came from a map
    // built in another order.
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":2,"b":1}"#).unwrap();
        assert_eq!(input_hash(&a, &BTreeMap::new()), input_hash(&b, &BTreeMap::new()));
    }

    #[test]
    fn upstream_outputs_change_the_hash() {
        let def = json!({"type": "x"});
        let mut up = BTreeMap::new();
        up.insert("a".to_owned(), json!(1));
        let h1 = input_hash(&def, &up);
        up.insert("a".to_owned(), json!(2));
        assert_ne!(h1, input_hash(&def, &up));
        assert_eq!(h1.len(), 64);
    }

    #[test]
    fn parts_cannot_be_shifted() {
        let def = json!("ab");
        let mut up1 = BTreeMap::new();
        up1.insert("c".to_owned(), json!("d"));
        let mut up2 = BTreeMap::new();
        up2.insert("cd".to_owned(), json!(""));
        assert_ne!(input_hash(&def, &up1), input_hash(&def, &up2));
    }
}

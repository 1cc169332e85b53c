//! What the integration tests share.

use serde_json::Value;

/// A wptreport result's subtests as `(name, status)`.
pub fn statuses(v: &Value) -> Vec<(String, String)> {
    v["subtests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

//! `hookwarden quarantine`: the records of refused requests
//! (`spec.quarantine`), one readable line each.

use serde_json::Value;

/// The stream and subject of endpoint `<namespace>/<name>`'s records, or
/// why the name is not one.
pub fn names(endpoint: &str) -> Result<(String, String), String> {
    match endpoint.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok(hookwarden_receiver::quarantine::names(namespace, name))
        }
        _ => Err(format!(
            "endpoint {endpoint:?} must be <namespace>/<name>, as the records and the audit log name it"
        )),
    }
}

/// One record as a line: time, status, reason, client, request line,
/// body size and the headers that say who sent it. Anything not JSON is
/// shown as such, never dropped silently.
pub fn line(payload: &[u8]) -> String {
    let Ok(record) = serde_json::from_slice::<Value>(payload) else {
        return format!("(not a quarantine record: {} bytes)", payload.len());
    };
    let text = |key: &str| record.get(key).and_then(Value::as_str).unwrap_or("-");
    let mut line = format!(
        "{} {} {} client={} peer={} {} {}",
        text("time"),
        record.get("status").and_then(Value::as_u64).unwrap_or(0),
        text("reason"),
        text("client_ip"),
        text("peer_ip"),
        text("method"),
        text("path"),
    );
    if let Some(size) = record.get("body_size").and_then(Value::as_u64) {
        line.push_str(&format!(" body={size}B"));
    }
    if let Some(agent) = record
        .get("headers")
        .and_then(|h| h.get("user-agent"))
        .and_then(Value::as_str)
    {
        line.push_str(&format!(" user-agent={agent:?}"));
    }
    if let Some(error) = record.get("error").and_then(Value::as_str) {
        line.push_str(&format!(" error={error:?}"));
    }
    if let Some(id) = record
        .get("request_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        line.push_str(&format!(" request_id={id}"));
    }
    // A record holds text from the network: no control characters on a
    // terminal.
    line.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_receiver() {
        assert_eq!(
            names("edge/acme").expect("valid"),
            (
                "HOOKWARDEN-QUARANTINE_EDGE_ACME".to_owned(),
                "hookwarden-quarantine.edge.acme".to_owned()
            )
        );
        for bad in ["acme", "/acme", "edge/", "a/b/c"] {
            assert!(names(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_record_is_one_readable_line_without_control_characters() {
        let record = serde_json::json!({
            "time": "2026-12-06T19:00:00Z", "status": 401, "reason": "signature_mismatch",
            "client_ip": "192.0.2.7", "peer_ip": "10.0.0.1", "method": "POST", "path": "/",
            "body_size": 11, "headers": {"user-agent": "evil\u{1b}[2J"}, "request_id": "abc",
        });
        let line = line(record.to_string().as_bytes());
        assert_eq!(
            line,
            "2026-12-06T19:00:00Z 401 signature_mismatch client=192.0.2.7 peer=10.0.0.1 POST / body=11B user-agent=\"evil\\u{1b}[2J\" request_id=abc"
        );
        assert!(!line.chars().any(char::is_control));
        assert_eq!(super::line(b"junk"), "(not a quarantine record: 4 bytes)");
    }
}

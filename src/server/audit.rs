//! The audit log of admin actions: one JSON object per line in
//! `<data_dir>/audit.jsonl` — when, which action, from which address, what
//! (a SHA-256 of an uploaded file, the ids touched) and how many rows.
//! Tokens and phone numbers never go in.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    net::SocketAddr,
    path::Path,
    sync::Mutex,
};

use serde_json::{json, Value};

pub struct AuditLog {
    file: Mutex<File>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

/// SHA-256 of uploaded bytes, hex: identifies what was imported.
pub fn digest(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

impl AuditLog {
    /// Opens (creating) the log for appending.
    pub fn open(data_dir: &Path) -> std::io::Result<AuditLog> {
        std::fs::create_dir_all(data_dir)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("audit.jsonl"))?;
        Ok(AuditLog {
            file: Mutex::new(file),
        })
    }

    /// Appends one entry; `details` is merged into it. A failure to write
    /// is logged, never fatal to the action.
    pub fn record(&self, action: &str, peer: Option<SocketAddr>, details: Value) {
        let mut entry = json!({
            "at_ms": crate::tickets::now_ms(),
            "action": action,
            "peer": peer.map(|p| p.to_string()),
        });
        if let (Some(entry), Value::Object(more)) = (entry.as_object_mut(), details) {
            entry.extend(more);
        }
        let mut line = entry.to_string();
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
            tracing::warn!(error = %e, action, "could not write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_json_line_per_action() {
        let dir = std::env::temp_dir().join(format!("xwn-audit-{}", std::process::id()));
        let log = AuditLog::open(&dir).unwrap();
        log.record(
            "import_roster",
            "127.0.0.1:9".parse().ok(),
            json!({"accepted": 3, "sha256": digest(b"x")}),
        );
        log.record("remove_talents", None, json!({"ids": ["a"]}));
        let text = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["action"], "import_roster");
        assert_eq!(lines[0]["accepted"], 3);
        assert_eq!(lines[0]["peer"], "127.0.0.1:9");
        assert_eq!(lines[1]["ids"][0], "a");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

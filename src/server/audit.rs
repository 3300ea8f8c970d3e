//! The audit log of admin actions: one JSON object per line in
//! `<data_dir>/audit.jsonl` — when, which action, from which address and
//! which client (a front end's key name or the client address), what
//! (a SHA-256 of an uploaded file, the ids touched) and how many rows. What
//! each action records is decided here ([`Entry`]); the adapters hand the
//! entries over; [`EarlyRefusals`] hands over those of whole-file imports
//! the transport refused before any handler read them. Tokens and phone
//! numbers never go in.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
};

use serde_json::{json, Value};
use tonic::{codegen::http::HeaderMap, metadata::MetadataMap, Status};

use crate::{
    grpc::{log_failed_admin, AdminAuth, Limits},
    server::limits::caller::Caller,
    tickets::token::Role,
};

pub(crate) struct AuditLog {
    file: Mutex<File>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

/// SHA-256 of uploaded bytes, hex: identifies what was imported.
pub(crate) fn digest(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// An uploaded file as the log names it: by its digest and size, never
/// its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    pub(crate) sha256: String,
    pub(crate) bytes: usize,
}

impl Upload {
    pub(crate) fn of(data: &[u8]) -> Upload {
        Upload {
            sha256: digest(data),
            bytes: data.len(),
        }
    }
}

/// One admin action as the log keeps it: what it was and what it records.
/// A refusal is recorded with the message its caller got.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) action: &'static str,
    pub(crate) details: Value,
}

impl Entry {
    /// A roster import: the rows accepted and the new version, or why the
    /// file was refused.
    pub(crate) fn import_roster(upload: &Upload, outcome: Result<(u64, u64), String>) -> Entry {
        let details = match outcome {
            Ok((accepted, version)) => json!({
                "sha256": upload.sha256,
                "bytes": upload.bytes,
                "accepted": accepted,
                "roster_version": version,
            }),
            Err(refused) => {
                json!({"sha256": upload.sha256, "bytes": upload.bytes, "refused": refused})
            }
        };
        Entry {
            action: "import_roster",
            details,
        }
    }

    /// An upload (`action`: `import_roster` or `import_liaisons`) refused
    /// before it was read whole, for its format, its size or its timeout:
    /// the bytes received and the message its caller got.
    pub(crate) fn refused_upload(action: &'static str, received: usize, refused: &str) -> Entry {
        Entry {
            action,
            details: json!({"received_bytes": received, "refused": refused}),
        }
    }

    /// Talents added or replaced: their ids and the new version.
    pub(crate) fn upsert_talents(ids: &[String], roster_version: u64) -> Entry {
        Entry {
            action: "upsert_talents",
            details: json!({"ids": ids, "roster_version": roster_version}),
        }
    }

    /// A knowledge entry published or unpublished (`done`: whether it
    /// changed anything).
    pub(crate) fn knowledge(action: &'static str, ticket_id: &str, done: bool) -> Entry {
        Entry {
            action,
            details: json!({"ticket_id": ticket_id, "done": done}),
        }
    }

    /// Talents removed: the ids asked for, how many were removed and the
    /// new version.
    pub(crate) fn remove_talents(ids: &[String], removed: u64, roster_version: u64) -> Entry {
        Entry {
            action: "remove_talents",
            details: json!({"ids": ids, "removed": removed, "roster_version": roster_version}),
        }
    }

    /// A responder or liaison token issued: to whom, in which role, until
    /// when; never the token.
    pub(crate) fn issue_responder_token(subject: &str, role: Role, expires_at_ms: i64) -> Entry {
        Entry {
            action: "issue_responder_token",
            details: json!({"subject": subject, "role": role.key(), "expires_at_ms": expires_at_ms}),
        }
    }

    /// A photo deleted by an admin.
    pub(crate) fn delete_photo(ticket: &str, photo: &str) -> Entry {
        Entry {
            action: "delete_photo",
            details: json!({"ticket_id": ticket, "photo_id": photo}),
        }
    }

    /// An action link issued by hand (never its token).
    pub(crate) fn issue_action_link(ticket: &str, talent: &str, expires_at_ms: i64) -> Entry {
        Entry {
            action: "issue_action_link",
            details: json!({"ticket_id": ticket, "talent_id": talent, "expires_at_ms": expires_at_ms}),
        }
    }

    /// Deliveries retried by hand: the endpoint, the one notification id
    /// when one was named, and how many failed deliveries went back to
    /// pending (a disabled endpoint is re-enabled too).
    pub(crate) fn retry_delivery(endpoint: &str, id: Option<&str>, retried: u64) -> Entry {
        Entry {
            action: "retry_delivery",
            details: json!({"endpoint": endpoint, "id": id, "retried": retried}),
        }
    }

    /// A liaison list import: the liaisons accepted, or why the file was
    /// refused.
    pub(crate) fn import_liaisons(upload: &Upload, outcome: Result<u64, String>) -> Entry {
        let details = match outcome {
            Ok(accepted) => {
                json!({"sha256": upload.sha256, "bytes": upload.bytes, "accepted": accepted})
            }
            Err(refused) => {
                json!({"sha256": upload.sha256, "bytes": upload.bytes, "refused": refused})
            }
        };
        Entry {
            action: "import_liaisons",
            details,
        }
    }
}

impl AuditLog {
    /// Appends `entry` for a call of `client` from `peer`.
    pub(crate) fn append(&self, entry: Entry, peer: Option<SocketAddr>, client: &Caller) {
        self.record(entry.action, peer, Some(client), entry.details);
    }

    /// Opens (creating) the log for appending.
    pub(crate) fn open(data_dir: &Path) -> std::io::Result<AuditLog> {
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
    pub(crate) fn record(
        &self,
        action: &str,
        peer: Option<SocketAddr>,
        client: Option<&Caller>,
        details: Value,
    ) {
        let mut entry = json!({
            "at_ms": crate::tickets::now_ms(),
            "action": action,
            "peer": peer.map(|p| p.to_string()),
            "client": client.map(|c| c.to_string()),
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

/// Whole-file imports (`ImportRosterFile`, `ImportLiaisonsFile`) refused
/// before their handler ran: by tonic's codec past the message size limit,
/// by the request timeout while the message was still arriving, or, over
/// Connect JSON, while the body was read. The handler audits every
/// refusal it makes; these are audited here, the same way, once the
/// caller has shown the admin token. A caller without it gets what the
/// handler would have answered, UNAUTHENTICATED, logged as a failed admin
/// authentication: junk is never audited as an admin's action, and the
/// limits are no-one else's business.
pub(crate) struct EarlyRefusals {
    admin: AdminAuth,
    log: Arc<AuditLog>,
    limits: Arc<Limits>,
}

impl EarlyRefusals {
    pub(crate) fn new(admin: AdminAuth, log: Arc<AuditLog>, limits: Arc<Limits>) -> EarlyRefusals {
        EarlyRefusals { admin, log, limits }
    }

    /// The action the whole-file import at `path` is audited as, if
    /// `path` is one.
    pub(crate) fn action(path: &str) -> Option<&'static str> {
        match path {
            "/xingweinong.v1.RosterService/ImportRosterFile" => Some("import_roster"),
            "/xingweinong.v1.RosterService/ImportLiaisonsFile" => Some("import_liaisons"),
            _ => None,
        }
    }

    /// `refusal` of the import `action`, `received` bytes of it read,
    /// from a caller with request `headers`: audited and given back when
    /// the headers hold the admin token, else the authentication's refusal.
    pub(crate) fn refused(
        &self,
        action: &'static str,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
        client: Option<&Caller>,
        received: usize,
        refusal: Status,
    ) -> Status {
        let metadata = MetadataMap::from_headers(headers.clone());
        if let Err(refused) = self.admin.check(&metadata) {
            log_failed_admin(self.limits.throttle(), peer, client, &refused);
            return refused.into();
        }
        let entry = Entry::refused_upload(action, received, refusal.message());
        self.log.record(entry.action, peer, client, entry.details);
        tracing::info!(
            audit = action,
            received,
            reason = refusal.message(),
            "upload refused"
        );
        refusal
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
            Some(&Caller::Key("web".into())),
            json!({"accepted": 3, "sha256": digest(b"x")}),
        );
        log.record("remove_talents", None, None, json!({"ids": ["a"]}));
        let text = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["action"], "import_roster");
        assert_eq!(lines[0]["accepted"], 3);
        assert_eq!(lines[0]["peer"], "127.0.0.1:9");
        assert_eq!(lines[0]["client"], "key:web");
        assert_eq!(lines[1]["ids"][0], "a");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn entries_name_uploads_by_digest_and_keep_refusals() {
        let upload = Upload::of(b"id,name\n");
        assert_eq!(upload.bytes, 8);
        let refused = Entry::import_roster(&upload, Err("the roster was rejected whole".into()));
        assert_eq!(refused.action, "import_roster");
        assert_eq!(refused.details["sha256"], digest(b"id,name\n"));
        assert_eq!(refused.details["refused"], "the roster was rejected whole");
        assert!(refused.details.get("accepted").is_none());
        let accepted = Entry::import_liaisons(&upload, Ok(2));
        assert_eq!(accepted.details["accepted"], 2);
        assert_eq!(accepted.details["bytes"], 8);
        let removed = Entry::remove_talents(&["a".into(), "b".into()], 1, 7);
        assert_eq!(removed.details["ids"][1], "b");
        assert_eq!(removed.details["removed"], 1);
        assert_eq!(removed.details["roster_version"], 7);
        let early = Entry::refused_upload("import_liaisons", 12, "the upload is empty");
        assert_eq!(early.action, "import_liaisons");
        assert_eq!(early.details["received_bytes"], 12);
        assert_eq!(early.details["refused"], "the upload is empty");
        let token = Entry::issue_responder_token("r1", Role::Liaison, 99);
        assert_eq!(token.details["role"], Role::Liaison.key());
        assert_eq!(token.details["subject"], "r1");
        let retry = Entry::retry_delivery("gw", None, 3);
        assert_eq!(retry.action, "retry_delivery");
        assert_eq!(retry.details["endpoint"], "gw");
        assert_eq!(retry.details["id"], Value::Null);
        assert_eq!(retry.details["retried"], 3);
    }
}

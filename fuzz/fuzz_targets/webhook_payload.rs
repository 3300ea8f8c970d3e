//! Fuzzes webhook payloads (`src/notify/payload.rs`, `sign.rs`): a change's
//! notifications built and signed as the server builds and signs them
//! (through `xingweinong::fuzzing::Webhooks`), from arbitrary tickets.
//!
//! Input: byte 0 picks the event's kind, byte 1 the ticket's state, byte 2
//! flags (the ticket assigned to the event's responder, a point location,
//! an action link, a huge text, a second liaison, a raw contact), byte 3
//! the key's length;
//! then length-prefixed strings (one byte of length each, any bytes, read
//! as lossy UTF-8 so control characters, NUL and escapes come through):
//! text, contact, ids, reason, answer, the liaisons' names and phones.
//! The contact (unless flag 32) and the phones begin with a character of
//! their own that no other string holds, so a body that holds it leaks.
//!
//! Properties: no panic; every body is JSON that parses back to what was
//! given (id, type, ticket id, text, event); the recipients are the ones
//! the rules name (the offered responder, the farmer when there is a
//! contact, admins; a copy to each liaison); the farmer's contact is in a
//! body only where `tickets::view` allows it (the farmer, admins, the
//! responder who accepted), and a liaison's phone never is; each signature
//! is the Standard Webhooks one, checked against an HMAC-SHA256 computed
//! here from SHA-256 alone.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sha2::{Digest, Sha256};
use xingweinong::{
    fuzzing::Webhooks,
    model::{Location, Tier},
    tickets::{liaison::Liaison, Actor, Event, EventKind, Ticket, TicketState},
};

/// HMAC-SHA256 (RFC 2104), written apart from the server's signer.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let mut h = Sha256::new();
    h.update(&inner);
    h.update(message);
    let inner_digest = h.finalize();
    let mut h = Sha256::new();
    h.update(&outer);
    h.update(inner_digest);
    h.finalize().into()
}

/// Length-prefixed strings off the input; empty once it runs out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    /// The next string, without the markers.
    fn string(&mut self) -> String {
        let Some((&len, rest)) = self.0.split_first() else {
            return String::new();
        };
        let len = (len as usize).min(rest.len());
        let (taken, rest) = rest.split_at(len);
        self.0 = rest;
        String::from_utf8_lossy(taken).replace([CONTACT, PHONE], "")
    }
}

/// What the farmer's contact starts with (unless flag 32 gives it raw)
/// and a liaison's phone always: characters no other string holds, so a
/// body that holds one holds the contact or a phone.
const CONTACT: char = '\u{e000}';
const PHONE: char = '\u{e001}';

/// Every key in `json`.
fn keys<'v>(json: &'v Value, out: &mut Vec<&'v str>) {
    match json {
        Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k);
            keys(v, out)
        }),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let kind = EventKind::ALL[data[0] as usize % EventKind::ALL.len()];
    let state = TicketState::ALL[data[1] as usize % TicketState::ALL.len()];
    let flags = data[2];
    let key: Vec<u8> = (0..24 + data[3] as usize % 41)
        .map(|i| i as u8 ^ data[3])
        .collect();
    let mut r = Reader(&data[4..]);
    let mut text = r.string();
    if flags & 8 != 0 {
        // A huge text: a megabyte and more.
        text = text.repeat((1 << 20) / text.len().max(1) + 1);
    }
    let contact = match flags & 32 {
        0 => format!("{CONTACT}{}", r.string()),
        _ => r.string(),
    };
    let ticket_id = r.string();
    let talent = r.string();
    let other = r.string();
    let reason = r.string();
    let answer = r.string();
    let division = r.string();
    let liaison = |r: &mut Reader<'_>, n: u32| Liaison {
        id: format!("l{n}{}", r.string()),
        name: r.string(),
        phone: format!("{PHONE}{}", r.string()),
        villages: vec![division.clone()],
    };
    let mut liaisons = vec![liaison(&mut r, 1)];
    if flags & 16 != 0 {
        liaisons.push(liaison(&mut r, 2));
    }
    let assignee = if flags & 1 != 0 { &talent } else { &other };
    let ticket = Ticket {
        id: ticket_id.clone(),
        text: text.clone(),
        location: if flags & 2 != 0 {
            Location::Point {
                lat: 34.5,
                lon: 109.5,
            }
        } else {
            Location::Division(division.clone())
        },
        division_code: Some(division.clone()),
        subject: Some(r.string()),
        corps: None,
        words: None,
        contact: contact.clone(),
        idempotency_key: Some(r.string()),
        state,
        assignee: Some(assignee.clone()),
        tier: Tier::Village,
        offers_in_tier: 1,
        offer_deadline_ms: Some(1_764_000_030_000),
        answer,
        reason: reason.clone(),
        created_at_ms: 1_764_000_000_000,
        updated_at_ms: 1_764_000_000_000,
        rating: None,
        // Offers carry their photos' links (signed with the action token).
        photos: if flags & 64 != 0 {
            vec!["ab".repeat(32)]
        } else {
            Vec::new()
        },
    };
    let event = Event {
        ticket_id: ticket_id.clone(),
        seq: u64::from(data[0]),
        kind,
        actor: Actor::System,
        at_ms: 1_764_000_000_000,
        reason: reason.clone(),
        state,
        talent_id: Some(talent.clone()),
        tier: Tier::Village,
        stars: None,
    };
    let action_url = (flags & 4 != 0).then_some("https://xwn.example/expert#action=t");
    let timestamp = 1_764_000_000 + i64::from(data[1]);
    let sent = Webhooks::new(&key).notify(
        &ticket,
        std::slice::from_ref(&event),
        &liaisons,
        action_url,
        timestamp,
    );

    // Who must hear of it, by the rules.
    let own = match kind {
        EventKind::Offered => Some(("responder", talent.as_str())),
        EventKind::Accepted | EventKind::Resolved if !contact.trim().is_empty() => {
            Some(("farmer", contact.trim()))
        }
        EventKind::Escalated | EventKind::Queued | EventKind::Unroutable => Some(("admins", "")),
        _ => None,
    };
    let expected = match own {
        None if !matches!(
            kind,
            EventKind::Offered
                | EventKind::Accepted
                | EventKind::Resolved
                | EventKind::Escalated
                | EventKind::Queued
                | EventKind::Unroutable
        ) =>
        {
            0
        }
        None => liaisons.len(),
        Some(_) => 1 + liaisons.len(),
    };
    assert_eq!(sent.len(), expected, "{kind:?}");

    for (i, hook) in sent.iter().enumerate() {
        let signed = format!("{}.{timestamp}.{}", hook.id, hook.body);
        let mac = hmac_sha256(&key, signed.as_bytes());
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac)
        );
        assert_eq!(hook.signature, expected);
        assert_eq!(hook.ticket_id, ticket_id);

        let body: Value = serde_json::from_str(&hook.body).expect("the body is JSON");
        assert_eq!(body["id"], hook.id.as_str());
        assert_eq!(body["type"], hook.kind.as_str());
        assert_eq!(body["time"], "2025-11-24T16:00:00.000Z");
        let t = &body["ticket"];
        assert_eq!(t["id"], ticket_id.as_str());
        assert_eq!(t["text"], text.as_str());
        assert_eq!(t["reason"], reason.as_str());
        assert_eq!(t["assignee"], assignee.as_str());
        assert_eq!(body["event"]["reason"], reason.as_str());
        assert_eq!(body["event"]["talent_id"], talent.as_str());
        assert_eq!(body["event"]["seq"], event.seq);
        assert!(body["event"]["kind"].is_string(), "{body}");

        let recipient = &body["recipient"];
        let who = recipient["kind"].as_str().expect("a recipient kind");
        match (i, own) {
            (0, Some((own_kind, own_id))) => {
                assert_eq!(who, own_kind);
                match own_kind {
                    "responder" => assert_eq!(recipient["id"], own_id),
                    "farmer" => assert_eq!(recipient["contact"], own_id),
                    _ => {}
                }
            }
            _ => {
                let n = if own.is_some() { i - 1 } else { i };
                assert_eq!(who, "liaison");
                assert_eq!(recipient["id"], liaisons[n].id.as_str());
            }
        }
        // The contact, by the view rules: the farmer, admins, and the
        // responder the ticket is accepted by.
        let may_see = match who {
            "farmer" | "admins" => true,
            "responder" => state == TicketState::Accepted && *assignee == talent,
            _ => false,
        };
        match t.get("contact") {
            Some(shown) => {
                assert!(may_see, "the contact shown to a {who}: {body}");
                assert_eq!(shown, contact.as_str());
            }
            None => assert!(!may_see, "no contact for a {who}: {body}"),
        }
        // Where it may not be seen, it is nowhere in the body (its marker
        // is in no other string); a liaison's phone never is.
        if !may_see && who != "farmer" && contact.starts_with(CONTACT) {
            assert!(
                !hook.body.contains(CONTACT),
                "the contact leaked to a {who}: {body}"
            );
        }
        assert!(!hook.body.contains(PHONE), "a phone in {body}");
        let mut names = Vec::new();
        keys(&body, &mut names);
        assert!(!names.contains(&"phone"), "{body}");
        // The action link goes with the offer to the responder offered it.
        let offered_to_assignee =
            kind == EventKind::Offered && who == "responder" && *assignee == talent;
        match body.get("action_url") {
            Some(url) => {
                assert!(offered_to_assignee, "{body}");
                assert_eq!(Some(url.as_str().unwrap()), action_url);
            }
            None => assert!(!offered_to_assignee || action_url.is_none(), "{body}"),
        }
    }
});

//! What a committed change tells whom: each event that someone must hear
//! of becomes notifications (to its recipient, and a copy to each liaison
//! of the ticket's village), each with its JSON body built now, the ticket
//! as that recipient may see it (`tickets::view`: a phone never, the
//! farmer's contact only where the ticket rules allow).

use serde_json::{json, Value};

use crate::{
    model::Location,
    tickets::{
        liaison::Liaison,
        view::{self, Viewer},
        Event, EventKind, Ticket, ACTION_FRAGMENT,
    },
};

/// Who a notification is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recipient<'a> {
    /// The responder offered the ticket.
    Responder(&'a str),
    /// The farmer, at the contact they gave.
    Farmer(&'a str),
    /// Whoever administers the service.
    Admins,
    /// A party-member liaison of the ticket's village (a copy).
    Liaison(&'a Liaison),
}

impl Recipient<'_> {
    fn viewer(&self) -> Viewer<'_> {
        match self {
            Recipient::Responder(id) => Viewer::Responder(id),
            Recipient::Farmer(_) => Viewer::Farmer,
            Recipient::Admins => Viewer::Admin,
            Recipient::Liaison(_) => Viewer::Liaison,
        }
    }

    /// The recipient as the body names it: ids and the farmer's own
    /// contact; never a phone.
    fn json(&self) -> Value {
        match self {
            Recipient::Responder(id) => json!({"kind": "responder", "id": id}),
            Recipient::Farmer(contact) => json!({"kind": "farmer", "contact": contact}),
            Recipient::Admins => json!({"kind": "admins"}),
            Recipient::Liaison(l) => json!({"kind": "liaison", "id": l.id, "name": l.name}),
        }
    }
}

/// The notification type of an event, if anyone must hear of it.
pub(crate) fn kind(event: EventKind) -> Option<&'static str> {
    Some(match event {
        EventKind::Offered => "ticket.offered",
        EventKind::Accepted => "ticket.accepted",
        EventKind::Resolved => "ticket.resolved",
        EventKind::Escalated => "ticket.escalated",
        EventKind::Queued => "ticket.queued",
        EventKind::Unroutable => "ticket.unroutable",
        _ => return None,
    })
}

/// The recipients of an event's notification: its own, then a copy to
/// each liaison of the village.
pub(crate) fn recipients<'a>(
    ticket: &'a Ticket,
    event: &'a Event,
    liaisons: &[&'a Liaison],
) -> Vec<Recipient<'a>> {
    let own = match event.kind {
        EventKind::Offered => event.talent_id.as_deref().map(Recipient::Responder),
        EventKind::Accepted | EventKind::Resolved => Some(ticket.contact.trim())
            .filter(|c| !c.is_empty())
            .map(Recipient::Farmer),
        EventKind::Escalated | EventKind::Queued | EventKind::Unroutable => Some(Recipient::Admins),
        _ => None,
    };
    own.into_iter()
        .chain(liaisons.iter().map(|l| Recipient::Liaison(l)))
        .collect()
}

/// The ticket as `viewer` sees it (`tickets::view`'s rules).
fn ticket_json(t: &Ticket, viewer: Viewer<'_>) -> Value {
    let location = match &t.location {
        Location::Division(code) => json!({"division_code": code}),
        Location::Point { lat, lon } => json!({"lat": lat, "lon": lon}),
    };
    let mut ticket = json!({
        "id": t.id,
        "state": t.state.key(),
        "text": t.text,
        "location": location,
        "division_code": t.division_code,
        "subject": t.subject,
        "corps": t.corps,
        "tier": t.tier.key(),
        "assignee": t.assignee,
        "offer_deadline_ms": t.offer_deadline_ms,
        "answer": t.answer,
        "reason": t.reason,
        "created_at": rfc3339(t.created_at_ms),
        "updated_at": rfc3339(t.updated_at_ms),
    });
    if let Some(contact) = view::contact(t, viewer) {
        ticket["contact"] = json!(contact);
    }
    ticket
}

/// One notification's body, as POSTed to every endpoint on every attempt.
pub(crate) fn body(
    id: &str,
    kind: &str,
    ticket: &Ticket,
    event: &Event,
    recipient: &Recipient<'_>,
    action_url: Option<&str>,
) -> String {
    let mut body = json!({
        "id": id,
        "type": kind,
        "time": rfc3339(event.at_ms),
        "ticket": ticket_json(ticket, recipient.viewer()),
        "event": {
            "seq": event.seq,
            "kind": event.kind.key(),
            "state": event.state.key(),
            "tier": event.tier.key(),
            "reason": event.reason,
            "talent_id": event.talent_id,
        },
        "recipient": recipient.json(),
    });
    if let Some(url) = action_url {
        body["action_url"] = json!(url);
        if !ticket.photos.is_empty() {
            body["photos"] = json!(photo_links(url, ticket));
        }
    }
    body.to_string()
}

/// The links to a ticket's photos that an offer's notification carries,
/// signed with the same action token as its `action_url`
/// (`<base>/expert#action=<token>`): `<base>/photo/<ticket>/<photo>?t=<token>`
/// for the thumbnail, `&full=1` for the whole photo. Served by
/// `GET /photo/…`, which reads them with `GetPhoto` under that token.
fn photo_links(action_url: &str, ticket: &Ticket) -> Vec<Value> {
    let Some((page, token)) = action_url.split_once(ACTION_FRAGMENT) else {
        return Vec::new();
    };
    let base = page.strip_suffix("/expert").unwrap_or(page);
    ticket
        .photos
        .iter()
        .map(|id| {
            let thumb = format!("{base}/photo/{}/{id}?t={token}", ticket.id);
            json!({"id": id, "thumbnail_url": thumb, "url": format!("{thumb}&full=1")})
        })
        .collect()
}

/// Unix milliseconds as RFC 3339 UTC, `2026-12-06T14:15:00.123Z`.
pub(crate) fn rfc3339(ms: i64) -> String {
    let (year, month, day, in_day) = crate::model::civil(ms);
    let (secs, millis) = (in_day / 1000, in_day % 1000);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::Tier, tickets::Actor, tickets::TicketState};

    fn ticket(state: TicketState) -> Ticket {
        Ticket {
            id: "tk-1".into(),
            text: "苹果树叶子发黄".into(),
            location: Location::Division("610527106202".into()),
            division_code: Some("610527106202".into()),
            subject: None,
            corps: None,
            words: None,
            photos: Vec::new(),
            contact: "13900000001".into(),
            idempotency_key: None,
            state,
            assignee: Some("r1".into()),
            tier: Tier::Village,
            offers_in_tier: 1,
            offer_deadline_ms: None,
            answer: String::new(),
            reason: String::new(),
            created_at_ms: 0,
            updated_at_ms: 0,
            rating: None,
        }
    }

    fn event(kind: EventKind, state: TicketState) -> Event {
        Event {
            ticket_id: "tk-1".into(),
            seq: 2,
            kind,
            actor: Actor::System,
            at_ms: 1_764_000_000_000,
            reason: String::new(),
            state,
            talent_id: Some("r1".into()),
            tier: Tier::Village,
            stars: None,
        }
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_614_265_330_000), "2021-02-25T15:02:10.000Z");
    }

    #[test]
    fn the_contact_goes_only_where_the_ticket_rules_allow() {
        let liaison = Liaison {
            id: "l1".into(),
            name: "党员甲".into(),
            phone: "13900000099".into(),
            villages: vec!["610527106202".into()],
        };
        let offered = ticket(TicketState::Offered);
        let e = event(EventKind::Offered, TicketState::Offered);
        let to = recipients(&offered, &e, &[&liaison]);
        assert_eq!(
            to,
            [Recipient::Responder("r1"), Recipient::Liaison(&liaison)]
        );
        for r in &to {
            let b = body("msg_1", "ticket.offered", &offered, &e, r, None);
            assert!(!b.contains("13900000001"), "an offer shows no contact: {b}");
            assert!(!b.contains("13900000099"), "a phone never: {b}");
        }
        let accepted = ticket(TicketState::Accepted);
        let e = event(EventKind::Accepted, TicketState::Accepted);
        let b = body(
            "msg_2",
            "ticket.accepted",
            &accepted,
            &e,
            &Recipient::Responder("r1"),
            None,
        );
        assert!(b.contains("13900000001"), "the accepting responder sees it");
        let b = body(
            "msg_2",
            "ticket.accepted",
            &accepted,
            &e,
            &Recipient::Liaison(&liaison),
            None,
        );
        assert!(!b.contains("13900000001"), "a liaison never: {b}");
        let to = recipients(&accepted, &e, &[]);
        assert_eq!(to, [Recipient::Farmer("13900000001")]);
        let anonymous = Ticket {
            contact: String::new(),
            ..accepted
        };
        assert!(recipients(&anonymous, &e, &[]).is_empty());
    }

    #[test]
    fn an_offer_carries_its_photos_thumbnail_links_under_the_action_token() {
        let offered = Ticket {
            photos: vec!["ab".repeat(32)],
            ..ticket(TicketState::Offered)
        };
        let e = event(EventKind::Offered, TicketState::Offered);
        let link = "https://xwn.example/expert#action=xwn1.aa.bb";
        let b: Value = serde_json::from_str(&body(
            "msg_1",
            "ticket.offered",
            &offered,
            &e,
            &Recipient::Responder("r1"),
            Some(link),
        ))
        .unwrap();
        let id = "ab".repeat(32);
        let thumb = format!("https://xwn.example/photo/tk-1/{id}?t=xwn1.aa.bb");
        assert_eq!(b["photos"][0]["thumbnail_url"], thumb.as_str());
        assert_eq!(b["photos"][0]["url"], format!("{thumb}&full=1").as_str());
        // Without the action link (a liaison's copy), no links at all.
        let copy = body(
            "msg_1",
            "ticket.offered",
            &offered,
            &e,
            &Recipient::Admins,
            None,
        );
        assert!(!copy.contains("/photo/"), "{copy}");
    }
}

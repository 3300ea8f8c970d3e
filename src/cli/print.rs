//! How the ticket commands print what the server sends: tickets with their
//! history, single events and a responder's live offers.

use crate::{
    model::divisions::{DivisionCode, Divisions},
    model::geo::GeoPoint,
    pb,
};

/// A string made safe for a terminal: every control character (ESC, BEL,
/// C1 controls, even line breaks) shows escaped as `\u{1b}`, `\n`, …, so
/// text a farmer or responder sent can never move the cursor, retitle the
/// window or hide what follows. Every print of stored user text goes
/// through here.
pub(crate) fn safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

pub(crate) fn state_name(value: i32) -> &'static str {
    pb::TicketState::try_from(value)
        .map_or("?", |s| s.as_str_name().trim_start_matches("TICKET_STATE_"))
}

pub(crate) fn kind_name(value: i32) -> &'static str {
    pb::TicketEventKind::try_from(value).map_or("?", |k| {
        k.as_str_name().trim_start_matches("TICKET_EVENT_KIND_")
    })
}

pub(crate) fn tier_name(value: i32) -> &'static str {
    pb::Tier::try_from(value).map_or("?", |t| t.as_str_name().trim_start_matches("TIER_"))
}

/// Unix milliseconds as UTC `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn utc(ms: i64) -> String {
    let (year, month, day, in_day) = crate::model::civil(ms);
    let rem = in_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn print_event(e: &pb::TicketEvent) {
    let talent = e.talent.as_ref().map_or(String::new(), |t| {
        format!(" {} {}", safe(&t.id), safe(&t.name))
    });
    let reason = if e.reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", safe(&e.reason))
    };
    println!(
        "  #{:<3} {} {:<16} by {}{talent}{reason} -> {}",
        e.seq,
        utc(e.at_ms),
        kind_name(e.kind),
        safe(&e.actor),
        state_name(e.state)
    );
}

pub(crate) fn print_ticket(t: &pb::Ticket) {
    println!("ticket {}  {}", safe(&t.id), state_name(t.state));
    println!("  {}", safe(&t.text));
    let corps = pb::Corps::try_from(t.corps).map_or("?", |c| c.as_str_name());
    let subject = if t.subject.is_empty() {
        "—".into()
    } else {
        safe(&t.subject)
    };
    println!(
        "  subject {subject}  corps {corps}  tier {}",
        tier_name(t.tier)
    );
    if let Some(a) = &t.assignee {
        println!(
            "  assignee {} {} ({}, {})",
            safe(&a.id),
            safe(&a.name),
            safe(&a.county_name),
            safe(&a.division_name)
        );
    }
    if !t.reason.is_empty() {
        println!("  reason {}", safe(&t.reason));
    }
    if !t.contact.is_empty() {
        println!("  contact {}", safe(&t.contact));
    }
    if t.offer_deadline_ms > 0 {
        println!("  offer open until {}", utc(t.offer_deadline_ms));
    }
    if !t.answer.is_empty() {
        println!("  answer {}", safe(&t.answer));
    }
    for e in &t.history {
        print_event(e);
    }
}

/// Great-circle kilometres between the farmer (the ticket's point or
/// division) and the assignee, when both are known.
fn distance_km(t: &pb::Ticket) -> Option<f64> {
    let farmer = match t.location.as_ref()?.kind.as_ref()? {
        pb::location::Kind::Point(p) => GeoPoint::new(p.lat, p.lon).ok()?,
        pb::location::Kind::DivisionCode(code) => {
            Divisions::embedded().get(DivisionCode::parse(code)?)?.point
        }
    };
    let p = t.assignee.as_ref()?.point.as_ref()?;
    Some(farmer.distance_km(GeoPoint::new(p.lat, p.lon).ok()?))
}

pub(crate) fn print_assignment(a: &pb::AssignmentEvent) {
    let (Some(t), Some(e)) = (&a.ticket, &a.event) else {
        return;
    };
    let tags = [(a.replay, "replay"), (a.read_only, "read-only")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, tag)| *tag)
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "{} {}{} — {} [{}] tier {}  {}",
        kind_name(e.kind),
        safe(&t.id),
        if tags.is_empty() {
            String::new()
        } else {
            format!(" ({tags})")
        },
        if t.subject.is_empty() {
            "—".into()
        } else {
            safe(&t.subject)
        },
        state_name(t.state),
        tier_name(t.tier),
        safe(&t.text)
    );
    if !e.reason.is_empty() {
        println!("  reason {}", safe(&e.reason));
    }
    if !t.contact.is_empty() {
        println!("  contact {}", safe(&t.contact));
    }
    if e.kind() != pb::TicketEventKind::Offered || t.offer_deadline_ms <= 0 {
        return;
    }
    let km = distance_km(t).map_or(String::new(), |km| format!("{km:.1} km; "));
    if a.read_only {
        let to = t.assignee.as_ref().map_or(String::new(), |a| {
            format!("{} {} ", safe(&a.id), safe(&a.name))
        });
        println!(
            "  offered to {to}({km}open until {})",
            utc(t.offer_deadline_ms)
        );
    } else {
        println!(
            "  {km}type `accept {}` or `decline {} reason` before {}",
            safe(&t.id),
            safe(&t.id),
            utc(t.offer_deadline_ms)
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn controls_never_reach_the_terminal_raw() {
        assert_eq!(super::safe("苹果 rot"), "苹果 rot");
        let osc = "a\u{1b}]0;pwned\u{7}b\u{9b}31m\nc\td";
        let shown = super::safe(osc);
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert_eq!(shown, "a\\u{1b}]0;pwned\\u{7}b\\u{9b}31m\\nc\\td");
    }

    #[test]
    fn formats_unix_milliseconds_as_utc() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(super::utc(1_795_811_170_706), "2026-11-27 20:26:10Z");
    }
}

//! Conversions between protobuf messages and domain types. What a viewer
//! may see of a ticket or a talent is the domain's to say
//! ([`crate::tickets::view`]); these functions only carry it over.

use std::collections::BTreeMap;

use crate::{
    error::Error,
    model::divisions::{Division, Divisions, Level},
    model::{Corps, Talent, Tier},
    pb,
    reading::analyzer::Analysis,
    reading::lexicon::{Lexicon, SubjectId},
    roster::{RawRow, RosterFormat},
    search::Snapshot,
    tickets::figures::{Group, ResponderFigures, Subtotal, Tally},
    tickets::view::{self, Showing, Viewer},
    tickets::{Availability, Event, EventKind, Ticket, TicketState},
    {matching::Candidate, model::Location},
};

pub(crate) fn corps_to_pb(corps: Option<Corps>) -> pb::Corps {
    match corps {
        None => pb::Corps::Unspecified,
        Some(Corps::GrainOil) => pb::Corps::GrainOil,
        Some(Corps::Vegetable) => pb::Corps::Vegetable,
        Some(Corps::Fruit) => pb::Corps::Fruit,
        Some(Corps::Livestock) => pb::Corps::Livestock,
        Some(Corps::ForestryWater) => pb::Corps::ForestryWater,
    }
}

pub(crate) fn corps_from_pb(value: i32, field: &str) -> Result<Option<Corps>, Error> {
    Ok(match pb::Corps::try_from(value) {
        Ok(pb::Corps::Unspecified) => None,
        Ok(pb::Corps::GrainOil) => Some(Corps::GrainOil),
        Ok(pb::Corps::Vegetable) => Some(Corps::Vegetable),
        Ok(pb::Corps::Fruit) => Some(Corps::Fruit),
        Ok(pb::Corps::Livestock) => Some(Corps::Livestock),
        Ok(pb::Corps::ForestryWater) => Some(Corps::ForestryWater),
        Err(_) => {
            return Err(Error::invalid(
                field,
                format!("unknown corps value {value}"),
            ))
        }
    })
}

pub(crate) fn tier_to_pb(tier: Tier) -> pb::Tier {
    match tier {
        Tier::City => pb::Tier::City,
        Tier::CountyTown => pb::Tier::CountyTown,
        Tier::Village => pb::Tier::Village,
    }
}

pub(crate) fn tier_from_pb(value: i32, field: &str) -> Result<Option<Tier>, Error> {
    Ok(match pb::Tier::try_from(value) {
        Ok(pb::Tier::Unspecified) => None,
        Ok(pb::Tier::City) => Some(Tier::City),
        Ok(pb::Tier::CountyTown) => Some(Tier::CountyTown),
        Ok(pb::Tier::Village) => Some(Tier::Village),
        Err(_) => return Err(Error::invalid(field, format!("unknown tier value {value}"))),
    })
}

pub(crate) fn ranking_from_pb(value: i32) -> Result<pb::Ranking, Error> {
    pb::Ranking::try_from(value)
        .map_err(|_| Error::invalid("ranking", format!("unknown ranking value {value}")))
}

/// The format a roster chunk names; `None` when it names none.
pub(crate) fn format_from_pb(value: i32) -> Result<Option<RosterFormat>, Error> {
    match pb::RosterFormat::try_from(value) {
        Ok(pb::RosterFormat::Csv) => Ok(Some(RosterFormat::Csv)),
        Ok(pb::RosterFormat::Jsonl) => Ok(Some(RosterFormat::Jsonl)),
        Ok(pb::RosterFormat::Unspecified) => Ok(None),
        Err(_) => Err(Error::invalid(
            "format",
            format!("unknown format value {value}"),
        )),
    }
}

pub(crate) fn availability_from_pb(value: i32) -> Result<Availability, Error> {
    match pb::Availability::try_from(value) {
        Ok(pb::Availability::Online) => Ok(Availability::Online),
        Ok(pb::Availability::Away) => Ok(Availability::Away),
        Ok(pb::Availability::Offline) => Ok(Availability::Offline),
        _ => Err(Error::invalid(
            "availability",
            "use ONLINE, AWAY or OFFLINE",
        )),
    }
}

/// A talent as the API shows it, with the phone the domain lets through.
pub(crate) fn talent_to_pb(t: &Talent, phone: Option<&str>) -> pb::Talent {
    let divisions = Divisions::embedded();
    pb::Talent {
        id: t.id.clone(),
        name: t.name.clone(),
        tier: tier_to_pb(t.tier).into(),
        corps: corps_to_pb(t.corps).into(),
        specialties: t.specialties.clone(),
        skills: t.skills.clone(),
        division_code: t.division_code.to_string(),
        division_name: divisions
            .get(t.division_code)
            .map(|d| d.name.clone())
            .unwrap_or_default(),
        point: Some(pb::GeoPoint {
            lat: t.point.lat,
            lon: t.point.lon,
        }),
        capacity: t.capacity,
        active: t.active,
        phone: phone.unwrap_or_default().to_string(),
        county_name: divisions
            .county_of(t.division_code)
            .map_or_else(|| divisions.city().name.clone(), |d| d.name.clone()),
    }
}

/// A talent of an upsert request as a roster row, validated like a file's.
pub(crate) fn talent_to_row(t: &pb::Talent, line: u64) -> RawRow {
    let mut fields = BTreeMap::new();
    let tier = pb::Tier::try_from(t.tier).ok().and_then(|tier| match tier {
        pb::Tier::Unspecified => None,
        pb::Tier::City => Some(Tier::City),
        pb::Tier::CountyTown => Some(Tier::CountyTown),
        pb::Tier::Village => Some(Tier::Village),
    });
    let corps = corps_from_pb(t.corps, "corps").ok().flatten();
    let mut put = |k: &str, v: String| {
        fields.insert(k.to_string(), v);
    };
    put("id", t.id.clone());
    put("name", t.name.clone());
    put("phone", t.phone.clone());
    put(
        "tier",
        tier.map_or_else(|| format!("TIER value {}", t.tier), |t| t.key().to_string()),
    );
    put(
        "corps",
        corps.map_or(String::new(), |c| c.chinese().to_string()),
    );
    put("specialties", t.specialties.join(";"));
    put("skills", t.skills.clone());
    put("division_code", t.division_code.clone());
    if let Some(p) = &t.point {
        put("lat", p.lat.to_string());
        put("lon", p.lon.to_string());
    }
    put("capacity", t.capacity.to_string());
    put("active", t.active.to_string());
    RawRow { line, fields }
}

/// An analysis as sent: its evidence terms and note moved, not copied.
pub(crate) fn analysis_to_pb(a: Analysis, lexicon: &Lexicon) -> pb::Analysis {
    let name = |s: Option<SubjectId>| s.map(|s| lexicon.subject(s).name.clone());
    pb::Analysis {
        agricultural: a.agricultural,
        confidence: f64::from(a.confidence),
        runner_up: name(a.runner_up).unwrap_or_default(),
        evidence: a
            .evidence
            .into_iter()
            .map(|e| pb::Evidence {
                subject: name(e.subject).unwrap_or_default(),
                term: e.term,
                kind: e.kind.to_string(),
                role: e.role.key().to_string(),
                weight: f64::from(e.weight),
            })
            .collect(),
        note: a.note,
        missing: a.missing.map(|m| pb::Missing {
            what: m.key().into(),
            prompt: m.prompt().into(),
        }),
    }
}

/// A candidate as sent: its terms and reason moved, not copied.
pub(crate) fn candidate_to_pb(c: Candidate) -> pb::Candidate {
    let phone = view::phone(&c.talent, Showing::Match, Viewer::Anyone);
    pb::Candidate {
        talent: Some(talent_to_pb(&c.talent, phone)),
        distance_km: c.distance_km,
        score: c.score,
        matched_terms: c.matched_terms,
        reason: c.reason,
    }
}

/// Converts a request location.
pub(crate) fn location_from_pb(location: Option<pb::Location>) -> Option<Location> {
    match location?.kind? {
        pb::location::Kind::DivisionCode(code) => Some(Location::Division(code)),
        pb::location::Kind::Point(p) => Some(Location::Point {
            lat: p.lat,
            lon: p.lon,
        }),
    }
}

fn location_to_pb(l: &Location) -> pb::Location {
    let kind = match l {
        Location::Division(code) => pb::location::Kind::DivisionCode(code.clone()),
        Location::Point { lat, lon } => pb::location::Kind::Point(pb::GeoPoint {
            lat: *lat,
            lon: *lon,
        }),
    };
    pb::Location { kind: Some(kind) }
}

pub(crate) fn state_to_pb(s: TicketState) -> pb::TicketState {
    match s {
        TicketState::Queued => pb::TicketState::Queued,
        TicketState::Offered => pb::TicketState::Offered,
        TicketState::Accepted => pb::TicketState::Accepted,
        TicketState::Resolved => pb::TicketState::Resolved,
        TicketState::Unroutable => pb::TicketState::Unroutable,
        TicketState::Cancelled => pb::TicketState::Cancelled,
    }
}

pub(crate) fn state_from_pb(value: i32) -> Result<Option<TicketState>, Error> {
    Ok(match pb::TicketState::try_from(value) {
        Ok(pb::TicketState::Unspecified) => None,
        Ok(pb::TicketState::Queued) => Some(TicketState::Queued),
        Ok(pb::TicketState::Offered) => Some(TicketState::Offered),
        Ok(pb::TicketState::Accepted) => Some(TicketState::Accepted),
        Ok(pb::TicketState::Resolved) => Some(TicketState::Resolved),
        Ok(pb::TicketState::Unroutable) => Some(TicketState::Unroutable),
        Ok(pb::TicketState::Cancelled) => Some(TicketState::Cancelled),
        Err(_) => {
            return Err(Error::invalid(
                "state",
                format!("unknown state value {value}"),
            ))
        }
    })
}

fn kind_to_pb(k: EventKind) -> pb::TicketEventKind {
    match k {
        EventKind::Submitted => pb::TicketEventKind::Submitted,
        EventKind::Queued => pb::TicketEventKind::Queued,
        EventKind::Offered => pb::TicketEventKind::Offered,
        EventKind::Declined => pb::TicketEventKind::Declined,
        EventKind::OfferTimedOut => pb::TicketEventKind::OfferTimedOut,
        EventKind::Accepted => pb::TicketEventKind::Accepted,
        EventKind::Escalated => pb::TicketEventKind::Escalated,
        EventKind::Resolved => pb::TicketEventKind::Resolved,
        EventKind::Unroutable => pb::TicketEventKind::Unroutable,
        EventKind::Cancelled => pb::TicketEventKind::Cancelled,
        EventKind::Rerouted => pb::TicketEventKind::Rerouted,
        EventKind::Rated => pb::TicketEventKind::Rated,
    }
}

/// A talent on a ticket, by id; just the id when it left the roster.
fn talent_ref(id: &str, viewer: Viewer<'_>, snapshot: &Snapshot) -> pb::Talent {
    snapshot.get(id).map_or_else(
        || pb::Talent {
            id: id.to_string(),
            ..Default::default()
        },
        |t| talent_to_pb(t, view::phone(t, Showing::Ticket, viewer)),
    )
}

pub(crate) fn event_to_pb(e: &Event, viewer: Viewer<'_>, snapshot: &Snapshot) -> pb::TicketEvent {
    pb::TicketEvent {
        ticket_id: e.ticket_id.clone(),
        seq: e.seq,
        kind: kind_to_pb(e.kind).into(),
        actor: e.actor.to_string(),
        at_ms: e.at_ms,
        reason: e.reason.clone(),
        state: state_to_pb(e.state).into(),
        talent: e
            .talent_id
            .as_deref()
            .map(|id| talent_ref(id, viewer, snapshot)),
        tier: tier_to_pb(e.tier).into(),
        stars: e.stars.map_or(0, u32::from),
    }
}

/// Unix milliseconds as a protobuf timestamp.
fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A ticket as `viewer` sees it, with its `history`; never its secret.
pub(crate) fn ticket_to_pb(
    t: &Ticket,
    history: &[Event],
    viewer: Viewer<'_>,
    snapshot: &Snapshot,
) -> pb::Ticket {
    pb::Ticket {
        id: t.id.clone(),
        text: t.text.clone(),
        location: Some(location_to_pb(&t.location)),
        subject: t.subject.clone().unwrap_or_default(),
        corps: corps_to_pb(t.corps).into(),
        state: state_to_pb(t.state).into(),
        assignee: t
            .assignee
            .as_deref()
            .map(|id| talent_ref(id, viewer, snapshot)),
        tier: tier_to_pb(t.tier).into(),
        history: history
            .iter()
            .map(|e| event_to_pb(e, viewer, snapshot))
            .collect(),
        answer: t.answer.clone(),
        created_at: Some(timestamp(t.created_at_ms)),
        updated_at: Some(timestamp(t.updated_at_ms)),
        ticket_secret: String::new(),
        contact: view::contact(t, viewer).unwrap_or_default().to_string(),
        offer_deadline_ms: t.offer_deadline_ms.unwrap_or(0),
        reason: t.reason.clone(),
        rating: t.rating.as_ref().map(|r| pb::Rating {
            stars: u32::from(r.stars),
            comment: r.comment.clone(),
        }),
        photo_ids: t.photos.clone(),
    }
}

pub(crate) fn division_to_pb(d: &Division) -> pb::Division {
    let level = match d.level {
        Level::County => pb::DivisionLevel::County,
        Level::Town => pb::DivisionLevel::Town,
        Level::Village => pb::DivisionLevel::Village,
        Level::City => pb::DivisionLevel::Unspecified,
    };
    pb::Division {
        code: d.code.to_string(),
        name: d.name.clone(),
        level: level.into(),
        point: Some(pb::GeoPoint {
            lat: d.point.lat,
            lon: d.point.lon,
        }),
    }
}

/// One responder's figures; a median or mean without values is 0.
pub(crate) fn figure_to_pb(f: &ResponderFigures) -> pb::ResponderFigure {
    pb::ResponderFigure {
        talent_id: f.talent_id.clone(),
        name: f.name.clone(),
        ..tally_to_pb(f.tier, f.county, 1, &f.tally)
    }
}

/// A subtotal's figures: no talent id or name; a tier's with no county, a
/// county's with no tier.
pub(crate) fn subtotal_to_pb(s: &Subtotal) -> pb::ResponderFigure {
    let (tier, county) = match s.group {
        Group::Tier(tier) => (tier, None),
        Group::County(county) => (None, county),
    };
    tally_to_pb(tier, county, s.responders, &s.tally)
}

fn tally_to_pb(
    tier: Option<Tier>,
    county: Option<&Division>,
    responders: u32,
    t: &Tally,
) -> pb::ResponderFigure {
    pb::ResponderFigure {
        talent_id: String::new(),
        name: String::new(),
        tier: tier.map_or(pb::Tier::Unspecified, tier_to_pb).into(),
        county_code: county.map(|c| c.code.to_string()).unwrap_or_default(),
        county: county.map(|c| c.name.clone()).unwrap_or_default(),
        responders,
        offers: t.offers,
        accepted: t.accepted,
        declined: t.declined,
        lapsed: t.lapsed,
        declined_or_lapsed_share: t.declined_or_lapsed_share().unwrap_or(0.0),
        answered: t.answered,
        median_accept_ms: t.median_accept_ms().unwrap_or(0),
        median_resolve_ms: t.median_resolve_ms().unwrap_or(0),
        ratings: t.stars.len() as u32,
        mean_rating: t.mean_rating().unwrap_or(0.0),
    }
}

pub(crate) fn entry_to_pb(e: &crate::knowledge::Entry) -> pb::KnowledgeEntry {
    pb::KnowledgeEntry {
        id: e.id.clone(),
        text: e.text.clone(),
        subject: e.subject.clone(),
        corps: corps_to_pb(e.corps).into(),
        county_code: e.county_code.clone(),
        county_name: e.county_name.clone(),
        answer: e.answer.clone(),
        tier: e.tier.map_or(pb::Tier::Unspecified, tier_to_pb).into(),
        resolved_at: Some(timestamp(e.resolved_at_ms)),
        rating: e.rating.map(u32::from),
        published_by: e.published_by.key().to_string(),
    }
}

pub(crate) fn hit_to_pb(h: &crate::knowledge::Hit) -> pb::KnowledgeHit {
    pb::KnowledgeHit {
        entry: Some(entry_to_pb(&h.entry)),
        similarity: h.similarity,
        matched_terms: h.matched_terms.clone(),
    }
}

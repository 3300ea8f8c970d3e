//! What a viewer sees of a ticket and of the talents on it: the farmer's
//! contact goes only to the farmer, to admins and to the responder who
//! accepted the ticket; a talent's phone only to an admin listing the roster.

use crate::{model::Talent, tickets::Principal, tickets::Ticket, tickets::TicketState};

/// Who looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Viewer<'a> {
    /// Any caller, unauthenticated (match results).
    Anyone,
    /// The farmer who submitted the ticket, proven by its secret.
    Farmer,
    /// A responder, by talent id.
    Responder(&'a str),
    /// A party-member liaison, who may only watch.
    Liaison,
    Admin,
}

impl<'a> From<&'a Principal> for Viewer<'a> {
    fn from(principal: &'a Principal) -> Viewer<'a> {
        match principal {
            Principal::Responder(id) | Principal::Action { talent: id, .. } => {
                Viewer::Responder(id.as_str())
            }
            Principal::Liaison(_) => Viewer::Liaison,
        }
    }
}

/// Where a talent is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Showing {
    /// A page of the roster listing.
    Roster,
    /// A match result.
    Match,
    /// A ticket's assignee or the talent an event is about.
    Ticket,
}

/// The farmer's contact on `ticket` as `viewer` sees it: the farmer and
/// admins always; a responder only while the ticket is accepted by them;
/// liaisons and anyone else never.
pub(crate) fn contact<'t>(ticket: &'t Ticket, viewer: Viewer<'_>) -> Option<&'t str> {
    let shown = match viewer {
        Viewer::Farmer | Viewer::Admin => true,
        Viewer::Responder(id) => {
            ticket.state == TicketState::Accepted && ticket.assignee.as_deref() == Some(id)
        }
        Viewer::Liaison | Viewer::Anyone => false,
    };
    shown.then_some(ticket.contact.as_str())
}

/// A talent's phone as `viewer` sees it where it is `showing`: only in an
/// admin's roster listing; match results and tickets never carry it.
pub(crate) fn phone<'t>(
    talent: &'t Talent,
    showing: Showing,
    viewer: Viewer<'_>,
) -> Option<&'t str> {
    (showing == Showing::Roster && viewer == Viewer::Admin).then_some(talent.phone.as_str())
}

/// A queued ticket for other rooms' unit tests.
#[cfg(test)]
pub(crate) fn tests_ticket() -> Ticket {
    tests::ticket(TicketState::Queued, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::ids::TalentId, model::Location, model::Tier};

    pub(super) fn ticket(state: TicketState, assignee: Option<&str>) -> Ticket {
        Ticket {
            id: "t1".into(),
            text: "苹果树叶子发黄".into(),
            location: Location::Division("610527106202".into()),
            division_code: None,
            subject: None,
            corps: None,
            contact: "13900000001".into(),
            idempotency_key: None,
            state,
            assignee: assignee.map(Into::into),
            tier: Tier::Village,
            offers_in_tier: 0,
            offer_deadline_ms: None,
            answer: String::new(),
            reason: String::new(),
            created_at_ms: 0,
            updated_at_ms: 0,
            rating: None,
            words: None,
            photos: Vec::new(),
        }
    }

    #[test]
    fn the_contact_goes_to_the_farmer_admins_and_the_accepting_responder() {
        let accepted = ticket(TicketState::Accepted, Some("r1"));
        assert_eq!(contact(&accepted, Viewer::Farmer), Some("13900000001"));
        assert_eq!(contact(&accepted, Viewer::Admin), Some("13900000001"));
        assert_eq!(
            contact(&accepted, Viewer::Responder("r1")),
            Some("13900000001")
        );
        assert_eq!(contact(&accepted, Viewer::Responder("r2")), None);
        assert_eq!(contact(&accepted, Viewer::Liaison), None);
        assert_eq!(contact(&accepted, Viewer::Anyone), None);
        let offered = ticket(TicketState::Offered, Some("r1"));
        assert_eq!(
            contact(&offered, Viewer::Responder("r1")),
            None,
            "an offer is not yet an acceptance"
        );
        let resolved = ticket(TicketState::Resolved, Some("r1"));
        assert_eq!(contact(&resolved, Viewer::Responder("r1")), None);
    }

    #[test]
    fn a_phone_leaves_only_in_an_admins_roster_listing() {
        let talent = Talent {
            id: "r1".into(),
            name: "甲".into(),
            phone: "13900000011".into(),
            tier: Tier::Village,
            corps: None,
            specialties: vec!["苹果".into()],
            skills: String::new(),
            division_code: crate::model::divisions::DivisionCode::parse("610527106202").unwrap(),
            given_point: None,
            point: crate::model::geo::GeoPoint {
                lat: 35.0,
                lon: 109.5,
            },
            capacity: 1,
            active: true,
        };
        assert_eq!(
            phone(&talent, Showing::Roster, Viewer::Admin),
            Some("13900000011")
        );
        for showing in [Showing::Match, Showing::Ticket] {
            assert_eq!(phone(&talent, showing, Viewer::Admin), None);
        }
        for viewer in [
            Viewer::Anyone,
            Viewer::Farmer,
            Viewer::Responder("r1"),
            Viewer::Liaison,
        ] {
            assert_eq!(phone(&talent, Showing::Roster, viewer), None);
        }
    }

    #[test]
    fn a_liaison_principal_views_as_a_liaison() {
        let liaison = Principal::Liaison("l1".into());
        assert_eq!(Viewer::from(&liaison), Viewer::Liaison);
        let responder = Principal::Responder(TalentId::new("r1"));
        assert_eq!(Viewer::from(&responder), Viewer::Responder("r1"));
    }
}

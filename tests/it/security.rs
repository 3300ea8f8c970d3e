//! Who may call what: every RPC against no token, a wrong token, a farmer
//! (ticket secret), another responder, the right responder and the admin;
//! rate limiting of farmer calls.

use crate::common::*;
use tonic::{transport::Channel, Code, Request};
use xingweinong::pb;

const ROSTER: &str = "\
r1,甲,13900000011,village,,苹果,,610527106202,35.000,109.500,5,true
r2,乙,13900000012,village,,小麦,,610527106202,35.000,109.500,5,true
";

/// How a call is made.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Nobody,
    WrongToken,
    Farmer,
    OtherResponder,
    Responder,
    Admin,
}

const CALLERS: [Caller; 6] = [
    Caller::Nobody,
    Caller::WrongToken,
    Caller::Farmer,
    Caller::OtherResponder,
    Caller::Responder,
    Caller::Admin,
];

struct World {
    r1: String,
    r2: String,
    ticket: String,
    secret: String,
}

impl World {
    fn req<T>(&self, caller: Caller, message: T) -> Request<T> {
        match caller {
            Caller::Nobody | Caller::Farmer => Request::new(message),
            Caller::WrongToken => with_token(message, "xwn1.7b7d.00"),
            Caller::OtherResponder => with_token(message, &self.r2),
            Caller::Responder => with_token(message, &self.r1),
            Caller::Admin => admin(message),
        }
    }

    /// The secret a caller presents for farmer reads.
    fn secret(&self, caller: Caller) -> String {
        if caller == Caller::Farmer {
            self.secret.clone()
        } else {
            String::new()
        }
    }
}

fn code<T>(r: Result<T, tonic::Status>) -> Code {
    r.map_or_else(|s| s.code(), |_| Code::Ok)
}

/// Not refused for who the caller is (the call itself may still fail).
fn allowed(c: Code) -> bool {
    !matches!(c, Code::Unauthenticated | Code::PermissionDenied)
}

#[tokio::test]
async fn authorization_matrix() {
    let server = TestServer::start(config(&temp_dir("authz"))).await;
    let ch = server.channel().await;
    let mut m = Matrix::open(&ch).await;
    for caller in CALLERS {
        m.matching_calls_are_open_to_all(caller).await;
        m.roster_calls_are_for_the_admin(caller).await;
        m.ticket_calls_are_for_the_farmer(caller).await;
        m.responder_calls_are_for_responders(caller).await;
        // Only the responder the ticket is offered to may act on it; the
        // right responder's decline is checked last, below.
        if caller != Caller::Responder {
            m.others_may_not_act_on_the_ticket(caller).await;
        }
    }
    m.the_right_responder_closes_the_ticket().await;
    assert!(m.failures.is_empty(), "{}", m.failures.join("\n"));
    server.stop_and_clean().await;
}

/// A server with two responders and one ticket offered to r1, a client per
/// service, and the calls whose answer did not match the expectation.
struct Matrix {
    w: World,
    matcher: MatchClient,
    roster: RosterClient,
    tickets: TicketClient,
    responder: ResponderClient,
    failures: Vec<String>,
}

impl Matrix {
    /// Imports the roster, issues r1's and r2's tokens, makes r1 available
    /// and submits the ticket r1 is offered.
    async fn open(ch: &Channel) -> Matrix {
        import_rows(ch, ROSTER).await;
        let mut farmer = TicketClient::new(ch.clone());
        let r1 = token_for(ch, "r1").await;
        let r2 = token_for(ch, "r2").await;
        ResponderClient::new(ch.clone())
            .set_availability(with_token(
                pb::SetAvailabilityRequest { availability: 1 },
                &r1,
            ))
            .await
            .unwrap();
        let t = farmer
            .submit_problem(submit_request("苹果树腐烂病", at_point(35.0, 109.5), ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(t.assignee.as_ref().unwrap().id, "r1");
        let w = World {
            r1,
            r2,
            ticket: t.id.clone(),
            secret: t.ticket_secret.clone(),
        };
        Matrix {
            w,
            matcher: MatchClient::new(ch.clone()),
            roster: RosterClient::new(ch.clone()),
            tickets: TicketClient::new(ch.clone()),
            responder: ResponderClient::new(ch.clone()),
            failures: Vec::new(),
        }
    }

    /// Records a call whose answer was not the expected one.
    fn check(&mut self, rpc: &str, caller: Caller, got: Code, ok: bool) {
        if allowed(got) != ok {
            self.failures.push(format!(
                "{rpc} as {caller:?}: {got:?}, expected {}",
                if ok { "allowed" } else { "refused" }
            ));
        }
    }

    async fn matching_calls_are_open_to_all(&mut self, caller: Caller) {
        let m = at_division("苹果树腐烂病", "610527106202");
        let got = code(self.matcher.match_problem(self.w.req(caller, m)).await);
        self.check("MatchProblem", caller, got, true);
        let got = code(
            self.matcher
                .ping(self.w.req(caller, pb::PingRequest {}))
                .await,
        );
        self.check("Ping", caller, got, true);
    }

    async fn roster_calls_are_for_the_admin(&mut self, caller: Caller) {
        let admin_only = caller == Caller::Admin;
        let stream = tokio_stream::iter(vec![csv_chunk(&format!("{HEADER}\n{ROSTER}"))]);
        let got = code(self.roster.import_roster(self.w.req(caller, stream)).await);
        self.check("ImportRoster", caller, got, admin_only);
        let up = pb::UpsertTalentsRequest { talents: vec![] };
        let got = code(self.roster.upsert_talents(self.w.req(caller, up)).await);
        self.check("UpsertTalents", caller, got, admin_only);
        let rm = pb::RemoveTalentsRequest {
            ids: vec!["nobody".into()],
        };
        let got = code(self.roster.remove_talents(self.w.req(caller, rm)).await);
        self.check("RemoveTalents", caller, got, admin_only);
        let got = code(
            self.roster
                .get_roster_stats(self.w.req(caller, pb::GetRosterStatsRequest {}))
                .await,
        );
        self.check("GetRosterStats", caller, got, admin_only);
        let got = code(
            self.roster
                .list_talents(self.w.req(caller, pb::ListTalentsRequest::default()))
                .await,
        );
        self.check("ListTalents", caller, got, admin_only);
        let tok = pb::IssueResponderTokenRequest {
            talent_id: "r1".into(),
            ttl_seconds: 60,
        };
        let got = code(
            self.roster
                .issue_responder_token(self.w.req(caller, tok))
                .await,
        );
        self.check("IssueResponderToken", caller, got, admin_only);
        let link = pb::IssueActionLinkRequest {
            ticket_id: self.w.ticket.clone(),
        };
        let got = code(
            self.roster
                .issue_action_link(self.w.req(caller, link))
                .await,
        );
        self.check("IssueActionLink", caller, got, admin_only);
        let ls = tokio_stream::iter(vec![csv_chunk(
            "id,name,phone,villages\nl1,甲,,610527106202\n",
        )]);
        let got = code(self.roster.import_liaisons(self.w.req(caller, ls)).await);
        self.check("ImportLiaisons", caller, got, admin_only);
        let got = code(
            self.roster
                .list_tickets(self.w.req(caller, pb::ListTicketsRequest::default()))
                .await,
        );
        self.check("ListTickets", caller, got, admin_only);
    }

    async fn ticket_calls_are_for_the_farmer(&mut self, caller: Caller) {
        let farmer_only = caller == Caller::Farmer;
        let s = submit_request("小麦条锈病", at_point(35.0, 109.5), "");
        let got = code(self.tickets.submit_problem(self.w.req(caller, s)).await);
        self.check("SubmitProblem", caller, got, true);
        let g = pb::GetTicketRequest {
            ticket_id: self.w.ticket.clone(),
            ticket_secret: self.w.secret(caller),
        };
        let got = code(self.tickets.get_ticket(self.w.req(caller, g)).await);
        self.check("GetTicket", caller, got, farmer_only);
        let wt = pb::WatchTicketRequest {
            ticket_id: self.w.ticket.clone(),
            ticket_secret: self.w.secret(caller),
        };
        let got = code(
            self.tickets
                .watch_ticket(self.w.req(caller, wt))
                .await
                .map(|_| ()),
        );
        self.check("WatchTicket", caller, got, farmer_only);
    }

    async fn responder_calls_are_for_responders(&mut self, caller: Caller) {
        let responders = matches!(caller, Caller::Responder | Caller::OtherResponder);
        let av = pb::SetAvailabilityRequest { availability: 1 };
        let got = code(
            self.responder
                .set_availability(self.w.req(caller, av))
                .await,
        );
        self.check("SetAvailability", caller, got, responders);
        let wa = pb::WatchAssignmentsRequest {};
        let got = code(
            self.responder
                .watch_assignments(self.w.req(caller, wa))
                .await
                .map(|_| ()),
        );
        self.check("WatchAssignments", caller, got, responders);
    }

    /// Everyone but the responder the ticket is offered to is refused when
    /// acting on it.
    async fn others_may_not_act_on_the_ticket(&mut self, caller: Caller) {
        let d = pb::DeclineAssignmentRequest {
            ticket_id: self.w.ticket.clone(),
            reason: String::new(),
        };
        let got = code(
            self.responder
                .decline_assignment(self.w.req(caller, d))
                .await,
        );
        self.check("DeclineAssignment", caller, got, false);
        let a = pb::TicketActionRequest {
            ticket_id: self.w.ticket.clone(),
        };
        let got = code(
            self.responder
                .accept_assignment(self.w.req(caller, a))
                .await,
        );
        self.check("AcceptAssignment", caller, got, false);
        let r = pb::ResolveTicketRequest {
            ticket_id: self.w.ticket.clone(),
            answer: "x".into(),
            shareable: false,
        };
        let got = code(self.responder.resolve_ticket(self.w.req(caller, r)).await);
        self.check("ResolveTicket", caller, got, false);
        let e = pb::EscalateTicketRequest {
            ticket_id: self.w.ticket.clone(),
            reason: String::new(),
        };
        let got = code(self.responder.escalate_ticket(self.w.req(caller, e)).await);
        self.check("EscalateTicket", caller, got, false);
        if caller != Caller::Farmer {
            let c = pb::CancelTicketRequest {
                ticket_id: self.w.ticket.clone(),
                ticket_secret: self.w.secret(caller),
            };
            let got = code(self.tickets.cancel_ticket(self.w.req(caller, c)).await);
            self.check("CancelTicket", caller, got, false);
        }
    }

    /// The right responder accepts and resolves; the farmer may ask to
    /// cancel (the ticket is resolved by now, so it cannot); a stranger
    /// acting on the closed ticket learns nothing.
    async fn the_right_responder_closes_the_ticket(&mut self) {
        let a = pb::TicketActionRequest {
            ticket_id: self.w.ticket.clone(),
        };
        let got = code(
            self.responder
                .accept_assignment(self.w.req(Caller::Responder, a))
                .await,
        );
        self.check("AcceptAssignment", Caller::Responder, got, true);
        let r = pb::ResolveTicketRequest {
            ticket_id: self.w.ticket.clone(),
            answer: "刮治".into(),
            shareable: false,
        };
        let got = code(
            self.responder
                .resolve_ticket(self.w.req(Caller::Responder, r))
                .await,
        );
        self.check("ResolveTicket", Caller::Responder, got, true);
        let c = pb::CancelTicketRequest {
            ticket_id: self.w.ticket.clone(),
            ticket_secret: self.w.secret.clone(),
        };
        let got = code(self.tickets.cancel_ticket(Request::new(c)).await);
        self.check("CancelTicket", Caller::Farmer, got, true);
        let a = pb::TicketActionRequest {
            ticket_id: self.w.ticket.clone(),
        };
        let got = code(
            self.responder
                .accept_assignment(self.w.req(Caller::OtherResponder, a))
                .await,
        );
        self.check(
            "AcceptAssignment (closed)",
            Caller::OtherResponder,
            got,
            false,
        );
    }
}

#[tokio::test]
async fn farmer_calls_past_the_rate_limit_get_resource_exhausted() {
    let mut cfg = config(&temp_dir("ratelimit"));
    cfg.limits.client_rate_per_sec = 0.5;
    cfg.limits.client_burst = 3.0;
    let server = TestServer::start(cfg).await;
    let mut matcher = MatchClient::new(server.channel().await);
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(code(
            matcher
                .match_problem(at_division("苹果树腐烂病", "610527106202"))
                .await,
        ));
    }
    assert_eq!(
        codes,
        [
            Code::Ok,
            Code::Ok,
            Code::Ok,
            Code::ResourceExhausted,
            Code::ResourceExhausted
        ]
    );
    // Admin calls are not rate limited.
    let mut roster = RosterClient::new(server.channel().await);
    for _ in 0..5 {
        roster
            .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
            .await
            .unwrap();
    }
    server.stop_and_clean().await;
}

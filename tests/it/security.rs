//! Who may call what: every RPC against no token, a wrong token, a farmer
//! (ticket secret), another responder, the right responder and the admin;
//! rate limiting of farmer calls.

use crate::common::*;
use tonic::{Code, Request};
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
    import_rows(&ch, ROSTER).await;
    let mut farmer = TicketClient::new(ch.clone());
    let r1 = token_for(&ch, "r1").await;
    let r2 = token_for(&ch, "r2").await;
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

    let mut matcher = MatchClient::new(ch.clone());
    let mut roster = RosterClient::new(ch.clone());
    let mut tickets = TicketClient::new(ch.clone());
    let mut responder = ResponderClient::new(ch.clone());
    let mut failures = Vec::new();
    let mut check = |rpc: &str, caller: Caller, got: Code, ok: bool| {
        if allowed(got) != ok {
            failures.push(format!(
                "{rpc} as {caller:?}: {got:?}, expected {}",
                if ok { "allowed" } else { "refused" }
            ));
        }
    };
    for caller in CALLERS {
        let admin_only = caller == Caller::Admin;
        let m = at_division("苹果树腐烂病", "610527106202");
        check(
            "MatchProblem",
            caller,
            code(matcher.match_problem(w.req(caller, m)).await),
            true,
        );
        check(
            "Ping",
            caller,
            code(matcher.ping(w.req(caller, pb::PingRequest {})).await),
            true,
        );

        let stream = tokio_stream::iter(vec![csv_chunk(&format!("{HEADER}\n{ROSTER}"))]);
        check(
            "ImportRoster",
            caller,
            code(roster.import_roster(w.req(caller, stream)).await),
            admin_only,
        );
        let up = pb::UpsertTalentsRequest { talents: vec![] };
        check(
            "UpsertTalents",
            caller,
            code(roster.upsert_talents(w.req(caller, up)).await),
            admin_only,
        );
        let rm = pb::RemoveTalentsRequest {
            ids: vec!["nobody".into()],
        };
        check(
            "RemoveTalents",
            caller,
            code(roster.remove_talents(w.req(caller, rm)).await),
            admin_only,
        );
        check(
            "GetRosterStats",
            caller,
            code(
                roster
                    .get_roster_stats(w.req(caller, pb::GetRosterStatsRequest {}))
                    .await,
            ),
            admin_only,
        );
        check(
            "ListTalents",
            caller,
            code(
                roster
                    .list_talents(w.req(caller, pb::ListTalentsRequest::default()))
                    .await,
            ),
            admin_only,
        );
        let tok = pb::IssueResponderTokenRequest {
            talent_id: "r1".into(),
            ttl_seconds: 60,
        };
        check(
            "IssueResponderToken",
            caller,
            code(roster.issue_responder_token(w.req(caller, tok)).await),
            admin_only,
        );
        let ls = tokio_stream::iter(vec![csv_chunk(
            "id,name,phone,villages\nl1,甲,,610527106202\n",
        )]);
        check(
            "ImportLiaisons",
            caller,
            code(roster.import_liaisons(w.req(caller, ls)).await),
            admin_only,
        );
        check(
            "ListTickets",
            caller,
            code(
                roster
                    .list_tickets(w.req(caller, pb::ListTicketsRequest::default()))
                    .await,
            ),
            admin_only,
        );

        let farmer_only = caller == Caller::Farmer;
        let s = submit_request("小麦条锈病", at_point(35.0, 109.5), "");
        check(
            "SubmitProblem",
            caller,
            code(tickets.submit_problem(w.req(caller, s)).await),
            true,
        );
        let g = pb::GetTicketRequest {
            ticket_id: w.ticket.clone(),
            ticket_secret: w.secret(caller),
        };
        check(
            "GetTicket",
            caller,
            code(tickets.get_ticket(w.req(caller, g)).await),
            farmer_only,
        );
        let wt = pb::WatchTicketRequest {
            ticket_id: w.ticket.clone(),
            ticket_secret: w.secret(caller),
        };
        check(
            "WatchTicket",
            caller,
            code(tickets.watch_ticket(w.req(caller, wt)).await.map(|_| ())),
            farmer_only,
        );

        let responders = matches!(caller, Caller::Responder | Caller::OtherResponder);
        let own = caller == Caller::Responder;
        let av = pb::SetAvailabilityRequest { availability: 1 };
        check(
            "SetAvailability",
            caller,
            code(responder.set_availability(w.req(caller, av)).await),
            responders,
        );
        let wa = pb::WatchAssignmentsRequest {};
        check(
            "WatchAssignments",
            caller,
            code(
                responder
                    .watch_assignments(w.req(caller, wa))
                    .await
                    .map(|_| ()),
            ),
            responders,
        );
        let d = pb::DeclineAssignmentRequest {
            ticket_id: w.ticket.clone(),
            reason: String::new(),
        };
        // Only the responder the ticket is offered to may act on it; the
        // right responder's decline is checked last, below.
        if !own {
            check(
                "DeclineAssignment",
                caller,
                code(responder.decline_assignment(w.req(caller, d)).await),
                false,
            );
            let a = pb::TicketActionRequest {
                ticket_id: w.ticket.clone(),
            };
            check(
                "AcceptAssignment",
                caller,
                code(responder.accept_assignment(w.req(caller, a)).await),
                false,
            );
            let r = pb::ResolveTicketRequest {
                ticket_id: w.ticket.clone(),
                answer: "x".into(),
            };
            check(
                "ResolveTicket",
                caller,
                code(responder.resolve_ticket(w.req(caller, r)).await),
                false,
            );
            let e = pb::EscalateTicketRequest {
                ticket_id: w.ticket.clone(),
                reason: String::new(),
            };
            check(
                "EscalateTicket",
                caller,
                code(responder.escalate_ticket(w.req(caller, e)).await),
                false,
            );
            if caller != Caller::Farmer {
                let c = pb::CancelTicketRequest {
                    ticket_id: w.ticket.clone(),
                    ticket_secret: w.secret(caller),
                };
                check(
                    "CancelTicket",
                    caller,
                    code(tickets.cancel_ticket(w.req(caller, c)).await),
                    false,
                );
            }
        }
    }
    let a = pb::TicketActionRequest {
        ticket_id: w.ticket.clone(),
    };
    check(
        "AcceptAssignment",
        Caller::Responder,
        code(
            responder
                .accept_assignment(w.req(Caller::Responder, a))
                .await,
        ),
        true,
    );
    let r = pb::ResolveTicketRequest {
        ticket_id: w.ticket.clone(),
        answer: "刮治".into(),
    };
    check(
        "ResolveTicket",
        Caller::Responder,
        code(responder.resolve_ticket(w.req(Caller::Responder, r)).await),
        true,
    );
    // The farmer may ask to cancel (the ticket is resolved by now, so it
    // cannot); a stranger acting on the closed ticket learns nothing.
    let c = pb::CancelTicketRequest {
        ticket_id: w.ticket.clone(),
        ticket_secret: w.secret.clone(),
    };
    check(
        "CancelTicket",
        Caller::Farmer,
        code(tickets.cancel_ticket(Request::new(c)).await),
        true,
    );
    let a = pb::TicketActionRequest {
        ticket_id: w.ticket.clone(),
    };
    let got = code(
        responder
            .accept_assignment(w.req(Caller::OtherResponder, a))
            .await,
    );
    check(
        "AcceptAssignment (closed)",
        Caller::OtherResponder,
        got,
        false,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    server.stop_and_clean().await;
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

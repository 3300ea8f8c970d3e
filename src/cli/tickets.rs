//! Ticket commands of the `xwn` client: farmers submit and follow tickets,
//! responders watch their offers live and act on them, admins issue tokens,
//! load liaisons and list tickets.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use tonic::{metadata::MetadataValue, transport::Channel, Request};

use super::{explain, read_chunks, ClientArgs, FileFormat, PlaceArgs};
use crate::{
    model::divisions::{DivisionCode, Divisions},
    model::geo::GeoPoint,
    pb,
};

#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// Submits a problem as a farmer; prints the ticket and its secret.
    Submit {
        text: String,
        #[command(flatten)]
        place: PlaceArgs,
        /// How the responder reaches you (phone).
        #[arg(long, default_value = "")]
        contact: String,
        /// Resubmitting with the same key returns the same ticket.
        #[arg(long, default_value = "")]
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Shows a ticket and its history (farmer: needs the ticket secret).
    Ticket {
        id: String,
        #[arg(long)]
        secret: String,
        /// Follow the ticket live instead.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Issues a responder or liaison token (admin); prints only the token.
    Token {
        talent_id: String,
        #[arg(long, default_value_t = 30)]
        ttl_days: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Goes ONLINE and prints offers and changes live; type `accept ID`,
    /// `decline ID [reason]`, `resolve ID answer`, `escalate ID [reason]`,
    /// `online`, `away`, `offline` or `quit`.
    Watch {
        #[command(flatten)]
        responder: ResponderArgs,
    },
    /// Accepts an offered ticket.
    Accept {
        id: String,
        #[command(flatten)]
        responder: ResponderArgs,
    },
    /// Declines an offered ticket: it goes to the next responder.
    Decline {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        responder: ResponderArgs,
    },
    /// Resolves an accepted ticket with an answer for the farmer.
    Resolve {
        id: String,
        #[arg(long)]
        answer: String,
        #[command(flatten)]
        responder: ResponderArgs,
    },
    /// Escalates a ticket to the next tier up.
    Escalate {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        responder: ResponderArgs,
    },
    /// Sets the responder's availability.
    Availability {
        #[arg(value_enum)]
        availability: AvailabilityArg,
        #[command(flatten)]
        responder: ResponderArgs,
    },
    /// Replaces the party-member liaison list (admin; CSV or JSONL with
    /// id, name, phone, villages).
    Liaisons {
        file: PathBuf,
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Lists tickets, newest first (admin).
    Tickets {
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        #[arg(long, default_value = "")]
        assignee: String,
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        #[arg(long, default_value = "")]
        page_token: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AvailabilityArg {
    Online,
    Away,
    Offline,
}

impl AvailabilityArg {
    fn to_pb(self) -> pb::Availability {
        match self {
            AvailabilityArg::Online => pb::Availability::Online,
            AvailabilityArg::Away => pb::Availability::Away,
            AvailabilityArg::Offline => pb::Availability::Offline,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateArg {
    Queued,
    Offered,
    Accepted,
    Resolved,
    Unroutable,
    Cancelled,
}

#[derive(Debug, Args)]
pub struct ResponderArgs {
    /// Server address.
    #[arg(long, env = "XWN_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// The responder's (or liaison's) token from `xwn token`.
    #[arg(long, env = "XWN_RESPONDER_TOKEN", hide_env_values = true)]
    pub responder_token: String,
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// A responder client with its token.
struct Responder {
    api: pb::responder_service_client::ResponderServiceClient<Channel>,
    token: MetadataValue<tonic::metadata::Ascii>,
}

impl Responder {
    async fn connect(args: &ResponderArgs) -> anyhow::Result<Responder> {
        let channel = super::connect(&args.server, &args.tls).await?;
        let token = format!("Bearer {}", args.responder_token.trim())
            .parse()
            .context("the token has characters HTTP headers cannot carry")?;
        Ok(Responder {
            api: pb::responder_service_client::ResponderServiceClient::new(channel),
            token,
        })
    }

    fn req<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.metadata_mut().insert("authorization", self.token.clone());
        r
    }

    /// Runs one action; prints the ticket it returns.
    async fn act(&mut self, action: &str, id: &str, text: &str) -> anyhow::Result<()> {
        let id = id.to_string();
        let ticket = match action {
            "accept" => {
                self.api
                    .accept_assignment(self.req(pb::TicketActionRequest { ticket_id: id }))
                    .await
            }
            "decline" => {
                let r = pb::DeclineAssignmentRequest {
                    ticket_id: id,
                    reason: text.into(),
                };
                self.api.decline_assignment(self.req(r)).await
            }
            "resolve" => {
                let r = pb::ResolveTicketRequest {
                    ticket_id: id,
                    answer: text.into(),
                };
                self.api.resolve_ticket(self.req(r)).await
            }
            "escalate" => {
                let r = pb::EscalateTicketRequest {
                    ticket_id: id,
                    reason: text.into(),
                };
                self.api.escalate_ticket(self.req(r)).await
            }
            other => anyhow::bail!("unknown action {other:?}"),
        }
        .map_err(explain)?
        .into_inner();
        println!(
            "{action}: ticket {} is now {}",
            ticket.id,
            state_name(ticket.state)
        );
        Ok(())
    }

    async fn set(&mut self, availability: pb::Availability) -> Result<(), tonic::Status> {
        let r = pb::SetAvailabilityRequest {
            availability: availability as i32,
        };
        self.api.set_availability(self.req(r)).await.map(|_| ())
    }
}

fn state_name(value: i32) -> &'static str {
    pb::TicketState::try_from(value)
        .map_or("?", |s| s.as_str_name().trim_start_matches("TICKET_STATE_"))
}

fn kind_name(value: i32) -> &'static str {
    pb::TicketEventKind::try_from(value).map_or("?", |k| {
        k.as_str_name().trim_start_matches("TICKET_EVENT_KIND_")
    })
}

fn tier_name(value: i32) -> &'static str {
    pb::Tier::try_from(value).map_or("?", |t| t.as_str_name().trim_start_matches("TIER_"))
}

/// Unix milliseconds as UTC `YYYY-MM-DD HH:MM:SS` (civil-from-days).
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn print_event(e: &pb::TicketEvent) {
    let talent = e
        .talent
        .as_ref()
        .map_or(String::new(), |t| format!(" {} {}", t.id, t.name));
    let reason = if e.reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", e.reason)
    };
    println!(
        "  #{:<3} {} {:<16} by {}{talent}{reason} -> {}",
        e.seq,
        utc(e.at_ms),
        kind_name(e.kind),
        e.actor,
        state_name(e.state)
    );
}

fn print_ticket(t: &pb::Ticket) {
    println!("ticket {}  {}", t.id, state_name(t.state));
    println!("  {}", t.text);
    let corps = pb::Corps::try_from(t.corps).map_or("?", |c| c.as_str_name());
    let subject = if t.subject.is_empty() {
        "—"
    } else {
        &t.subject
    };
    println!(
        "  subject {subject}  corps {corps}  tier {}",
        tier_name(t.tier)
    );
    if let Some(a) = &t.assignee {
        println!(
            "  assignee {} {} ({}, {})",
            a.id, a.name, a.county_name, a.division_name
        );
    }
    if !t.reason.is_empty() {
        println!("  reason {}", t.reason);
    }
    if !t.contact.is_empty() {
        println!("  contact {}", t.contact);
    }
    if t.offer_deadline_ms > 0 {
        println!("  offer open until {}", utc(t.offer_deadline_ms));
    }
    if !t.answer.is_empty() {
        println!("  answer {}", t.answer);
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

fn print_assignment(a: &pb::AssignmentEvent) {
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
        t.id,
        if tags.is_empty() {
            String::new()
        } else {
            format!(" ({tags})")
        },
        if t.subject.is_empty() {
            "—"
        } else {
            &t.subject
        },
        state_name(t.state),
        tier_name(t.tier),
        t.text
    );
    if !e.reason.is_empty() {
        println!("  reason {}", e.reason);
    }
    if !t.contact.is_empty() {
        println!("  contact {}", t.contact);
    }
    if e.kind() != pb::TicketEventKind::Offered || t.offer_deadline_ms <= 0 {
        return;
    }
    let km = distance_km(t).map_or(String::new(), |km| format!("{km:.1} km; "));
    if a.read_only {
        let to = t
            .assignee
            .as_ref()
            .map_or(String::new(), |a| format!("{} {} ", a.id, a.name));
        println!(
            "  offered to {to}({km}open until {})",
            utc(t.offer_deadline_ms)
        );
    } else {
        println!(
            "  {km}type `accept {}` or `decline {} reason` before {}",
            t.id,
            t.id,
            utc(t.offer_deadline_ms)
        );
    }
}

/// Lines typed on stdin, read on a plain thread: `tokio::io::stdin` reads on
/// the runtime's blocking pool, where a pending read cannot be cancelled and
/// would hold the exit after Ctrl-C until Enter is pressed.
fn stdin_lines() -> tokio::sync::mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

async fn watch(args: &ResponderArgs) -> anyhow::Result<()> {
    let mut responder = Responder::connect(args).await?;
    match responder.set(pb::Availability::Online).await {
        Ok(()) => println!("ONLINE; waiting for offers (type `quit` to go offline)"),
        Err(s) if s.code() == tonic::Code::PermissionDenied => println!("read-only liaison stream"),
        Err(s) => return Err(explain(s)),
    }
    let mut stream = responder
        .api
        .watch_assignments(responder.req(pb::WatchAssignmentsRequest {}))
        .await
        .map_err(explain)?
        .into_inner();
    let mut lines = stdin_lines();
    // One listener for the whole loop, so a Ctrl-C pressed while an action
    // is in flight is not lost.
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let result = loop {
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(a)) => print_assignment(&a),
                Ok(None) => break Ok(()),
                Err(s) => break Err(explain(s)),
            },
            line = lines.recv() => {
                let Some(line) = line.transpose()? else { break Ok(()) };
                let mut words = line.trim().splitn(3, char::is_whitespace);
                let (verb, id, rest) = (words.next().unwrap_or(""), words.next().unwrap_or(""), words.next().unwrap_or(""));
                let outcome = match verb {
                    "" => Ok(()),
                    "quit" | "exit" => break Ok(()),
                    "online" | "away" | "offline" => {
                        let a = match verb { "online" => pb::Availability::Online, "away" => pb::Availability::Away, _ => pb::Availability::Offline };
                        responder.set(a).await.map_err(explain).map(|()| println!("now {verb}"))
                    }
                    "accept" | "decline" | "resolve" | "escalate" if !id.is_empty() => responder.act(verb, id, rest).await,
                    _ => Err(anyhow::anyhow!("type accept ID, decline ID [reason], resolve ID answer, escalate ID [reason], online, away, offline or quit")),
                };
                if let Err(e) = outcome {
                    eprintln!("error: {e:#}");
                }
            }
            _ = &mut ctrl_c => break Ok(()),
        }
    };
    let _ = responder.set(pb::Availability::Offline).await;
    result
}

/// Runs a ticket command.
pub async fn run(command: TicketCommand) -> anyhow::Result<()> {
    match command {
        TicketCommand::Submit {
            text,
            place,
            contact,
            key,
            client,
        } => submit(text, &place, contact, key, &client).await,
        TicketCommand::Ticket {
            id,
            secret,
            watch,
            client,
        } => show_ticket(id, secret, watch, &client).await,
        TicketCommand::Token {
            talent_id,
            ttl_days,
            client,
        } => token(talent_id, ttl_days, &client).await,
        TicketCommand::Watch { responder } => self::watch(&responder).await,
        TicketCommand::Accept { id, responder } => act(&responder, "accept", &id, "").await,
        TicketCommand::Decline {
            id,
            reason,
            responder,
        } => act(&responder, "decline", &id, &reason).await,
        TicketCommand::Resolve {
            id,
            answer,
            responder,
        } => act(&responder, "resolve", &id, &answer).await,
        TicketCommand::Escalate {
            id,
            reason,
            responder,
        } => act(&responder, "escalate", &id, &reason).await,
        TicketCommand::Availability {
            availability,
            responder,
        } => set_availability(availability, &responder).await,
        TicketCommand::Liaisons {
            file,
            format,
            client,
        } => liaisons(&file, format, &client).await,
        TicketCommand::Tickets {
            state,
            assignee,
            page_size,
            page_token,
            client,
        } => list_tickets(state, assignee, page_size, page_token, &client).await,
    }
}

/// `submit`: submits a problem and prints the ticket with its secret.
async fn submit(
    text: String,
    place: &PlaceArgs,
    contact: String,
    key: String,
    client: &ClientArgs,
) -> anyhow::Result<()> {
    let mut api = pb::ticket_service_client::TicketServiceClient::new(client.channel().await?);
    let r = pb::SubmitProblemRequest {
        text,
        location: place.to_pb(),
        contact,
        idempotency_key: key,
    };
    let t = api.submit_problem(r).await.map_err(explain)?.into_inner();
    print_ticket(&t);
    println!(
        "secret {}  (keep it to follow the ticket: xwn ticket {} --secret …)",
        t.ticket_secret, t.id
    );
    Ok(())
}

/// `ticket`: prints a ticket with its history, or follows it live.
async fn show_ticket(
    id: String,
    secret: String,
    watch: bool,
    client: &ClientArgs,
) -> anyhow::Result<()> {
    let mut api = pb::ticket_service_client::TicketServiceClient::new(client.channel().await?);
    if !watch {
        let r = pb::GetTicketRequest {
            ticket_id: id,
            ticket_secret: secret,
        };
        print_ticket(&api.get_ticket(r).await.map_err(explain)?.into_inner());
        return Ok(());
    }
    let r = pb::WatchTicketRequest {
        ticket_id: id,
        ticket_secret: secret,
    };
    let mut stream = api.watch_ticket(r).await.map_err(explain)?.into_inner();
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            message = stream.message() => match message.map_err(explain)? {
                Some(e) => print_event(&e),
                None => break,
            },
            _ = &mut ctrl_c => break,
        }
    }
    Ok(())
}

/// `token`: issues a token; prints it alone on stdout.
async fn token(talent_id: String, ttl_days: u64, client: &ClientArgs) -> anyhow::Result<()> {
    let mut api = pb::roster_service_client::RosterServiceClient::new(client.channel().await?);
    let r = pb::IssueResponderTokenRequest {
        talent_id,
        ttl_seconds: ttl_days * 24 * 3600,
    };
    let reply = api
        .issue_responder_token(client.admin(r)?)
        .await
        .map_err(explain)?
        .into_inner();
    eprintln!("{} token, expires {}", reply.role, utc(reply.expires_at_ms));
    println!("{}", reply.token);
    Ok(())
}

/// `accept`, `decline`, `resolve` and `escalate`: one action on a ticket.
async fn act(responder: &ResponderArgs, action: &str, id: &str, text: &str) -> anyhow::Result<()> {
    Responder::connect(responder)
        .await?
        .act(action, id, text)
        .await
}

/// `availability`: sets the responder's availability.
async fn set_availability(
    availability: AvailabilityArg,
    responder: &ResponderArgs,
) -> anyhow::Result<()> {
    Responder::connect(responder)
        .await?
        .set(availability.to_pb())
        .await
        .map_err(explain)?;
    println!(
        "now {}",
        availability
            .to_pb()
            .as_str_name()
            .trim_start_matches("AVAILABILITY_")
    );
    Ok(())
}

/// `liaisons`: replaces the liaison list with a file.
async fn liaisons(
    file: &std::path::Path,
    format: Option<FileFormat>,
    client: &ClientArgs,
) -> anyhow::Result<()> {
    let chunks = read_chunks(file, format)?;
    let mut api = pb::roster_service_client::RosterServiceClient::new(client.channel().await?);
    let report = api
        .import_liaisons(client.admin(tokio_stream::iter(chunks))?)
        .await
        .map_err(explain)?
        .into_inner();
    println!("accepted {} liaisons", report.accepted);
    Ok(())
}

impl StateArg {
    fn to_pb(self) -> pb::TicketState {
        match self {
            StateArg::Queued => pb::TicketState::Queued,
            StateArg::Offered => pb::TicketState::Offered,
            StateArg::Accepted => pb::TicketState::Accepted,
            StateArg::Resolved => pb::TicketState::Resolved,
            StateArg::Unroutable => pb::TicketState::Unroutable,
            StateArg::Cancelled => pb::TicketState::Cancelled,
        }
    }
}

/// `tickets`: prints one page of tickets, newest first.
async fn list_tickets(
    state: Option<StateArg>,
    assignee: String,
    page_size: u32,
    page_token: String,
    client: &ClientArgs,
) -> anyhow::Result<()> {
    let mut api = pb::roster_service_client::RosterServiceClient::new(client.channel().await?);
    let state = state.map_or(pb::TicketState::Unspecified, StateArg::to_pb);
    let r = pb::ListTicketsRequest {
        state: state as i32,
        assignee_id: assignee,
        page_size,
        page_token,
    };
    let reply = api
        .list_tickets(client.admin(r)?)
        .await
        .map_err(explain)?
        .into_inner();
    for t in &reply.tickets {
        let who = t.assignee.as_ref().map_or("—", |a| a.id.as_str());
        println!(
            "{}  {:<10} {:<6} {:<12} {}  {}",
            t.id,
            state_name(t.state),
            t.subject,
            who,
            t.text,
            t.reason
        );
    }
    if !reply.next_page_token.is_empty() {
        println!("next page: --page-token {}", reply.next_page_token);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_unix_milliseconds_as_utc() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(super::utc(1_795_811_170_706), "2026-11-27 20:26:10Z");
    }
}

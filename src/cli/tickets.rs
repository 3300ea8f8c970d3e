//! Ticket commands of the `xwn` client: farmers submit and follow tickets,
//! responders watch their offers live and act on them ([`super::responder`]),
//! admins issue tokens, load liaisons and list tickets.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

use super::print::{print_event, print_ticket, safe, state_name, utc};
use super::responder::{act, set_availability, watch, AvailabilityArg, ResponderArgs};
use super::{explain, read_chunks, ClientArgs, FileFormat, PlaceArgs};
use crate::pb;

#[derive(Debug, Subcommand)]
pub(crate) enum TicketCommand {
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
    /// Issues the action link of an offered or accepted ticket for the
    /// responder holding it (admin); prints only the link.
    Link {
        ticket_id: String,
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
    /// Lists notification deliveries and webhook endpoints, newest first;
    /// with --retry, sends an endpoint's failed ones again (admin).
    Deliveries {
        #[arg(long, value_enum)]
        state: Option<DeliveryArg>,
        /// One webhook's name.
        #[arg(long, default_value = "")]
        endpoint: String,
        /// Re-enables this endpoint and retries its failed deliveries
        /// (only --id's, when given).
        #[arg(long)]
        retry: Option<String>,
        #[arg(long, default_value = "")]
        id: String,
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        #[arg(long, default_value = "")]
        page_token: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum DeliveryArg {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StateArg {
    Queued,
    Offered,
    Accepted,
    Resolved,
    Unroutable,
    Cancelled,
}

/// Runs a ticket command.
pub(crate) async fn run(command: TicketCommand) -> anyhow::Result<()> {
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
        TicketCommand::Link { ticket_id, client } => link(ticket_id, &client).await,
        TicketCommand::Watch { responder } => watch(&responder).await,
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
        TicketCommand::Deliveries {
            state,
            endpoint,
            retry,
            id,
            page_size,
            page_token,
            client,
        } => match retry {
            Some(endpoint) => retry_deliveries(endpoint, id, &client).await,
            None => {
                let r = pb::ListDeliveriesRequest {
                    state: match state {
                        None => pb::DeliveryState::Unspecified,
                        Some(DeliveryArg::Pending) => pb::DeliveryState::Pending,
                        Some(DeliveryArg::Delivered) => pb::DeliveryState::Delivered,
                        Some(DeliveryArg::Failed) => pb::DeliveryState::Failed,
                    } as i32,
                    endpoint,
                    page_size,
                    page_token,
                };
                list_deliveries(r, &client).await
            }
        },
    }
}

/// `deliveries`: the endpoints with their counts, then a page of deliveries.
async fn list_deliveries(r: pb::ListDeliveriesRequest, client: &ClientArgs) -> anyhow::Result<()> {
    let mut api = pb::roster_service_client::RosterServiceClient::new(client.channel().await?);
    let reply = api
        .list_deliveries(client.admin(r)?)
        .await
        .map_err(explain)?
        .into_inner();
    for e in &reply.endpoints {
        println!(
            "endpoint {}  {}  pending {}  delivered {}  failed {}  takeovers {}{}",
            safe(&e.name),
            safe(&e.url),
            e.pending,
            e.delivered,
            e.failed,
            e.takeovers,
            if e.disabled { "  DISABLED (410)" } else { "" }
        );
    }
    for d in &reply.deliveries {
        println!(
            "{}  {:<9} {:<18} {:<10} {}  attempts {}  last {}  {}",
            safe(&d.id),
            d.state()
                .as_str_name()
                .trim_start_matches("DELIVERY_STATE_")
                .to_lowercase(),
            safe(&d.r#type),
            safe(&d.endpoint),
            safe(&d.ticket_id),
            d.attempts,
            d.last_status,
            safe(&d.last_error)
        );
    }
    if !reply.next_page_token.is_empty() {
        println!("next page: --page-token {}", reply.next_page_token);
    }
    Ok(())
}

/// `deliveries --retry ENDPOINT [--id ID]`.
async fn retry_deliveries(endpoint: String, id: String, client: &ClientArgs) -> anyhow::Result<()> {
    let mut api = pb::roster_service_client::RosterServiceClient::new(client.channel().await?);
    let reply = api
        .retry_delivery(client.admin(pb::RetryDeliveryRequest { endpoint, id })?)
        .await
        .map_err(explain)?
        .into_inner();
    println!(
        "{} deliveries queued again; the endpoint is enabled",
        reply.retried
    );
    Ok(())
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
        photo_ids: Vec::new(),
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

/// `link`: issues an action link; prints it alone on stdout.
async fn link(ticket_id: String, client: &ClientArgs) -> anyhow::Result<()> {
    let mut api = pb::roster_service_client::RosterServiceClient::new(client.channel().await?);
    let r = pb::IssueActionLinkRequest { ticket_id };
    let reply = api
        .issue_action_link(client.admin(r)?)
        .await
        .map_err(explain)?
        .into_inner();
    eprintln!(
        "action link for {}, expires {}",
        reply.talent_id,
        utc(reply.expires_at_ms)
    );
    println!("{}", reply.action_url);
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
            safe(&t.id),
            state_name(t.state),
            safe(&t.subject),
            safe(who),
            safe(&t.text),
            safe(&t.reason)
        );
    }
    if !reply.next_page_token.is_empty() {
        println!("next page: --page-token {}", reply.next_page_token);
    }
    Ok(())
}

//! The responder's side of the client: a connection with the responder's
//! token, one action at a time or the live `watch` loop that goes online,
//! prints offers and takes typed commands.

use anyhow::Context;
use clap::{Args, ValueEnum};
use tonic::{metadata::MetadataValue, Request};

use super::print::{print_assignment, state_name};
use super::{explain, Conn};
use crate::pb;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AvailabilityArg {
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

#[derive(Debug, Args)]
pub(crate) struct ResponderArgs {
    /// Server address.
    #[arg(long, env = "XWN_SERVER", default_value = "http://127.0.0.1:50051")]
    pub(crate) server: String,
    /// The responder's (or liaison's) token from `xwn token`.
    #[arg(long, env = "XWN_RESPONDER_TOKEN", hide_env_values = true)]
    pub(crate) responder_token: String,
    /// A front end's API key, sent as `x-api-key`.
    #[arg(long, env = "XWN_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    #[command(flatten)]
    pub(crate) tls: super::TlsArgs,
}

/// A responder client with its token.
struct Responder {
    api: pb::responder_service_client::ResponderServiceClient<Conn>,
    token: MetadataValue<tonic::metadata::Ascii>,
}

impl Responder {
    async fn connect(args: &ResponderArgs) -> anyhow::Result<Responder> {
        let channel = super::connect(&args.server, &args.tls, args.api_key.as_deref()).await?;
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
                    shareable: false,
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
            super::print::safe(&ticket.id),
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

pub(crate) async fn watch(args: &ResponderArgs) -> anyhow::Result<()> {
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

/// `accept`, `decline`, `resolve` and `escalate`: one action on a ticket.
pub(crate) async fn act(
    responder: &ResponderArgs,
    action: &str,
    id: &str,
    text: &str,
) -> anyhow::Result<()> {
    Responder::connect(responder)
        .await?
        .act(action, id, text)
        .await
}

/// `availability`: sets the responder's availability.
pub(crate) async fn set_availability(
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

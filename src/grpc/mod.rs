//! The gRPC adapter, thin: each handler takes its call through the
//! [`Gate`], calls one domain operation ([`crate::matching::Matcher`],
//! [`crate::roster::admin::RosterAdmin`], [`crate::roster::log::Roster`],
//! [`crate::tickets::Dispatcher`], [`crate::photos::Photos`])
//! and converts the result back ([`convert`]); domain errors become
//! statuses in one place ([`status`]).

mod auth;
mod call;
pub(crate) mod convert;
mod deliveries;
mod matching;
mod photos;
mod responders;
mod roster;
mod status;
mod tickets;

pub(crate) use crate::server::limits::Limits;
pub(crate) use auth::AdminAuth;
pub(crate) use call::{log_failed_admin, Gate};
pub(crate) use matching::MatchApi;
pub(crate) use photos::PhotoApi;
pub(crate) use responders::ResponderApi;
pub(crate) use roster::RosterApi;
pub(crate) use tickets::TicketApi;

//! The gRPC adapter, thin: each handler takes its call through the
//! [`Gate`], calls one domain operation ([`crate::matching::Matcher`],
//! [`crate::roster::admin::RosterAdmin`], [`crate::roster::log::Roster`],
//! [`crate::tickets::Dispatcher`])
//! and converts the result back ([`convert`]); domain errors become
//! statuses in one place ([`status`]).

mod auth;
mod call;
pub mod convert;
mod matching;
mod responders;
mod roster;
mod status;
mod tickets;

pub use crate::server::limits::{AdmissionLayer, Limits};
pub use auth::AdminAuth;
pub use call::{Admitted, Gate};
pub use matching::MatchApi;
pub use responders::ResponderApi;
pub use roster::RosterApi;
pub use tickets::TicketApi;

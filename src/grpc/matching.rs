//! `MatchService`: open to every caller, rate limited like farmers' calls;
//! its replies never carry a phone number.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{
    call::Gate,
    convert::{analysis_to_pb, candidate_to_pb, corps_to_pb, division_to_pb},
    convert::{corps_from_pb, hit_to_pb, location_from_pb, ranking_from_pb},
};
use crate::{
    knowledge::{Library, Query},
    matching::{MatchRequest, Matcher},
    pb,
};

/// Reports up to this many bytes (about 340 Chinese characters; farmers'
/// reports are mostly under 100) are matched on the async worker that took
/// the call; longer ones, up to `MAX_TEXT_CHARS`, on a blocking thread.
pub(crate) const INLINE_TEXT_BYTES: usize = 1024;

pub(crate) struct MatchApi {
    gate: Gate,
    matcher: Arc<Matcher>,
    library: Arc<Library>,
}

impl MatchApi {
    pub(crate) fn new(gate: Gate, matcher: Arc<Matcher>, library: Arc<Library>) -> MatchApi {
        MatchApi {
            gate,
            matcher,
            library,
        }
    }
}

#[tonic::async_trait]
impl pb::match_service_server::MatchService for MatchApi {
    async fn match_problem(
        &self,
        request: Request<pb::MatchProblemRequest>,
    ) -> Result<Response<pb::MatchProblemResponse>, Status> {
        let call = self.gate.farmer(request)?;
        let r = call.message;
        let ranking = ranking_from_pb(r.ranking)?;
        let request = MatchRequest {
            text: r.text,
            location: location_from_pb(r.location),
            limit: r.limit,
            best_match: ranking == pb::Ranking::BestMatch,
        };
        // CPU-bound, on one of the CPU slots (one per core). A report of
        // ordinary length is read and ranked right here: that takes tens of
        // microseconds, less than handing it to a blocking thread and back
        // would cost, and the async workers are soon free again to take
        // (and, past the limits, refuse) new calls. A long one goes off the
        // async workers, so no call holds one for long.
        let _slot = self.gate.cpu_slot(call.arrival).await?;
        let text_bytes = request.text.len();
        let outcome_and_similar = {
            let (matcher, library) = (self.matcher.clone(), self.library.clone());
            move || -> crate::error::Result<_> {
                let outcome = matcher.match_problem(&request)?;
                let similar = library.similar(&request.text, outcome.subject.as_deref())?;
                Ok((outcome, similar))
            }
        };
        let (outcome, similar) = if text_bytes <= INLINE_TEXT_BYTES {
            outcome_and_similar()?
        } else {
            crate::error::blocking("matching", outcome_and_similar).await?
        };
        Ok(Response::new(pb::MatchProblemResponse {
            subject: outcome.subject.unwrap_or_default(),
            corps: corps_to_pb(outcome.corps).into(),
            candidates: outcome
                .candidates
                .into_iter()
                .map(candidate_to_pb)
                .collect(),
            analysis: Some(analysis_to_pb(outcome.analysis, self.matcher.lexicon())),
            roster_version: outcome.roster_version,
            similar: similar.iter().map(hit_to_pb).collect(),
        }))
    }

    async fn list_divisions(
        &self,
        request: Request<pb::ListDivisionsRequest>,
    ) -> Result<Response<pb::ListDivisionsResponse>, Status> {
        let call = self.gate.farmer(request)?;
        let divisions = self.matcher.divisions_under(&call.message.parent_code)?;
        Ok(Response::new(pb::ListDivisionsResponse {
            divisions: divisions.into_iter().map(division_to_pb).collect(),
        }))
    }

    /// A liveness check: exempt from every limit, so it needs no gate.
    async fn ping(
        &self,
        _: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        Ok(Response::new(pb::PingResponse {}))
    }

    async fn search_knowledge(
        &self,
        request: Request<pb::SearchKnowledgeRequest>,
    ) -> Result<Response<pb::SearchKnowledgeResponse>, Status> {
        let call = self.gate.farmer(request)?;
        let r = call.message;
        let corps = corps_from_pb(r.corps, "corps")?;
        let _slot = self.gate.cpu_slot(call.arrival).await?;
        let library = self.library.clone();
        let hits = crate::error::blocking("knowledge search", move || {
            library.search(&Query {
                text: &r.text,
                subject: Some(&r.subject),
                corps,
                county_code: Some(&r.county_code),
                limit: r.limit as usize,
                ..Query::default()
            })
        })
        .await?;
        Ok(Response::new(pb::SearchKnowledgeResponse {
            hits: hits.iter().map(hit_to_pb).collect(),
        }))
    }
}

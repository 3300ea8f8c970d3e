//! The gRPC adapter: unwraps requests, checks tokens, calls the domain
//! ([`Service`], [`Dispatcher`]), converts results back, and maps every
//! domain error onto a status in one place ([`status`]).

mod tickets;

pub use crate::server::limits::{AdmissionLayer, Limits};
pub use tickets::{ResponderApi, TicketApi};

use std::{collections::BTreeMap, sync::Arc};

use serde_json::json;
use tonic::{metadata::MetadataMap, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    error::Error,
    matching::{Candidate, ListRequest, Location, MatchRequest, Service},
    model::divisions::Divisions,
    model::{Corps, Talent, Tier},
    pb,
    reading::analyzer::Analysis,
    reading::lexicon::Lexicon,
    roster::log::Roster,
    roster::{RawRow, RosterFormat},
    server::audit::AuditLog,
    tickets::Dispatcher,
};
use subtle::ConstantTimeEq;

/// Maps a domain error onto a gRPC status. Bad rows travel as
/// `google.rpc.BadRequest` field violations, one per problem.
pub fn status(error: Error) -> Status {
    match error {
        Error::InvalidArgument { field, message } => Status::with_error_details(
            tonic::Code::InvalidArgument,
            format!("{field}: {message}"),
            ErrorDetails::with_bad_request_violation(field, message),
        ),
        Error::InvalidRoster { summary, errors } => {
            let mut details = ErrorDetails::new();
            for e in &errors {
                let field = if e.field.is_empty() {
                    format!("line[{}]", e.line)
                } else {
                    format!("line[{}].{}", e.line, e.field)
                };
                details.add_bad_request_violation(field, e.message.clone());
            }
            Status::with_error_details(tonic::Code::InvalidArgument, summary, details)
        }
        Error::Unauthenticated(m) => Status::unauthenticated(m),
        Error::PermissionDenied(m) => Status::permission_denied(m),
        Error::NotFound(m) => Status::not_found(m),
        Error::ResourceExhausted(m) => Status::resource_exhausted(m),
        Error::FailedPrecondition(m) => Status::failed_precondition(m),
        Error::Storage(m) => {
            tracing::error!(cause = %m, "storage failure");
            Status::unavailable(format!("the server cannot use its data directory: {m}"))
        }
        Error::Internal(m) => {
            tracing::error!(cause = %m, "internal error");
            Status::internal(m)
        }
    }
}

/// Checks `authorization: Bearer <token>` against the admin token.
#[derive(Clone)]
pub struct AdminAuth {
    token: Option<Arc<str>>,
}

impl AdminAuth {
    pub fn new(token: Option<String>) -> AdminAuth {
        AdminAuth {
            token: token.map(Into::into),
        }
    }

    pub fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(expected) = &self.token else {
            return Err(Status::unauthenticated(
                "admin calls are disabled: the server has no admin token (set XWN_ADMIN_TOKEN or admin_token)",
            ));
        };
        let given = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("admin call without `authorization: Bearer <admin token>`")
            })?;
        if bool::from(given.trim().as_bytes().ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(Status::unauthenticated("the admin token is wrong"))
        }
    }
}

pub fn corps_to_pb(corps: Option<Corps>) -> pb::Corps {
    match corps {
        None => pb::Corps::Unspecified,
        Some(Corps::GrainOil) => pb::Corps::GrainOil,
        Some(Corps::Vegetable) => pb::Corps::Vegetable,
        Some(Corps::Fruit) => pb::Corps::Fruit,
        Some(Corps::Livestock) => pb::Corps::Livestock,
        Some(Corps::ForestryWater) => pb::Corps::ForestryWater,
    }
}

pub fn corps_from_pb(value: i32, field: &str) -> Result<Option<Corps>, Status> {
    Ok(match pb::Corps::try_from(value) {
        Ok(pb::Corps::Unspecified) => None,
        Ok(pb::Corps::GrainOil) => Some(Corps::GrainOil),
        Ok(pb::Corps::Vegetable) => Some(Corps::Vegetable),
        Ok(pb::Corps::Fruit) => Some(Corps::Fruit),
        Ok(pb::Corps::Livestock) => Some(Corps::Livestock),
        Ok(pb::Corps::ForestryWater) => Some(Corps::ForestryWater),
        Err(_) => {
            return Err(status(Error::invalid(
                field,
                format!("unknown corps value {value}"),
            )))
        }
    })
}

pub fn tier_to_pb(tier: Tier) -> pb::Tier {
    match tier {
        Tier::City => pb::Tier::City,
        Tier::CountyTown => pb::Tier::CountyTown,
        Tier::Village => pb::Tier::Village,
    }
}

pub fn tier_from_pb(value: i32, field: &str) -> Result<Option<Tier>, Status> {
    Ok(match pb::Tier::try_from(value) {
        Ok(pb::Tier::Unspecified) => None,
        Ok(pb::Tier::City) => Some(Tier::City),
        Ok(pb::Tier::CountyTown) => Some(Tier::CountyTown),
        Ok(pb::Tier::Village) => Some(Tier::Village),
        Err(_) => {
            return Err(status(Error::invalid(
                field,
                format!("unknown tier value {value}"),
            )))
        }
    })
}

/// A talent as the API shows it; `phone` only when `with_phone`.
pub fn talent_to_pb(t: &Talent, with_phone: bool) -> pb::Talent {
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
        phone: if with_phone {
            t.phone.clone()
        } else {
            String::new()
        },
        county_name: divisions
            .county_of(t.division_code)
            .map_or_else(|| divisions.city().name.clone(), |d| d.name.clone()),
    }
}

/// A talent of an upsert request as a roster row, validated like a file's.
fn talent_to_row(t: &pb::Talent, line: u64) -> RawRow {
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

fn analysis_to_pb(a: &Analysis, lexicon: &Lexicon) -> pb::Analysis {
    pb::Analysis {
        agricultural: a.agricultural,
        confidence: f64::from(a.confidence),
        runner_up: a
            .runner_up
            .map(|s| lexicon.subject(s).name.clone())
            .unwrap_or_default(),
        evidence: a
            .evidence
            .iter()
            .map(|e| pb::Evidence {
                term: e.term.clone(),
                subject: e
                    .subject
                    .map(|s| lexicon.subject(s).name.clone())
                    .unwrap_or_default(),
                kind: e.kind.to_string(),
                role: e.role.key().to_string(),
                weight: f64::from(e.weight),
            })
            .collect(),
        note: a.note.clone(),
    }
}

fn candidate_to_pb(c: &Candidate) -> pb::Candidate {
    pb::Candidate {
        talent: Some(talent_to_pb(&c.talent, false)),
        distance_km: c.distance_km,
        score: c.score,
        matched_terms: c.matched_terms.clone(),
        reason: c.reason.clone(),
    }
}

/// Converts a request location.
pub fn location_from_pb(location: Option<pb::Location>) -> Option<Location> {
    match location?.kind? {
        pb::location::Kind::DivisionCode(code) => Some(Location::Division(code)),
        pb::location::Kind::Point(p) => Some(Location::Point {
            lat: p.lat,
            lon: p.lon,
        }),
    }
}

/// `MatchService`: open to every caller; never returns phone numbers.
pub struct MatchApi {
    service: Arc<Service>,
    limits: Arc<Limits>,
}

impl MatchApi {
    pub fn new(service: Arc<Service>, limits: Arc<Limits>) -> MatchApi {
        MatchApi { service, limits }
    }
}

#[tonic::async_trait]
impl pb::match_service_server::MatchService for MatchApi {
    #[tracing::instrument(skip_all)]
    async fn match_problem(
        &self,
        request: Request<pb::MatchProblemRequest>,
    ) -> Result<Response<pb::MatchProblemResponse>, Status> {
        let _permit = self.limits.admit(&request, true)?;
        let arrival = request
            .extensions()
            .get::<crate::server::limits::Arrival>()
            .copied();
        let r = request.into_inner();
        let ranking = pb::Ranking::try_from(r.ranking).map_err(|_| {
            status(Error::invalid(
                "ranking",
                format!("unknown ranking value {}", r.ranking),
            ))
        })?;
        let request = MatchRequest {
            text: r.text,
            location: location_from_pb(r.location),
            limit: r.limit,
            best_match: ranking == pb::Ranking::BestMatch,
        };
        // CPU-bound: on a CPU slot off the async workers, which keep taking
        // (and, past the limits, refusing) new calls meanwhile.
        let _slot = self.limits.cpu_slot(arrival).await?;
        let service = self.service.clone();
        let outcome = crate::error::blocking("matching", move || service.match_problem(&request))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::MatchProblemResponse {
            subject: outcome.subject.unwrap_or_default(),
            corps: corps_to_pb(outcome.corps).into(),
            candidates: outcome.candidates.iter().map(candidate_to_pb).collect(),
            analysis: Some(analysis_to_pb(&outcome.analysis, self.service.lexicon())),
            roster_version: outcome.roster_version,
        }))
    }

    async fn ping(
        &self,
        _: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        Ok(Response::new(pb::PingResponse {}))
    }
}

/// Reads a streamed upload whole: the first chunk names the format, and the
/// total may not pass `limit` bytes.
async fn read_upload(
    mut stream: Streaming<pb::RosterChunk>,
    limit: u64,
) -> Result<(RosterFormat, Vec<u8>), Status> {
    let mut format = None;
    let mut data = Vec::new();
    while let Some(chunk) = stream.message().await? {
        let chunk_format = match pb::RosterFormat::try_from(chunk.format) {
            Ok(pb::RosterFormat::Csv) => Some(RosterFormat::Csv),
            Ok(pb::RosterFormat::Jsonl) => Some(RosterFormat::Jsonl),
            Ok(pb::RosterFormat::Unspecified) => None,
            Err(_) => {
                return Err(status(Error::invalid(
                    "format",
                    format!("unknown format value {}", chunk.format),
                )))
            }
        };
        match (format, chunk_format) {
            (None, None) => {
                return Err(status(Error::invalid(
                    "format",
                    "the first chunk must say ROSTER_FORMAT_CSV or ROSTER_FORMAT_JSONL",
                )))
            }
            (None, Some(f)) => format = Some(f),
            (Some(f), Some(g)) if f != g => {
                return Err(status(Error::invalid(
                    "format",
                    "chunks of one upload must all have the same format",
                )))
            }
            _ => {}
        }
        if (data.len() + chunk.data.len()) as u64 > limit {
            return Err(status(Error::ResourceExhausted(format!(
                "the upload is larger than the limit of {limit} bytes"
            ))));
        }
        data.extend_from_slice(&chunk.data);
    }
    let format = format.ok_or_else(|| status(Error::invalid("data", "the upload is empty")))?;
    Ok((format, data))
}

/// `RosterService`: every call needs the admin token.
pub struct RosterApi {
    service: Arc<Service>,
    roster: Arc<Roster>,
    dispatcher: Arc<Dispatcher>,
    auth: AdminAuth,
    max_upload_bytes: u64,
    limits: Arc<Limits>,
    audit: Arc<AuditLog>,
}

impl RosterApi {
    pub fn new(
        service: Arc<Service>,
        roster: Arc<Roster>,
        dispatcher: Arc<Dispatcher>,
        auth: AdminAuth,
        max_upload_bytes: u64,
        limits: Arc<Limits>,
        audit: Arc<AuditLog>,
    ) -> RosterApi {
        RosterApi {
            service,
            roster,
            dispatcher,
            auth,
            max_upload_bytes,
            limits,
            audit,
        }
    }
}

impl RosterApi {
    /// Checks the admin token, then admits the call under the load limits.
    fn admit<T>(&self, request: &Request<T>) -> Result<crate::server::limits::Permit, Status> {
        self.auth.check(request.metadata())?;
        self.limits.admit(request, false)
    }
}

#[tonic::async_trait]
impl pb::roster_service_server::RosterService for RosterApi {
    #[tracing::instrument(skip_all)]
    async fn import_roster(
        &self,
        request: Request<Streaming<pb::RosterChunk>>,
    ) -> Result<Response<pb::ImportReport>, Status> {
        let _permit = self.admit(&request)?;
        let peer = request.remote_addr();
        let (format, data) = read_upload(request.into_inner(), self.max_upload_bytes).await?;
        let bytes = data.len();
        let sha256 = crate::server::audit::digest(&data);
        // On a task of its own: a big import outlives the call's timeout or
        // a caller who hangs up, and is still logged and audited.
        let (roster, audit) = (self.roster.clone(), self.audit.clone());
        let import = tokio::spawn(async move {
            let outcome = roster.import(format, data).await.map_err(status);
            let details = match &outcome {
                Ok((accepted, version)) => {
                    json!({"sha256": sha256, "bytes": bytes, "accepted": accepted, "roster_version": version})
                }
                Err(s) => json!({"sha256": sha256, "bytes": bytes, "refused": s.message()}),
            };
            audit.record("import_roster", peer, details);
            if let Ok((accepted, version)) = &outcome {
                tracing::info!(
                    audit = "import_roster",
                    bytes,
                    accepted,
                    roster_version = version,
                    "roster replaced"
                );
            }
            outcome
        });
        let (accepted, version) = import
            .await
            .map_err(|e| Status::internal(format!("the import task failed: {e}")))??;
        Ok(Response::new(pb::ImportReport {
            accepted,
            errors: Vec::new(),
            roster_version: version,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn upsert_talents(
        &self,
        request: Request<pb::UpsertTalentsRequest>,
    ) -> Result<Response<pb::UpsertTalentsResponse>, Status> {
        let _permit = self.admit(&request)?;
        let peer = request.remote_addr();
        let rows: Vec<RawRow> = request
            .into_inner()
            .talents
            .iter()
            .enumerate()
            .map(|(i, t)| talent_to_row(t, i as u64 + 1))
            .collect();
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.fields.get("id").cloned().unwrap_or_default())
            .collect();
        let (upserted, version) = self.roster.upsert(rows).await.map_err(status)?;
        self.audit.record(
            "upsert_talents",
            peer,
            json!({"ids": ids, "roster_version": version}),
        );
        tracing::info!(
            audit = "upsert_talents",
            upserted,
            roster_version = version,
            "talents upserted"
        );
        Ok(Response::new(pb::UpsertTalentsResponse {
            upserted,
            roster_version: version,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn remove_talents(
        &self,
        request: Request<pb::RemoveTalentsRequest>,
    ) -> Result<Response<pb::RemoveTalentsResponse>, Status> {
        let _permit = self.admit(&request)?;
        let peer = request.remote_addr();
        let ids = request.into_inner().ids;
        let touched = ids.clone();
        let (removed, not_found, version) = self.roster.remove(ids).await.map_err(status)?;
        self.audit.record(
            "remove_talents",
            peer,
            json!({"ids": touched, "removed": removed, "roster_version": version}),
        );
        tracing::info!(
            audit = "remove_talents",
            removed,
            roster_version = version,
            "talents removed"
        );
        Ok(Response::new(pb::RemoveTalentsResponse {
            removed,
            not_found,
            roster_version: version,
        }))
    }

    async fn get_roster_stats(
        &self,
        request: Request<pb::GetRosterStatsRequest>,
    ) -> Result<Response<pb::RosterStats>, Status> {
        let _permit = self.admit(&request)?;
        let (s, version) = self.service.stats();
        Ok(Response::new(pb::RosterStats {
            total: s.total,
            city: s.city,
            county_town: s.county_town,
            village: s.village,
            corps_members: s.corps_members,
            by_corps: s.by_corps.into_iter().collect(),
            by_county: s.by_county.into_iter().collect(),
            roster_version: version,
            active: s.active,
        }))
    }

    async fn list_talents(
        &self,
        request: Request<pb::ListTalentsRequest>,
    ) -> Result<Response<pb::ListTalentsResponse>, Status> {
        let _permit = self.admit(&request)?;
        let r = request.into_inner();
        let page = self
            .service
            .list_talents(&ListRequest {
                county: r.county,
                division_code: r.division_code,
                tier: tier_from_pb(r.tier, "tier")?,
                corps: corps_from_pb(r.corps, "corps")?,
                specialty: r.specialty,
                query: r.query,
                include_inactive: r.include_inactive,
                page_size: r.page_size,
                page_token: r.page_token,
            })
            .map_err(status)?;
        Ok(Response::new(pb::ListTalentsResponse {
            talents: page.talents.iter().map(|t| talent_to_pb(t, true)).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
            total: page.total,
            roster_version: page.roster_version,
        }))
    }

    async fn issue_responder_token(
        &self,
        request: Request<pb::IssueResponderTokenRequest>,
    ) -> Result<Response<pb::IssueResponderTokenResponse>, Status> {
        let _permit = self.admit(&request)?;
        let peer = request.remote_addr();
        let r = request.into_inner();
        let (token, expires_at_ms, role) = self
            .dispatcher
            .issue_token(r.talent_id.trim(), r.ttl_seconds)
            .await
            .map_err(status)?;
        let details = json!({"subject": r.talent_id.trim(), "role": role.key(), "expires_at_ms": expires_at_ms});
        self.audit.record("issue_responder_token", peer, details);
        tracing::info!(audit = "issue_responder_token", subject = %r.talent_id, role = role.key(), "token issued");
        Ok(Response::new(pb::IssueResponderTokenResponse {
            token,
            expires_at_ms,
            role: role.key().into(),
        }))
    }

    async fn import_liaisons(
        &self,
        request: Request<Streaming<pb::RosterChunk>>,
    ) -> Result<Response<pb::ImportReport>, Status> {
        let _permit = self.admit(&request)?;
        let peer = request.remote_addr();
        let (format, data) = read_upload(request.into_inner(), self.max_upload_bytes).await?;
        let outcome = self.dispatcher.import_liaisons(format, &data).await;
        let sha256 = crate::server::audit::digest(&data);
        let details = match &outcome {
            Ok(accepted) => json!({"sha256": sha256, "bytes": data.len(), "accepted": accepted}),
            Err(e) => json!({"sha256": sha256, "bytes": data.len(), "refused": e.to_string()}),
        };
        self.audit.record("import_liaisons", peer, details);
        let accepted = outcome.map_err(status)?;
        tracing::info!(
            audit = "import_liaisons",
            bytes = data.len(),
            accepted,
            "liaisons replaced"
        );
        Ok(Response::new(pb::ImportReport {
            accepted,
            errors: Vec::new(),
            roster_version: self.service.snapshot().version(),
        }))
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let _permit = self.admit(&request)?;
        let r = request.into_inner();
        let state = tickets::state_from_pb(r.state)?;
        let (list, next) = self
            .dispatcher
            .list_tickets(state, r.assignee_id.trim(), r.page_size, &r.page_token)
            .await
            .map_err(status)?;
        let snapshot = self.service.snapshot();
        Ok(Response::new(pb::ListTicketsResponse {
            tickets: list
                .iter()
                .map(|t| tickets::ticket_to_pb(t, &[], tickets::Viewer::Admin, &snapshot))
                .collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_values() {
        let eq = |a: &[u8], b: &[u8]| bool::from(a.ct_eq(b));
        assert!(eq(b"secret-token-123", b"secret-token-123"));
        assert!(!eq(b"secret-token-123", b"secret-token-124"));
        assert!(!eq(b"secret", b"secret-token-123"));
    }

    #[test]
    fn auth_refuses_missing_wrong_and_unconfigured_tokens() {
        let auth = AdminAuth::new(Some("0123456789abcdef".into()));
        let mut md = MetadataMap::new();
        assert_eq!(
            auth.check(&md).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        md.insert("authorization", "Bearer wrong".parse().unwrap());
        assert_eq!(
            auth.check(&md).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        md.insert("authorization", "Bearer 0123456789abcdef".parse().unwrap());
        assert!(auth.check(&md).is_ok());
        assert!(AdminAuth::new(None).check(&md).is_err());
    }
}

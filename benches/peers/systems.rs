//! The three systems as the driver asks them: one report as a query
//! (its bigram pieces, its point), a tiny HTTP/1.1 client for Groonga, and
//! one connection to any system returning its top candidates.

use std::fmt::Write as _;

use anyhow::{anyhow, ensure, Context};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};
use xingweinong::{
    model::divisions::{DivisionCode, Divisions},
    model::geo::GeoPoint,
    pb,
    reading::eval::Labelled,
};

use crate::{System, Target, CITY_CODE, LIMIT};

/// The report's overlapping two-character pieces: each run of letters and
/// digits gives its bigrams, a run of one character gives itself. The same
/// cut makes the peers' documents and their queries.
pub(crate) fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for run in text.split(|c: char| !c.is_alphanumeric()) {
        let chars: Vec<char> = run.chars().flat_map(char::to_lowercase).collect();
        match chars.len() {
            0 => {}
            1 => out.push(chars[0].to_string()),
            _ => out.extend(chars.windows(2).map(|w| w.iter().collect::<String>())),
        }
    }
    out.sort();
    out.dedup();
    out
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One report as every system is asked it.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    text: String,
    division_code: String,
    pub(crate) point: GeoPoint,
    /// PostgreSQL: the pieces OR'ed, quoted lexemes.
    tsquery: String,
    /// Groonga: the whole `GET` target of the select command.
    groonga_path: String,
}

impl Query {
    /// Places the report as xwn does: its division's point (a village
    /// without one sits at its town's or county's), the city without one.
    pub(crate) fn new(item: &Labelled) -> anyhow::Result<Query> {
        let code = match item.division_code.as_str() {
            "" => CITY_CODE,
            code => code,
        };
        let division = DivisionCode::parse(code)
            .and_then(|c| Divisions::embedded().get(c))
            .ok_or_else(|| anyhow!("{}: unknown division code {code}", item.id))?;
        let point = division.point;
        let pieces = pieces(&item.text);
        let tsquery = pieces
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(" | ");
        let groonga_query = pieces
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(" OR ");
        let scorer = format!(
            "_score = geo_distance(location, \"{},{}\", \"sphere\")",
            point.lat, point.lon
        );
        let groonga_path = format!(
            "/d/select?table=Talents&match_columns={}&query={}&scorer={}&sort_keys=_score&output_columns=_key&limit={LIMIT}",
            percent_encode("specialties || skills"),
            percent_encode(&groonga_query),
            percent_encode(&scorer),
        );
        Ok(Query {
            text: item.text.clone(),
            division_code: code.to_string(),
            point,
            tsquery,
            groonga_path,
        })
    }
}

/// A tiny HTTP/1.1 client, one request at a time. It keeps its connection
/// alive unless the server closes it: Groonga's own HTTP server answers
/// every request with `Connection: close`, so each query to it connects
/// anew (on loopback), inside the measured latency as for any client.
pub(crate) struct Http {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
}

impl Http {
    async fn connect(addr: &str) -> anyhow::Result<Http> {
        let mut http = Http {
            addr: addr.to_string(),
            stream: None,
        };
        http.open().await?;
        Ok(http)
    }

    async fn open(&mut self) -> anyhow::Result<&mut BufReader<TcpStream>> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .with_context(|| format!("cannot connect to {}", self.addr))?;
            stream.set_nodelay(true)?;
            self.stream = Some(BufReader::new(stream));
        }
        Ok(self.stream.as_mut().expect("just opened"))
    }

    async fn get(&mut self, target: &str) -> anyhow::Result<Vec<u8>> {
        let request = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        let result = self.exchange(&request).await;
        if !matches!(result, Ok((_, true))) {
            self.stream = None;
        }
        result.map(|(body, _)| body)
    }

    /// Sends one request; the body, and whether the connection stays open.
    async fn exchange(&mut self, request: &str) -> anyhow::Result<(Vec<u8>, bool)> {
        let stream = self.open().await?;
        stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        let status = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let (mut length, mut chunked, mut keep_alive) = (None, false, true);
        loop {
            line.clear();
            ensure!(stream.read_line(&mut line).await? > 0, "connection closed");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.parse::<usize>()?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                } else if name.eq_ignore_ascii_case("connection") {
                    keep_alive = !value.eq_ignore_ascii_case("close");
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim(), 16)?;
                let start = body.len();
                body.resize(start + size, 0);
                stream.read_exact(&mut body[start..]).await?;
                line.clear();
                stream.read_line(&mut line).await?;
                if size == 0 {
                    break;
                }
            }
        } else {
            let length = length.ok_or_else(|| anyhow!("no Content-Length"))?;
            body.resize(length, 0);
            stream.read_exact(&mut body).await?;
        }
        ensure!(status == "200", "HTTP {status}");
        Ok((body, keep_alive))
    }
}

/// One connection to one system.
pub(crate) enum Conn {
    Xwn(pb::match_service_client::MatchServiceClient<tonic::transport::Channel>),
    Postgres {
        client: tokio_postgres::Client,
        statement: tokio_postgres::Statement,
    },
    Groonga(Http),
}

const POSTGRES_TOP: &str = "SELECT id FROM talents WHERE doc @@ $1::tsquery \
     ORDER BY geog <-> ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography LIMIT 5";

impl Conn {
    pub(crate) async fn connect(target: &Target) -> anyhow::Result<Conn> {
        Ok(match target.system {
            System::Xwn => Conn::Xwn(
                pb::match_service_client::MatchServiceClient::connect(target.addr.clone())
                    .await
                    .with_context(|| format!("cannot connect to {}", target.addr))?,
            ),
            System::Postgres => {
                let (client, connection) =
                    tokio_postgres::connect(&target.addr, tokio_postgres::NoTls)
                        .await
                        .with_context(|| format!("cannot connect to {}", target.addr))?;
                tokio::spawn(connection);
                use tokio_postgres::types::Type;
                let statement = client
                    .prepare_typed(POSTGRES_TOP, &[Type::TEXT, Type::FLOAT8, Type::FLOAT8])
                    .await?;
                Conn::Postgres { client, statement }
            }
            System::Groonga => Conn::Groonga(Http::connect(&target.addr).await?),
        })
    }

    /// The ids of the system's top candidates, best first.
    pub(crate) async fn top(&mut self, q: &Query) -> anyhow::Result<Vec<String>> {
        match self {
            Conn::Xwn(client) => {
                let request = pb::MatchProblemRequest {
                    text: q.text.clone(),
                    location: Some(pb::Location {
                        kind: Some(pb::location::Kind::DivisionCode(q.division_code.clone())),
                    }),
                    limit: LIMIT as u32,
                    ranking: pb::Ranking::Nearest as i32,
                };
                let reply = client.match_problem(request).await?.into_inner();
                Ok(reply
                    .candidates
                    .into_iter()
                    .filter_map(|c| c.talent.map(|t| t.id))
                    .collect())
            }
            Conn::Postgres { client, statement } => {
                let rows = client
                    .query(&*statement, &[&q.tsquery, &q.point.lon, &q.point.lat])
                    .await?;
                rows.iter()
                    .map(|r| r.try_get::<_, String>(0).map_err(Into::into))
                    .collect()
            }
            Conn::Groonga(http) => {
                let body = http.get(&q.groonga_path).await?;
                let reply: serde_json::Value = serde_json::from_slice(&body)?;
                ensure!(reply[0][0] == 0, "groonga: {}", reply[0]);
                let rows = reply[1][0]
                    .as_array()
                    .ok_or_else(|| anyhow!("groonga: no result set"))?;
                // [[hits], [columns], row, row, …]
                Ok(rows
                    .iter()
                    .skip(2)
                    .filter_map(|row| row[0].as_str().map(str::to_string))
                    .collect())
            }
        }
    }
}

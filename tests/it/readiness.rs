//! The readiness side of health: NOT_SERVING while the ticket store is
//! unreachable, SERVING again by itself once it is back. The test runs its
//! own throw-away PostgreSQL cluster (scripts/throwaway-pg.sh), stops and
//! restarts it; the shared test cluster is never touched. It runs where
//! PostgreSQL tests run (`XWN_TEST_POSTGRES` set) and skips elsewhere.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use crate::common::*;

/// A cluster of our own: its URL, directory and port.
struct Cluster {
    url: String,
    dir: PathBuf,
    port: u16,
}

/// Runs `script` in bash after sourcing scripts/throwaway-pg.sh.
fn pg_shell(script: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(". {root}/scripts/throwaway-pg.sh && {script}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Cluster {
    fn start() -> Cluster {
        let out = pg_shell(r#"pg_start fsync=off && echo "$PG_URL $PG_DIR $PG_PORT""#);
        let mut fields = out.split_whitespace();
        let (url, dir, port) = (fields.next(), fields.next(), fields.next());
        Cluster {
            url: url.unwrap().to_string(),
            dir: PathBuf::from(dir.unwrap()),
            port: port.unwrap().parse().unwrap(),
        }
    }

    fn stop(&self) {
        let data = self.dir.join("data");
        pg_shell(&format!(
            "_as_pg $PG_BIN/pg_ctl -D {} -m fast -w stop >/dev/null",
            data.display()
        ));
    }

    fn restart(&self) {
        let (data, log, dir) = (self.dir.join("data"), self.dir.join("log"), &self.dir);
        pg_shell(&format!(
            "_as_pg $PG_BIN/pg_ctl -D {} -l {} -w -o '-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off' start >/dev/null",
            data.display(),
            log.display(),
            self.port,
            dir.display()
        ));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let dir = self.dir.display();
        pg_shell(&format!("PG_DIR={dir} && pg_stop"));
    }
}

/// What health says of the whole server now.
async fn status(health: &mut HealthClient<tonic::transport::Channel>) -> ServingStatus {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    match health.check(request).await {
        Ok(reply) => reply.into_inner().status(),
        Err(e) => panic!("the health call failed: {e:?}"),
    }
}

/// Waits up to `within` for health to say `want`; how long it took.
async fn until(
    health: &mut HealthClient<tonic::transport::Channel>,
    want: ServingStatus,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let now = status(health).await;
        if now == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "health still says {now:?}, not {want:?}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_store_down_and_back() {
    if std::env::var("XWN_TEST_POSTGRES").is_err() {
        eprintln!("SKIPPED: PostgreSQL tests run with XWN_TEST_POSTGRES set (.ci/run sets it)");
        return;
    }
    let cluster = Cluster::start();
    let dir = temp_dir("readiness");
    let mut config = config(&dir);
    config.store = cluster.url.clone();
    let server = TestServer::start(config).await;
    let channel = server.channel().await;
    let mut health = HealthClient::new(channel.clone());
    until(&mut health, ServingStatus::Serving, Duration::from_secs(30)).await;

    cluster.stop();
    let took = until(
        &mut health,
        ServingStatus::NotServing,
        Duration::from_secs(8),
    )
    .await;
    eprintln!("NOT_SERVING {took:?} after the store stopped");
    // Each service says so too.
    let ticket = HealthCheckRequest {
        service: "xingweinong.v1.TicketService".into(),
    };
    let reply = health.check(ticket).await.unwrap().into_inner();
    assert_eq!(reply.status(), ServingStatus::NotServing);

    cluster.restart();
    let took = until(&mut health, ServingStatus::Serving, Duration::from_secs(15)).await;
    eprintln!("SERVING {took:?} after the store came back");
    server.stop_and_clean().await;
}

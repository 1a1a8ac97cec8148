//! Maintenance during a run (issue 5): the state database goes away while `rollcall run` is
//! applying a build. The run must stop sending at once and exit 4 within seconds, having sent
//! nothing after the failure but the batch already in flight; once the database is back, the
//! next `run` finishes the work, `verify` finds no drift and `doctor` nothing wrong.
//!
//! How the database goes away:
//! - PostgreSQL and MariaDB: a TCP proxy between rollcall and the shared test server is cut
//!   (every connection closed, new ones refused); and a server the test runs on its own port
//!   and data directory is stopped (`pg_ctl stop -m fast`, or SIGKILL for `mariadbd`) and
//!   started again on the same data.
//! - SQLite has no connection to cut, and as root (the CI container) file permissions do not
//!   stop writes, while a removed file lives on through open descriptors. What takes an SQLite
//!   state database away in practice is another process holding its write lock (a backup, a
//!   `VACUUM`, an operator's `sqlite3` shell): the test holds `BEGIN EXCLUSIVE` on it, so
//!   every write rollcall tries fails after the busy timeout while reads still work.
//!
//! "Sent after the failure" is measured against the journal: every operation the journal
//! records as done is applied in the tenant, and the operations applied but still pending in
//! the journal (the in-flight batch, whose commit failed) are at most one batch. The sandbox's
//! write counters after the cut agree with that batch.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rollcall::generate::GenerateOptions;
use rollcall::graph::MAX_BINDS;
use rollcall::reconcile::OPS_PER_BATCH;
use rollcall::sandbox::Faults;
use rollcall::store::{JournalOp, OpKind, OpStatus};
use sqlx::{Connection, SqliteConnection};
use tokio::time::Instant;

use crate::common::db::{Backend, TestDatabase};
use crate::common::proxy::Proxy;
use crate::common::server::Server;
use crate::common::tenant::{Ran, Tenant, TenantOptions, calm};
use crate::on_every_backend;

on_every_backend!(a_state_database_cut_mid_apply_stops_the_run_within_seconds);

/// How long the run may take to exit once the database is gone.
const EXIT_WITHIN: Duration = Duration::from_secs(30);

/// Added latency per Graph request: the build takes several seconds, so the cut lands while
/// batches are still to go.
const LATENCY_MS: u64 = 150;

/// Students in the university built: about 9,000 memberships, six journal batches.
const STUDENTS: u32 = 1_200;

/// How the state database is taken away and given back.
enum Outage {
    /// A proxy in front of the shared test server; the per-test database is dropped with it.
    Proxy { proxy: Proxy, _db: TestDatabase },
    /// Another connection holding SQLite's write lock while the outage lasts.
    Lock {
        url: String,
        holder: Option<SqliteConnection>,
        _db: TestDatabase,
    },
    /// A server of the test's own.
    Server(Server),
}

impl Outage {
    /// The outage for a per-test database, and the state URL rollcall is to use.
    async fn for_database(db: TestDatabase) -> (Outage, String) {
        match db.backend {
            Backend::Sqlite => {
                let url = db.url.clone();
                (
                    Outage::Lock {
                        url: url.clone(),
                        holder: None,
                        _db: db,
                    },
                    url,
                )
            }
            Backend::Postgres | Backend::Mysql => {
                let (proxy, url) = Proxy::in_front_of(&db.url).await;
                (Outage::Proxy { proxy, _db: db }, url)
            }
        }
    }

    /// Takes the database away; returns once rollcall can no longer write to it.
    async fn begin(&mut self) {
        match self {
            Outage::Proxy { proxy, .. } => proxy.cut().await,
            Outage::Lock { url, holder, .. } => {
                let mut conn = SqliteConnection::connect(url)
                    .await
                    .expect("the SQLite state database opens beside rollcall");
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut conn)
                    .await
                    .expect("the test takes SQLite's write lock");
                *holder = Some(conn);
            }
            Outage::Server(server) => server.stop().await,
        }
    }

    /// Gives the database back.
    async fn end(&mut self) {
        match self {
            Outage::Proxy { proxy, .. } => proxy.restore().await,
            Outage::Lock { holder, .. } => {
                let mut conn = holder.take().expect("the write lock is held");
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut conn)
                    .await
                    .expect("the test gives SQLite's write lock back");
                conn.close().await.expect("the lock's connection closes");
            }
            Outage::Server(server) => server.resume().await,
        }
    }
}

async fn a_state_database_cut_mid_apply_stops_the_run_within_seconds(db: TestDatabase) {
    let backend = db.backend;
    let (outage, url) = Outage::for_database(db).await;
    database_lost_mid_apply(outage, url, &format!("{backend:?} cut")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_server_stopped_mid_apply_stops_the_run_within_seconds() {
    if let Some(server) = Server::start(Backend::Postgres).await {
        let url = server.url();
        database_lost_mid_apply(Outage::Server(server), url, "PostgreSQL stopped").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_server_killed_mid_apply_stops_the_run_within_seconds() {
    if let Some(server) = Server::start(Backend::Mysql).await {
        let url = server.url();
        database_lost_mid_apply(Outage::Server(server), url, "MariaDB killed").await;
    }
}

/// The sandbox's write counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Writes {
    /// Accepted writes (each member bound counts one).
    writes: u64,
    /// Write requests, inner ones included.
    requests: u64,
}

impl Writes {
    fn of(tenant: &Tenant) -> Writes {
        Writes {
            writes: tenant.stat("writes"),
            requests: tenant.stat("write_requests"),
        }
    }
}

/// Builds a university with the state database taken away once the first member batch has
/// reached the tenant; checks the stop, then gives the database back and checks recovery.
async fn database_lost_mid_apply(mut outage: Outage, url: String, what: &str) {
    let options = TenantOptions {
        university: GenerateOptions {
            students: STUDENTS,
            seed: 2026,
            drift: false,
        },
        ..TenantOptions::new()
    }
    .faults(Faults {
        latency_ms: LATENCY_MS,
        ..calm()
    });
    let tenant = Tenant::start_at(url, options).await;
    // A create binds its list's first 20 members: one write for the group, one per member.
    let creates: u64 = tenant
        .desired
        .lists
        .values()
        .map(|members| 1 + members.len().min(MAX_BINDS) as u64)
        .sum();

    let child = tenant
        .command(&["run"])
        .spawn()
        .expect("`rollcall run` starts");
    let run = tokio::spawn(child.wait_with_output());
    // Every group is created before the member batches. Once the first member batch has
    // landed, wait half a request's latency: rollcall has (most likely)
    // committed it and sent the next, which the sandbox is still holding when the cut comes.
    let waiting = Instant::now();
    while tenant.stat("writes") < creates + OPS_PER_BATCH as u64 {
        assert!(
            !run.is_finished(),
            "{what}: `rollcall run` ended before the first member batch landed"
        );
        assert!(
            waiting.elapsed() < Duration::from_secs(240),
            "{what}: the first member batch did not land within 240 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(LATENCY_MS / 2)).await;
    outage.begin().await;
    let cut = Instant::now();
    let at_cut = Writes::of(&tenant);

    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|_| panic!("{what}: `rollcall run` still ran 120 s after the cut"))
        .expect("the run's waiter does not panic")
        .expect("`rollcall run` is waited for");
    let took = cut.elapsed();
    let at_exit = Writes::of(&tenant);
    let ran = Ran {
        command: "rollcall run".to_owned(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    ran.expect(4);
    assert!(
        took < EXIT_WITHIN,
        "{what}: `rollcall run` exited {took:?} after the cut, expected within {EXIT_WITHIN:?}\n{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("the state database failed while applying"),
        "{what}: stderr does not say the state database failed:\n{}",
        ran.stderr
    );

    outage.end().await;
    let in_flight = in_flight_batch(&tenant, what).await;
    let sent_after = (
        at_exit.writes - at_cut.writes,
        at_exit.requests - at_cut.requests,
    );
    assert!(
        sent_after.0 <= in_flight.writes && sent_after.1 <= in_flight.requests,
        "{what}: {} writes in {} requests reached the tenant after the cut, more than the \
         in-flight batch ({} writes in {} requests)",
        sent_after.0,
        sent_after.1,
        in_flight.writes,
        in_flight.requests
    );
    eprintln!(
        "{what}: exit 4 after {took:?}; in-flight batch {} writes in {} requests; sent after the cut: {} writes in {} requests",
        in_flight.writes, in_flight.requests, sent_after.0, sent_after.1
    );

    tenant.rollcall(&["run"]).await.expect(0);
    tenant.rollcall(&["verify"]).await.expect(0);
    tenant.rollcall(&["doctor"]).await.expect(0);
    assert_eq!(
        tenant.pending_operations().await,
        0,
        "{what}: operations are still pending after the database came back"
    );
    tenant.assert_converged(&format!("{what}: after the database came back"));
    tenant.finish();
}

/// Compares the interrupted run's journal with the tenant: every operation recorded as done
/// is applied, and the applied operations still recorded as pending (the batch whose commit
/// failed) are at most one batch. Returns what that batch sent.
async fn in_flight_batch(tenant: &Tenant, what: &str) -> Writes {
    let store = tenant.store().await;
    let run = tenant.last_run().await;
    let journal = store.journal(run).await.expect("the journal can be read");
    let groups: BTreeMap<String, String> = store
        .groups()
        .await
        .expect("the managed groups can be read")
        .into_iter()
        .map(|g| (g.list, g.group_id))
        .collect();
    store.close().await;
    let state = tenant.sandbox.state();
    let applied = |op: &JournalOp| -> bool {
        let Some(group) = groups
            .get(&op.op.list)
            .and_then(|id| state.groups.iter().find(|g| g.id.as_ref() == Some(id)))
        else {
            return false;
        };
        match op.op.kind {
            OpKind::AddMember => op
                .op
                .member
                .as_ref()
                .is_some_and(|m| group.members.contains(m)),
            OpKind::TagGroup => !group.extensions.is_empty(),
            OpKind::CreateGroup | OpKind::UpdateGroup => true,
            OpKind::RemoveMember => op
                .op
                .member
                .as_ref()
                .is_some_and(|m| !group.members.contains(m)),
            OpKind::AddOwner => op
                .op
                .member
                .as_ref()
                .is_some_and(|m| group.owners.contains(m)),
            OpKind::RemoveOwner => op
                .op
                .member
                .as_ref()
                .is_some_and(|m| !group.owners.contains(m)),
        }
    };
    let mut done = 0;
    let mut in_flight: Vec<&JournalOp> = Vec::new();
    for op in &journal {
        match op.status {
            OpStatus::Done => {
                assert!(
                    applied(op),
                    "{what}: journal operation {} ({} on `{}`) is recorded as done but the tenant does not show it",
                    op.seq,
                    op.op.kind,
                    op.op.list
                );
                done += 1;
            }
            OpStatus::Pending if applied(op) => in_flight.push(op),
            _ => {}
        }
    }
    assert!(
        done > 0,
        "{what}: the run committed no batch before the cut"
    );
    assert!(
        journal.iter().any(|op| op.status == OpStatus::Pending),
        "{what}: the run left nothing pending; the cut came too late"
    );
    assert!(
        in_flight.len() <= OPS_PER_BATCH,
        "{what}: {} operations reached the tenant but are pending in the journal: more than \
         the one batch in flight when the database went away",
        in_flight.len()
    );
    let mut adds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut tags = BTreeSet::new();
    for op in &in_flight {
        match op.op.kind {
            OpKind::AddMember => *adds.entry(op.op.list.as_str()).or_default() += 1,
            OpKind::TagGroup => {
                tags.insert(op.op.list.as_str());
            }
            kind => panic!("{what}: a {kind} was in flight in a build's member batch"),
        }
    }
    let patches: usize = adds.values().map(|n| n.div_ceil(MAX_BINDS)).sum();
    Writes {
        writes: (adds.values().sum::<usize>() + tags.len()) as u64,
        requests: (patches + tags.len()) as u64,
    }
}

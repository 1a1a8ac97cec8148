//! rollcall's Graph client against the in-process sandbox tenant: sign-in, paging, packed
//! writes and their fallbacks, throttling, faults, lost replies and replication lag.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::numbered::{group_id, seed, user_id};
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rollcall::config::{GraphConfig, MemberKey};
use rollcall::graph::{
    Ensured, GraphClient, GraphError, GroupSpec, MANAGED_EXTENSION, ManagedTag, RetryPolicy, Write,
};
use rollcall::plan::ObjectId;
use rollcall::sandbox::{Faults, Sandbox, SandboxHandle, SandboxOptions, Seed, TenantSize};
use serde_json::json;

fn oid(n: usize) -> ObjectId {
    user_id(n).parse().unwrap()
}

/// Quick retries, so that fault tests take seconds.
fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        max_elapsed: Duration::from_secs(60),
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(200),
        request_timeout: Duration::from_secs(10),
    }
}

fn add(group: usize, member: usize) -> Write {
    Write::Add {
        group: group_id(group),
        member: oid(member),
    }
}

fn remove(group: usize, member: usize) -> Write {
    Write::Remove {
        group: group_id(group),
        member: oid(member),
    }
}

fn tag(list: &str) -> ManagedTag {
    ManagedTag {
        list: list.to_owned(),
        family: "modules".to_owned(),
        since: "2026-01-01T00:00:00Z".to_owned(),
    }
}

struct Tenant {
    sandbox: SandboxHandle,
    secret_dir: tempfile::TempDir,
}

impl Tenant {
    async fn start(seed: Seed, faults: Faults) -> Tenant {
        let sandbox = Sandbox::start(SandboxOptions {
            seed,
            faults,
            ..SandboxOptions::default()
        })
        .await
        .unwrap();
        let secret_dir = tempfile::tempdir().unwrap();
        Tenant {
            sandbox,
            secret_dir,
        }
    }

    /// A `[graph]` section for this sandbox, its secret in a file.
    fn config(&self, secret: &str) -> GraphConfig {
        let path = self
            .secret_dir
            .path()
            .join(format!("secret-{}", secret.len()));
        std::fs::write(&path, secret).unwrap();
        GraphConfig {
            tenant_id: "sandbox-tenant".to_owned(),
            client_id: "rollcall-sandbox".to_owned(),
            client_secret_env: None,
            client_secret_file: Some(path),
            certificate_path: None,
            private_key_path: None,
            certificate_password_env: None,
            certificate_algorithm: None,
            client_assertion_file: None,
            endpoint: self.sandbox.graph_url(),
            authority: self.sandbox.authority(),
            max_concurrency: 4,
            max_retry_time: Duration::from_secs(20),
        }
    }

    async fn client(&self) -> GraphClient {
        GraphClient::connect_with(&self.config("sandbox-secret"), quick())
            .await
            .unwrap()
    }

    fn stat(&self, path: &[&str]) -> u64 {
        let mut value = self.sandbox.stats();
        for key in path {
            value = value[*key].take();
        }
        value.as_u64().unwrap_or(0)
    }

    fn members(&self, group: usize) -> Vec<String> {
        let id = group_id(group);
        let mut members = self
            .sandbox
            .state()
            .groups
            .into_iter()
            .find(|g| g.id.as_deref() == Some(id.as_str()))
            .map(|g| g.members)
            .unwrap_or_default();
        members.sort();
        members
    }

    async fn admin(&self, path: &str) {
        let status = reqwest::Client::new()
            .post(format!("{}/_sandbox/{path}", self.sandbox.base_url()))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{path}: {status}");
    }
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    let mut ids: Vec<String> = range.map(user_id).collect();
    ids.sort();
    ids
}

fn all_ok(outcomes: &[Result<(), GraphError>]) {
    let failed: Vec<String> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.as_ref().err().map(|e| format!("write {i}: {e}")))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

// ---- a proxy that loses, refuses or watches requests ----

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Pass it on and bring the answer back.
    Forward,
    /// Pass it on, then close the connection instead of answering: a lost reply.
    LoseReply,
    /// Answer 503 without passing it on.
    Refuse,
}

/// A loopback HTTP proxy in front of the sandbox that applies a rule to every request and
/// records how many requests were in flight at once.
struct Proxy {
    addr: SocketAddr,
    peak_in_flight: Arc<AtomicUsize>,
}

#[derive(Debug, thiserror::Error)]
#[error("reply lost on purpose")]
struct Lost;

impl Proxy {
    async fn start(
        target: SocketAddr,
        rule: impl Fn(&str, &str) -> Action + Send + Sync + 'static,
    ) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rule = Arc::new(rule);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak_in_flight = Arc::new(AtomicUsize::new(0));
        let http = reqwest::Client::new();
        let peak = peak_in_flight.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (rule, in_flight, peak, http) =
                    (rule.clone(), in_flight.clone(), peak.clone(), http.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let (rule, in_flight, peak, http) =
                            (rule.clone(), in_flight.clone(), peak.clone(), http.clone());
                        async move {
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            let answer = forward(&http, target, request, &*rule).await;
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            answer
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy {
            addr,
            peak_in_flight,
        }
    }

    fn graph_url(&self) -> String {
        format!("http://{}/v1.0", self.addr)
    }
}

async fn forward(
    http: &reqwest::Client,
    target: SocketAddr,
    request: Request<Incoming>,
    rule: &(dyn Fn(&str, &str) -> Action + Send + Sync),
) -> Result<Response<Body>, Lost> {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let action = rule(parts.method.as_str(), &path_and_query);
    if action == Action::Refuse {
        let mut refused = Response::new(Body::from(
            json!({"error": {"code": "serviceNotAvailable", "message": "refused by the test proxy"}})
                .to_string(),
        ));
        *refused.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(refused);
    }
    let body = axum::body::to_bytes(Body::new(body), usize::MAX)
        .await
        .map_err(|_| Lost)?;
    let mut outgoing = http
        .request(parts.method, format!("http://{target}{path_and_query}"))
        .body(body);
    for (name, value) in &parts.headers {
        // The Host header stays the proxy's, so that the sandbox's links lead back here.
        outgoing = outgoing.header(name, value);
    }
    let answer = outgoing.send().await.map_err(|_| Lost)?;
    if action == Action::LoseReply {
        return Err(Lost);
    }
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    let bytes = answer.bytes().await.map_err(|_| Lost)?;
    Ok(response.body(Body::from(bytes)).unwrap())
}

// ---- signing in ----

#[tokio::test]
async fn token_is_renewed_before_it_expires_and_once_after_a_401() {
    // Graph checks the token after the sandbox's latency, so a token the client still
    // trusts can expire on the way: Graph says 401, the client renews once and succeeds.
    let tenant = Tenant::start(
        seed(2, &[&[0]]),
        Faults {
            token_ttl_secs: 2,
            latency_ms: 800,
            ..Faults::default()
        },
    )
    .await;
    let connected = Instant::now();
    let client = tenant.client().await;
    assert_eq!(client.stats().token_requests, 1, "connect signs in");
    tokio::time::sleep_until((connected + Duration::from_millis(1_500)).into()).await;
    let groups = client.groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(tenant.stat(&["requests", "GET /groups", "401"]), 1);
    assert_eq!(
        client.stats().token_requests,
        2,
        "renewed once after the 401"
    );

    // The renewed token is 2 s old at most by now; past 90 % of its life the client renews
    // before sending, and Graph never sees an expired token again.
    tokio::time::sleep(Duration::from_millis(1_900)).await;
    client.groups().await.unwrap();
    assert_eq!(client.stats().token_requests, 3);
    assert_eq!(tenant.stat(&["requests", "GET /groups", "401"]), 1);
}

#[tokio::test]
async fn wrong_secret_fails_connect_naming_the_secret_setting() {
    let tenant = Tenant::start(seed(1, &[]), Faults::default()).await;
    let err = GraphClient::connect_with(&tenant.config("not-the-secret"), quick())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            GraphError::SignIn {
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("invalid_client"), "{text}");
    assert!(text.contains("client_secret_file"), "{text}");
    assert!(
        !text.contains("not-the-secret"),
        "the secret never shows: {text}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused_before_anything_is_sent() {
    let tenant = Tenant::start(seed(1, &[]), Faults::default()).await;
    let mut config = tenant.config("sandbox-secret");
    config.endpoint = "http://graph.example.org/v1.0".to_owned();
    let err = GraphClient::connect_with(&config, quick())
        .await
        .unwrap_err();
    assert!(
        matches!(err, GraphError::Config { ref key, .. } if key == "endpoint"),
        "{err:?}"
    );
    assert!(err.to_string().contains("plain http"), "{err}");
    assert_eq!(tenant.stat(&["round_trips"]), 0);
}

// ---- reads ----

#[tokio::test]
async fn members_beyond_999_are_read_across_pages() {
    let members: Vec<usize> = (0..2_500).collect();
    let tenant = Tenant::start(seed(2_600, &[&members, &[1, 2]]), Faults::default()).await;
    let client = tenant.client().await;
    let missing = "22222222-0000-0000-0000-000000000000".to_owned();
    let listings = client
        .members_of(&[group_id(0), missing, group_id(1)])
        .await;
    let first = listings[0].as_ref().unwrap();
    let mut read: Vec<String> = first.iter().map(ToString::to_string).collect();
    read.sort();
    assert_eq!(read, ids(0..2_500));
    assert!(listings[1].as_ref().unwrap_err().is_not_found());
    assert_eq!(listings[2].as_ref().unwrap(), &vec![oid(1), oid(2)]);
    assert_eq!(
        tenant.stat(&[
            "requests",
            "GET /groups/{id}/members/microsoft.graph.user",
            "200"
        ]),
        2,
        "first pages come in the batch, pages two and three alone"
    );
}

#[tokio::test]
async fn groups_are_listed_with_their_tags_and_found_by_nickname() {
    let mut tenant_seed = seed(3, &[&[0], &[1], &[]]);
    tenant_seed.groups[1].extensions = vec![
        json!({"extensionName": MANAGED_EXTENSION, "list": "list-1", "family": "modules", "since": "2026-01-01T00:00:00Z"})
            .as_object()
            .unwrap()
            .clone(),
    ];
    tenant_seed.groups[2].group_types = Vec::new();
    tenant_seed.groups[2].mail_enabled = false;
    tenant_seed.groups[2].security_enabled = true;
    let tenant = Tenant::start(tenant_seed, Faults::default()).await;
    let client = tenant.client().await;
    let mut groups = client.groups().await.unwrap();
    groups.sort_by(|a, b| a.mail_nickname.cmp(&b.mail_nickname));
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[0].tag, None);
    assert_eq!(groups[1].tag, Some(tag("list-1")));
    assert!(groups[1].unified && !groups[2].unified);
    let found = client.find_group("LIST-1").await.unwrap().unwrap();
    assert_eq!(found.id, group_id(1));
    assert_eq!(found.tag, Some(tag("list-1")));
    assert_eq!(client.find_group("o'brien").await.unwrap(), None);
}

#[tokio::test]
async fn users_are_found_by_every_member_key_and_unknown_keys_are_absent() {
    let tenant = Tenant::start(seed(40, &[]), Faults::default()).await;
    let client = tenant.client().await;
    let mut upns: Vec<String> = (0..30).map(|n| format!("user{n}@example.ac.uk")).collect();
    upns.push("nobody@example.ac.uk".to_owned());
    let found = client.find_users(MemberKey::Upn, &upns).await.unwrap();
    assert_eq!(found.len(), 30);
    assert!(found.iter().all(|u| !u.removed));
    assert_eq!(
        tenant.stat(&["batch_inner_by_route", "GET /users", "200"]),
        3,
        "15 values per request, 31 values"
    );
    let by_mail = client
        .find_users(MemberKey::Mail, &["user7@example.ac.uk".to_owned()])
        .await
        .unwrap();
    assert_eq!(by_mail[0].id, oid(7));
    assert_eq!(by_mail[0].mail.as_deref(), Some("user7@example.ac.uk"));
    let by_employee = client
        .find_users(
            MemberKey::EmployeeId,
            &["E00009".to_owned(), "E99999".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(by_employee.len(), 1);
    assert_eq!(by_employee[0].employee_id.as_deref(), Some("E00009"));
    let by_id = client
        .find_users(
            MemberKey::ObjectId,
            &[
                user_id(3),
                "33333333-0000-0000-0000-000000000000".to_owned(),
                "junk".to_owned(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
    assert_eq!(
        by_id[0].user_principal_name.as_deref(),
        Some("user3@example.ac.uk")
    );
}

#[tokio::test]
async fn users_delta_reads_everything_then_only_changes_then_reports_expiry() {
    let tenant = Tenant::start(seed(1_500, &[]), Faults::default()).await;
    let client = tenant.client().await;
    let full = client.users_delta(None).await.unwrap();
    assert!(full.full);
    assert_eq!(full.users.len(), 1_500);
    assert_eq!(tenant.stat(&["requests", "GET /users/delta", "200"]), 2);
    let next = client.users_delta(Some(&full.delta_link)).await.unwrap();
    assert!(!next.full);
    assert!(next.users.is_empty());
    tenant.admin("delta/expire").await;
    let expired = client
        .users_delta(Some(&next.delta_link))
        .await
        .unwrap_err();
    assert!(matches!(expired, GraphError::DeltaExpired), "{expired:?}");
    let elsewhere = client
        .users_delta(Some(
            "https://graph.example.org/v1.0/users/delta?$deltatoken=x",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(elsewhere, GraphError::DeltaExpired),
        "{elsewhere:?}"
    );
}

#[tokio::test]
async fn a_listing_cut_short_is_an_error_not_fewer_members() {
    let members: Vec<usize> = (0..1_200).collect();
    let tenant = Tenant::start(seed(1_200, &[&members]), Faults::default()).await;
    // Every second page fails for good; the first one arrives.
    let proxy = Proxy::start(tenant.sandbox.addr(), |_, path| {
        if path.to_ascii_lowercase().contains("skiptoken") {
            Action::Refuse
        } else {
            Action::Forward
        }
    })
    .await;
    let mut config = tenant.config("sandbox-secret");
    config.endpoint = proxy.graph_url();
    let client = GraphClient::connect_with(&config, quick()).await.unwrap();
    let listings = client.members_of(&[group_id(0)]).await;
    let err = listings[0].as_ref().unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("503"), "{err}");
    let delta = client.users_delta(None).await.unwrap_err();
    assert!(delta.is_transient(), "{delta}");
}

// ---- writes ----

#[tokio::test]
async fn a_thousand_adds_across_groups_take_ceil_adds_over_400_round_trips() {
    let tenant = Tenant::start(seed(1_000, &[&[], &[], &[]]), Faults::default()).await;
    let client = tenant.client().await;
    let writes: Vec<Write> = (0..1_000).map(|n| add(n % 3, n)).collect();
    let before = tenant.stat(&["round_trips"]);
    all_ok(&client.write(&writes).await);
    assert_eq!(tenant.stat(&["round_trips"]) - before, 3);
    assert_eq!(tenant.stat(&["requests", "POST /$batch", "200"]), 3);
    assert_eq!(
        tenant.stat(&["batch_inner_by_route", "PATCH /groups/{id}", "204"]),
        51
    );
    let mut all: Vec<String> = (0..3).flat_map(|g| tenant.members(g)).collect();
    all.sort();
    assert_eq!(all, ids(0..1_000));
}

#[tokio::test]
async fn a_patch_with_a_present_member_falls_back_to_single_adds() {
    let tenant = Tenant::start(seed(40, &[&[1]]), Faults::default()).await;
    let client = tenant.client().await;
    let writes: Vec<Write> = (0..30).map(|n| add(0, n)).collect();
    all_ok(&client.write(&writes).await);
    assert_eq!(tenant.members(0), ids(0..30));
    let single = |status| {
        tenant.stat(&[
            "batch_inner_by_route",
            "POST /groups/{id}/members/$ref",
            status,
        ])
    };
    assert_eq!(
        single("204"),
        19,
        "the first chunk's other members, one by one"
    );
    assert_eq!(single("400"), 1, "the member already there");
    assert_eq!(tenant.stat(&["requests", "POST /$batch", "200"]), 2);
}

#[tokio::test]
async fn an_unknown_member_fails_alone() {
    let tenant = Tenant::start(seed(10, &[&[]]), Faults::default()).await;
    let client = tenant.client().await;
    let mut writes: Vec<Write> = (0..5).map(|n| add(0, n)).collect();
    writes.insert(
        2,
        Write::Add {
            group: group_id(0),
            member: "44444444-0000-0000-0000-000000000000".parse().unwrap(),
        },
    );
    let outcomes = client.write(&writes).await;
    assert!(
        outcomes[2].as_ref().unwrap_err().is_not_found(),
        "{outcomes:?}"
    );
    let others: Vec<_> = outcomes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, o)| o.is_ok())
        .collect();
    assert_eq!(others, vec![true; 5]);
    assert_eq!(tenant.members(0), ids(0..5));
}

#[tokio::test]
async fn mixed_writes_are_idempotent_and_always_remove_by_ref() {
    let tenant = Tenant::start(seed(50, &[&[0, 1, 2, 3], &[]]), Faults::default()).await;
    let client = tenant.client().await;
    let writes = vec![
        remove(0, 0),
        remove(0, 1),
        remove(0, 40),
        add(0, 10),
        add(0, 2),
        add(1, 5),
        Write::Tag {
            group: group_id(1),
            tag: tag("list-1"),
        },
    ];
    all_ok(&client.write(&writes).await);
    // Everything again: every write is already true, and still each one is Ok.
    all_ok(&client.write(&writes).await);
    assert_eq!(tenant.members(0), vec![user_id(2), user_id(3), user_id(10)]);
    assert_eq!(tenant.members(1), vec![user_id(5)]);
    assert_eq!(tenant.stat(&["member_deletes_without_ref"]), 0);
    assert_eq!(
        tenant.stat(&[
            "batch_inner_by_route",
            "DELETE /groups/{id}/members/{member-id}/$ref",
            "404"
        ]),
        4,
        "the absent member, then all three again"
    );
    let group = client.find_group("list-1").await.unwrap().unwrap();
    assert_eq!(group.tag, Some(tag("list-1")));
    let state = tenant.sandbox.state();
    assert_eq!(
        state.groups[1].extensions.len(),
        1,
        "the second tag write found the first"
    );
}

// ---- groups ----

#[tokio::test]
async fn twenty_groups_are_looked_up_in_one_batch_and_only_the_missing_ones_created() {
    let tenant = Tenant::start(seed(2, &[&[0], &[1]]), Faults::default()).await;
    let client = tenant.client().await;
    let specs: Vec<GroupSpec> = (0..20)
        .map(|n| GroupSpec {
            visibility: None,
            behaviors: vec!["WelcomeEmailDisabled".to_owned()],
            mail_nickname: format!("list-{n}"),
            display_name: format!("List {n}"),
            description: None,
            members: Vec::new(),
            owners: Vec::new(),
        })
        .collect();
    let outcomes: Vec<Ensured> = client
        .ensure_groups(&specs)
        .await
        .into_iter()
        .map(|outcome| outcome.unwrap().1)
        .collect();
    assert_eq!(&outcomes[..2], &[Ensured::Found, Ensured::Found]);
    assert!(outcomes[2..].iter().all(|&how| how == Ensured::Created));
    assert_eq!(tenant.stat(&["requests", "POST /$batch", "200"]), 1);
    assert_eq!(
        tenant.stat(&["batch_inner_by_route", "GET /groups", "200"]),
        20
    );
    assert_eq!(tenant.stat(&["requests", "GET /groups", "200"]), 0);
    assert_eq!(tenant.stat(&["requests", "POST /groups", "201"]), 18);
    assert_eq!(
        tenant.sandbox.state().groups.len(),
        20,
        "no group made twice"
    );
}

#[tokio::test]
async fn ensure_group_finds_an_existing_group_and_creates_a_missing_one() {
    let tenant = Tenant::start(seed(2, &[&[0]]), Faults::default()).await;
    let client = tenant.client().await;
    let spec = |nickname: &str| GroupSpec {
        visibility: None,
        behaviors: vec!["WelcomeEmailDisabled".to_owned()],
        mail_nickname: nickname.to_owned(),
        display_name: format!("{nickname} (display)"),
        description: Some("made by rollcall's suite".to_owned()),
        members: Vec::new(),
        owners: Vec::new(),
    };
    let (found, how) = ensure(&client, &spec("list-0")).await.unwrap();
    assert_eq!(
        (found.id.as_str(), how),
        (group_id(0).as_str(), Ensured::Found)
    );
    let (made, how) = ensure(&client, &spec("mod-cs101")).await.unwrap();
    assert_eq!(how, Ensured::Created);
    assert!(made.unified);
    assert_eq!(made.display_name, "mod-cs101 (display)");
    let (again, how) = ensure(&client, &spec("mod-cs101")).await.unwrap();
    assert_eq!((again.id, how), (made.id, Ensured::Found));
    let state = tenant.sandbox.state();
    let created = state
        .groups
        .iter()
        .find(|g| g.mail_nickname == "mod-cs101")
        .unwrap();
    assert_eq!(
        created.description.as_deref(),
        Some("made by rollcall's suite")
    );
    assert!(created.mail_enabled && !created.security_enabled);
}

#[tokio::test]
async fn a_create_binds_its_first_members_and_an_unknown_one_leaves_the_group_empty() {
    let tenant = Tenant::start(seed(30, &[]), Faults::default()).await;
    let client = tenant.client().await;
    let spec = |nickname: &str, members: Vec<ObjectId>| GroupSpec {
        visibility: None,
        behaviors: vec!["WelcomeEmailDisabled".to_owned()],
        mail_nickname: nickname.to_owned(),
        display_name: nickname.to_owned(),
        description: None,
        members,
        owners: Vec::new(),
    };
    let (made, how) = ensure(&client, &spec("mod-full", (0..20).map(oid).collect()))
        .await
        .unwrap();
    assert_eq!(how, Ensured::Created);
    let unknown: ObjectId = "44444444-0000-0000-0000-000000000000".parse().unwrap();
    let (empty, how) = ensure(&client, &spec("mod-empty", vec![oid(1), unknown]))
        .await
        .unwrap();
    assert_eq!(how, Ensured::CreatedEmpty);
    assert_eq!(
        tenant.stat(&["requests", "POST /groups", "201"]),
        2,
        "one create each, the refused one aside"
    );
    let state = tenant.sandbox.state();
    let members = |id: &str| {
        let group = state.groups.iter().find(|g| g.id.as_deref() == Some(id));
        let mut members = group.map(|g| g.members.clone()).unwrap_or_default();
        members.sort();
        members
    };
    assert_eq!(members(&made.id), ids(0..20));
    assert!(members(&empty.id).is_empty());
    assert_eq!(state.groups.len(), 2, "the refused create made no group");
}

#[tokio::test]
async fn a_create_whose_reply_was_lost_never_makes_a_second_group() {
    // The create reaches Graph, but its reply never comes back; replication lag hides the
    // new group from the first lookups too.
    let tenant = Tenant::start(
        seed(1, &[]),
        Faults {
            replication_lag_ms: 300,
            ..Faults::default()
        },
    )
    .await;
    let lost = Arc::new(AtomicBool::new(false));
    let lose_first_create = lost.clone();
    let proxy = Proxy::start(tenant.sandbox.addr(), move |method, path| {
        if method == "POST"
            && path == "/v1.0/groups"
            && !lose_first_create.swap(true, Ordering::SeqCst)
        {
            Action::LoseReply
        } else {
            Action::Forward
        }
    })
    .await;
    let mut config = tenant.config("sandbox-secret");
    config.endpoint = proxy.graph_url();
    let client = GraphClient::connect_with(&config, quick()).await.unwrap();
    let spec = GroupSpec {
        visibility: None,
        behaviors: vec!["WelcomeEmailDisabled".to_owned()],
        mail_nickname: "mod-lost".to_owned(),
        display_name: "Lost reply".to_owned(),
        description: None,
        members: Vec::new(),
        owners: Vec::new(),
    };
    let (group, how) = ensure(&client, &spec).await.unwrap();
    assert!(
        lost.load(Ordering::SeqCst),
        "the proxy lost the create's reply"
    );
    assert_eq!(how, Ensured::Found);
    let state = tenant.sandbox.state();
    let named: Vec<_> = state
        .groups
        .iter()
        .filter(|g| g.mail_nickname == "mod-lost")
        .collect();
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0].id.as_deref(), Some(group.id.as_str()));
}

#[tokio::test]
async fn a_connection_dropped_right_after_a_create_leaves_one_group() {
    let tenant = Tenant::start(seed(3, &[]), Faults::default()).await;
    let client = tenant.client().await;
    let spec = GroupSpec {
        visibility: None,
        behaviors: vec!["WelcomeEmailDisabled".to_owned()],
        mail_nickname: "mod-drop".to_owned(),
        display_name: "Drop".to_owned(),
        description: None,
        members: Vec::new(),
        owners: Vec::new(),
    };
    // The create is the one write the sandbox accepts; everything after it is dropped.
    tenant.sandbox.set_faults(Faults {
        drop_after_writes: Some(1),
        ..Faults::default()
    });
    let (group, how) = ensure(&client, &spec).await.unwrap();
    assert_eq!(how, Ensured::Created);
    let tagged = client
        .write(&[Write::Tag {
            group: group.id.clone(),
            tag: tag("mod-drop"),
        }])
        .await;
    assert!(tagged[0].as_ref().unwrap_err().is_transient(), "{tagged:?}");
    assert!(ensure(&client, &spec).await.unwrap_err().is_transient());
    // The connection is back: the same steps again find the group and finish the tag.
    tenant.sandbox.set_faults(Faults::default());
    let (again, how) = ensure(&client, &spec).await.unwrap();
    assert_eq!(
        (again.id.as_str(), how),
        (group.id.as_str(), Ensured::Found)
    );
    all_ok(
        &client
            .write(&[Write::Tag {
                group: group.id.clone(),
                tag: tag("mod-drop"),
            }])
            .await,
    );
    let state = tenant.sandbox.state();
    assert_eq!(
        state
            .groups
            .iter()
            .filter(|g| g.mail_nickname == "mod-drop")
            .count(),
        1
    );
}

#[tokio::test]
async fn adds_to_a_group_graph_has_not_replicated_yet_are_retried_until_it_has() {
    let tenant = Tenant::start(
        seed(30, &[]),
        Faults {
            replication_lag_ms: 300,
            ..Faults::default()
        },
    )
    .await;
    let patient = RetryPolicy {
        base_delay: Duration::from_millis(50),
        max_attempts: 12,
        ..quick()
    };
    let client = GraphClient::connect_with(&tenant.config("sandbox-secret"), patient)
        .await
        .unwrap();
    let (group, how) = ensure(
        &client,
        &GroupSpec {
            visibility: None,
            behaviors: vec!["WelcomeEmailDisabled".to_owned()],
            mail_nickname: "mod-new".to_owned(),
            display_name: "New".to_owned(),
            description: None,
            members: Vec::new(),
            owners: Vec::new(),
        },
    )
    .await
    .unwrap();
    assert_eq!(how, Ensured::Created);
    let writes: Vec<Write> = (0..30)
        .map(|n| Write::Add {
            group: group.id.clone(),
            member: oid(n),
        })
        .collect();
    all_ok(&client.write(&writes).await);
    assert!(
        tenant.stat(&["batch_inner_by_route", "PATCH /groups/{id}", "400"]) > 0,
        "the first adds met the not-yet-replicated group"
    );
    assert!(client.stats().retries > 0);
    let state = tenant.sandbox.state();
    let made = state
        .groups
        .iter()
        .find(|g| g.mail_nickname == "mod-new")
        .unwrap();
    assert_eq!(made.members.len(), 30);
}

// ---- throttling, faults, concurrency ----

#[tokio::test]
async fn tight_throttling_converges_without_early_requests() {
    let empty: Vec<&[usize]> = vec![&[]; 2_000];
    let tenant = Tenant::start(
        seed(400, &empty),
        Faults {
            tenant_size: TenantSize::Small,
            ..Faults::default()
        },
    )
    .await;
    let client = tenant.client().await;
    let groups: Vec<String> = (0..2_000).map(group_id).collect();
    // 2,000 member reads at 2 units each overrun the small tenant's 3,500 units.
    for listing in client.members_of(&groups).await {
        assert_eq!(listing.unwrap(), Vec::<ObjectId>::new());
    }
    let writes: Vec<Write> = (0..400).map(|n| add(n % 20, n)).collect();
    all_ok(&client.write(&writes).await);
    assert!(
        tenant.stat(&["throttled"]) > 0,
        "the test must be throttled to prove anything"
    );
    assert_eq!(client.stats().throttled, tenant.stat(&["throttled"]));
    assert_eq!(tenant.stat(&["early_requests"]), 0);
    assert_eq!(tenant.members(0).len(), 20);
}

#[tokio::test]
async fn unavailable_gateway_timeouts_and_dropped_connections_converge() {
    let members: Vec<usize> = (0..1_500).collect();
    let tenant = Tenant::start(
        seed(1_500, &[&members, &[], &[]]),
        Faults {
            error_503_rate: 0.1,
            error_504_rate: 0.1,
            drop_rate: 0.1,
            // 503s say Retry-After 1 s / time scale.
            time_scale: 50.0,
            seed: 7,
            ..Faults::default()
        },
    )
    .await;
    let client = tenant.client().await;
    let writes: Vec<Write> = (0..600)
        .map(|n| add(1 + n % 2, n))
        .chain((0..100).map(|n| remove(0, n)))
        .collect();
    all_ok(&client.write(&writes).await);
    let listings = client.members_of(&[group_id(0), group_id(1)]).await;
    assert_eq!(listings[0].as_ref().unwrap().len(), 1_400);
    assert_eq!(listings[1].as_ref().unwrap().len(), 300);
    assert_eq!(client.users_delta(None).await.unwrap().users.len(), 1_500);
    assert_eq!(client.groups().await.unwrap().len(), 3);
    assert_eq!(tenant.members(0), ids(100..1_500));
    let faults = &tenant.sandbox.stats()["faults"];
    for kind in ["503", "504", "dropped"] {
        assert!(
            faults[kind].as_u64().unwrap() > 0,
            "no {kind} fault was injected: {faults}"
        );
    }
}

#[tokio::test]
async fn requests_in_flight_never_exceed_max_concurrency() {
    let empty: Vec<&[usize]> = vec![&[]; 200];
    let tenant = Tenant::start(
        seed(10, &empty),
        Faults {
            latency_ms: 20,
            ..Faults::default()
        },
    )
    .await;
    let proxy = Proxy::start(tenant.sandbox.addr(), |_, _| Action::Forward).await;
    let mut config = tenant.config("sandbox-secret");
    config.endpoint = proxy.graph_url();
    config.max_concurrency = 2;
    let client = GraphClient::connect_with(&config, quick()).await.unwrap();
    let groups: Vec<String> = (0..200).map(group_id).collect();
    let upns = ["user1@example.ac.uk".to_owned()];
    let (listings, found) = tokio::join!(
        client.members_of(&groups),
        client.find_users(MemberKey::Upn, &upns)
    );
    assert!(listings.iter().all(Result::is_ok));
    assert_eq!(found.unwrap().len(), 1);
    assert_eq!(proxy.peak_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn stats_count_requests_batches_and_retries() {
    let tenant = Tenant::start(seed(25, &[&[]]), Faults::default()).await;
    let client = tenant.client().await;
    let writes: Vec<Write> = (0..25).map(|n| add(0, n)).collect();
    all_ok(&client.write(&writes).await);
    let stats = client.stats();
    assert_eq!(stats.requests, tenant.stat(&["round_trips"]));
    assert_eq!(stats.batched, 2, "two PATCHes in one batch");
    assert_eq!(stats.retries, 0);
}

/// One group found or made, through the batched call rollcall uses.
async fn ensure(
    client: &GraphClient,
    spec: &GroupSpec,
) -> Result<(rollcall::graph::DirectoryGroup, Ensured), GraphError> {
    client
        .ensure_groups(std::slice::from_ref(spec))
        .await
        .pop()
        .expect("one outcome per spec")
}

// ---- owners ----

fn add_owner(group: usize, owner: usize) -> Write {
    Write::AddOwner {
        group: group_id(group),
        owner: oid(owner),
    }
}

fn remove_owner(group: usize, owner: usize) -> Write {
    Write::RemoveOwner {
        group: group_id(group),
        owner: oid(owner),
    }
}

/// Owner writes are idempotent like member writes (an existing owner, an absent owner count
/// as done), travel in `$batch`, and read back through `owners_of`; Graph's refusal to remove
/// the last owner comes back as that write's failure, naming the rule.
#[tokio::test]
async fn owner_writes_are_idempotent_and_the_last_owner_refusal_is_reported() {
    let tenant = Tenant::start(seed(10, &[&[0, 1], &[2]]), Faults::default()).await;
    let client = tenant.client().await;
    all_ok(
        &client
            .write(&[add_owner(0, 5), add_owner(0, 6), add_owner(1, 7)])
            .await,
    );
    all_ok(&client.write(&[add_owner(0, 5), remove_owner(1, 9)]).await);
    let owners = client.owners_of(&[group_id(0), group_id(1)]).await;
    let listed = |i: usize| -> Vec<String> {
        let mut ids: Vec<String> = owners[i]
            .as_ref()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(listed(0), ids(5..7));
    assert_eq!(listed(1), ids(7..8));

    all_ok(&client.write(&[remove_owner(0, 5)]).await);
    let refused = client.write(&[remove_owner(0, 6)]).await;
    let error = refused[0].as_ref().unwrap_err().to_string();
    assert!(error.contains("must have at least one owner"), "{error}");
    assert_eq!(
        tenant.stat(&[
            "batch_inner_by_route",
            "DELETE /groups/{id}/owners/{owner-id}/$ref",
            "400"
        ]),
        1
    );
}

//! Webhook notification (`[notify]`) end to end, with a local HTTP server as the webhook: one
//! message per change of state (a tripped guard, drift found by `verify`, and `recovered`
//! when things are good again), none for the same state again, and a webhook that is down
//! never changes a run's exit code.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::Value;

use crate::common::db::{Backend, TestDatabase};
use crate::common::graph::RawGraph;
use crate::common::tenant::{Ran, Tenant, TenantOptions};

/// The environment variable the config names for the webhook URL.
const WEBHOOK_VAR: &str = "ROLLCALL_TEST_WEBHOOK";

/// A local webhook that keeps every JSON body it receives.
#[derive(Debug, Clone, Default)]
struct Webhook {
    received: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    /// Starts on a free loopback port; returns its URL.
    async fn start(&self) -> String {
        async fn receive(State(hook): State<Webhook>, axum::Json(body): axum::Json<Value>) {
            hook.received.lock().unwrap().push(body);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hook?token=secret-token",
            listener.local_addr().unwrap()
        );
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// The events received so far, in order.
    fn events(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|m| m["event"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    fn last(&self) -> Value {
        self.received.lock().unwrap().last().cloned().unwrap()
    }
}

/// Runs `rollcall ARGS…` with the webhook URL in its environment.
async fn rollcall(tenant: &Tenant, url: &str, args: &[&str]) -> Ran {
    let output = tenant
        .command(args)
        .env(WEBHOOK_VAR, url)
        .output()
        .await
        .expect("rollcall starts");
    Ran {
        command: format!("rollcall {}", args.join(" ")),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_hears_once_per_change_of_state_and_never_decides_the_exit() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let hook = Webhook::default();
    let url = hook.start().await;
    let mut tenant = Tenant::start(db, TenantOptions::new()).await;
    tenant.add_config(&format!("[notify]\nwebhook_url_env = \"{WEBHOOK_VAR}\"\n"));
    rollcall(&tenant, &url, &["run"]).await.expect(0);
    assert_eq!(
        hook.events(),
        Vec::<String>::new(),
        "all is well: nothing to say"
    );

    // A guard trips: one message; the same trip on the next run: no second one.
    tenant.set_guard("max_removals_per_run", 2_i64);
    tenant.edit_university(|university| {
        let withdrawn: Vec<usize> = university.modules[0]
            .students
            .iter()
            .copied()
            .filter(|&p| university.people[p].has_account)
            .take(3)
            .collect();
        for person in &withdrawn {
            university.modules[0].students.remove(person);
        }
    });
    rollcall(&tenant, &url, &["run"]).await.expect(3);
    assert_eq!(hook.events(), ["tripped"]);
    let message = hook.last();
    let run = tenant.last_run().await;
    assert_eq!(message["run"], run.0, "{message}");
    assert_eq!(
        (&message["kind"], &message["status"], &message["exit_code"]),
        (&"run".into(), &"stopped".into(), &3.into()),
        "{message}"
    );
    assert_eq!(
        message["lists"][0], "max_removals_per_run: 3 over the limit of 2",
        "{message}"
    );
    for field in ["summary", "text", "host", "time", "version"] {
        assert!(
            message[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}: {message}"
        );
    }
    rollcall(&tenant, &url, &["run"]).await.expect(3);
    assert_eq!(
        hook.events(),
        ["tripped"],
        "the same state again is not news"
    );

    // The operator approves: recovered.
    rollcall(
        &tenant,
        &url,
        &["run", "--accept-removals", "3", "--reason", "withdrawals"],
    )
    .await
    .expect(0);
    assert_eq!(hook.events(), ["tripped", "recovered"]);
    assert_eq!(hook.last()["previous"], "tripped");

    // Someone removes a member behind rollcall's back: verify finds drift, once.
    let list = tenant.university.modules[1].key.clone();
    let group = tenant.group_id(&list);
    let member = tenant
        .sandbox
        .state()
        .groups
        .into_iter()
        .find(|g| g.id.as_deref() == Some(group.as_str()))
        .and_then(|g| g.members.first().cloned())
        .expect("the list has members");
    RawGraph::connect(&tenant.sandbox)
        .await
        .remove_members(&group, &[member])
        .await;
    rollcall(&tenant, &url, &["verify"]).await.expect(5);
    assert_eq!(hook.events(), ["tripped", "recovered", "drift"]);
    assert_eq!(
        hook.last()["lists"][0],
        format!("{list}: 1 missing, 0 extra")
    );
    assert_eq!(hook.last()["kind"], "verify");
    rollcall(&tenant, &url, &["verify"]).await.expect(5);
    assert_eq!(hook.events().len(), 3, "the same drift again is not news");

    // The webhook is down: the run repairs the drift and exits 0 as ever, with a warning.
    let down = rollcall(&tenant, "http://127.0.0.1:1/hook", &["run"]).await;
    down.expect(0);
    assert!(
        down.stderr.contains("could not be delivered"),
        "{}",
        down.stderr
    );
    assert!(!down.stderr.contains("secret-token"));
    assert_eq!(hook.events().len(), 3);

    // Back up: the undelivered change is told on the next run.
    rollcall(&tenant, &url, &["run"]).await.expect(0);
    assert_eq!(
        hook.events(),
        ["tripped", "recovered", "drift", "recovered"]
    );
    assert_eq!(hook.last()["previous"], "drift");
    tenant.finish();
}

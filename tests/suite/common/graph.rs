//! Raw Microsoft Graph calls to the sandbox, made behind rollcall's back: another admin
//! changing memberships, or another app spending the tenant's throttling budget.

use std::time::Duration;

use rollcall::sandbox::{SandboxHandle, SandboxOptions};
use serde_json::{Value, json};

/// Inner requests per `$batch`, Graph's maximum.
const BATCH: usize = 20;

/// A client with its own token, as any other app registration would hold.
#[derive(Debug)]
pub struct RawGraph {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl RawGraph {
    /// Fetches a token from the sandbox's token endpoint.
    pub async fn connect(sandbox: &SandboxHandle) -> RawGraph {
        let defaults = SandboxOptions::default();
        let http = reqwest::Client::new();
        let reply: Value = http
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                sandbox.authority(),
                defaults.tenant_id
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "https://graph.microsoft.com/.default"),
                ("client_id", defaults.client_id.as_str()),
                ("client_secret", defaults.client_secret.as_str()),
            ])
            .send()
            .await
            .expect("the sandbox's token endpoint answers")
            .json()
            .await
            .expect("the token reply is JSON");
        let token = reply["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("the sandbox issued no token: {reply}"))
            .to_owned();
        RawGraph {
            http,
            base: sandbox.graph_url(),
            token,
        }
    }

    /// Adds `members` (object ids) to `group` with `members@odata.bind`, 20 per PATCH.
    pub async fn add_members(&self, group: &str, members: &[String]) {
        for chunk in members.chunks(BATCH) {
            let binds: Vec<String> = chunk
                .iter()
                .map(|m| format!("https://graph.microsoft.com/v1.0/directoryObjects/{m}"))
                .collect();
            let request = self
                .http
                .patch(format!("{}/groups/{group}", self.base))
                .json(&json!({ "members@odata.bind": binds }));
            self.send_ok(
                request,
                &format!(
                    "adding {} members to group {group} behind rollcall's back",
                    chunk.len()
                ),
            )
            .await;
        }
    }

    /// Deletes `group`, as an admin tidying up the tenant would.
    pub async fn delete_group(&self, group: &str) {
        let request = self.http.delete(format!("{}/groups/{group}", self.base));
        self.send_ok(
            request,
            &format!("deleting group {group} behind rollcall's back"),
        )
        .await;
    }

    /// `GET path` (relative to the Graph endpoint, query included); the reply's JSON body.
    pub async fn get(&self, path: &str) -> Value {
        let request = self.http.get(format!("{}{path}", self.base));
        let body = self.send_ok(request, &format!("GET {path}")).await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    /// `METHOD path` with `body`, whatever the answer: its status and JSON body.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: the sandbox does not answer: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `PATCH path` with `body`, as an admin changing a group's properties by hand.
    pub async fn patch(&self, path: &str, body: &Value) {
        let request = self.http.patch(format!("{}{path}", self.base)).json(body);
        self.send_ok(request, &format!("PATCH {path} behind rollcall's back"))
            .await;
    }

    /// Removes `members` (object ids) from `group`, one `DELETE …/$ref` each.
    pub async fn remove_members(&self, group: &str, members: &[String]) {
        for member in members {
            let request = self.http.delete(format!(
                "{}/groups/{group}/members/{member}/$ref",
                self.base
            ));
            self.send_ok(
                request,
                &format!("removing {member} from group {group} behind rollcall's back"),
            )
            .await;
        }
    }

    /// Sends `request` signed in and returns the reply's body; a reply other than 2xx fails
    /// the test, saying `what` was tried.
    async fn send_ok(&self, request: reqwest::RequestBuilder, what: &str) -> String {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: the sandbox does not answer: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{what}: {status} {body}");
        body
    }

    /// Spends the app's throttling budget, as a busy neighbour would: batches of write
    /// requests that change nothing (removing a member `group` does not have) until the
    /// sandbox throttles one, then waits out the longest `Retry-After` it gave, so that the
    /// next request is not early but the buckets are empty. Returns the writes sent.
    pub async fn exhaust_budget(&self, group: &str) -> usize {
        // Enough batches to empty the largest write bucket (3,000) many times over.
        const MOST_BATCHES: usize = 2_000;
        for round in 0..MOST_BATCHES {
            let requests: Vec<Value> = (0..BATCH)
                .map(|i| {
                    let nobody = format!("ffffffff-ffff-4fff-8fff-{:012}", round * BATCH + i);
                    json!({
                        "id": i.to_string(),
                        "method": "DELETE",
                        "url": format!("/groups/{group}/members/{nobody}/$ref"),
                    })
                })
                .collect();
            let responses = self.batch(requests).await;
            let retry_after = responses
                .iter()
                .filter(|r| r["status"].as_u64() == Some(429))
                .filter_map(|r| {
                    let headers = r["headers"].as_object()?;
                    let (_, value) = headers
                        .iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))?;
                    value.as_str()?.parse::<f64>().ok()
                })
                .fold(None, |longest: Option<f64>, s| {
                    Some(longest.map_or(s, |l| l.max(s)))
                });
            if let Some(seconds) = retry_after {
                tokio::time::sleep(Duration::from_secs_f64(seconds) + Duration::from_millis(50))
                    .await;
                return (round + 1) * BATCH;
            }
        }
        panic!(
            "the sandbox never throttled {} writes: is throttling on?",
            MOST_BATCHES * BATCH
        );
    }

    /// Sends one `$batch` and returns its inner responses.
    pub async fn batch(&self, requests: Vec<Value>) -> Vec<Value> {
        let response = self
            .http
            .post(format!("{}/$batch", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "requests": requests }))
            .send()
            .await
            .expect("the sandbox answers a batch");
        let status = response.status();
        let body: Value = response.json().await.expect("a batch reply is JSON");
        assert!(status.is_success(), "$batch: {status} {body}");
        body["responses"]
            .as_array()
            .unwrap_or_else(|| panic!("a batch reply without responses: {body}"))
            .clone()
    }
}

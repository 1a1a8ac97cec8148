//! The per-member reconciler rollcall is compared with: what a university's script does
//! today. For each list, in turn: find the group by nickname (create it if missing), read
//! its members, look every wanted member up by their source key, add each missing one with
//! its own `POST …/members/$ref`, remove each unwanted one with its own `DELETE`. One request
//! at a time; a 429 or 503 is waited out for its `Retry-After` (or a second) and sent again.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rollcall::generate::{Family, List, University};
use rollcall::sandbox::{SandboxHandle, SandboxOptions};
use serde_json::{Value, json};
use url::Url;

/// What the baseline did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    /// HTTP requests sent, retries included.
    pub round_trips: u64,
    /// Write requests sent (creates, adds, removes), retries included.
    pub write_requests: u64,
    /// 429 replies received.
    pub throttled: u64,
    /// Groups created.
    pub creates: u64,
    /// Members added.
    pub adds: u64,
    /// Members removed.
    pub removes: u64,
}

/// A signed-in per-member client of one sandbox.
#[derive(Debug)]
pub struct Baseline {
    http: reqwest::Client,
    graph: String,
    token_url: String,
    token: String,
    /// What was sent so far.
    pub tally: Tally,
}

impl Baseline {
    /// Signs in to `sandbox` as the default app registration.
    pub async fn connect(sandbox: &SandboxHandle) -> anyhow::Result<Baseline> {
        let options = SandboxOptions::default();
        let mut baseline = Baseline {
            http: reqwest::Client::new(),
            graph: sandbox.graph_url(),
            token_url: format!(
                "{}/{}/oauth2/v2.0/token",
                sandbox.authority(),
                options.tenant_id
            ),
            token: String::new(),
            tally: Tally::default(),
        };
        baseline.sign_in().await?;
        Ok(baseline)
    }

    async fn sign_in(&mut self) -> anyhow::Result<()> {
        let options = SandboxOptions::default();
        let reply: Value = self
            .http
            .post(&self.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", options.client_id.as_str()),
                ("client_secret", options.client_secret.as_str()),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .context("baseline: the token request")?
            .json()
            .await
            .context("baseline: the token reply")?;
        self.token = reply["access_token"]
            .as_str()
            .context("baseline: the token reply has no access_token")?
            .to_owned();
        Ok(())
    }

    /// Brings each of `lists` in step, one list and one member at a time.
    pub async fn reconcile(
        &mut self,
        university: &University,
        lists: impl IntoIterator<Item = List<'_>>,
    ) -> anyhow::Result<()> {
        for list in lists {
            self.reconcile_list(university, &list)
                .await
                .with_context(|| format!("baseline: list {}", list.key))?;
        }
        Ok(())
    }

    async fn reconcile_list(
        &mut self,
        university: &University,
        list: &List<'_>,
    ) -> anyhow::Result<()> {
        let filter = format!("mailNickname eq '{}'", list.key);
        let found = self
            .call(
                "GET",
                &["groups"],
                &[("$filter", filter.as_str()), ("$select", "id")],
                None,
            )
            .await?;
        let group = match found["value"][0]["id"].as_str() {
            Some(id) => id.to_owned(),
            None => {
                let body = json!({
                    "displayName": list.display_name,
                    "description": list.description,
                    "mailNickname": list.key,
                    "mailEnabled": true,
                    "securityEnabled": false,
                    "groupTypes": ["Unified"],
                });
                let created = self.call("POST", &["groups"], &[], Some(body)).await?;
                self.tally.creates += 1;
                created["id"]
                    .as_str()
                    .context("the create reply has no id")?
                    .to_owned()
            }
        };
        let mut current: HashSet<String> = HashSet::new();
        let mut page = self
            .call(
                "GET",
                &["groups", &group, "members"],
                &[("$select", "id"), ("$top", "999")],
                None,
            )
            .await?;
        loop {
            for member in page["value"].as_array().into_iter().flatten() {
                if let Some(id) = member["id"].as_str() {
                    current.insert(id.to_owned());
                }
            }
            let Some(next) = page["@odata.nextLink"].as_str() else {
                break;
            };
            let next = Url::parse(next).context("a nextLink")?;
            page = self.send("GET", next, None).await?;
        }
        let mut wanted: HashSet<String> = HashSet::new();
        for &person in &list.members {
            let person = &university.people[person];
            let user = match list.family {
                Family::Modules => {
                    self.call("GET", &["users", &person.upn], &[("$select", "id")], None)
                        .await?
                }
                Family::Departments => {
                    let filter = format!("employeeId eq '{}'", person.employee_id);
                    let found = self
                        .call(
                            "GET",
                            &["users"],
                            &[("$filter", filter.as_str()), ("$select", "id")],
                            None,
                        )
                        .await?;
                    found["value"][0].clone()
                }
            };
            // No account yet: nothing to add.
            let Some(id) = user["id"].as_str() else {
                continue;
            };
            wanted.insert(id.to_owned());
            if !current.contains(id) {
                let bind = json!({ "@odata.id": format!("{}/directoryObjects/{id}", self.graph) });
                self.call(
                    "POST",
                    &["groups", &group, "members", "$ref"],
                    &[],
                    Some(bind),
                )
                .await?;
                self.tally.adds += 1;
            }
        }
        for id in current.difference(&wanted) {
            self.call(
                "DELETE",
                &["groups", &group, "members", id, "$ref"],
                &[],
                None,
            )
            .await?;
            self.tally.removes += 1;
        }
        Ok(())
    }

    /// One request to `{graph}/{segments…}?{query}`; the reply's body (`Null` for 404).
    async fn call(
        &mut self,
        method: &str,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut url = Url::parse(&self.graph)?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("the Graph URL has no path"))?
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.send(method, url, body).await
    }

    /// Sends until Graph answers with something other than 429/503/504/401; a 404 reads as
    /// `Null` (an unknown user), "already a member" as done, any other failure ends the run.
    async fn send(&mut self, method: &str, url: Url, body: Option<Value>) -> anyhow::Result<Value> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let is_write = method != reqwest::Method::GET;
        let mut renewed = false;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(&self.token);
            if let Some(body) = &body {
                request = request.json(body);
            }
            self.tally.round_trips += 1;
            if is_write {
                self.tally.write_requests += 1;
            }
            let reply = request.send().await.context("a Graph request")?;
            let status = reply.status().as_u16();
            let retry_after = reply
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok());
            let text = reply.text().await.context("a Graph reply")?;
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match status {
                200..=299 => return Ok(body),
                401 if !renewed => {
                    renewed = true;
                    self.sign_in().await?;
                }
                429 | 503 | 504 => {
                    if status == 429 {
                        self.tally.throttled += 1;
                    }
                    let wait = retry_after.unwrap_or(1.0);
                    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                }
                404 if !is_write => return Ok(Value::Null),
                400 if text.contains("already exist") => return Ok(Value::Null),
                _ => bail!("{method} {}: {status} {text}", url.path()),
            }
        }
    }
}

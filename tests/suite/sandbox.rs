//! The sandbox tenant's conformance suite: raw HTTP (reqwest + JSON) against `Sandbox::start`,
//! one test per Graph behaviour GRAPH.md records.

use std::time::Duration;

use crate::common::numbered::{group_id, seed, user_id};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use rollcall::sandbox::{Faults, Sandbox, SandboxHandle, SandboxOptions, Seed};
use serde_json::{Value, json};

fn bind(n: usize) -> String {
    format!(
        "https://graph.microsoft.com/v1.0/directoryObjects/{}",
        user_id(n)
    )
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Tenant {
    sandbox: SandboxHandle,
    http: reqwest::Client,
    token: String,
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
        let http = reqwest::Client::new();
        let token = fetch_token(&http, &sandbox).await;
        Tenant {
            sandbox,
            http,
            token,
        }
    }

    async fn small(seed: Seed) -> Tenant {
        Tenant::start(seed, Faults::default()).await
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.sandbox.graph_url())
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.bearer_auth(&self.token).send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.patch(self.url(path)).json(&body)).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(self.url(path))).await
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.http.request(
            method,
            format!("{}/_sandbox/{path}", self.sandbox.base_url()),
        );
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    async fn set_faults(&self, patch: Value) {
        let reply = self
            .admin(reqwest::Method::PUT, "faults", Some(patch))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    fn members_of(&self, group: usize) -> Vec<String> {
        let id = group_id(group);
        self.sandbox
            .state()
            .groups
            .into_iter()
            .find(|g| g.id.as_deref() == Some(id.as_str()))
            .map(|g| g.members)
            .unwrap_or_default()
    }

    fn stat(&self, path: &[&str]) -> u64 {
        let mut value = self.sandbox.stats();
        for key in path {
            value = value[*key].take();
        }
        value.as_u64().unwrap_or(0)
    }
}

async fn fetch_token(http: &reqwest::Client, sandbox: &SandboxHandle) -> String {
    let reply: Value = http
        .post(format!(
            "{}/sandbox-tenant/oauth2/v2.0/token",
            sandbox.authority()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_id", "rollcall-sandbox"),
            ("client_secret", "sandbox-secret"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["access_token"].as_str().unwrap().to_owned()
}

async fn all_member_ids(tenant: &Tenant, first: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut next = Some(first.to_owned());
    while let Some(url) = next {
        let reply = tenant.get(&url).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        pages += 1;
        for member in reply.body["value"].as_array().unwrap() {
            ids.push(member["id"].as_str().unwrap().to_owned());
        }
        next = reply.body["@odata.nextLink"].as_str().map(str::to_owned);
    }
    (ids, pages)
}

// ---- authentication ----

#[tokio::test]
async fn token_flow_accepts_form_secret_and_basic_auth() {
    let tenant = Tenant::small(seed(1, &[])).await;
    assert_eq!(tenant.get("/users").await.status, 200);
    let reply: Value = tenant
        .http
        .post(format!(
            "{}/sandbox-tenant/oauth2/v2.0/token",
            tenant.sandbox.authority()
        ))
        .basic_auth("rollcall-sandbox", Some("sandbox-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["token_type"], "Bearer");
    assert_eq!(reply["expires_in"], 3599);
    let token = reply["access_token"].as_str().unwrap();
    let status = tenant
        .http
        .get(tenant.url("/users"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn token_endpoint_refuses_wrong_secret_tenant_and_scope() {
    let tenant = Tenant::small(seed(0, &[])).await;
    let ask = |tenant_id: &str, secret: &str, scope: &str| {
        tenant
            .http
            .post(format!(
                "{}/{tenant_id}/oauth2/v2.0/token",
                tenant.sandbox.authority()
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("client_id", "rollcall-sandbox"),
                ("client_secret", secret),
            ])
            .send()
    };
    let scope = "https://graph.microsoft.com/.default";
    let wrong_secret = ask("sandbox-tenant", "nope", scope).await.unwrap();
    assert_eq!(wrong_secret.status(), 401);
    let body: Value = wrong_secret.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].is_string());
    let wrong_tenant = ask("other", "sandbox-secret", scope).await.unwrap();
    assert_eq!(wrong_tenant.status(), 400);
    let wrong_scope = ask("sandbox-tenant", "sandbox-secret", "User.Read")
        .await
        .unwrap();
    assert_eq!(wrong_scope.status(), 400);
    let body: Value = wrong_scope.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
}

#[tokio::test]
async fn missing_unknown_and_expired_tokens_get_401() {
    let tenant = Tenant::start(
        seed(1, &[]),
        Faults {
            token_ttl_secs: 0,
            ..Faults::default()
        },
    )
    .await;
    let expired = tenant.get("/users").await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.code(), "InvalidAuthenticationToken");
    assert!(expired.message().contains("expired"), "{}", expired.body);
    let missing = tenant.http.get(tenant.url("/users")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    let unknown = tenant
        .http
        .get(tenant.url("/users"))
        .bearer_auth("made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
}

// ---- paging ----

#[tokio::test]
async fn member_pages_link_back_to_the_request_host() {
    let tenant = Tenant::small(seed(250, &[&(0..250).collect::<Vec<_>>()])).await;
    let reply = tenant
        .send(
            tenant
                .http
                .get(tenant.url(&format!("/groups/{}/members", group_id(0))))
                .header("Host", "graph.example.test:8443"),
        )
        .await;
    assert_eq!(reply.body["value"].as_array().unwrap().len(), 100);
    let next = reply.body["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&format!(
            "http://graph.example.test:8443/v1.0/groups/{}/members?",
            group_id(0)
        )),
        "{next}"
    );
    let (ids, pages) = all_member_ids(&tenant, &format!("/groups/{}/members", group_id(0))).await;
    assert_eq!((ids.len(), pages), (250, 3));
    let root = format!(
        "{}/groups/{}/members",
        tenant.sandbox.base_url(),
        group_id(0)
    );
    let reply = tenant.get(&root).await;
    let next = reply.body["@odata.nextLink"].as_str().unwrap();
    assert!(
        !next.contains("/v1.0/"),
        "a root request gets root links: {next}"
    );
}

#[tokio::test]
async fn top_is_capped_at_999() {
    let tenant = Tenant::small(seed(1_200, &[&(0..1_200).collect::<Vec<_>>()])).await;
    let path = format!("/groups/{}/members", group_id(0));
    let too_many = tenant.get(&format!("{path}?$top=1000")).await;
    assert_eq!(too_many.status, 400);
    let (ids, pages) = all_member_ids(&tenant, &format!("{path}?$top=999")).await;
    assert_eq!((ids.len(), pages), (1_200, 2));
    let expanded = tenant.get(&format!("{path}?$expand=manager")).await;
    assert_eq!(expanded.status, 400);
    let group_expand = tenant
        .get(&format!("/groups/{}?$expand=members", group_id(0)))
        .await;
    assert_eq!(group_expand.status, 400);
}

#[tokio::test]
async fn form_encoded_options_and_skiptoken_spelling_are_accepted() {
    let tenant = Tenant::small(seed(5, &[&[0, 1, 2, 3, 4]])).await;
    let reply = tenant
        .get(&format!(
            "/groups/{}/members/graph.user?%24select=id%2CuserPrincipalName&%24top=2",
            group_id(0)
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let first = &reply.body["value"][0];
    assert_eq!(first["@odata.type"], "#microsoft.graph.user");
    assert_eq!(first["userPrincipalName"], "user0@example.ac.uk");
    assert!(first.get("displayName").is_none(), "{first}");
    let next = reply.body["@odata.nextLink"].as_str().unwrap();
    let renamed = next.replace("skiptoken", "skipToken");
    let second = tenant.get(&renamed).await;
    assert_eq!(second.body["value"][0]["id"], user_id(2));
    let filtered = tenant
        .get("/users?$filter=userPrincipalName+eq+%27user3%40example.ac.uk%27")
        .await;
    assert_eq!(filtered.body["value"][0]["id"], user_id(3));
    let bad = tenant
        .get(&format!(
            "/groups/{}/members?$skiptoken=garbage",
            group_id(0)
        ))
        .await;
    assert_eq!(bad.status, 400);
}

// ---- users ----

#[tokio::test]
async fn users_are_found_by_id_upn_mail_and_employee_id() {
    let tenant = Tenant::small(seed(20, &[])).await;
    let by_id = tenant.get(&format!("/users/{}", user_id(4))).await;
    assert_eq!(by_id.body["userPrincipalName"], "user4@example.ac.uk");
    assert!(
        by_id.body.get("employeeId").is_none(),
        "not a default property"
    );
    let by_upn = tenant
        .get("/users/USER5@example.ac.uk?$select=id,employeeId")
        .await;
    assert_eq!(by_upn.body["id"], user_id(5));
    assert_eq!(by_upn.body["employeeId"], "E00005");
    let by_mail = tenant
        .get("/users?$filter=mail eq 'user6@example.ac.uk'")
        .await;
    assert_eq!(by_mail.body["value"][0]["id"], user_id(6));
    let by_employee = tenant.get("/users?$filter=employeeId eq 'E00007'").await;
    assert_eq!(by_employee.body["value"][0]["id"], user_id(7));
    let unknown = tenant.get("/users/nobody@example.ac.uk").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "Request_ResourceNotFound");
}

#[tokio::test]
async fn in_filter_takes_at_most_15_values() {
    let tenant = Tenant::small(seed(20, &[])).await;
    let list = |n: usize| {
        (0..n)
            .map(|i| format!("'user{i}@example.ac.uk'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let fifteen = tenant
        .get(&format!(
            "/users?$filter=userPrincipalName in ({})",
            list(15)
        ))
        .await;
    assert_eq!(fifteen.body["value"].as_array().unwrap().len(), 15);
    let sixteen = tenant
        .get(&format!(
            "/users?$filter=userPrincipalName in ({})",
            list(16)
        ))
        .await;
    assert_eq!(sixteen.status, 400);
    assert_eq!(sixteen.code(), "Request_UnsupportedQuery");
}

// ---- groups ----

fn unified(nickname: &str) -> Value {
    json!({
        "displayName": "Module list",
        "mailNickname": nickname,
        "mailEnabled": true,
        "securityEnabled": false,
        "groupTypes": ["Unified"],
    })
}

#[tokio::test]
async fn group_create_validates_its_fields() {
    let tenant = Tenant::small(seed(3, &[])).await;
    let mut created = unified("mod-cs101");
    created["resourceBehaviorOptions"] = json!(["WelcomeEmailDisabled"]);
    created["members@odata.bind"] = json!([bind(0), bind(1)]);
    let reply = tenant.post("/groups", created).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.body["mailNickname"], "mod-cs101");
    let state = tenant.sandbox.state();
    let group = state
        .groups
        .iter()
        .find(|g| g.id.as_deref() == Some(&id))
        .unwrap();
    assert_eq!(group.members.len(), 2);
    for (field, value) in [
        ("mailNickname", json!("has space")),
        ("mailNickname", json!("a@b")),
        ("mailNickname", json!("x".repeat(65))),
        ("displayName", json!("y".repeat(257))),
        ("mailEnabled", json!("yes")),
    ] {
        let mut body = unified("valid-nick");
        body[field] = value;
        let reply = tenant.post("/groups", body).await;
        assert_eq!(reply.status, 400, "{field}: {}", reply.body);
        assert!(reply.message().contains(field), "{}", reply.body);
    }
    let mut missing = unified("valid-nick");
    missing.as_object_mut().unwrap().remove("securityEnabled");
    assert_eq!(tenant.post("/groups", missing).await.status, 400);
    let patch = tenant
        .patch(
            &format!("/groups/{id}"),
            json!({"resourceBehaviorOptions": ["WelcomeEmailDisabled"]}),
        )
        .await;
    assert_eq!(
        patch.status, 400,
        "resourceBehaviorOptions only at creation"
    );
}

#[tokio::test]
async fn duplicate_nickname_is_refused() {
    let tenant = Tenant::small(seed(1, &[&[]])).await;
    let reply = tenant.post("/groups", unified("LIST-0")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.code(), "Request_BadRequest");
    let found = tenant
        .get("/groups?$filter=mailNickname eq 'list-0'&$select=id,mailNickname")
        .await;
    assert_eq!(found.body["value"][0]["id"], group_id(0));
}

#[tokio::test]
async fn patch_binds_at_most_20_members() {
    let tenant = Tenant::small(seed(30, &[&[]])).await;
    let path = format!("/groups/{}", group_id(0));
    let too_many: Vec<String> = (0..21).map(bind).collect();
    let reply = tenant
        .patch(&path, json!({"members@odata.bind": too_many}))
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply
            .message()
            .contains("cannot contain more than 20 link changes")
    );
    let twenty: Vec<String> = (0..20).map(bind).collect();
    let reply = tenant
        .patch(&path, json!({"members@odata.bind": twenty}))
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(tenant.members_of(0).len(), 20);
    assert_eq!(tenant.stat(&["writes"]), 20);
}

#[tokio::test]
async fn patch_with_one_existing_member_adds_nothing() {
    let tenant = Tenant::small(seed(5, &[&[2]])).await;
    let reply = tenant
        .patch(
            &format!("/groups/{}", group_id(0)),
            json!({"members@odata.bind": [bind(0), bind(1), bind(2)]}),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply
            .message()
            .contains("One or more added object references already exist")
    );
    assert_eq!(tenant.members_of(0), vec![user_id(2)]);
    let unknown = tenant
        .patch(
            &format!("/groups/{}", group_id(0)),
            json!({"members@odata.bind": [bind(0), bind(99)]}),
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(tenant.members_of(0), vec![user_id(2)]);
}

#[tokio::test]
async fn adding_a_present_member_is_400_already_exist() {
    let tenant = Tenant::small(seed(2, &[&[1]])).await;
    let path = format!("/groups/{}/members/$ref", group_id(0));
    let added = tenant.post(&path, json!({"@odata.id": bind(0)})).await;
    assert_eq!(added.status, 204);
    let again = tenant.post(&path, json!({"@odata.id": bind(0)})).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.code(), "Request_BadRequest");
    assert!(
        again
            .message()
            .contains("One or more added object references already exist")
    );
    assert!(again.body["error"]["innerError"]["request-id"].is_string());
}

#[tokio::test]
async fn removing_a_non_member_is_404_naming_the_group() {
    let tenant = Tenant::small(seed(3, &[&[1]])).await;
    let removed = tenant
        .delete(&format!(
            "/groups/{}/members/{}/$ref",
            group_id(0),
            user_id(1)
        ))
        .await;
    assert_eq!(removed.status, 204);
    let again = tenant
        .delete(&format!(
            "/groups/{}/members/{}/$ref",
            group_id(0),
            user_id(1)
        ))
        .await;
    assert_eq!(again.status, 404);
    assert_eq!(again.code(), "Request_ResourceNotFound");
    assert!(again.message().contains(&group_id(0)), "{}", again.body);
    assert!(!again.message().contains(&user_id(1)));
}

#[tokio::test]
async fn unknown_member_or_group_is_404_naming_it() {
    let tenant = Tenant::small(seed(2, &[&[]])).await;
    let path = format!("/groups/{}/members/$ref", group_id(0));
    let unknown_user = tenant.post(&path, json!({"@odata.id": bind(42)})).await;
    assert_eq!(unknown_user.status, 404);
    assert_eq!(
        unknown_user.message(),
        format!(
            "Resource '{}' does not exist or one of its queried reference-property objects are not present.",
            user_id(42)
        )
    );
    let unknown_group = tenant
        .post(
            &format!("/groups/{}/members/$ref", group_id(9)),
            json!({"@odata.id": bind(0)}),
        )
        .await;
    assert_eq!(unknown_group.status, 404);
    assert!(unknown_group.message().contains(&group_id(9)));
}

#[tokio::test]
async fn delete_without_ref_is_refused_and_counted() {
    let tenant = Tenant::small(seed(2, &[&[1]])).await;
    let reply = tenant
        .delete(&format!("/groups/{}/members/{}", group_id(0), user_id(1)))
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(tenant.stat(&["member_deletes_without_ref"]), 1);
    assert_eq!(tenant.members_of(0), vec![user_id(1)]);
}

#[tokio::test]
async fn mail_enabled_security_groups_refuse_member_changes() {
    let mut directory = seed(2, &[&[]]);
    directory.groups[0].group_types.clear();
    directory.groups[0].security_enabled = true;
    let tenant = Tenant::small(directory).await;
    let reply = tenant
        .post(
            &format!("/groups/{}/members/$ref", group_id(0)),
            json!({"@odata.id": bind(0)}),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.message(),
        "Cannot Update a mail-enabled security groups and or distribution list."
    );
}

#[tokio::test]
async fn unknown_routes_get_graph_errors_and_root_paths_are_served() {
    let tenant = Tenant::small(seed(1, &[])).await;
    let unknown = tenant.get("/widgets").await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.code(), "BadRequest");
    let wrong_method = tenant.send(tenant.http.put(tenant.url("/groups"))).await;
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.body["error"]["code"].is_string());
    let root = tenant
        .get(&format!("{}/users", tenant.sandbox.base_url()))
        .await;
    assert_eq!(root.status, 200);
    assert_eq!(root.header("x-ms-resource-unit"), Some("2"));
}

// ---- extensions and getByIds ----

#[tokio::test]
async fn open_extensions_are_stored_listed_expanded_and_limited() {
    let tenant = Tenant::small(seed(1, &[&[]])).await;
    let path = format!("/groups/{}/extensions", group_id(0));
    let extension = |name: &str| {
        json!({
            "@odata.type": "microsoft.graph.openTypeExtension",
            "extensionName": name,
            "list": "mod-cs101",
        })
    };
    let created = tenant.post(&path, extension("org.rollcall.managed")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["id"], "org.rollcall.managed");
    let duplicate = tenant.post(&path, extension("org.rollcall.managed")).await;
    assert_eq!(duplicate.status, 409);
    assert_eq!(tenant.post(&path, extension("org.other")).await.status, 201);
    assert_eq!(tenant.post(&path, extension("org.third")).await.status, 400);
    let mut big = extension("org.big");
    big["blob"] = json!("x".repeat(2_100));
    assert_eq!(tenant.post(&path, big).await.status, 400);
    let listed = tenant.get(&path).await;
    assert_eq!(listed.body["value"].as_array().unwrap().len(), 2);
    let expanded = tenant
        .get("/groups?$filter=mailNickname eq 'list-0'&$expand=extensions")
        .await;
    assert_eq!(
        expanded.body["value"][0]["extensions"][0]["list"],
        "mod-cs101"
    );
    let state = tenant.sandbox.state();
    assert_eq!(state.groups[0].extensions.len(), 2);
}

#[tokio::test]
async fn get_by_ids_returns_known_objects_and_caps_at_1000() {
    let tenant = Tenant::small(seed(3, &[&[]])).await;
    let reply = tenant
        .post(
            "/directoryObjects/getByIds",
            json!({"ids": [user_id(1), group_id(0), "unknown"]}),
        )
        .await;
    let value = reply.body["value"].as_array().unwrap();
    assert_eq!(value.len(), 2);
    assert_eq!(value[0]["@odata.type"], "#microsoft.graph.user");
    assert_eq!(value[1]["@odata.type"], "#microsoft.graph.group");
    let ids: Vec<String> = (0..1_001).map(user_id).collect();
    let too_many = tenant
        .post("/directoryObjects/getByIds", json!({ "ids": ids }))
        .await;
    assert_eq!(too_many.status, 400);
}

// ---- batch ----

fn add_request(id: &str, group: usize, user: usize) -> Value {
    json!({
        "id": id,
        "method": "POST",
        "url": format!("/groups/{}/members/$ref", group_id(group)),
        "headers": {"Content-Type": "application/json"},
        "body": {"@odata.id": bind(user)},
    })
}

/// A member page read inside `$batch` is the same page, as a JSON body, with the same
/// `$select` and paging as one read on its own.
#[tokio::test]
async fn member_pages_read_inside_a_batch_match_pages_read_alone() {
    let tenant = Tenant::small(seed(150, &[&(0..150).collect::<Vec<_>>()])).await;
    let path = format!(
        "/groups/{}/members/microsoft.graph.user?$select=id,userPrincipalName&$top=120",
        group_id(0)
    );
    let alone = tenant.get(&path).await;
    assert_eq!(alone.status, 200);
    let batch = tenant
        .post(
            "/$batch",
            json!({ "requests": [{"id": "1", "method": "GET", "url": path}] }),
        )
        .await;
    assert_eq!(batch.status, 200);
    let inner = &batch.body["responses"][0];
    assert_eq!(inner["status"], 200);
    assert_eq!(inner["body"]["value"], alone.body["value"]);
    let first = &alone.body["value"][0];
    assert_eq!(first["@odata.type"], "#microsoft.graph.user");
    let mut keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["@odata.type", "id", "userPrincipalName"]);
    assert_eq!(alone.body["value"].as_array().unwrap().len(), 120);
    assert!(
        inner["body"]["@odata.nextLink"]
            .as_str()
            .unwrap()
            .contains("skiptoken")
    );
}

#[tokio::test]
async fn batch_limits_fail_the_whole_batch() {
    let tenant = Tenant::small(seed(30, &[&[]])).await;
    let too_many: Vec<Value> = (0..21).map(|i| add_request(&i.to_string(), 0, i)).collect();
    let reply = tenant
        .post("/$batch", json!({ "requests": too_many }))
        .await;
    assert_eq!(reply.status, 400);
    let duplicate = vec![add_request("1", 0, 1), add_request("1", 0, 2)];
    let reply = tenant
        .post("/$batch", json!({ "requests": duplicate }))
        .await;
    assert_eq!(reply.status, 400);
    let mut no_type = add_request("1", 0, 1);
    no_type.as_object_mut().unwrap().remove("headers");
    let reply = tenant
        .post("/$batch", json!({ "requests": [no_type] }))
        .await;
    assert_eq!(reply.status, 400);
    assert!(reply.message().contains("Content-Type"), "{}", reply.body);
    assert!(tenant.members_of(0).is_empty());
}

#[tokio::test]
async fn batch_answers_200_with_inner_statuses_in_shuffled_order() {
    let tenant = Tenant::small(seed(100, &[&[0]])).await;
    let mut shuffled = false;
    for round in 0..5 {
        let requests: Vec<Value> = (0..20)
            .map(|i| add_request(&i.to_string(), 0, round * 20 + i))
            .collect();
        let reply = tenant
            .post("/$batch", json!({ "requests": requests }))
            .await;
        assert_eq!(reply.status, 200);
        let responses = reply.body["responses"].as_array().unwrap();
        assert_eq!(responses.len(), 20);
        let order: Vec<String> = responses
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        shuffled |= order != (0..20).map(|i| i.to_string()).collect::<Vec<_>>();
        for response in responses {
            let expected = if round == 0 && response["id"] == "0" {
                400
            } else {
                204
            };
            assert_eq!(response["status"], expected, "{response}");
        }
    }
    assert!(shuffled, "five batches all answered in request order");
    assert_eq!(
        tenant.stat(&["round_trips"]),
        6,
        "a token fetch and five batches"
    );
    assert_eq!(tenant.stat(&["batch_inner"]), 100);
    assert_eq!(tenant.stat(&["write_requests"]), 100);
    assert_eq!(tenant.stat(&["writes"]), 99);
}

#[tokio::test]
async fn write_round_trips_count_requests_that_carried_a_write_once() {
    let tenant = Tenant::small(seed(3, &[&[]])).await;
    let read =
        |id: &str| json!({"id": id, "method": "GET", "url": format!("/groups/{}", group_id(0))});
    let only_reads = tenant
        .post("/$batch", json!({ "requests": [read("a"), read("b")] }))
        .await;
    assert_eq!(only_reads.status, 200);
    assert_eq!(tenant.stat(&["write_round_trips"]), 0, "a batch of reads");
    let mixed = tenant
        .post(
            "/$batch",
            json!({ "requests": [read("a"), add_request("b", 0, 0), add_request("c", 0, 1)] }),
        )
        .await;
    assert_eq!(mixed.status, 200);
    assert_eq!(
        tenant.stat(&["write_round_trips"]),
        1,
        "one batch, two writes"
    );
    let single = tenant
        .post(
            &format!("/groups/{}/members/$ref", group_id(0)),
            json!({"@odata.id": bind(2)}),
        )
        .await;
    assert_eq!(single.status, 204);
    assert_eq!(tenant.stat(&["write_round_trips"]), 2);
    assert_eq!(tenant.stat(&["write_requests"]), 3);
}

// ---- throttling ----

#[tokio::test]
async fn exhausted_bucket_answers_429_with_fractional_retry_after() {
    let tenant = Tenant::start(
        seed(1, &[&[0]]),
        Faults {
            tenant_size: rollcall::sandbox::TenantSize::Small,
            ..Faults::default()
        },
    )
    .await;
    let path = format!("/groups/{}/members", group_id(0));
    let mut throttled = None;
    let mut near_limit_seen = false;
    for _ in 0..1_300 {
        let reply = tenant.get(&path).await;
        near_limit_seen |= reply.header("x-ms-throttle-limit-percentage").is_some();
        if reply.status == 429 {
            throttled = Some(reply);
            break;
        }
    }
    let reply = throttled.expect("3,500 units at 3 per request run out");
    assert!(near_limit_seen);
    assert_eq!(reply.code(), "TooManyRequests");
    assert!(reply.header("x-ms-throttle-scope").is_some());
    let retry_after: f64 = reply.header("Retry-After").unwrap().parse().unwrap();
    assert!(retry_after > 0.0 && retry_after < 1.0, "{retry_after}");
    assert!(reply.header("Retry-After").unwrap().contains('.'));
    let charged_before = tenant.stat(&["resource_units"]);
    let again = tenant.get(&path).await;
    assert_eq!(again.status, 429, "throttled requests still count");
    assert_eq!(tenant.stat(&["resource_units"]), charged_before + 3);
    assert_eq!(tenant.stat(&["throttled"]), 2);
}

#[tokio::test]
async fn inner_batch_requests_are_throttled_on_their_own() {
    let tenant = Tenant::start(
        seed(1, &[&[0]]),
        Faults {
            tenant_size: rollcall::sandbox::TenantSize::Small,
            ..Faults::default()
        },
    )
    .await;
    let read =
        json!({"id": "r", "method": "GET", "url": format!("/groups/{}/members", group_id(0))});
    let mut inner_429 = None;
    'outer: for _ in 0..100 {
        let requests: Vec<Value> = (0..20)
            .map(|i| {
                let mut r = read.clone();
                r["id"] = json!(i.to_string());
                r
            })
            .collect();
        let reply = tenant
            .post("/$batch", json!({ "requests": requests }))
            .await;
        assert_eq!(reply.status, 200, "the batch itself is never throttled");
        for response in reply.body["responses"].as_array().unwrap() {
            if response["status"] == 429 {
                inner_429 = Some(response.clone());
                break 'outer;
            }
        }
    }
    let response = inner_429.expect("inner reads exhaust the bucket");
    let retry_after: f64 = response["headers"]["Retry-After"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0.0);
    assert_eq!(response["body"]["error"]["code"], "TooManyRequests");
}

#[tokio::test]
async fn requests_sent_before_retry_after_runs_out_count_as_early() {
    // A slow refill (7 units/s) makes Retry-After long enough to tell early from patient.
    let tenant = Tenant::start(
        seed(1, &[&[0]]),
        Faults {
            tenant_size: rollcall::sandbox::TenantSize::Small,
            time_scale: 0.02,
            ..Faults::default()
        },
    )
    .await;
    let path = format!("/groups/{}/members", group_id(0));
    let mut throttled = None;
    for _ in 0..1_300 {
        let reply = tenant.get(&path).await;
        if reply.status == 429 {
            throttled = Some(reply);
            break;
        }
    }
    let throttled = throttled.expect("3,500 units at 3 per request run out");
    let retry_after: f64 = throttled.header("Retry-After").unwrap().parse().unwrap();
    assert!(retry_after > 0.4, "{retry_after}");
    assert_eq!(
        tenant.stat(&["early_requests"]),
        0,
        "spending the bucket is not early"
    );

    // Sent well after the 429 was read and well before its Retry-After ran out.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let early = tenant.get(&path).await;
    assert_eq!(early.status, 429);
    assert_eq!(tenant.stat(&["early_requests"]), 1);

    // Waiting out the latest Retry-After is never early.
    let wait: f64 = early.header("Retry-After").unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    assert_eq!(tenant.get(&path).await.status, 200);
    assert_eq!(tenant.stat(&["early_requests"]), 1);
}

// ---- faults ----

#[tokio::test]
async fn faults_at_rate_one_answer_503_504_or_drop() {
    let tenant = Tenant::small(seed(1, &[])).await;
    tenant.set_faults(json!({"error_503_rate": 1.0})).await;
    let unavailable = tenant.get("/users").await;
    assert_eq!(unavailable.status, 503);
    assert_eq!(unavailable.code(), "serviceNotAvailable");
    assert!(unavailable.header("Retry-After").is_some());
    tenant
        .set_faults(json!({"error_503_retry_after": false}))
        .await;
    assert!(tenant.get("/users").await.header("Retry-After").is_none());
    tenant
        .set_faults(json!({"error_503_rate": 0.0, "error_504_rate": 1.0}))
        .await;
    assert_eq!(tenant.get("/users").await.status, 504);
    tenant
        .set_faults(json!({"error_504_rate": 0.0, "drop_rate": 1.0}))
        .await;
    let dropped = tenant
        .http
        .get(tenant.url("/users"))
        .bearer_auth(&tenant.token)
        .send()
        .await;
    let error = dropped.expect_err("a dropped connection is not a reply");
    assert!(!error.is_status(), "{error:?}");
    assert_eq!(tenant.stat(&["faults", "503"]), 2);
    assert_eq!(tenant.stat(&["faults", "504"]), 1);
    assert_eq!(tenant.stat(&["faults", "dropped"]), 1);
    let admin = tenant.admin(reqwest::Method::GET, "stats", None).await;
    assert_eq!(admin.status, 200, "admin endpoints are exempt");
}

#[tokio::test]
async fn the_same_fault_seed_replays_the_same_faults() {
    let tenant = Tenant::small(seed(1, &[])).await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        tenant
            .set_faults(json!({"error_503_rate": 0.3, "error_504_rate": 0.3, "seed": 42}))
            .await;
        let mut statuses = Vec::new();
        for _ in 0..30 {
            statuses.push(tenant.get("/users").await.status.as_u16());
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains(&503) && runs[0].contains(&504) && runs[0].contains(&200));
}

#[tokio::test]
async fn drop_after_writes_interrupts_after_exactly_n_writes() {
    let tenant = Tenant::small(seed(30, &[&[]])).await;
    tenant.set_faults(json!({"drop_after_writes": 5})).await;
    let requests: Vec<Value> = (0..10).map(|i| add_request(&i.to_string(), 0, i)).collect();
    let result = tenant
        .http
        .post(tenant.url("/$batch"))
        .bearer_auth(&tenant.token)
        .json(&json!({ "requests": requests }))
        .send()
        .await;
    assert!(
        result.is_err(),
        "the batch that reaches the limit is dropped"
    );
    assert_eq!(tenant.members_of(0).len(), 5);
    assert!(
        tenant
            .http
            .get(tenant.url("/users"))
            .bearer_auth(&tenant.token)
            .send()
            .await
            .is_err()
    );
    tenant.set_faults(json!({"drop_after_writes": null})).await;
    assert_eq!(tenant.get("/users").await.status, 200);
}

// ---- replication lag ----

#[tokio::test]
async fn reads_lag_behind_writes_which_validate_on_the_true_state() {
    let tenant = Tenant::start(
        seed(3, &[&[0]]),
        Faults {
            replication_lag_ms: 400,
            ..Faults::default()
        },
    )
    .await;
    let path = format!("/groups/{}/members/$ref", group_id(0));
    assert_eq!(
        tenant
            .post(&path, json!({"@odata.id": bind(1)}))
            .await
            .status,
        204
    );
    let (stale, _) = all_member_ids(&tenant, &format!("/groups/{}/members", group_id(0))).await;
    assert_eq!(stale, vec![user_id(0)], "the add is not visible yet");
    let again = tenant.post(&path, json!({"@odata.id": bind(1)})).await;
    assert_eq!(again.status, 400, "writes see the true state");
    let created = tenant.post("/groups", unified("fresh")).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(tenant.get(&format!("/groups/{id}")).await.status, 404);
    let early_add = tenant
        .post(
            &format!("/groups/{id}/members/$ref"),
            json!({"@odata.id": bind(2)}),
        )
        .await;
    assert_eq!(early_add.status, 400);
    assert!(
        early_add.message().contains("do not exist"),
        "{}",
        early_add.body
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (fresh, _) = all_member_ids(&tenant, &format!("/groups/{}/members", group_id(0))).await;
    assert_eq!(fresh, vec![user_id(0), user_id(1)]);
    assert_eq!(tenant.get(&format!("/groups/{id}")).await.status, 200);
    let late_add = tenant
        .post(
            &format!("/groups/{id}/members/$ref"),
            json!({"@odata.id": bind(2)}),
        )
        .await;
    assert_eq!(late_add.status, 204);
}

// ---- delta ----

/// Follows a delta round to its end: (group id → member entries), pages, deltaLink.
async fn delta_round(tenant: &Tenant, first: &str) -> (Vec<Value>, usize, String) {
    let mut objects = Vec::new();
    let mut pages = 0;
    let mut next = first.to_owned();
    loop {
        let reply = tenant.get(&next).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        pages += 1;
        objects.extend(reply.body["value"].as_array().unwrap().iter().cloned());
        if let Some(link) = reply.body["@odata.nextLink"].as_str() {
            next = link.to_owned();
        } else {
            let delta = reply.body["@odata.deltaLink"].as_str().unwrap().to_owned();
            return (objects, pages, delta);
        }
    }
}

fn merged_members(objects: &[Value], group: &str) -> Vec<(String, bool)> {
    objects
        .iter()
        .filter(|o| o["id"] == group)
        .flat_map(|o| o["members@delta"].as_array().cloned().unwrap_or_default())
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m.get("@removed").is_none(),
            )
        })
        .collect()
}

#[tokio::test]
async fn delta_reads_everything_then_only_changes() {
    let tenant = Tenant::small(seed(5, &[&[0, 1], &[2]])).await;
    let (objects, _, delta) =
        delta_round(&tenant, "/groups/delta()?$select=displayName,members").await;
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["displayName"], "List 0");
    assert_eq!(
        merged_members(&objects, &group_id(0)),
        vec![(user_id(0), true), (user_id(1), true)]
    );
    let (quiet, _, delta) = delta_round(&tenant, &delta).await;
    assert!(quiet.is_empty(), "{quiet:?}");
    tenant
        .post(
            &format!("/groups/{}/members/$ref", group_id(1)),
            json!({"@odata.id": bind(3)}),
        )
        .await;
    tenant
        .delete(&format!(
            "/groups/{}/members/{}/$ref",
            group_id(1),
            user_id(2)
        ))
        .await;
    let (changed, _, _) = delta_round(&tenant, &delta).await;
    assert_eq!(changed.len(), 1);
    let entries = changed[0]["members@delta"].as_array().unwrap();
    let removed = entries.iter().find(|e| e["id"] == user_id(2)).unwrap();
    assert_eq!(removed["@removed"]["reason"], "deleted");
    assert!(
        entries
            .iter()
            .any(|e| e["id"] == user_id(3) && e.get("@removed").is_none())
    );
}

#[tokio::test]
async fn delta_splits_a_large_group_over_pages() {
    let members: Vec<usize> = (0..1_200).collect();
    let tenant = Tenant::small(seed(1_200, &[&members, &[1]])).await;
    let (objects, pages, _) =
        delta_round(&tenant, "/groups/delta?$select=displayName,members").await;
    assert!(pages >= 3, "{pages}");
    let merged = merged_members(&objects, &group_id(0));
    assert_eq!(merged.len(), 1_200);
    assert!(objects.iter().filter(|o| o["id"] == group_id(0)).count() > 1);
    let filtered = tenant
        .get(&format!(
            "/groups/delta?$select=members&$filter=id eq '{}'",
            group_id(1)
        ))
        .await;
    assert_eq!(filtered.body["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn delta_latest_starts_from_now_and_expired_tokens_get_410() {
    let tenant = Tenant::small(seed(3, &[&[0]])).await;
    let latest = tenant
        .get("/groups/delta?$select=members&$deltatoken=latest")
        .await;
    assert!(latest.body["value"].as_array().unwrap().is_empty());
    let delta = latest.body["@odata.deltaLink"].as_str().unwrap().to_owned();
    tenant
        .post(
            &format!("/groups/{}/members/$ref", group_id(0)),
            json!({"@odata.id": bind(1)}),
        )
        .await;
    let (changed, _, _) = delta_round(&tenant, &delta.replace("deltatoken", "deltaToken")).await;
    assert_eq!(
        merged_members(&changed, &group_id(0)),
        vec![(user_id(1), true)]
    );
    let expire = tenant
        .admin(reqwest::Method::POST, "delta/expire", None)
        .await;
    assert_eq!(expire.status, 204);
    let gone = tenant.get(&delta).await;
    assert_eq!(gone.status, 410);
    assert_eq!(gone.code(), "syncStateNotFound");
}

#[tokio::test]
async fn users_delta_pages_the_directory_then_reports_nothing_new() {
    let tenant = Tenant::small(seed(1_500, &[])).await;
    let first = "/users/delta?$select=id,userPrincipalName,mail,employeeId";
    let mut next = first.to_owned();
    let mut users = 0;
    let delta = loop {
        let reply = tenant.get(&next).await;
        users += reply.body["value"].as_array().unwrap().len();
        match reply.body["@odata.nextLink"].as_str() {
            Some(link) => next = link.to_owned(),
            None => break reply.body["@odata.deltaLink"].as_str().unwrap().to_owned(),
        }
    };
    assert_eq!(users, 1_500);
    let quiet = tenant.get(&delta).await;
    assert!(quiet.body["value"].as_array().unwrap().is_empty());
}

// ---- admin ----

#[tokio::test]
async fn admin_seed_replaces_the_directory_and_state_returns_it_sorted() {
    let tenant = Tenant::small(seed(0, &[])).await;
    let mut replacement = seed(3, &[&[2, 0]]);
    replacement.users.reverse();
    let reply = tenant
        .admin(
            reqwest::Method::POST,
            "seed",
            Some(serde_json::to_value(&replacement).unwrap()),
        )
        .await;
    assert_eq!(reply.body, json!({"users": 3, "groups": 1}));
    let state: Seed =
        serde_json::from_value(tenant.admin(reqwest::Method::GET, "state", None).await.body)
            .unwrap();
    assert_eq!(state.users[0].id, user_id(0));
    assert_eq!(state.groups[0].members, vec![user_id(0), user_id(2)]);
    let mut bad = seed(1, &[&[]]);
    bad.groups[0].members.push("not-a-user".to_owned());
    let refused = tenant
        .admin(
            reqwest::Method::POST,
            "seed",
            Some(serde_json::to_value(&bad).unwrap()),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .contains("groups[0].members[0]"),
        "{}",
        refused.body
    );
}

#[tokio::test]
async fn admin_stats_count_by_route_and_reset() {
    let tenant = Tenant::small(seed(2, &[&[0]])).await;
    tenant
        .get(&format!("/groups/{}/members", group_id(0)))
        .await;
    tenant.get("/groups/nope/members").await;
    let stats = tenant.admin(reqwest::Method::GET, "stats", None).await.body;
    assert_eq!(stats["requests"]["GET /groups/{id}/members"]["200"], 1);
    assert_eq!(stats["requests"]["GET /groups/{id}/members"]["404"], 1);
    assert_eq!(stats["resource_units"], 6);
    let reset = tenant
        .admin(reqwest::Method::POST, "stats/reset", None)
        .await;
    assert_eq!(reset.status, 204);
    assert_eq!(tenant.stat(&["round_trips"]), 0);
}

#[tokio::test]
async fn admin_faults_take_partial_updates_and_name_unknown_knobs() {
    let tenant = Tenant::small(seed(0, &[])).await;
    let updated = tenant
        .admin(
            reqwest::Method::PUT,
            "faults",
            Some(json!({"latency_ms": 3, "tenant_size": "medium"})),
        )
        .await;
    assert_eq!(updated.body["latency_ms"], 3);
    assert_eq!(updated.body["throttling"], true);
    let current = tenant.admin(reqwest::Method::GET, "faults", None).await;
    assert_eq!(current.body["tenant_size"], "medium");
    let unknown = tenant
        .admin(reqwest::Method::PUT, "faults", Some(json!({"jitter": 1})))
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.body["error"].as_str().unwrap().contains("jitter"));
}

#[tokio::test]
async fn users_filter_on_hr_attributes_pages_and_advanced_queries_need_eventual_and_count() {
    let mut directory = seed(5, &[]);
    for (n, user) in directory.users.iter_mut().enumerate() {
        user.department = (n != 4).then(|| if n < 3 { "Physics" } else { "Maths" }.to_owned());
        user.employee_type = Some("Staff".to_owned());
        user.account_enabled = (n == 1).then_some(false);
    }
    let tenant = Tenant::small(directory).await;
    let ids = |reply: &Reply| -> Vec<String> {
        reply.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    };

    // A simple filter on an HR attribute, paged by `$top`, only the selected properties.
    let first = tenant
        .get("/users?$filter=department%20eq%20'physics'%20and%20accountEnabled%20eq%20true&$select=id,department&$top=1")
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(ids(&first), [user_id(0)]);
    assert_eq!(first.body["value"][0]["department"], "Physics");
    assert!(first.body["value"][0].get("mail").is_none());
    let next = first.body["@odata.nextLink"].as_str().unwrap().to_owned();
    let second = tenant.get(&next).await;
    assert_eq!(ids(&second), [user_id(2)]);
    assert!(second.body.get("@odata.nextLink").is_none());

    // `ne` is an advanced query: refused without ConsistencyLevel and $count, served with them.
    let path =
        "/users?$filter=department%20ne%20null%20and%20startswith(department,'ma')&$count=true";
    let refused = tenant.get(path).await;
    assert_eq!(refused.status, 400);
    let plain = tenant
        .get("/users?$filter=department%20ne%20null&$select=id")
        .await;
    assert_eq!(
        (plain.status.as_u16(), plain.code()),
        (400, "Request_UnsupportedQuery"),
        "{}",
        plain.message()
    );
    let advanced = tenant
        .send(
            tenant
                .http
                .get(tenant.url(path))
                .header("ConsistencyLevel", "eventual"),
        )
        .await;
    assert_eq!(advanced.status, 200, "{}", advanced.body);
    assert_eq!(ids(&advanced), [user_id(3)]);
    assert_eq!(advanced.body["@odata.count"], 1);
}

// ---- owners ----

/// GRAPH.md "Owners": owners bound at creation share the 20 references per request with
/// members; `POST …/owners/$ref` adds (400 for an existing owner), `DELETE …/owners/{id}/$ref`
/// removes (404 for a non-owner), and the last owner cannot be removed, with Graph's error.
#[tokio::test]
async fn owners_are_bound_added_removed_and_the_last_one_is_kept() {
    let tenant = Tenant::small(seed(30, &[])).await;
    let mut created = unified("mod-owned");
    created["members@odata.bind"] = json!((0..15).map(bind).collect::<Vec<_>>());
    created["owners@odata.bind"] = json!((20..26).map(bind).collect::<Vec<_>>());
    let too_many = tenant.post("/groups", created.clone()).await;
    assert_eq!(too_many.status, 400, "21 references in one request");
    created["owners@odata.bind"] = json!([bind(20)]);
    let reply = tenant.post("/groups", created).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let owners = |reply: &Reply| -> Vec<String> {
        reply.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let listed = tenant.get(&format!("/groups/{id}/owners")).await;
    assert_eq!(owners(&listed), [user_id(20)]);

    let add = |n: usize| json!({ "@odata.id": bind(n) });
    let path = format!("/groups/{id}/owners/$ref");
    assert_eq!(tenant.post(&path, add(21)).await.status, 204);
    let again = tenant.post(&path, add(21)).await;
    assert_eq!(again.status, 400);
    assert!(again.message().contains("already exist"), "{}", again.body);

    let remove = |n: usize| format!("/groups/{id}/owners/{}/$ref", user_id(n));
    let absent = tenant.delete(&remove(22)).await;
    assert_eq!(absent.status, 404);
    assert_eq!(tenant.delete(&remove(20)).await.status, 204);
    let last = tenant.delete(&remove(21)).await;
    assert_eq!(last.status, 400);
    assert_eq!(last.code(), "Request_BadRequest");
    assert_eq!(
        last.message(),
        "The group must have at least one owner, hence this owner cannot be removed."
    );
    let listed = tenant.get(&format!("/groups/{id}/owners")).await;
    assert_eq!(owners(&listed), [user_id(21)]);
    let state = tenant.sandbox.state();
    let group = state
        .groups
        .iter()
        .find(|g| g.id.as_deref() == Some(&id))
        .unwrap();
    assert_eq!(group.owners, [user_id(21)]);
    assert_eq!(group.members.len(), 15);
}

/// Groups delta with `$select=members,owners` reports owners in `owners@delta` beside
/// `members@delta`: all of them in the first round, then only the changes.
#[tokio::test]
async fn delta_reports_owner_changes_beside_member_changes() {
    let tenant = Tenant::small(seed(5, &[&[0]])).await;
    let group = group_id(0);
    let add = json!({ "@odata.id": bind(1) });
    assert_eq!(
        tenant
            .post(&format!("/groups/{group}/owners/$ref"), add)
            .await
            .status,
        204
    );
    let (objects, _, delta) = delta_round(
        &tenant,
        "/groups/delta()?$select=displayName,members,owners",
    )
    .await;
    let first = objects.iter().find(|o| o["id"] == group).unwrap();
    assert_eq!(
        first["owners@delta"],
        json!([{"@odata.type": "#microsoft.graph.user", "id": user_id(1)}])
    );
    let add = json!({ "@odata.id": bind(2) });
    assert_eq!(
        tenant
            .post(&format!("/groups/{group}/owners/$ref"), add)
            .await
            .status,
        204
    );
    let removed = tenant
        .delete(&format!("/groups/{group}/owners/{}/$ref", user_id(1)))
        .await;
    assert_eq!(removed.status, 204);
    let (objects, _, _) = delta_round(&tenant, &delta).await;
    let changed = objects.iter().find(|o| o["id"] == group).unwrap();
    let entries = changed["owners@delta"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{changed}");
    assert!(
        entries
            .iter()
            .any(|e| e["id"] == user_id(2) && e.get("@removed").is_none())
    );
    assert!(
        entries
            .iter()
            .any(|e| e["id"] == user_id(1) && e.get("@removed").is_some())
    );
    assert!(
        changed
            .get("members@delta")
            .is_some_and(|m| m.as_array().unwrap().is_empty())
    );
}

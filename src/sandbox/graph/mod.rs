//! The Graph surface: authentication, faults, throttling and statistics around each operation.
//!
//! Every Graph request, alone or inside a batch, goes through the same gate: fault dice, then
//! the buckets, then the operation. Handlers are synchronous and hold the directory lock only
//! while they read or write it, never across an await.

mod assertion;
mod auth;
mod batch;
mod delta;
mod group_body;
mod groups;
mod owners;
mod request;
mod retry_window;
mod roles;
mod route;
mod user_filter;
mod users;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde_json::Value;

pub use assertion::{FEDERATION_AUDIENCE, Registrations};
pub use request::Reply;
use request::{Input, Origin, Query, reply};
use retry_window::{RetryWindow, longest_retry_after};
use route::Route;

use super::directory::Directory;
use super::error::GraphError;
use super::faults::{Dice, Fault, Faults};
use super::stats::{Stats, count};
use super::throttle::{Throttle, Verdict};

/// The app registration the sandbox accepts.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Tenant id in the token endpoint path.
    pub tenant_id: String,
    /// Client (application) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
}

/// An HTTP request, reduced to what the sandbox looks at.
#[derive(Debug)]
pub struct IncomingRequest {
    /// Method, upper case.
    pub method: String,
    /// Path, still percent-encoded.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// `Host` header (for links).
    pub host: String,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// Whether `ConsistencyLevel: eventual` came with the request (advanced queries).
    pub eventual: bool,
    /// The body.
    pub body: Bytes,
}

/// What to do with the connection.
#[derive(Debug)]
pub enum Outcome {
    /// Send this reply.
    Reply(Reply),
    /// Close the connection without a reply.
    Drop,
}

/// What the gate decided for one request.
enum Gate {
    Pass { cost: u32, near_limit: Option<u32> },
    Stop(Reply),
    Drop,
}

/// An issued token: when it expires, and the roles it carries.
type Issued = (Instant, Arc<[String]>);

/// The emulated tenant: directory, knobs, buckets, tokens and counters.
#[derive(Debug)]
pub struct Tenant {
    identity: Identity,
    /// The directory (true state); reach it through `directory()` / `directory_mut()`.
    directory: RwLock<Directory>,
    faults: RwLock<Faults>,
    dice: Mutex<Dice>,
    throttle: Mutex<Throttle>,
    /// Issued tokens: when each expires, and the roles it carries.
    tokens: Mutex<HashMap<String, Issued>>,
    /// The application permissions new tokens carry (`/_sandbox/roles`).
    roles: RwLock<Vec<String>>,
    /// The certificates and federated credentials registered on the app.
    pub registrations: Registrations,
    /// `http://127.0.0.1:PORT`, the authority a client assertion's audience names; set once
    /// the listener is bound.
    authority: OnceLock<String>,
    /// What was served.
    pub stats: Stats,
    accepted_writes: AtomicU64,
    /// The accepted-write count after which every request is dropped.
    drop_after: Mutex<Option<u64>>,
    /// The `Retry-After` running now, for counting early requests.
    retry_window: Mutex<Option<RetryWindow>>,
    /// The `/groups/delta` round served last.
    delta_rounds: delta::RoundCache,
}

impl Tenant {
    /// A tenant with this app registration, knobs and directory.
    pub fn new(identity: Identity, faults: Faults, directory: Directory) -> Self {
        let tenant = Self {
            identity,
            directory: RwLock::new(directory),
            dice: Mutex::new(Dice::new(faults.seed)),
            throttle: Mutex::new(Throttle::new(faults.tenant_size, faults.time_scale)),
            faults: RwLock::new(faults.clone()),
            tokens: Mutex::new(HashMap::new()),
            roles: RwLock::new(roles::ALL_ROLES.map(str::to_owned).to_vec()),
            registrations: Registrations::default(),
            authority: OnceLock::new(),
            stats: Stats::default(),
            accepted_writes: AtomicU64::new(0),
            drop_after: Mutex::new(None),
            retry_window: Mutex::new(None),
            delta_rounds: delta::RoundCache::default(),
        };
        tenant.set_faults(faults);
        tenant
    }

    /// Records the authority the tenant is reached at (its bound address); the first call wins.
    pub fn set_authority(&self, authority: String) {
        let _ = self.authority.set(authority);
    }

    /// The token endpoint URLs a client assertion may name as its audience.
    fn assertion_audiences(&self) -> Vec<String> {
        let authority = self.authority.get().map_or("", String::as_str);
        let tenant = &self.identity.tenant_id;
        vec![format!("{authority}/{tenant}/oauth2/v2.0/token")]
    }

    /// The application permissions tokens issued from now on carry.
    pub fn roles(&self) -> Vec<String> {
        self.roles.read().expect("roles lock").clone()
    }

    /// Grants exactly `roles` to tokens issued from now on (tokens already issued keep
    /// theirs, as with a consent change in Entra ID).
    pub fn set_roles(&self, roles: Vec<String>) {
        *self.roles.write().expect("roles lock") = roles;
    }

    /// The current knobs.
    pub fn faults(&self) -> Faults {
        self.faults.read().expect("faults lock").clone()
    }

    /// Replaces the knobs: the dice restart from the seed, the buckets start full, and
    /// `drop_after_writes` counts from now.
    pub fn set_faults(&self, faults: Faults) {
        *self.dice.lock().expect("dice lock") = Dice::new(faults.seed);
        *self.throttle.lock().expect("throttle lock") =
            Throttle::new(faults.tenant_size, faults.time_scale);
        *self.retry_window.lock().expect("retry window lock") = None;
        *self.drop_after.lock().expect("drop lock") = faults
            .drop_after_writes
            .map(|n| self.accepted_writes.load(Ordering::SeqCst) + n);
        *self.faults.write().expect("faults lock") = faults;
    }

    /// Replaces the directory; outstanding delta tokens stop working.
    pub fn replace_directory(&self, mut directory: Directory) {
        let mut current = self.directory_mut();
        directory.epoch = current.epoch + 1;
        *current = directory;
    }

    /// Makes every outstanding delta token invalid.
    pub fn expire_delta_tokens(&self) {
        self.directory_mut().epoch += 1;
    }

    /// The counters as `GET /_sandbox/stats` shows them.
    pub fn stats_json(&self) -> Value {
        serde_json::to_value(self.stats.snapshot()).expect("counters serialize")
    }

    fn interrupted(&self) -> bool {
        self.drop_after
            .lock()
            .expect("drop lock")
            .is_some_and(|limit| self.accepted_writes.load(Ordering::SeqCst) >= limit)
    }

    /// Serves one HTTP request to the Graph surface or the token endpoint.
    pub async fn serve(&self, request: IncomingRequest) -> Outcome {
        self.stats.update(|s| s.round_trips += 1);
        if let Some(tenant) = auth::token_route(&request.path) {
            let reply = auth::token(self, tenant, &request);
            self.stats.update(|s| {
                count(
                    &mut s.requests,
                    "POST /{tenant}/oauth2/v2.0/token",
                    reply.status,
                )
            });
            return Outcome::Reply(reply);
        }
        self.note_arrival(Instant::now());
        let outcome = self.serve_graph(request).await;
        if let Outcome::Reply(reply) = &outcome
            && let Some(retry_after) = longest_retry_after(reply)
        {
            self.note_answered(retry_after);
        }
        outcome
    }

    /// Counts a request that arrived while a `Retry-After` was running, past the grace.
    fn note_arrival(&self, arrived: Instant) {
        let window = *self.retry_window.lock().expect("retry window lock");
        if window.is_some_and(|w| w.early(arrived)) {
            self.stats.update(|s| s.early_requests += 1);
        }
    }

    /// Records a reply carrying 429s (outer or inside a batch) going out now: the scope is
    /// closed until the longest of their `Retry-After`s has run, counted from now.
    fn note_answered(&self, retry_after: Duration) {
        let mut window = self.retry_window.lock().expect("retry window lock");
        *window = Some(RetryWindow::answered(*window, Instant::now(), retry_after));
    }

    async fn serve_graph(&self, request: IncomingRequest) -> Outcome {
        if self.interrupted() {
            self.stats.update(|s| s.faults.dropped += 1);
            return Outcome::Drop;
        }
        let latency = self.faults().latency_ms;
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let (path, prefix) = match request.path.strip_prefix("/v1.0") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => (rest, "/v1.0"),
            _ => (request.path.as_str(), ""),
        };
        let origin = Origin {
            base: format!("http://{}{prefix}", request.host),
        };
        let route = Route::parse(&request.method, path);
        let template = match &route {
            Ok(route) => route.template().to_owned(),
            Err(_) => format!("{} (unmatched)", request.method),
        };
        let outcome = self.serve_route(&request, route, &origin);
        if let Outcome::Reply(reply) = &outcome {
            self.stats
                .update(|s| count(&mut s.requests, &template, reply.status));
        }
        outcome
    }

    fn serve_route(
        &self,
        request: &IncomingRequest,
        route: Result<Route, GraphError>,
        origin: &Origin,
    ) -> Outcome {
        let roles = match auth::check_bearer(self, request.authorization.as_deref()) {
            Ok(roles) => roles,
            Err(error) => return Outcome::Reply(error.into()),
        };
        let route = match route {
            Ok(route) => route,
            Err(error) => return Outcome::Reply(error.into()),
        };
        let query = Query::parse(request.query.as_deref());
        let body: Option<Value> = if request.body.is_empty() {
            None
        } else {
            match serde_json::from_slice(&request.body) {
                Ok(body) => Some(body),
                Err(_) => {
                    return Outcome::Reply(
                        GraphError::new(
                            400,
                            "BadRequest",
                            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
                        )
                        .into(),
                    );
                }
            }
        };
        let input = Input {
            query,
            body: body.as_ref(),
            origin,
            eventual: request.eventual,
            roles: &roles,
        };
        self.evaluate(&route, &input, true)
    }

    /// Runs one operation through the gate: faults, buckets, then the operation itself.
    fn evaluate(&self, route: &Route, input: &Input<'_>, outer: bool) -> Outcome {
        if route.is_write() {
            self.stats.update(|s| {
                s.write_requests += 1;
                if outer {
                    s.write_round_trips += 1;
                }
                if *route == Route::DeleteMemberObject {
                    s.member_deletes_without_ref += 1;
                }
            });
        }
        let (cost, near_limit) = match self.gate(route, &input.query, outer) {
            Gate::Drop => return Outcome::Drop,
            Gate::Stop(reply) => return Outcome::Reply(reply),
            Gate::Pass { cost, near_limit } => (cost, near_limit),
        };
        let mut reply = match route {
            Route::Batch if outer => match batch::run(self, input) {
                Some(reply) => reply,
                None => {
                    self.stats.update(|s| s.faults.dropped += 1);
                    return Outcome::Drop;
                }
            },
            Route::Batch => GraphError::new(
                400,
                "BadRequest",
                "A batch request cannot contain another batch request.",
            )
            .into(),
            route => self.operate(route, input),
        };
        if reply.writes > 0 {
            self.accepted_writes
                .fetch_add(reply.writes, Ordering::SeqCst);
            self.stats.update(|s| s.writes += reply.writes);
        }
        if *route != Route::Batch {
            reply = reply.with_header("x-ms-resource-unit", cost.to_string());
            if let Some(percent) = near_limit {
                reply = reply.with_header("x-ms-throttle-limit-percentage", percent.to_string());
            }
        }
        Outcome::Reply(reply)
    }

    fn gate(&self, route: &Route, query: &Query, can_drop: bool) -> Gate {
        let faults = self.faults();
        let fault = self.dice.lock().expect("dice lock").roll(&faults, can_drop);
        match fault {
            Some(Fault::Drop) => {
                self.stats.update(|s| s.faults.dropped += 1);
                return Gate::Drop;
            }
            Some(Fault::Unavailable) => {
                self.stats.update(|s| s.faults.unavailable += 1);
                let mut reply = Reply::error(&GraphError::new(
                    503,
                    "serviceNotAvailable",
                    "Service unavailable. Please try again later.",
                ));
                if faults.error_503_retry_after {
                    reply =
                        reply.with_header("Retry-After", format!("{:.3}", 1.0 / faults.time_scale));
                }
                return Gate::Stop(reply);
            }
            Some(Fault::GatewayTimeout) => {
                self.stats.update(|s| s.faults.gateway_timeout += 1);
                return Gate::Stop(Reply::error(&GraphError::new(
                    504,
                    "UnknownError",
                    "The gateway did not receive a response from the service in time.",
                )));
            }
            None => {}
        }
        let cost = route.cost(query);
        if cost == 0 {
            return Gate::Pass {
                cost,
                near_limit: None,
            };
        }
        self.stats.update(|s| s.resource_units += u64::from(cost));
        if !faults.throttling {
            return Gate::Pass {
                cost,
                near_limit: None,
            };
        }
        let verdict = self.throttle.lock().expect("throttle lock").charge(
            cost,
            route.is_write(),
            Instant::now(),
        );
        match verdict {
            Verdict::Allowed { near_limit } => Gate::Pass { cost, near_limit },
            Verdict::Throttled { retry_after, scope } => {
                self.stats.update(|s| s.throttled += 1);
                Gate::Stop(
                    Reply::error(&GraphError::new(
                        429,
                        "TooManyRequests",
                        "Too many requests; retry after the time given in the Retry-After header.",
                    ))
                    .with_header("Retry-After", format!("{retry_after:.3}"))
                    .with_header("x-ms-throttle-scope", scope)
                    .with_header("x-ms-resource-unit", cost.to_string()),
                )
            }
        }
    }

    /// The directory for reading. A handler that panicked while writing leaves the lock
    /// poisoned and the directory possibly half-changed; serving on from it would hide that,
    /// so every later request fails loudly instead.
    pub fn directory(&self) -> RwLockReadGuard<'_, Directory> {
        self.directory
            .read()
            .expect("directory lock poisoned by an earlier panic")
    }

    /// The directory for writing; see [`Tenant::directory`] about poisoning.
    pub fn directory_mut(&self) -> RwLockWriteGuard<'_, Directory> {
        self.directory
            .write()
            .expect("directory lock poisoned by an earlier panic")
    }

    /// Reads at `now − replication lag`; `None` when there is no lag.
    fn horizon(&self) -> Option<Instant> {
        let lag = self.faults().replication_lag_ms;
        (lag > 0)
            .then(|| Instant::now().checked_sub(Duration::from_millis(lag)))
            .flatten()
    }

    fn lag(&self) -> Duration {
        Duration::from_millis(self.faults().replication_lag_ms)
    }

    fn operate(&self, route: &Route, input: &Input<'_>) -> Reply {
        if let Err(denied) = roles::check(route, input.roles) {
            return reply(Err(denied));
        }
        reply(match route {
            Route::ListUsers => users::list(self, input),
            Route::UsersDelta => delta::users(self, input),
            Route::GetUser(key) => users::get(self, key, input),
            Route::ListGroups => groups::list(self, input),
            Route::CreateGroup => groups::create(self, input),
            Route::GroupsDelta => delta::groups(self, input),
            Route::GetGroup(id) => groups::get(self, id, input),
            Route::UpdateGroup(id) => groups::update(self, id, input),
            Route::DeleteGroup(id) => groups::delete(self, id),
            Route::ListMembers { group, cast } => groups::members(self, group, *cast, input),
            Route::AddMember(group) => groups::add_member(self, group, input),
            Route::RemoveMember { group, member } => groups::remove_member(self, group, member),
            // The sandbox app holds no User.ReadWrite.All, so the stricter answer is a refusal:
            // the request is counted so that tests can prove rollcall never sends it.
            Route::DeleteMemberObject => Err(GraphError::new(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )),
            Route::ListOwners(group) => owners::list(self, group, input),
            Route::AddOwner(group) => owners::add(self, group, input),
            Route::RemoveOwner { group, owner } => owners::remove(self, group, owner),
            Route::ListExtensions(group) => groups::extensions(self, group),
            Route::AddExtension(group) => groups::add_extension(self, group, input),
            Route::GetByIds => users::get_by_ids(self, input),
            Route::Batch => Err(GraphError::bad_request("Nested batch.")),
        })
    }
}

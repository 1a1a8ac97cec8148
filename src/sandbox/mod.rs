//! The sandbox tenant: a Microsoft Graph emulator for the subset rollcall uses (GRAPH.md).
//!
//! It serves the token endpoint, users, groups, members, `$batch` and delta on a loopback
//! port, under `/v1.0` and at the root, with Graph's throttling, faults and replication lag,
//! and admin endpoints under `/_sandbox/`. It shares no code with rollcall's Graph client.

mod admin;
pub mod command;
mod directory;
mod error;
pub mod faults;
mod graph;
pub mod seed;
mod server;
mod stats;
mod throttle;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{Faults, TenantSize};
pub use graph::FEDERATION_AUDIENCE;
pub use seed::{Seed, SeedGroup, SeedUser};

use directory::Directory;
use graph::{Identity, Tenant};

/// How to start a sandbox: the app registration it accepts, its knobs, its directory, its port.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The tenant id in the token endpoint path.
    pub tenant_id: String,
    /// The client (application) id it accepts.
    pub client_id: String,
    /// The client secret it accepts.
    pub client_secret: String,
    /// PEM certificates registered on the app: client assertions signed with their keys are
    /// accepted too.
    pub client_certificates: Vec<String>,
    /// Fault, throttling and timing knobs.
    pub faults: Faults,
    /// The directory it starts with.
    pub seed: Seed,
    /// The loopback port (0 = any free port).
    pub port: u16,
    /// The application permissions its tokens carry; `None`: every one rollcall needs.
    pub roles: Option<Vec<String>>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            tenant_id: "sandbox-tenant".to_owned(),
            client_id: "rollcall-sandbox".to_owned(),
            client_secret: "sandbox-secret".to_owned(),
            client_certificates: Vec::new(),
            faults: Faults::default(),
            seed: Seed::default(),
            port: 0,
            roles: None,
        }
    }
}

/// The sandbox tenant server.
#[derive(Debug)]
pub struct Sandbox;

impl Sandbox {
    /// Validates the seed, binds 127.0.0.1 and serves on the current tokio runtime.
    pub async fn start(options: SandboxOptions) -> anyhow::Result<SandboxHandle> {
        options
            .faults
            .validate()
            .context("invalid sandbox fault knobs")?;
        let directory = Directory::from_seed(&options.seed)
            .map_err(|e| anyhow::anyhow!("invalid sandbox seed: {e}"))?;
        let tenant = Arc::new(Tenant::new(
            Identity {
                tenant_id: options.tenant_id,
                client_id: options.client_id,
                client_secret: options.client_secret,
            },
            options.faults,
            directory,
        ));
        if let Some(roles) = options.roles {
            tenant.set_roles(roles);
        }
        for (i, pem) in options.client_certificates.iter().enumerate() {
            tenant
                .registrations
                .add_certificate(pem)
                .map_err(|e| anyhow::anyhow!("client certificate {}: {e}", i + 1))?;
        }
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, options.port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{}", options.port))?;
        let addr = listener.local_addr().context("sandbox listener address")?;
        tenant.set_authority(format!("http://{addr}"));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server::serve(
            listener,
            tenant.clone(),
            admin::router(tenant.clone()),
            stopped,
        ));
        Ok(SandboxHandle {
            addr,
            tenant,
            stop,
            task,
        })
    }
}

/// A running sandbox.
#[derive(Debug)]
pub struct SandboxHandle {
    addr: SocketAddr,
    tenant: Arc<Tenant>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Graph endpoint, `http://127.0.0.1:PORT/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base_url())
    }

    /// The authority for the token endpoint (`{authority}/{tenant}/oauth2/v2.0/token`).
    pub fn authority(&self) -> String {
        self.base_url()
    }

    /// The `[graph]` section of a `rollcall.toml` that signs in to this sandbox with the
    /// default app, the secret named by `secret` (a whole line such as
    /// `client_secret_env = "VAR"` or `client_secret_file = "PATH"`); ends with a newline.
    pub fn graph_toml(&self, secret: &str) -> String {
        let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
        let defaults = SandboxOptions::default();
        format!(
            "[graph]\ntenant_id = {}\nclient_id = {}\n{secret}\nendpoint = {}\nauthority = {}\n",
            quote(&defaults.tenant_id),
            quote(&defaults.client_id),
            quote(&self.graph_url()),
            quote(&self.authority()),
        )
    }

    /// Registers a PEM certificate on the app (a certificate credential); answers its
    /// thumbprints.
    pub fn register_client_certificate(&self, pem: &str) -> Result<serde_json::Value, String> {
        self.tenant.registrations.add_certificate(pem)
    }

    /// Registers a federated credential: tokens from `issuer` about `subject` with audience
    /// [`FEDERATION_AUDIENCE`], signed by the key of the PEM certificate `signer`.
    pub fn register_federated_credential(
        &self,
        issuer: &str,
        subject: &str,
        signer: &str,
    ) -> Result<(), String> {
        self.tenant
            .registrations
            .add_federated(issuer, subject, None, signer)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The true directory state (no replication lag), sorted.
    pub fn state(&self) -> Seed {
        self.tenant.directory().to_seed()
    }

    /// Every membership change the directory accepted, in the order it accepted them: the
    /// group's id and whether a member was added (`true`) or removed. What lets a test prove
    /// the order writes were sent in.
    pub fn membership_changes(&self) -> Vec<(String, bool)> {
        let directory = self.tenant.directory();
        directory
            .log()
            .iter()
            .filter_map(|entry| {
                let added = match entry.change {
                    directory::Change::MemberAdded(_) => true,
                    directory::Change::MemberRemoved(_) => false,
                    _ => return None,
                };
                Some((directory.group(entry.group).id.clone(), added))
            })
            .collect()
    }

    /// Replaces every fault knob.
    ///
    /// # Panics
    /// On knobs that `Faults::validate` refuses (a rate outside 0..1, a time scale ≤ 0).
    pub fn set_faults(&self, faults: Faults) {
        if let Err(e) = faults.validate() {
            panic!("SandboxHandle::set_faults: {e}");
        }
        self.tenant.set_faults(faults);
    }

    /// The counters, as `GET /_sandbox/stats` shows them.
    pub fn stats(&self) -> serde_json::Value {
        self.tenant.stats_json()
    }

    /// Stops accepting, closes every connection, and waits for the listener to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

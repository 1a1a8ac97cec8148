//! `rollcall sandbox`: runs the sandbox tenant standalone until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;

use super::faults::{Faults, TenantSize};
use super::seed::Seed;
use super::{Sandbox, SandboxOptions};
use crate::exit::{CommandError, Exit};
use crate::generate::{GenerateOptions, Size, generate};

/// `rollcall sandbox` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seed the directory from this JSON file (the shape `GET /_sandbox/state` returns).
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Seed the directory with a generated university of this size: the accounts (and, with
    /// --drift, the groups) that `rollcall generate --size SIZE` writes to seed.json.
    #[arg(long, value_enum, value_name = "SIZE", conflicts_with = "seed")]
    pub generate: Option<Size>,
    /// With --generate: the generator's seed; the same as `rollcall generate --seed` gives
    /// the same people.
    #[arg(long, value_name = "N", default_value_t = 42, requires = "generate")]
    pub generate_seed: u64,
    /// With --generate: also create drifted groups matching some list keys, and unmanaged ones.
    #[arg(long, requires = "generate")]
    pub drift: bool,
    /// Tenant size preset for the resource-unit bucket.
    #[arg(long, value_enum, default_value_t = TenantSize::Large)]
    pub tenant_size: TenantSize,
    /// Run throttling time this many times faster (buckets refill faster, Retry-After shorter).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered 503 (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub error_503_rate: f64,
    /// Share of requests answered 504 (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub error_504_rate: f64,
    /// Share of connections closed without a reply (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// How long writes stay invisible to reads, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub replication_lag_ms: u64,
    /// Never answer 429.
    #[arg(long)]
    pub no_throttling: bool,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, default_value_t = 3599)]
    pub token_ttl_secs: u64,
    /// Seed of the fault dice, for reproducible fault sequences.
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
    /// Register this PEM certificate on the app, so that client assertions signed with its
    /// key sign in (repeatable; POST /_sandbox/client-certs registers more).
    #[arg(long, value_name = "FILE")]
    pub client_cert: Vec<PathBuf>,
    /// The application permissions its tokens carry, comma-separated (default: every one
    /// rollcall needs; PUT /_sandbox/roles changes them), e.g. to rehearse missing consent.
    #[arg(long, value_name = "ROLE,...", value_delimiter = ',')]
    pub roles: Option<Vec<String>>,
}

impl SandboxArgs {
    /// The knobs these options set.
    pub fn faults(&self) -> Faults {
        Faults {
            latency_ms: self.latency_ms,
            error_503_rate: self.error_503_rate,
            error_504_rate: self.error_504_rate,
            drop_rate: self.drop_rate,
            replication_lag_ms: self.replication_lag_ms,
            throttling: !self.no_throttling,
            tenant_size: self.tenant_size,
            time_scale: self.time_scale,
            token_ttl_secs: self.token_ttl_secs,
            seed: self.fault_seed,
            ..Faults::default()
        }
    }

    /// Sandbox options from these arguments, reading the seed file if one is given.
    pub fn options(&self) -> Result<SandboxOptions, CommandError> {
        let faults = self.faults();
        faults.validate().map_err(CommandError::usage)?;
        let seed = match (&self.seed, self.generate) {
            (None, Some(size)) => {
                let options = GenerateOptions {
                    drift: self.drift,
                    ..GenerateOptions::for_size(size, self.generate_seed)
                };
                generate(&options).sandbox_seed()
            }
            (None, None) => Seed::default(),
            (Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the seed file {}", path.display()))
                    .map_err(CommandError::usage)?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a sandbox seed", path.display()))
                    .map_err(CommandError::usage)?
            }
        };
        let client_certificates = self
            .client_cert
            .iter()
            .map(|path| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("--client-cert: cannot read {}", path.display()))
            })
            .collect::<anyhow::Result<Vec<String>>>()
            .map_err(CommandError::usage)?;
        Ok(SandboxOptions {
            faults,
            seed,
            client_certificates,
            port: self.port,
            roles: self.roles.clone(),
            ..SandboxOptions::default()
        })
    }
}

/// Starts the sandbox with `options`, prints how to reach it, and serves until a signal.
pub async fn run(options: SandboxOptions) -> Result<Exit, CommandError> {
    let tenant_id = options.tenant_id.clone();
    let client_id = options.client_id.clone();
    let client_secret = options.client_secret.clone();
    let (users, groups) = (options.seed.users.len(), options.seed.groups.len());
    let certificates = options.client_certificates.len();
    let roles = options.roles.clone().map_or_else(
        || "every permission rollcall needs (--roles to narrow)".to_owned(),
        |roles| roles.join(", "),
    );
    let knobs = serde_json::to_string(&options.faults).map_err(CommandError::failed)?;
    let handle = Sandbox::start(options).await.map_err(CommandError::usage)?;
    println!("sandbox tenant listening on {}", handle.base_url());
    println!("  graph endpoint: {}", handle.graph_url());
    println!("  authority:      {}", handle.authority());
    println!("  tenant id:      {tenant_id}");
    println!("  client id:      {client_id}");
    println!("  client secret:  {client_secret}");
    println!("  client certs:   {certificates} registered (--client-cert FILE)");
    println!("  permissions:    {roles}");
    println!("  directory:      {users} users, {groups} groups");
    println!("  fault knobs:    {knobs}");
    println!(
        "  admin:          {}/_sandbox/(seed|state|stats|faults|roles|client-certs|federated-credentials)",
        handle.base_url()
    );
    println!();
    println!("# rollcall.toml");
    println!("[graph]");
    println!("tenant_id = \"{tenant_id}\"");
    println!("client_id = \"{client_id}\"");
    println!(
        "client_secret_env = \"ROLLCALL_CLIENT_SECRET\"   # export ROLLCALL_CLIENT_SECRET={client_secret}"
    );
    println!("endpoint = \"{}\"", handle.graph_url());
    println!("authority = \"{}\"", handle.authority());
    wait_for_signal().await.map_err(CommandError::failed)?;
    handle.shutdown().await;
    Ok(Exit::Success)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot listen for SIGINT")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    Ok(())
}

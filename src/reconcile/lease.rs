//! The run lease as a run holds it: taken (or taken over from a dead process on this host),
//! kept alive by a heartbeat, watched for loss, and released at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::store::{Held, Lease, Store, StoreError};

/// How long a lease lasts without a heartbeat. A run that dies holds it at most this long
/// (unless it died on this host, where the next run sees the process is gone).
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// How often the heartbeat renews the lease.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// The lease, held by this process.
#[derive(Debug)]
pub struct RunLease {
    store: Store,
    lease: Arc<Mutex<Lease>>,
    lost: Arc<AtomicBool>,
    heartbeat: JoinHandle<()>,
}

/// Why the lease could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another live run holds it.
    #[error(transparent)]
    Held(#[from] Held),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RunLease {
    /// Takes the lease, or takes it over from a holder on this host whose process is gone.
    pub async fn take(store: &Store) -> Result<RunLease, LeaseError> {
        let holder = holder_name();
        let lease = match store.acquire(&holder, LEASE_TTL).await? {
            Ok(lease) => lease,
            Err(held) if holder_is_dead(&held.holder) => {
                tracing::warn!(dead = %held.holder, "taking the run lease over from a process that no longer exists");
                store
                    .take_over(&held.holder, &holder, LEASE_TTL)
                    .await?
                    .ok_or(held)?
            }
            Err(held) => return Err(held.into()),
        };
        let lease = Arc::new(Mutex::new(lease));
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(store.clone(), lease.clone(), lost.clone()));
        Ok(RunLease {
            store: store.clone(),
            lease,
            lost,
            heartbeat,
        })
    }

    /// The lease as last renewed, for fenced writes.
    pub fn current(&self) -> Lease {
        self.lease.lock().expect("lease lock").clone()
    }

    /// Whether the heartbeat found the lease taken over or expired.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops the heartbeat and gives the lease up.
    pub async fn release(self) {
        self.heartbeat.abort();
        let lease = self.current();
        if let Err(e) = self.store.release(&lease).await {
            tracing::warn!(error = %e, "could not release the run lease; it expires by itself");
        }
    }
}

async fn heartbeat(store: Store, lease: Arc<Mutex<Lease>>, lost: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    loop {
        tick.tick().await;
        let current = lease.lock().expect("lease lock").clone();
        match store.renew(&current, LEASE_TTL).await {
            Ok(renewed) => *lease.lock().expect("lease lock") = renewed,
            Err(StoreError::LeaseLost { .. }) => {
                tracing::error!("the run lease was lost; this run stops at the next batch");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // A database blip: the next tick tries again; fenced writes catch a real loss.
            Err(e) => tracing::warn!(error = %e, "could not renew the run lease"),
        }
    }
}

/// `host:pid`, so that operators (and the next run) can tell who holds the lease.
pub fn holder_name() -> String {
    format!("{}:{}", host_name(), std::process::id())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether `holder` names a process on this host that no longer runs. Anything uncertain
/// (another host, no `/proc`, a name that does not parse) counts as alive, so the lease is
/// then only taken once it expires.
fn holder_is_dead(holder: &str) -> bool {
    let Some((host, pid)) = holder.rsplit_once(':') else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == host_name()
        && pid != std::process::id()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_on_this_host_is_not_dead() {
        assert!(!holder_is_dead(&holder_name()));
    }

    #[test]
    fn a_gone_process_on_this_host_is_dead() {
        // Linux pids stay below 2^22.
        assert!(holder_is_dead(&format!("{}:{}", host_name(), 1 << 23)));
    }

    #[test]
    fn another_host_or_a_strange_name_counts_as_alive() {
        assert!(!holder_is_dead("elsewhere.example:1"));
        assert!(!holder_is_dead("no-pid-here"));
        assert!(!holder_is_dead(&format!("{}:x", host_name())));
    }
}

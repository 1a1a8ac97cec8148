//! The engine: the state store and Microsoft Graph opened for one command. The stages add
//! their steps to it (`prepare`, `journal`, `record`); `commands` runs them in order.

use std::collections::BTreeSet;

use super::progress::Progress;
use super::stop::StopSignal;
use crate::config::{Config, Visibility};
use crate::exit::CommandError;
use crate::graph::{GraphClient, permissions};
use crate::store::Store;

/// The state store and Microsoft Graph, opened for one command.
#[derive(Debug)]
pub struct Engine {
    /// The configuration.
    pub config: Config,
    /// The state store, migrated.
    pub store: Store,
    /// Microsoft Graph, with a token in hand.
    pub graph: GraphClient,
    /// Signals and the like.
    pub stop: StopSignal,
    /// Progress shown to the operator.
    pub progress: Progress,
    /// Sources whose shrink the operator accepted for this command (`--accept-shrink`).
    pub accepted_shrinks: BTreeSet<String>,
}

impl Engine {
    /// Opens the state store (migrating it) and connects to Microsoft Graph.
    pub async fn open(config: Config, progress: Progress) -> Result<Engine, CommandError> {
        let url = config.state.database_url().map_err(|e| {
            CommandError::usage(anyhow::anyhow!("{}: [state]: {e}", config.path.display()))
        })?;
        let graph_config = config.graph()?.clone();
        let store = Store::open(&url).await.map_err(CommandError::failed)?;
        let graph = GraphClient::connect(&graph_config).await.map_err(|e| {
            CommandError::failed(
                anyhow::Error::new(e).context("could not connect to Microsoft Graph"),
            )
        })?;
        Ok(Engine {
            config,
            store,
            graph,
            stop: StopSignal::default(),
            progress,
            accepted_shrinks: BTreeSet::new(),
        })
    }
}

/// The application permissions this configuration needs (GRAPH.md "Authentication").
pub fn needed_permissions(config: &Config) -> Vec<permissions::Permission> {
    let hidden = config
        .families
        .iter()
        .any(|f| f.visibility == Some(Visibility::HiddenMembership));
    permissions::needed(hidden)
}

impl Engine {
    /// Refuses (exit 2) when the access token's `roles` claim lacks a permission the
    /// configuration needs: before any write, rather than half-way through a run. A token
    /// that does not say (not a JWT) is let through with a warning: Graph still decides.
    pub async fn check_permissions(&self) -> Result<(), CommandError> {
        let roles = self.graph.granted_roles().await.map_err(|e| {
            CommandError::failed(
                anyhow::Error::new(e).context("could not sign in to Microsoft Graph"),
            )
        })?;
        let Some(roles) = roles else {
            tracing::warn!(
                "the access token does not list its permissions (no `roles` claim): \
                 cannot check them before writing"
            );
            return Ok(());
        };
        let missing = permissions::missing(&needed_permissions(&self.config), &roles);
        if missing.is_empty() {
            return Ok(());
        }
        Err(CommandError::usage(anyhow::anyhow!(
            "the app registration lacks application permission(s) {}: nothing was changed; \
             grant them (with admin consent) in Entra ID, then run again (`rollcall doctor` \
             checks them)",
            permissions::describe(&missing)
        )))
    }
}

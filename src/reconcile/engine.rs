//! The engine: the state store and Microsoft Graph opened for one command. The stages add
//! their steps to it (`prepare`, `journal`, `record`); `commands` runs them in order.

use std::collections::BTreeSet;

use super::progress::Progress;
use super::stop::StopSignal;
use crate::config::Config;
use crate::exit::CommandError;
use crate::graph::GraphClient;
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

//! A small scene for the directory and ODBC source tests: a sandbox seeded with a handful of
//! users, a config of the test's own in a temporary folder, and the binary run against it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;

use rollcall::sandbox::{Sandbox, SandboxHandle, SandboxOptions, Seed};

use super::tenant::{COMMAND_TIMEOUT, Ran};

/// The environment variable the config names for the client secret.
const SECRET_VAR: &str = "ROLLCALL_TEST_GRAPH_SECRET";

/// A sandbox and a folder for the config and state.
#[derive(Debug)]
pub struct Scene {
    /// The sandbox tenant.
    pub sandbox: SandboxHandle,
    /// The config file.
    pub config: PathBuf,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Scene {
    /// Starts the sandbox with `seed`.
    pub async fn start(seed: Seed) -> Scene {
        let sandbox = Sandbox::start(SandboxOptions {
            seed,
            ..SandboxOptions::default()
        })
        .await
        .expect("the sandbox starts");
        let dir = tempfile::tempdir().expect("a temporary folder");
        Scene {
            sandbox,
            config: dir.path().join("rollcall.toml"),
            env: Vec::new(),
            dir,
        }
    }

    /// The scene's folder.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Sets an environment variable for every command (e.g. a password the config names).
    pub fn env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// Writes the config: SQLite state in the folder, the sandbox, then `rest` (families and
    /// sources).
    pub fn write_config(&self, rest: &str) {
        let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
        let state = format!(
            "sqlite://{}?mode=rwc",
            self.dir.path().join("state.db").display()
        );
        let graph = self
            .sandbox
            .graph_toml(&format!("client_secret_env = {}", quote(SECRET_VAR)));
        let config = format!(
            "[state]\nurl = {}\n\n{graph}max_retry_time = \"15s\"\n\n{rest}",
            quote(&state)
        );
        std::fs::write(&self.config, config).expect("the config is written");
    }

    /// Runs `rollcall --config <config> ARGS…` to its end.
    pub async fn rollcall(&self, args: &[&str]) -> Ran {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollcall"));
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env(SECRET_VAR, SandboxOptions::default().client_secret)
            .env_remove("ROLLCALL_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let line = format!("rollcall {}", args.join(" "));
        let output = tokio::time::timeout(COMMAND_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("`{line}` did not end within {COMMAND_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("`{line}` could not be started: {e}"));
        Ran {
            command: line,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Every group by nickname with its members' user principal names.
    pub fn lists(&self) -> BTreeMap<String, BTreeSet<String>> {
        let state = self.sandbox.state();
        let upn: BTreeMap<&str, &str> = state
            .users
            .iter()
            .map(|u| (u.id.as_str(), u.user_principal_name.as_str()))
            .collect();
        state
            .groups
            .iter()
            .map(|g| {
                let members = g
                    .members
                    .iter()
                    .map(|m| upn.get(m.as_str()).copied().unwrap_or(m).to_owned())
                    .collect();
                (g.mail_nickname.clone(), members)
            })
            .collect()
    }
}

/// `userN@example.ac.uk` for each number, as [`super::numbered::seed`] names users.
pub fn upns(numbers: &[usize]) -> BTreeSet<String> {
    numbers
        .iter()
        .map(|n| format!("user{n}@example.ac.uk"))
        .collect()
}

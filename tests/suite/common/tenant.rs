//! One end-to-end scenario's world: a generated university written as source CSVs, the
//! sandbox tenant seeded with its accounts, a state database, and a config that ties them
//! together; plus the `rollcall` binary run against it, black-box.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rollcall::config::DatabaseUrl;
use rollcall::generate::{Churn, GenerateOptions, University, generate};
use rollcall::sandbox::{Faults, Sandbox, SandboxHandle, SandboxOptions, Seed, SeedGroup};
use rollcall::store::{RunId, Store};
use serde_json::{Value, json};

use super::db::{Backend, TestDatabase};
use super::directory::{self, Desired};

/// Students in a scenario's university: 30 lists and about 3,000 memberships, so that every
/// run takes seconds.
pub const STUDENTS: u32 = 400;

/// The environment variable the config names for the client secret.
const SECRET_VAR: &str = "ROLLCALL_TEST_GRAPH_SECRET";

/// How long one command may take before the test gives up on it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// The nickname of a group another team runs, present in every scenario (the generator's own
/// groups of other teams appear only in a drifted tenant).
pub const OTHER_TEAMS_GROUP: &str = "lunchtime-chess-club";

/// What a scenario's tenant starts as.
#[derive(Debug, Clone)]
pub struct TenantOptions {
    /// The university (its seed, size and whether the tenant has drifted groups).
    pub university: GenerateOptions,
    /// The sandbox's knobs; throttling is off unless a scenario turns it on.
    pub faults: Faults,
    /// Overrides the generated families' `adopt_existing` (on for a drifted tenant).
    pub adopt_existing: Option<bool>,
}

impl TenantOptions {
    /// A small university, a tenant with its accounts and one group of another team, no
    /// throttling and no faults.
    pub fn new() -> TenantOptions {
        TenantOptions {
            university: GenerateOptions {
                students: STUDENTS,
                seed: 2026,
                drift: false,
            },
            faults: calm(),
            adopt_existing: None,
        }
    }

    /// The tenant also holds groups left by an earlier updater under some lists' nicknames
    /// (with drifted members) and groups of other teams.
    pub fn drifted(mut self) -> TenantOptions {
        self.university.drift = true;
        self
    }

    /// Sets the families' `adopt_existing`.
    pub fn adopt_existing(mut self, adopt: bool) -> TenantOptions {
        self.adopt_existing = Some(adopt);
        self
    }

    /// Sets the sandbox's knobs.
    pub fn faults(mut self, faults: Faults) -> TenantOptions {
        self.faults = faults;
        self
    }

    /// A build slow enough to stop part-way: enough lists for several journal batches, and
    /// 100 ms of latency on every request so that it takes some seconds.
    pub fn slow_build() -> TenantOptions {
        TenantOptions {
            university: GenerateOptions {
                students: 1_200,
                seed: 11,
                drift: false,
            },
            ..TenantOptions::new()
        }
        .faults(Faults {
            latency_ms: 100,
            ..calm()
        })
    }
}

/// Knobs for a well-behaved tenant: no throttling, no faults.
pub fn calm() -> Faults {
    Faults {
        throttling: false,
        ..Faults::default()
    }
}

/// A running scenario.
#[derive(Debug)]
pub struct Tenant {
    /// The sandbox tenant.
    pub sandbox: SandboxHandle,
    /// The university the sources describe (changes with [`Tenant::churn`]).
    pub university: University,
    /// What every list should hold, for the current sources.
    pub desired: Desired,
    /// The sandbox's state when the scenario started.
    pub initial: Seed,
    /// Groups rollcall must leave exactly as they were, by id.
    pub untouchable: BTreeMap<String, SeedGroup>,
    /// The config file.
    pub config: PathBuf,
    options: TenantOptions,
    /// TOML appended after the generated families and sources (see [`Tenant::add_config`]).
    extra_config: String,
    /// `(source, key, value)` settings laid over the sources (see [`Tenant::set_source`]).
    source_settings: Vec<(String, String, toml::Value)>,
    /// `(family, key, value)` settings laid over the families (see [`Tenant::set_family`]).
    family_settings: Vec<(String, String, toml::Value)>,
    /// `[guard]` settings (see [`Tenant::set_guard`]).
    guard_settings: Vec<(String, toml::Value)>,
    /// `[graph]` keys set or removed (see [`Tenant::set_graph`]).
    graph_settings: Vec<(String, Option<toml::Value>)>,
    /// Environment variables every command gets (see [`Tenant::set_env`]).
    env: Vec<(String, String)>,
    /// The state database's URL (see [`Tenant::start_at`]).
    state_url: String,
    /// The per-test database dropped with the tenant, when the state lives in one.
    db: Option<TestDatabase>,
    dir: tempfile::TempDir,
}

impl Tenant {
    /// Generates the university, writes its sources and the config, and starts the sandbox
    /// seeded with its accounts (and drifted groups, if asked) plus [`OTHER_TEAMS_GROUP`].
    pub async fn start(db: TestDatabase, options: TenantOptions) -> Tenant {
        Tenant::start_with(db.url.clone(), Some(db), options).await
    }

    /// [`Tenant::start`] with the state database at `state_url`: a server of the test's own,
    /// or a proxy in front of a [`TestDatabase`] (which the caller keeps alive).
    pub async fn start_at(state_url: String, options: TenantOptions) -> Tenant {
        Tenant::start_with(state_url, None, options).await
    }

    async fn start_with(
        state_url: String,
        db: Option<TestDatabase>,
        options: TenantOptions,
    ) -> Tenant {
        let university = generate(&options.university);
        let dir = tempfile::tempdir().expect("a temporary folder");
        university
            .write(dir.path())
            .expect("the university's sources are written");
        let mut seed = university.sandbox_seed();
        seed.groups.push(other_teams_group(&seed));
        let sandbox = Sandbox::start(SandboxOptions {
            seed,
            faults: options.faults.clone(),
            ..SandboxOptions::default()
        })
        .await
        .expect("the sandbox starts");
        let initial = sandbox.state();
        let desired = Desired::of(&university, &initial);
        let untouchable = directory::untouchable(&initial, &desired, &BTreeSet::new());
        let tenant = Tenant {
            sandbox,
            university,
            desired,
            initial,
            untouchable,
            config: dir.path().join("e2e.toml"),
            options,
            extra_config: String::new(),
            source_settings: Vec::new(),
            family_settings: Vec::new(),
            guard_settings: Vec::new(),
            graph_settings: Vec::new(),
            env: Vec::new(),
            state_url,
            db,
            dir,
        };
        tenant.write_config();
        tenant
    }

    /// Writes the config: the state database, the sandbox, and the university's families and
    /// sources.
    fn write_config(&self) {
        let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
        let mut sources = self.university.config_toml(self.dir.path());
        if let Some(adopt) = self.options.adopt_existing {
            let generated = format!("adopt_existing = {}", self.options.university.drift);
            assert!(
                sources.contains(&generated),
                "the generated config has no `{generated}` line to override:\n{sources}"
            );
            sources = sources.replace(&generated, &format!("adopt_existing = {adopt}"));
        }
        sources.push_str(&self.extra_config);
        if !self.source_settings.is_empty() {
            sources = self.apply_source_settings(&sources);
        }
        if !self.family_settings.is_empty() || !self.guard_settings.is_empty() {
            sources = self.apply_family_and_guard_settings(&sources);
        }
        let mut graph = self
            .sandbox
            .graph_toml(&format!("client_secret_env = {}", quote(SECRET_VAR)));
        if !self.graph_settings.is_empty() {
            graph = self.apply_graph_settings(&graph);
        }
        let config = format!(
            "[state]\n\
             url = {}\n\
             \n{graph}\
             max_retry_time = \"15s\"\n\
             \n{sources}",
            quote(&self.state_url),
        );
        std::fs::write(&self.config, config).expect("the config is written");
    }

    /// The `[graph]` section with every [`Tenant::set_graph`] setting laid over it.
    fn apply_graph_settings(&self, graph: &str) -> String {
        let mut table: toml::Table = toml::from_str(graph)
            .unwrap_or_else(|e| panic!("the [graph] TOML does not parse: {e}\n{graph}"));
        let section = table
            .get_mut("graph")
            .and_then(toml::Value::as_table_mut)
            .expect("[graph] is a table");
        for (key, value) in &self.graph_settings {
            match value {
                Some(value) => section.insert(key.clone(), value.clone()),
                None => section.remove(key),
            };
        }
        toml::to_string(&table).expect("[graph] serialises back to TOML")
    }

    /// `sources` with every [`Tenant::set_source`] setting laid over its `[[source]]`.
    fn apply_source_settings(&self, sources: &str) -> String {
        let mut table: toml::Table = toml::from_str(sources)
            .unwrap_or_else(|e| panic!("the sources' TOML does not parse: {e}\n{sources}"));
        let entries = table
            .get_mut("source")
            .and_then(toml::Value::as_array_mut)
            .expect("the config has [[source]] entries");
        for (source, key, value) in &self.source_settings {
            let entry = entries
                .iter_mut()
                .filter_map(toml::Value::as_table_mut)
                .find(|t| t.get("name").and_then(toml::Value::as_str) == Some(source))
                .unwrap_or_else(|| panic!("the config has no [[source]] named `{source}`"));
            entry.insert(key.clone(), value.clone());
        }
        toml::to_string(&table).expect("the sources serialise back to TOML")
    }

    /// `sources` with every [`Tenant::set_family`] setting laid over its `[[family]]` and
    /// every [`Tenant::set_guard`] setting in `[guard]`.
    fn apply_family_and_guard_settings(&self, sources: &str) -> String {
        let mut table: toml::Table = toml::from_str(sources)
            .unwrap_or_else(|e| panic!("the sources' TOML does not parse: {e}\n{sources}"));
        let families = table
            .get_mut("family")
            .and_then(toml::Value::as_array_mut)
            .expect("the config has [[family]] entries");
        for (family, key, value) in &self.family_settings {
            let entry = families
                .iter_mut()
                .filter_map(toml::Value::as_table_mut)
                .find(|t| t.get("name").and_then(toml::Value::as_str) == Some(family))
                .unwrap_or_else(|| panic!("the config has no [[family]] named `{family}`"));
            entry.insert(key.clone(), value.clone());
        }
        if !self.guard_settings.is_empty() {
            let guard = table
                .entry("guard")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("[guard] is a table");
            for (key, value) in &self.guard_settings {
                guard.insert(key.clone(), value.clone());
            }
        }
        toml::to_string(&table).expect("the sources serialise back to TOML")
    }

    /// Sets `key = value` in `[graph]` (`None` removes the key, e.g. the client secret in
    /// favour of another credential) and rewrites the config; a later setting wins.
    pub fn set_graph(&mut self, key: &str, value: Option<toml::Value>) {
        self.graph_settings.push((key.to_owned(), value));
        self.write_config();
    }

    /// Signs in with `credential` (`key = value` pairs under `[graph]`) instead of the client
    /// secret.
    pub fn sign_in_with(&mut self, credential: &[(&str, toml::Value)]) {
        self.graph_settings
            .push(("client_secret_env".to_owned(), None));
        for (key, value) in credential {
            self.graph_settings
                .push(((*key).to_owned(), Some(value.clone())));
        }
        self.write_config();
    }

    /// Gives every later command `name=value` in its environment.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// The folder holding the generated sources (`modules.csv`, `departments.csv` and their
    /// control files) and the config.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Appends TOML (e.g. `[[family]]` and `[[source]]` entries) to the config and rewrites
    /// it; kept across [`Tenant::churn`].
    pub fn add_config(&mut self, toml: &str) {
        self.extra_config.push('\n');
        self.extra_config.push_str(toml);
        self.write_config();
    }

    /// Sets `key = value` in the `[[source]]` named `source` (generated or added) and rewrites
    /// the config; a later setting of the same key wins. Kept across [`Tenant::churn`].
    pub fn set_source(&mut self, source: &str, key: &str, value: impl Into<toml::Value>) {
        self.source_settings
            .push((source.to_owned(), key.to_owned(), value.into()));
        self.write_config();
    }

    /// Sets `key = value` in the `[[family]]` named `family` and rewrites the config; a later
    /// setting of the same key wins. Kept across [`Tenant::churn`].
    pub fn set_family(&mut self, family: &str, key: &str, value: impl Into<toml::Value>) {
        self.family_settings
            .push((family.to_owned(), key.to_owned(), value.into()));
        self.write_config();
    }

    /// Removes every setting of `key` in family `family` (back to its default) and rewrites
    /// the config.
    pub fn unset_family(&mut self, family: &str, key: &str) {
        self.family_settings
            .retain(|(f, k, _)| !(f == family && k == key));
        self.write_config();
    }

    /// Sets `key = value` in `[guard]` and rewrites the config; a later setting of the same
    /// key wins. Kept across [`Tenant::churn`].
    pub fn set_guard(&mut self, key: &str, value: impl Into<toml::Value>) {
        self.guard_settings.push((key.to_owned(), value.into()));
        self.write_config();
    }

    /// Changes the university with `edit` (e.g. withdraws students from a module, or closes
    /// one), and rewrites the sources, their control files and the config to match, as a
    /// complete export of the changed records would.
    pub fn edit_university(&mut self, edit: impl FnOnce(&mut University)) {
        edit(&mut self.university);
        self.university
            .write(self.dir.path())
            .expect("the changed sources are written");
        self.write_config();
        self.desired = Desired::of(&self.university, &self.sandbox.state());
    }

    /// Withdraws `count` students who have an account from module `index` and rewrites the
    /// sources: the plan removes exactly them from its list. Returns them.
    pub fn withdraw(&mut self, index: usize, count: usize) -> Vec<usize> {
        let mut withdrawn = Vec::new();
        self.edit_university(|university| {
            withdrawn = university.modules[index]
                .students
                .iter()
                .copied()
                .filter(|&p| university.people[p].has_account)
                .take(count)
                .collect();
            for person in &withdrawn {
                university.modules[index].students.remove(person);
            }
        });
        assert_eq!(
            withdrawn.len(),
            count,
            "module {index} has too few students"
        );
        withdrawn
    }

    /// Changes about `fraction` of the enrolments and opens a module (a typical day), and
    /// rewrites the sources and config to match.
    pub fn churn(&mut self, fraction: f64, seed: u64) -> Churn {
        let churn = self.university.apply_churn(fraction, seed);
        self.university
            .write(self.dir.path())
            .expect("the changed sources are written");
        self.write_config();
        self.desired = Desired::of(&self.university, &self.sandbox.state());
        churn
    }

    /// Runs `rollcall --config <config> ARGS…` to its end.
    pub async fn rollcall(&self, args: &[&str]) -> Ran {
        self.rollcall_within(args, COMMAND_TIMEOUT).await
    }

    /// Runs `rollcall --config <config> ARGS…`, killing it and failing the test after
    /// `timeout`.
    pub async fn rollcall_within(&self, args: &[&str], timeout: Duration) -> Ran {
        self.rollcall_with(args, &[], timeout).await
    }

    /// Runs `rollcall ARGS…` as if it were `now` (RFC 3339) on the calendar: dated exceptions
    /// and the like judge at that moment (`ROLLCALL_NOW`).
    pub async fn rollcall_at(&self, now: &str, args: &[&str]) -> Ran {
        self.rollcall_with(args, &[("ROLLCALL_NOW", now)], COMMAND_TIMEOUT)
            .await
    }

    async fn rollcall_with(&self, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Ran {
        let command = format!("rollcall {}", args.join(" "));
        let mut child = self.command(args);
        child.envs(env.iter().copied());
        let output = tokio::time::timeout(timeout, child.output())
            .await
            .unwrap_or_else(|_| panic!("`{command}` did not end within {timeout:?}"))
            .unwrap_or_else(|e| panic!("`{command}` could not be started: {e}"));
        Ran {
            command,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The command line for `rollcall --config <config> ARGS…`, as a tokio process so that
    /// waiting for it never blocks the runtime the in-process sandbox serves on; the child
    /// is killed if the test drops it.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollcall"));
        // Only a test that means to sign in through Azure Workload Identity sets these.
        for name in rollcall::config::FEDERATION_ENV {
            command.env_remove(name);
        }
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env(SECRET_VAR, SandboxOptions::default().client_secret)
            .env_remove("ROLLCALL_CONFIG")
            .envs(self.env.iter().map(|(n, v)| (n, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// A sandbox counter; panics if the sandbox does not report it.
    #[track_caller]
    pub fn stat(&self, name: &str) -> u64 {
        let stats = self.sandbox.stats();
        stats[name]
            .as_u64()
            .unwrap_or_else(|| panic!("the sandbox stats have no counter `{name}`: {stats}"))
    }

    /// The state store rollcall uses.
    pub async fn store(&self) -> Store {
        Store::open(&DatabaseUrl::new(self.state_url.clone()))
            .await
            .expect("the state database opens")
    }

    /// Deletes what a crashed state database loses: the managed groups (and with them the
    /// mirror and the owner mirror), the identities and the delta links. Runs and the journal
    /// stay.
    pub async fn lose_state(&self) {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.state_url)
            .await
            .expect("the state database accepts a raw connection");
        for table in [
            "mirror",
            "owner_mirror",
            "managed_groups",
            "identities",
            "delta_links",
            "member_absences",
        ] {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("DELETE FROM {table}: {e}"));
        }
        sqlx::Connection::close(conn)
            .await
            .expect("the raw connection closes");
    }

    /// The state database.
    pub fn db(&self) -> &TestDatabase {
        self.db
            .as_ref()
            .expect("this tenant's state lives in a TestDatabase (not `start_at`)")
    }

    /// Runs `sql` on the state database over a raw connection; without `foreign_keys` the
    /// backend's foreign-key checks are off for that session only, so rows may break them.
    pub async fn raw_sql(&self, sql: &str, foreign_keys: bool) {
        let off = match (foreign_keys, self.db().backend) {
            (true, _) => "",
            (false, Backend::Sqlite) => "PRAGMA foreign_keys = OFF; ",
            (false, Backend::Postgres) => "SET session_replication_role = replica; ",
            (false, Backend::Mysql) => "SET FOREIGN_KEY_CHECKS = 0; ",
        };
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.db().url)
            .await
            .expect("the state database accepts a raw connection");
        sqlx::raw_sql(&format!("{off}{sql}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        sqlx::Connection::close(conn)
            .await
            .expect("the raw connection closes");
    }

    /// How many groups the state database records as managed.
    pub async fn managed_groups(&self) -> usize {
        let store = self.store().await;
        let groups = store
            .groups()
            .await
            .expect("the managed groups can be read");
        store.close().await;
        groups.len()
    }

    /// Runs `rollcall ARGS…` and checks that it stopped before any change: exit 3, `says` on
    /// stderr, no write at the sandbox, every group exactly as it was, and the run recorded
    /// as stopped with exit 3 and nothing done. Returns `show RUN --output json` of that run.
    pub async fn assert_stopped_before_any_change(
        &self,
        args: &[&str],
        says: &str,
        when: &str,
    ) -> (String, Value) {
        let (writes, before) = (self.stat("writes"), self.sandbox.state());
        let ran = self.rollcall(args).await;
        ran.expect(3);
        assert!(
            ran.stderr.contains(says),
            "{when}: stderr does not say `{says}`:\n{}",
            ran.stderr
        );
        assert_eq!(self.stat("writes"), writes, "{when}: writes were sent");
        assert!(
            self.sandbox.state() == before,
            "{when}: the tenant changed although the run stopped before any change"
        );
        let run = self.last_run().await.to_string();
        let show = self
            .rollcall(&["show", &run, "--output", "json"])
            .await
            .expect(0)
            .json();
        assert_eq!(
            (
                &show["status"],
                &show["exit_code"],
                &show["journal"]["done"]
            ),
            (&json!("stopped"), &json!(3), &json!(0)),
            "{when}: {show}"
        );
        (run, show)
    }

    /// Pending journal operations across every run.
    pub async fn pending_operations(&self) -> i64 {
        let store = self.store().await;
        let pending = store
            .pending_everywhere()
            .await
            .expect("the journal can be counted");
        store.close().await;
        pending
    }

    /// `rollcall show` of the newest recorded run, as JSON.
    pub async fn show_last_run(&self) -> Value {
        let run = self.last_run().await.to_string();
        self.rollcall(&["show", &run, "--output", "json"])
            .await
            .expect(0)
            .json()
    }

    /// The newest recorded run.
    pub async fn last_run(&self) -> RunId {
        let store = self.store().await;
        let runs = store.recent_runs(1).await.expect("the runs can be listed");
        store.close().await;
        runs.first()
            .unwrap_or_else(|| panic!("the state database records no run"))
            .id
    }

    /// Panics unless every list holds exactly its desired members in one group, tagged as
    /// managed, and nothing else changed (see [`Tenant::finish`]).
    #[track_caller]
    pub fn assert_converged(&self, when: &str) {
        self.assert_converged_except(&BTreeSet::new(), when);
    }

    /// [`Tenant::assert_converged`], and `rollcall verify` agrees (exit 0).
    pub async fn assert_verified(&self, when: &str) {
        self.assert_converged(when);
        self.rollcall(&["verify"]).await.expect(0);
    }

    /// [`Tenant::assert_converged`] for every list outside `skip`.
    #[track_caller]
    pub fn assert_converged_except(&self, skip: &BTreeSet<String>, when: &str) {
        let state = self.sandbox.state();
        directory::assert_no_duplicate_groups(&state, when);
        directory::assert_converged(&state, &self.desired, skip, when);
        directory::assert_owners(&state, &self.desired, skip, when);
        directory::assert_tagged(
            &state,
            &self.desired,
            self.desired.lists.keys().filter(|l| !skip.contains(*l)),
        );
        directory::assert_untouched(&self.untouchable, &state, when);
    }

    /// What every scenario ends with: no duplicate groups, the groups rollcall does not
    /// manage unchanged, and never a `DELETE …/members/{id}` without `/$ref`.
    #[track_caller]
    pub fn finish(&self) {
        let state = self.sandbox.state();
        directory::assert_no_duplicate_groups(&state, "at the end");
        directory::assert_untouched(&self.untouchable, &state, "at the end");
        assert_eq!(
            self.stat("member_deletes_without_ref"),
            0,
            "rollcall sent DELETE …/members/{{id}} without /$ref, which deletes the user"
        );
    }

    /// Adds the groups that held `nicknames` when the scenario started to those rollcall must
    /// leave exactly as they were.
    pub fn protect(&mut self, nicknames: &BTreeSet<String>) {
        self.untouchable.extend(directory::untouchable(
            &self.initial,
            &self.desired,
            nicknames,
        ));
    }

    /// The id of the group holding `nickname`.
    #[track_caller]
    pub fn group_id(&self, nickname: &str) -> String {
        self.sandbox
            .state()
            .groups
            .into_iter()
            .find(|g| g.mail_nickname == nickname)
            .and_then(|g| g.id)
            .unwrap_or_else(|| panic!("the sandbox has no group {nickname}"))
    }
}

/// A group another team runs, holding a few people who are also on rollcall's lists.
fn other_teams_group(seed: &Seed) -> SeedGroup {
    SeedGroup {
        id: Some("0ddba11c-0000-4000-8000-000000000001".to_owned()),
        display_name: "Lunchtime Chess Club".to_owned(),
        mail_nickname: OTHER_TEAMS_GROUP.to_owned(),
        description: Some("Run by the chess society, not by rollcall".to_owned()),
        group_types: vec!["Unified".to_owned()],
        mail_enabled: true,
        security_enabled: false,
        members: seed.users.iter().take(7).map(|u| u.id.clone()).collect(),
        extensions: Vec::new(),
        owners: Vec::new(),
    }
}

/// A finished `rollcall` command.
#[derive(Debug)]
pub struct Ran {
    /// The command line, for messages.
    pub command: String,
    /// The exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    /// Panics, showing the output, unless the command exited with `code`.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Ran {
        assert!(
            self.code == Some(code),
            "`{}` exited with {:?}, expected {code}\n--- stdout (end) ---\n{}\n--- stderr (end) ---\n{}",
            self.command,
            self.code,
            tail(&self.stdout),
            tail(&self.stderr)
        );
        self
    }

    /// Standard output as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}` printed no JSON ({e}):\n{}",
                self.command,
                tail(&self.stdout)
            )
        })
    }
}

/// The last 40 lines of `text`.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

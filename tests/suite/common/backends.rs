//! Where the PostgreSQL and MariaDB tests find a server: the one place the suite reads
//! `ROLLCALL_TEST_POSTGRES_URL` / `ROLLCALL_TEST_MYSQL_URL`.
//!
//! A variable that is set names the server. Without it the suite starts a private server of
//! its own from the distribution's binaries (see [`Server`]), once per test binary, shared by
//! every test of that backend (each still gets a fresh database from `db.rs`). A watchdog
//! process stops the server and removes its directory the moment the test binary exits,
//! however it exits, so no server outlives `cargo test`.
//!
//! Where neither is available the backend is skipped with one line written past the test
//! harness's capture (so `cargo test` shows it), and `backends_available` says how many
//! backends ran; with `CI=true` a missing backend fails instead.

use std::io::Write;
use std::process::{ChildStdin, Stdio};
use std::sync::{Mutex, OnceLock};

use super::db::{Backend, in_ci};
use super::server::Server;

/// The environment variable naming a test server for a backend, if it needs one.
pub fn env_var(backend: Backend) -> Option<&'static str> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some("ROLLCALL_TEST_POSTGRES_URL"),
        Backend::Mysql => Some("ROLLCALL_TEST_MYSQL_URL"),
    }
}

/// Where a backend's tests run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// SQLite, in a temporary file.
    File,
    /// The server the environment variable names.
    Configured(String),
    /// A private server this test binary started.
    Private(String),
    /// Nowhere: the reason.
    Missing(String),
}

impl Found {
    /// The server URL, if the backend has one to run against.
    pub fn url(&self) -> Option<&str> {
        match self {
            Found::Configured(url) | Found::Private(url) => Some(url),
            Found::File | Found::Missing(_) => None,
        }
    }
}

/// Where `backend`'s tests run, starting a private server on first use when no variable
/// names one. Cached for the test binary's life.
pub fn find(backend: Backend) -> Found {
    static POSTGRES: OnceLock<Found> = OnceLock::new();
    static MYSQL: OnceLock<Found> = OnceLock::new();
    let cell = match backend {
        Backend::Sqlite => return Found::File,
        Backend::Postgres => &POSTGRES,
        Backend::Mysql => &MYSQL,
    };
    cell.get_or_init(|| {
        let var = env_var(backend).expect("a server backend has a variable");
        match std::env::var(var) {
            Ok(url) if !url.is_empty() => Found::Configured(url),
            _ => start_private(backend, var),
        }
    })
    .clone()
}

/// The server URL for a backend, or `None` (outside CI, with a visible line) when it has
/// none; with `CI=true` a missing server fails the test.
pub fn server_url(backend: Backend) -> Option<String> {
    match find(backend) {
        Found::Configured(url) | Found::Private(url) => Some(url),
        Found::File => None,
        Found::Missing(reason) => {
            assert!(
                !in_ci(),
                "{reason}, and CI=true: the {backend:?} tests must run in CI"
            );
            None
        }
    }
}

/// Writes a line to the test binary's stderr past libtest's output capture, so that
/// `cargo test` shows it for a passing test too.
pub fn visible(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The private servers, running for the test binary's life.
static RUNNING: Mutex<Vec<Server>> = Mutex::new(Vec::new());

/// The write ends of the watchdogs' pipes.
static WATCHDOGS: Mutex<Vec<ChildStdin>> = Mutex::new(Vec::new());

fn start_private(backend: Backend, var: &str) -> Found {
    // Server::start is async and may run under any test's runtime; the shared server must
    // outlive that runtime, so it starts on a thread with a runtime of its own.
    let started = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime to start the test server")
            .block_on(Server::start_shared(backend))
    })
    .join();
    match started {
        Ok(Ok(server)) => {
            let url = server.url();
            watch(&server);
            RUNNING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(server);
            Found::Private(url)
        }
        Ok(Err(needs)) => {
            let reason = format!("{var} is not set and {needs} is not installed");
            visible(&format!(
                "SKIPPED: the {backend:?} tests: {reason} (install the server or set {var})"
            ));
            Found::Missing(reason)
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Starts a process that stops `server` and removes its directory as soon as this test
/// binary is gone, however it ended: the watchdog reads its stdin, a pipe whose only writer
/// is this process, and the kernel closes that at exit (a killed `cargo test` included). It
/// runs in its own process group and ignores the terminal's signals, so Ctrl-C reaches the
/// tests but not the watchdog.
fn watch(server: &Server) {
    let script = "trap '' INT TERM HUP\n\
                  cat >/dev/null\n\
                  \"$@\" >/dev/null 2>&1\n";
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg("rollcall-test-watchdog")
        .args(server.cleanup_command())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    // Never waited for: it outlives this process by design, and init reaps it.
    #[allow(clippy::zombie_processes)]
    let mut watchdog = command.spawn().expect("the test server's watchdog starts");
    // Held, never written, for the life of the process (the pipe is close-on-exec, so no
    // program a test starts holds it open).
    let pipe = watchdog
        .stdin
        .take()
        .expect("the watchdog's stdin is a pipe");
    WATCHDOGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(pipe);
}

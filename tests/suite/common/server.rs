//! A PostgreSQL or MariaDB server of the test's own, on its own port and data directory, so
//! that a test can stop it under a running `rollcall` and start it again on the same data.
//!
//! The binaries come from the distribution's packages (`/usr/lib/postgresql/*/bin`,
//! `mariadbd`, `mariadb-install-db`). Outside CI missing binaries skip the test with a visible
//! line; with `CI=true` they fail it. PostgreSQL refuses to run as root, so as root its tools
//! run as the `postgres` user through `runuser`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sqlx::Connection;
use tokio::process::{Child, Command};

use super::backends::visible;
use super::db::{Backend, in_ci};

/// The database the server's URL names, created when the server first starts.
const DATABASE: &str = "rollcall";

/// How long a server may take to accept connections after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A database server the test runs.
#[derive(Debug)]
pub struct Server {
    backend: Backend,
    port: u16,
    programs: Programs,
    dir: tempfile::TempDir,
    /// The MariaDB server process (PostgreSQL's is managed by `pg_ctl`).
    mariadbd: Option<Child>,
    running: bool,
}

impl Server {
    /// Initialises a data directory and starts a server on a free port, or returns `None`
    /// (outside CI) when the backend's binaries are not installed.
    pub async fn start(backend: Backend) -> Option<Server> {
        let programs = programs_or_skip(backend)?;
        Some(Server::start_with(backend, programs).await)
    }

    /// Starts a server to share between tests, or says which programs are missing. Unlike
    /// [`Server::start`] it neither skips nor fails: the caller decides.
    pub async fn start_shared(backend: Backend) -> Result<Server, &'static str> {
        let programs = programs(backend)?;
        Ok(Server::start_with(backend, programs).await)
    }

    async fn start_with(backend: Backend, programs: Programs) -> Server {
        let dir = tempfile::tempdir().expect("a temporary folder for the server");
        let mut server = Server {
            backend,
            port: free_port(),
            programs,
            dir,
            mariadbd: None,
            running: false,
        };
        server.init().await;
        server.resume().await;
        server.create_database().await;
        server
    }

    /// The URL of the server's test database.
    pub fn url(&self) -> String {
        match self.backend {
            Backend::Postgres => {
                format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
            }
            Backend::Mysql => format!("mysql://root@127.0.0.1:{}/{DATABASE}", self.port),
            Backend::Sqlite => unreachable!("SQLite has no server"),
        }
    }

    /// Stops the server the way maintenance does: PostgreSQL with `pg_ctl stop -m fast`
    /// (open sessions are ended), MariaDB with SIGKILL (as when its host goes down).
    pub async fn stop(&mut self) {
        assert!(self.running, "the server is not running");
        match self.backend {
            Backend::Postgres => {
                let data = self.data();
                self.run_tool("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
                    .await;
            }
            Backend::Mysql => {
                let mut child = self.mariadbd.take().expect("mariadbd runs");
                child.kill().await.expect("mariadbd can be killed");
            }
            Backend::Sqlite => unreachable!("SQLite has no server"),
        }
        self.running = false;
    }

    /// Starts the server again on the same port and data directory, and waits until it
    /// accepts connections.
    pub async fn resume(&mut self) {
        assert!(!self.running, "the server already runs");
        match self.backend {
            Backend::Postgres => {
                let data = self.data();
                let log = self.path("postgres.log");
                let options = format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1",
                    self.port,
                    self.dir.path().display()
                );
                self.run_tool(
                    "pg_ctl",
                    &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
                )
                .await;
            }
            Backend::Mysql => {
                let Programs::Mariadb { server, .. } = &self.programs else {
                    unreachable!("a MariaDB server has MariaDB's programs")
                };
                let child = Command::new(server)
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", self.data()))
                    .arg(format!("--socket={}", self.path("mariadb.sock")))
                    .arg(format!("--pid-file={}", self.path("mariadb.pid")))
                    .arg(format!("--log-error={}", self.path("mariadb.log")))
                    .arg(format!("--port={}", self.port))
                    .arg("--bind-address=127.0.0.1")
                    .arg("--user=root")
                    .arg("--skip-grant-tables")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("mariadbd starts");
                self.mariadbd = Some(child);
            }
            Backend::Sqlite => unreachable!("SQLite has no server"),
        }
        self.running = true;
        self.wait_until_ready().await;
    }

    async fn init(&self) {
        match self.backend {
            Backend::Postgres => {
                if running_as_root() {
                    let postgres = Path::new("/var/lib/postgresql");
                    let owner = std::fs::metadata(postgres).unwrap_or_else(|e| {
                        panic!(
                            "as root, PostgreSQL's tools run as the postgres user, but its home {} \
                             cannot be read ({e}); install the PostgreSQL server package",
                            postgres.display()
                        )
                    });
                    std::os::unix::fs::chown(self.dir.path(), Some(owner.uid()), Some(owner.gid()))
                        .expect("the server folder is handed to the postgres user");
                }
                let data = self.data();
                self.run_tool(
                    "initdb",
                    &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                )
                .await;
            }
            Backend::Mysql => {
                let Programs::Mariadb { install, .. } = &self.programs else {
                    unreachable!("a MariaDB server has MariaDB's programs")
                };
                let output = Command::new(install)
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", self.data()))
                    .arg("--user=root")
                    .arg("--auth-root-authentication-method=normal")
                    .arg("--skip-test-db")
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .expect("mariadb-install-db starts");
                assert!(
                    output.status.success(),
                    "mariadb-install-db failed: {}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            Backend::Sqlite => unreachable!("SQLite has no server"),
        }
    }

    async fn create_database(&self) {
        let server_url = match self.backend {
            Backend::Postgres => format!("postgres://postgres@127.0.0.1:{}/postgres", self.port),
            _ => format!("mysql://root@127.0.0.1:{}/mysql", self.port),
        };
        let sql = format!("CREATE DATABASE {DATABASE}");
        match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&server_url)
                    .await
                    .expect("the test's PostgreSQL accepts a connection");
                sqlx::raw_sql(&sql).execute(&mut conn).await.expect(&sql);
            }
            _ => {
                let mut conn = sqlx::MySqlConnection::connect(&server_url)
                    .await
                    .expect("the test's MariaDB accepts a connection");
                sqlx::raw_sql(&sql).execute(&mut conn).await.expect(&sql);
            }
        }
    }

    /// Waits until a client connection succeeds.
    async fn wait_until_ready(&mut self) {
        let started = tokio::time::Instant::now();
        loop {
            let ready = match self.backend {
                Backend::Postgres => sqlx::PgConnection::connect(&format!(
                    "postgres://postgres@127.0.0.1:{}/postgres",
                    self.port
                ))
                .await
                .map(drop),
                _ => sqlx::MySqlConnection::connect(&format!(
                    "mysql://root@127.0.0.1:{}/mysql",
                    self.port
                ))
                .await
                .map(drop),
            };
            match ready {
                Ok(()) => return,
                Err(e) if started.elapsed() > READY_TIMEOUT => panic!(
                    "the test's {:?} server on port {} did not accept connections within {READY_TIMEOUT:?}: {e}\n{}",
                    self.backend,
                    self.port,
                    self.log()
                ),
                Err(_) => {}
            }
            if let Some(child) = &mut self.mariadbd
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("mariadbd exited with {status}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs one of PostgreSQL's tools, as the `postgres` user when this process is root.
    async fn run_tool(&self, tool: &str, args: &[&str]) {
        let Programs::Postgres(bin) = &self.programs else {
            unreachable!("only PostgreSQL's tools are run")
        };
        let program = bin.join(tool);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap_or_else(|e| panic!("{tool} cannot be started: {e}"));
        assert!(
            output.status.success(),
            "{tool} {} failed: {}{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    /// A command that stops the server and removes its directory, for a watchdog that
    /// outlives this process: `pg_ctl stop -m immediate`, or SIGKILL for `mariadbd`.
    pub fn cleanup_command(&self) -> Vec<String> {
        let mut command: Vec<String> = [
            "sh",
            "-c",
            "dir=$1; shift; \"$@\"; rm -rf \"$dir\"",
            "rollcall-test-cleanup",
        ]
        .map(String::from)
        .into();
        command.push(self.dir.path().display().to_string());
        match &self.programs {
            Programs::Postgres(bin) => {
                if running_as_root() {
                    command.extend(["runuser", "-u", "postgres", "--"].map(String::from));
                }
                command.push(bin.join("pg_ctl").display().to_string());
                command.extend(["-D".into(), self.data()]);
                command.extend(["-m", "immediate", "-w", "stop"].map(String::from));
            }
            Programs::Mariadb { .. } => {
                let pid = self
                    .mariadbd
                    .as_ref()
                    .and_then(Child::id)
                    .unwrap_or_default();
                command.extend(["kill".into(), "-9".into(), pid.to_string()]);
            }
        }
        command
    }

    fn data(&self) -> String {
        self.path("data")
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The end of the server's log, for failure messages.
    fn log(&self) -> String {
        let name = match self.backend {
            Backend::Postgres => "postgres.log",
            _ => "mariadb.log",
        };
        let log = std::fs::read_to_string(self.path(name)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let (true, Programs::Postgres(bin)) = (self.running, &self.programs) {
            let program = bin.join("pg_ctl");
            let data = self.data();
            let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
            let mut command = if running_as_root() {
                let mut command = std::process::Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(&program);
                command
            } else {
                std::process::Command::new(&program)
            };
            let _ = command
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // mariadbd is killed when its `Child` drops.
    }
}

/// Where a backend's server programs are.
#[derive(Debug)]
enum Programs {
    /// The folder holding `initdb` and `pg_ctl`.
    Postgres(PathBuf),
    /// `mariadbd` and `mariadb-install-db`.
    Mariadb { server: PathBuf, install: PathBuf },
}

/// The backend's server programs, or `None` (outside CI, with a visible line) when they are
/// not installed.
fn programs_or_skip(backend: Backend) -> Option<Programs> {
    match programs(backend) {
        Ok(found) => Some(found),
        Err(needs) if in_ci() => {
            panic!("{needs} not found and CI=true: the {backend:?} server tests must run in CI")
        }
        Err(needs) => {
            visible(&format!(
                "SKIPPED: {needs} not found (install the {backend:?} server to run this test)"
            ));
            None
        }
    }
}

/// The backend's server programs, or what is missing.
fn programs(backend: Backend) -> Result<Programs, &'static str> {
    let (found, needs) = match backend {
        Backend::Postgres => {
            let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path().join("bin"))
                .filter(|bin| bin.join("pg_ctl").is_file() && bin.join("initdb").is_file())
                .collect();
            versions.sort();
            (
                versions.pop().map(Programs::Postgres),
                "/usr/lib/postgresql/*/bin/{initdb,pg_ctl}",
            )
        }
        Backend::Mysql => (
            which("mariadbd")
                .zip(which("mariadb-install-db"))
                .map(|(server, install)| Programs::Mariadb { server, install }),
            "mariadbd and mariadb-install-db",
        ),
        Backend::Sqlite => unreachable!("SQLite has no server"),
    };
    found.ok_or(needs)
}

/// The first folder on `PATH` (or the usual system folders) holding `program`.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

//! A first run on a fresh machine: `rollcall init` in an empty folder, then exactly the
//! commands it prints (the sandbox in the background, then plan and run) succeed and build the
//! example list; init refuses to overwrite without `--force`; a missing configuration names
//! the path and `rollcall init`, saying its cause once; completions and the man page come from
//! the command definitions.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rollcall::sandbox::Seed;

/// How long the backgrounded sandbox may take to listen.
const SANDBOX_START: Duration = Duration::from_secs(30);

fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("rollcall")
}

/// `PATH` with the built binary's folder first, as after installing it.
fn path_with_rollcall() -> std::ffi::OsString {
    let dir = binary().parent().expect("the binary's folder").to_owned();
    let mut paths = vec![dir];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("PATH joins")
}

/// A shell in `dir` that finds `rollcall` on its PATH, as an operator's would.
fn shell(dir: &Path, line: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(line)
        .current_dir(dir)
        .env("PATH", path_with_rollcall())
        .env_remove("ROLLCALL_CONFIG")
        .env_remove("RUST_LOG");
    command
}

fn rollcall(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_remove("ROLLCALL_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("rollcall runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A background command, stopped when dropped.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + SANDBOX_START;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().expect("the sandbox can be polled") {
            panic!("the sandbox ended ({status}) before listening on {port}");
        }
        assert!(
            Instant::now() < deadline,
            "the sandbox never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_then_exactly_the_printed_commands_build_the_example_list() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let port = free_port();
    let init = rollcall(dir.path(), &["init", "--sandbox-port", &port.to_string()]);
    let stdout = text(&init.stdout);
    assert!(init.status.success(), "{stdout}{}", text(&init.stderr));
    for file in [
        "rollcall.toml",
        "rollcall-example/lists.csv",
        "rollcall-example/sandbox-seed.json",
        "rollcall-example/sandbox-secret",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} not written");
        assert!(stdout.contains(&format!("wrote {file}")), "{stdout}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("rollcall-example/sandbox-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret is owner-only ({mode:o})");
    }
    let commands: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("  "))
        .filter(|line| line.starts_with("rollcall "))
        .collect();
    assert_eq!(commands.len(), 3, "three next commands: {stdout}");

    let mut background = Vec::new();
    for command in &commands {
        if let Some(line) = command.strip_suffix('&') {
            let mut child = shell(dir.path(), &format!("exec {}", line.trim()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the background command starts");
            wait_for_port(port, &mut child);
            background.push(Background(child));
        } else {
            let ran = shell(dir.path(), command).output().expect("sh runs");
            assert!(
                ran.status.success(),
                "`{command}` failed ({}):\n{}{}",
                ran.status,
                text(&ran.stdout),
                text(&ran.stderr)
            );
        }
    }
    assert_eq!(
        background.len(),
        1,
        "the sandbox is the one background command"
    );

    // The example list is in the sandbox tenant with its three members.
    let state: Seed = async {
        reqwest::get(format!("http://127.0.0.1:{port}/_sandbox/state"))
            .await?
            .json()
            .await
    }
    .await
    .expect("the sandbox's state");
    let group = state
        .groups
        .iter()
        .find(|g| g.mail_nickname == "example-team")
        .unwrap_or_else(|| panic!("no example-team group: {state:?}"));
    assert_eq!(group.members.len(), 3, "{group:?}");
    assert_eq!(group.display_name, "Example team");
    // A second run has nothing to do; status shows the runs.
    let again = shell(dir.path(), "rollcall run").output().expect("sh runs");
    assert!(again.status.success(), "{}", text(&again.stderr));
    let status = shell(dir.path(), "rollcall status")
        .output()
        .expect("sh runs");
    assert!(status.status.success(), "{}", text(&status.stderr));
    assert!(
        text(&status.stdout).contains("succeeded"),
        "{}",
        text(&status.stdout)
    );
}

#[test]
fn init_leaves_existing_files_alone_without_force() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = dir.path().join("rollcall.toml");
    std::fs::write(&config, "# mine\n").unwrap();
    let refused = rollcall(dir.path(), &["init"]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("rollcall.toml exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# mine\n");
    assert!(!dir.path().join("rollcall-example").exists());

    let forced = rollcall(dir.path(), &["init", "--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("[[source]]")
    );

    // --path elsewhere: the printed commands name the file.
    let other = dir.path().join("site").join("lists.toml");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    let elsewhere = rollcall(dir.path(), &["init", "--path", other.to_str().unwrap()]);
    assert!(elsewhere.status.success(), "{}", text(&elsewhere.stderr));
    let stdout = text(&elsewhere.stdout);
    assert!(
        stdout.contains(&format!("rollcall --config {} plan", other.display())),
        "{stdout}"
    );
    let check = rollcall(
        dir.path(),
        &["--config", other.to_str().unwrap(), "config", "check"],
    );
    assert!(check.status.success(), "{}", text(&check.stderr));
}

#[test]
fn a_missing_configuration_names_the_path_and_init_saying_each_cause_once() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let ran = rollcall(dir.path(), &["run"]);
    assert_eq!(ran.status.code(), Some(2));
    let stderr = text(&ran.stderr);
    assert!(stderr.contains("rollcall.toml: "), "{stderr}");
    assert!(stderr.contains("`rollcall init`"), "{stderr}");
    assert!(!stderr.contains("os error"), "{stderr}");

    // A saved plan that is not there: the message embeds its cause (it used to follow twice).
    assert!(rollcall(dir.path(), &["init"]).status.success());
    let apply = rollcall(
        dir.path(),
        &["apply", "no-such-plan.json", "--reason", "test"],
    );
    assert_eq!(apply.status.code(), Some(2));
    let stderr = text(&apply.stderr);
    assert!(
        stderr.contains("cannot read the saved plan no-such-plan.json"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_definitions() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (shell, marker) in [
        ("bash", "_rollcall()"),
        ("zsh", "#compdef rollcall"),
        ("fish", "complete -c rollcall"),
    ] {
        let out = rollcall(dir.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["init", "serve", "completions", "sandbox-port"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let bash = rollcall(dir.path(), &["completions", "bash"]);
    let syntax = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(&bash.stdout)?;
            child.wait_with_output()
        })
        .expect("bash runs");
    assert!(syntax.status.success(), "{}", text(&syntax.stderr));

    let man = rollcall(dir.path(), &["man"]);
    assert!(man.status.success(), "{}", text(&man.stderr));
    let page = text(&man.stdout);
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH rollcall 1"),
        "{page}"
    );
    assert!(page.contains(".TH rollcall 1"), "{page}");
    assert!(
        page.contains(".SH SUBCOMMANDS") || page.contains("rollcall\\-init"),
        "{page}"
    );
    let run = text(&rollcall(dir.path(), &["man", "run"]).stdout);
    assert!(run.contains(".TH rollcall-run 1"), "{run}");
    assert!(run.contains("accept\\-removals"), "{run}");
    let unknown = rollcall(dir.path(), &["man", "frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("no command `frobnicate`"));
}

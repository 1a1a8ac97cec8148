//! `rollcall config check` and configuration errors, through the real binary.

use assert_cmd::Command;

fn rollcall() -> Command {
    let mut command = Command::cargo_bin("rollcall").expect("the rollcall binary is built");
    command.env_remove("ROLLCALL_CONFIG").env_remove("RUST_LOG");
    command
}

fn write_config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollcall.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn config_check_prints_effective_configuration_with_defaults() {
    let (_dir, path) = write_config("[state]\nurl = \"sqlite://state.db\"\n");
    let output = rollcall()
        .args(["config", "check"])
        .env("ROLLCALL_CONFIG", &path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = stdout(&output);
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(stdout.contains("max_removals_per_run = 500"), "{stdout}");
    assert!(stdout.contains("plan_ttl = \"1h\""), "{stdout}");
    let state = path.parent().unwrap().join("state.db");
    assert!(
        stdout.contains(&format!("url = \"sqlite://{}\"", state.display())),
        "{stdout}"
    );
}

#[test]
fn config_flag_wins_over_the_environment() {
    let (_dir, good) = write_config("");
    let output = rollcall()
        .args(["--config", good.to_str().unwrap(), "config", "check"])
        .env("ROLLCALL_CONFIG", "/nonexistent/rollcall.toml")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn missing_config_file_exits_2_naming_it() {
    let output = rollcall()
        .args(["--config", "/nonexistent/rollcall.toml", "config", "check"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr(&output);
    assert!(
        stderr.contains("/nonexistent/rollcall.toml: no configuration file there"),
        "{stderr}"
    );
    assert!(stderr.contains("`rollcall init`"), "{stderr}");
}

#[test]
fn unknown_key_exits_2_naming_file_line_and_key() {
    let (_dir, path) = write_config("[guard]\nmax_removals_per_run = 10\nmax_removal = 3\n");
    let output = rollcall()
        .args(["config", "check"])
        .env("ROLLCALL_CONFIG", &path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr(&output);
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("unknown field `max_removal`"), "{stderr}");
    assert!(stdout(&output).is_empty(), "nothing is printed as valid");
}

#[test]
fn unset_secret_variable_exits_2_naming_key_and_variable() {
    let (_dir, path) = write_config(
        "[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"ROLLCALL_TEST_UNSET_SECRET\"\n",
    );
    let output = rollcall()
        .args(["config", "check"])
        .env("ROLLCALL_CONFIG", &path)
        .env_remove("ROLLCALL_TEST_UNSET_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr(&output);
    assert!(stderr.contains("`graph.client_secret_env`"), "{stderr}");
    assert!(
        stderr.contains("ROLLCALL_TEST_UNSET_SECRET is not set"),
        "{stderr}"
    );
}

#[test]
fn secrets_from_the_environment_are_never_printed() {
    let (_dir, path) = write_config(
        "[state]\nurl_env = \"ROLLCALL_TEST_STATE_URL\"\n[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"ROLLCALL_TEST_SECRET\"\n",
    );
    let output = rollcall()
        .args(["config", "check"])
        .env("ROLLCALL_CONFIG", &path)
        .env(
            "ROLLCALL_TEST_STATE_URL",
            "postgres://rollcall:pg-topsecret@db/rollcall",
        )
        .env("ROLLCALL_TEST_SECRET", "graph-topsecret")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let all = format!("{}{}", stdout(&output), stderr(&output));
    assert!(!all.contains("topsecret"), "{all}");
    assert!(
        all.contains("url_env = \"ROLLCALL_TEST_STATE_URL\""),
        "{all}"
    );
    assert!(
        all.contains("client_secret_env = \"ROLLCALL_TEST_SECRET\""),
        "{all}"
    );
}

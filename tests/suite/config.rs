//! `rollcall config check` and configuration errors, through the real binary.

use assert_cmd::Command;

fn rollcall() -> Command {
    Command::cargo_bin("rollcall").expect("the rollcall binary is built")
}

#[test]
fn config_check_prints_effective_configuration_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollcall.toml");
    std::fs::write(&path, "[state]\nurl = \"sqlite://state.db\"\n").unwrap();
    let out = rollcall()
        .args(["config", "check"])
        .env("ROLLCALL_CONFIG", &path)
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("max_removals_per_run = 500"), "{stdout}");
    assert!(stdout.contains("plan_ttl = \"1h\""), "{stdout}");
}

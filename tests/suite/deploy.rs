//! The deployment recipes in `deploy/`: the example configuration and the one the
//! Kubernetes ConfigMap embeds pass `config check` through the binary, the Kubernetes YAML
//! parses and agrees with itself, the systemd units pass `systemd-analyze verify`, and every
//! rollcall command line in the recipes and the runbook names a command and flags that
//! `rollcall --help` lists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde::Deserialize;
use serde_json::Value;

/// The subcommands the recipes are expected to call; a recipe naming another one (or one of
/// these disappearing) is a change this test should make someone look at.
const RECIPE_COMMANDS: [&str; 3] = ["run", "rebuild", "serve"];

/// Commands the recipes may name before the binary has them (`serve` is being built).
const NOT_YET_LANDED: [&str; 1] = ["serve"];

/// rollcall's global options that take a value.
const GLOBAL_OPTIONS_WITH_VALUE: [&str; 2] = ["--config", "--log-format"];

/// The systemd units, in the order `systemd-analyze verify` gets them.
const UNITS: [&str; 5] = [
    "rollcall-run.service",
    "rollcall-run.timer",
    "rollcall-rebuild.service",
    "rollcall-rebuild.timer",
    "rollcall-serve.service",
];

/// Where the systemd units and the crontab expect the binary.
const INSTALLED_BINARY: &str = "/usr/local/bin/rollcall";

fn rollcall() -> Command {
    let mut command = Command::cargo_bin("rollcall").expect("the rollcall binary is built");
    command.env_remove("ROLLCALL_CONFIG").env_remove("RUST_LOG");
    command
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(relative: &str) -> String {
    let path = deploy_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every `*_env` key of a configuration, as (dotted key, variable name).
fn env_keys(config: &toml::Value) -> Vec<(String, String)> {
    fn walk(value: &toml::Value, at: &str, found: &mut Vec<(String, String)>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    let here = if at.is_empty() {
                        key.clone()
                    } else {
                        format!("{at}.{key}")
                    };
                    match value {
                        toml::Value::String(name) if key.ends_with("_env") => {
                            found.push((here, name.clone()));
                        }
                        _ => walk(value, &here, found),
                    }
                }
            }
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{at}[{i}]"), found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(config, "", &mut found);
    found
}

/// A stand-in value of the right shape for the secret behind a `*_env` key.
fn dummy_secret(key: &str) -> &'static str {
    if key.ends_with("webhook_url_env") {
        "https://hooks.example.invalid/rollcall"
    } else if key.ends_with("url_env") {
        "postgres://rollcall:dummy-password@db.example.invalid:5432/rollcall"
    } else {
        "dummy-client-secret"
    }
}

/// `rollcall --config PATH config check` with the given environment.
fn config_check(path: &Path, env: &BTreeMap<String, String>) -> Output {
    let mut command = rollcall();
    command.args(["--config", path.to_str().unwrap(), "config", "check"]);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

#[test]
fn example_config_passes_config_check_with_its_secrets_set() {
    let text = read("rollcall.toml");
    let config: toml::Value = toml::from_str(&text).unwrap();
    for section in [
        "state", "graph", "guard", "schedule", "serve", "notify", "family", "source", "override",
    ] {
        assert!(
            config.get(section).is_some(),
            "deploy/rollcall.toml shows every section; [{section}] is missing"
        );
    }
    let state = &config["state"];
    assert!(
        state.get("url").is_none() && state.get("url_env").is_some(),
        "the example keeps its state in PostgreSQL/MariaDB through url_env: {state:?}"
    );

    let keys = env_keys(&config);
    assert!(
        keys.len() >= 4,
        "state, graph, notify and a source: {keys:?}"
    );
    let env: BTreeMap<String, String> = keys
        .iter()
        .map(|(key, name)| (name.clone(), dummy_secret(key).to_owned()))
        .collect();
    let path = deploy_dir().join("rollcall.toml");
    let output = config_check(&path, &env);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = stdout(&output);
    assert!(printed.contains("valid"), "{printed}");
    assert!(
        !printed.contains("dummy-password") && !printed.contains("dummy-client-secret"),
        "secrets stay redacted: {printed}"
    );

    // Each variable really is needed: without it the check fails, naming the key.
    for (key, name) in &keys {
        let mut missing = env.clone();
        missing.remove(name);
        let output = config_check(&path, &missing);
        assert_eq!(output.status.code(), Some(2), "{key} without {name}");
        assert!(
            stderr(&output).contains(name.as_str()),
            "{}",
            stderr(&output)
        );
    }
}

/// Every YAML document in deploy/kubernetes, with the file it came from.
fn kubernetes_documents() -> Vec<(String, Value)> {
    yaml_documents(&deploy_dir().join("kubernetes"))
}

/// Every YAML document in a folder (not its subfolders), with the file it came from.
fn yaml_documents(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds YAML files", dir.display());
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (i, document) in serde_norway::Deserializer::from_str(&text).enumerate() {
            let value = Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{name}, document {}: {e}", i + 1));
            if value.is_null() {
                continue;
            }
            for field in ["/apiVersion", "/kind", "/metadata/name"] {
                assert!(
                    value.pointer(field).and_then(Value::as_str).is_some(),
                    "{name}, document {}: no {field}",
                    i + 1
                );
            }
            documents.push((name.clone(), value));
        }
    }
    documents
}

fn of_kind<'a>(documents: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    documents
        .iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(_, d)| d)
        .collect()
}

/// The one document of a kind.
fn only<'a>(documents: &'a [(String, Value)], kind: &str) -> &'a Value {
    let found = of_kind(documents, kind);
    assert_eq!(found.len(), 1, "exactly one {kind}");
    found[0]
}

/// The pod specs of every CronJob and Deployment, named.
fn pod_specs(documents: &[(String, Value)]) -> Vec<(String, &Value)> {
    let mut specs = Vec::new();
    for (file, document) in documents {
        let pointer = match document["kind"].as_str() {
            Some("CronJob") => "/spec/jobTemplate/spec/template/spec",
            Some("Deployment") => "/spec/template/spec",
            _ => continue,
        };
        let name = format!("{file}: {}", document["metadata"]["name"]);
        let spec = document
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{name} has no {pointer}"));
        specs.push((name, spec));
    }
    specs
}

fn the_container<'a>(name: &str, spec: &'a Value) -> &'a Value {
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{name}: one container");
    &containers[0]
}

fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .expect("the container passes args to the image's rollcall entrypoint")
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// The rollcall.toml embedded in the ConfigMap.
fn configmap_toml(documents: &[(String, Value)]) -> String {
    only(documents, "ConfigMap")["data"]["rollcall.toml"]
        .as_str()
        .expect("the ConfigMap holds rollcall.toml")
        .to_owned()
}

#[test]
fn kubernetes_cronjobs_run_and_rebuild_one_at_a_time() {
    let documents = kubernetes_documents();
    let cronjobs = of_kind(&documents, "CronJob");
    let mut commands = BTreeSet::new();
    for cronjob in &cronjobs {
        let name = &cronjob["metadata"]["name"];
        assert_eq!(cronjob["spec"]["concurrencyPolicy"], "Forbid", "{name}");
        assert!(
            cronjob["spec"]["startingDeadlineSeconds"]
                .as_u64()
                .is_some(),
            "{name}: a missed tick is dropped, not caught up"
        );
        let job = &cronjob["spec"]["jobTemplate"]["spec"];
        assert_eq!(
            job["backoffLimit"], 0,
            "{name}: the next tick retries, not the Job"
        );
        assert_eq!(job["template"]["spec"]["restartPolicy"], "Never", "{name}");
        let container = the_container(&name.to_string(), &job["template"]["spec"]);
        commands.insert(args(container).last().unwrap().clone());
    }
    assert_eq!(
        commands,
        BTreeSet::from(["rebuild".to_owned(), "run".to_owned()]),
        "one CronJob runs `run`, another `rebuild`"
    );
}

#[test]
fn kubernetes_serve_probes_healthz_on_the_configmaps_listen_port() {
    let documents = kubernetes_documents();
    let config: toml::Value = toml::from_str(&configmap_toml(&documents)).unwrap();
    let listen: std::net::SocketAddr = config["serve"]["listen"]
        .as_str()
        .expect("the ConfigMap sets [serve].listen")
        .parse()
        .unwrap();
    assert!(
        listen.ip().is_unspecified(),
        "the kubelet probes the pod's address, so serve must not listen on loopback only: {listen}"
    );
    let port = u64::from(listen.port());

    let deployment = only(&documents, "Deployment");
    let spec = &deployment["spec"]["template"]["spec"];
    let container = the_container("Deployment", spec);
    assert_eq!(args(container).last().map(String::as_str), Some("serve"));
    let ports = container["ports"].as_array().unwrap();
    let resolve = |port: &Value| -> u64 {
        match port {
            Value::Number(n) => n.as_u64().unwrap(),
            Value::String(name) => ports
                .iter()
                .find(|p| p["name"] == name.as_str())
                .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
                .as_u64()
                .unwrap(),
            other => panic!("a port is a number or a name: {other}"),
        }
    };
    for probe in ["livenessProbe", "readinessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], "/healthz", "{probe}");
        assert_eq!(resolve(&get["port"]), port, "{probe} port");
    }

    let service = only(&documents, "Service");
    assert_eq!(
        service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"],
        "the Service selects the Deployment's pods"
    );
    let service_ports = service["spec"]["ports"].as_array().unwrap();
    assert!(
        service_ports
            .iter()
            .any(|p| resolve(&p["targetPort"]) == port),
        "the Service exposes the metrics port"
    );
    let annotations = &service["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(annotations["prometheus.io/port"], port.to_string());
}

#[test]
fn kubernetes_pods_run_as_non_root_on_a_read_only_root_with_config_and_secret_mounted() {
    let documents = kubernetes_documents();
    let configmap = only(&documents, "ConfigMap")["metadata"]["name"].clone();
    let secret = only(&documents, "Secret");
    let specs = pod_specs(&documents);
    assert_eq!(specs.len(), 3, "two CronJobs and a Deployment");
    for (name, spec) in specs {
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
        let container = the_container(&name, spec);
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
        let args = args(container);
        let config = args.iter().position(|a| a == "--config").unwrap();
        let config_path = Path::new(&args[config + 1]);
        let mount = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| Path::new(m["mountPath"].as_str().unwrap()) == config_path.parent().unwrap())
            .unwrap_or_else(|| panic!("{name}: nothing mounted where --config points"));
        let volume = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        assert_eq!(volume["configMap"]["name"], configmap, "{name}");
        assert_eq!(
            container["envFrom"][0]["secretRef"]["name"], secret["metadata"]["name"],
            "{name}: secrets come from the Secret"
        );
    }
}

#[test]
fn kubernetes_configmap_config_passes_config_check_with_the_secret_examples_values() {
    let documents = kubernetes_documents();
    let text = configmap_toml(&documents);
    let config: toml::Value = toml::from_str(&text).unwrap();
    assert!(
        config["state"].get("url").is_none(),
        "state lives in PostgreSQL/MariaDB (url_env), never an SQLite file on a pod's disk"
    );
    let secret = only(&documents, "Secret");
    let values: BTreeMap<String, String> = secret["stringData"]
        .as_object()
        .expect("the example Secret uses stringData")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    for (key, name) in env_keys(&config) {
        assert!(
            values.contains_key(&name),
            "{key} names {name}, which the example Secret does not hold"
        );
    }
    let state = &values[config["state"]["url_env"].as_str().unwrap()];
    assert!(
        state.starts_with("postgres://") || state.starts_with("mysql://"),
        "{state}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollcall.toml");
    std::fs::write(&path, &text).unwrap();
    let output = config_check(&path, &values);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// A unit file as (section, key, value) lines, failing on anything else.
fn parse_unit(name: &str, text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{name}:{}: not `Key=Value`: {line}", i + 1));
        assert!(
            !section.is_empty(),
            "{name}:{}: a key before any section",
            i + 1
        );
        entries.push((
            section.clone(),
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    entries
}

fn unit_value<'a>(
    entries: &'a [(String, String, String)],
    section: &str,
    key: &str,
) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect()
}

#[test]
fn systemd_units_declare_schedule_exit_codes_and_hardening() {
    let units: BTreeMap<&str, Vec<(String, String, String)>> = UNITS
        .iter()
        .map(|unit| (*unit, parse_unit(unit, &read(&format!("systemd/{unit}")))))
        .collect();
    for service in [
        "rollcall-run.service",
        "rollcall-rebuild.service",
        "rollcall-serve.service",
    ] {
        let unit = &units[service];
        let one = |key: &str| -> &str {
            let values = unit_value(unit, "Service", key);
            assert_eq!(values.len(), 1, "{service}: one {key}=, got {values:?}");
            values[0]
        };
        assert_eq!(one("User"), "rollcall", "{service}");
        assert_eq!(one("EnvironmentFile"), "/etc/rollcall/env", "{service}");
        assert_eq!(one("StateDirectory"), "rollcall", "{service}");
        assert_eq!(one("ProtectSystem"), "strict", "{service}");
        for key in ["NoNewPrivileges", "PrivateTmp", "ProtectHome"] {
            assert_eq!(one(key), "yes", "{service}: {key}");
        }
        assert_eq!(one("KillSignal"), "SIGTERM", "{service}");
        assert!(one("ExecStart").starts_with(INSTALLED_BINARY), "{service}");
        assert!(
            unit_value(unit, "Service", "ProtectProc").is_empty(),
            "{service}: the lease checks /proc/PID of a holder that may be another user's"
        );
    }
    for oneshot in ["rollcall-run.service", "rollcall-rebuild.service"] {
        let unit = &units[oneshot];
        assert_eq!(
            unit_value(unit, "Service", "Type"),
            ["oneshot"],
            "{oneshot}"
        );
        assert_eq!(
            unit_value(unit, "Service", "SuccessExitStatus"),
            ["6"],
            "{oneshot}: skipped (paused, lease held) is not a failure"
        );
    }
    let serve = &units["rollcall-serve.service"];
    assert_eq!(unit_value(serve, "Service", "Restart"), ["on-failure"]);
    assert!(unit_value(serve, "Service", "ExecReload")[0].contains("kill -HUP $MAINPID"));
    assert_eq!(
        unit_value(serve, "Install", "WantedBy"),
        ["multi-user.target"],
        "systemctl enable needs an [Install] section"
    );

    let run_timer = &units["rollcall-run.timer"];
    assert_eq!(unit_value(run_timer, "Timer", "OnCalendar"), ["*:0/15"]);
    assert_eq!(unit_value(run_timer, "Timer", "Persistent"), ["false"]);
    assert_eq!(
        unit_value(run_timer, "Timer", "RandomizedDelaySec").len(),
        1
    );
    for timer in ["rollcall-run.timer", "rollcall-rebuild.timer"] {
        let service = timer.replace(".timer", ".service");
        assert_eq!(
            unit_value(&units[timer], "Timer", "Unit"),
            [service.as_str()]
        );
        assert_eq!(
            unit_value(&units[timer], "Install", "WantedBy"),
            ["timers.target"]
        );
    }
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        // The units' parse check (the test above) still holds them to their shape.
        eprintln!("systemd-analyze is not installed: only the parse check ran");
        return;
    };
    // verify insists that ExecStart's binary exists: point the copies at the one under test.
    let dir = tempfile::tempdir().unwrap();
    for unit in UNITS {
        let text = read(&format!("systemd/{unit}"))
            .replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_rollcall"));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let output = std::process::Command::new(analyze)
        .arg("verify")
        .arg("--man=no")
        .args(UNITS.iter().map(|unit| dir.path().join(unit)))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    // Unknown keys and unparsable values are only warnings to verify: none is acceptable.
    assert_eq!(stderr(&output), "", "systemd-analyze verify warned");
}

/// The subcommands `rollcall --help` lists.
fn listed_commands() -> BTreeSet<String> {
    let output = rollcall().arg("--help").output().unwrap();
    assert!(output.status.success());
    stdout(&output)
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// A rollcall invocation split into its global options, its command, and the rest.
#[derive(Debug)]
struct Invocation {
    recipe: String,
    globals: Vec<String>,
    command: String,
    rest: Vec<String>,
}

/// Splits the words after `rollcall`; None when no command word follows the options.
fn invocation(recipe: &str, words: &[&str]) -> Option<Invocation> {
    let mut globals = Vec::new();
    let mut words = words.iter().map(|w| w.to_string());
    while let Some(word) = words.next() {
        if GLOBAL_OPTIONS_WITH_VALUE.contains(&word.as_str()) {
            globals.push(word);
            globals.push(words.next()?);
        } else if word.starts_with('-') {
            globals.push(word);
        } else {
            return Some(Invocation {
                recipe: recipe.to_owned(),
                globals,
                command: word,
                rest: words.collect(),
            });
        }
    }
    None
}

/// The words after `rollcall` up to the end of that shell command.
fn shell_words_after_rollcall(line: &str) -> Vec<Vec<&str>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut found = Vec::new();
    for (i, word) in words.iter().enumerate() {
        // In command position only: not `useradd … rollcall`, `-g rollcall`, SQL.
        let command_position = i == 0
            || matches!(
                words[i - 1],
                "{" | "(" | "|" | "&&" | "||" | "--" | "exec" | "sudo" | "then" | "do"
            )
            || words[i - 1].ends_with(';');
        if command_position && (*word == "rollcall" || *word == INSTALLED_BINARY) {
            let mut command = Vec::new();
            for next in &words[i + 1..] {
                let end = next.ends_with(';') || matches!(*next, "|" | "&&" | "||" | "}" | "2>&1");
                let word = next.trim_end_matches(';');
                if !word.is_empty() && !matches!(word, "|" | "&&" | "||" | "}" | "2>&1") {
                    command.push(word);
                }
                if end {
                    break;
                }
            }
            found.push(command);
        }
    }
    found
}

/// Every rollcall command line the recipes run.
fn recipe_invocations() -> Vec<Invocation> {
    let mut found = Vec::new();
    for unit in UNITS.iter().filter(|u| u.ends_with(".service")) {
        for (_, key, value) in parse_unit(unit, &read(&format!("systemd/{unit}"))) {
            if key == "ExecStart" {
                let words: Vec<&str> = value.split_whitespace().collect();
                assert_eq!(words[0], INSTALLED_BINARY, "{unit}");
                found.push(invocation(unit, &words[1..]).expect("ExecStart names a command"));
            }
        }
    }
    let crontab = read("cron/rollcall.crontab");
    let mut scheduled = 0;
    for line in crontab.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (line.contains('=') && !line.contains(' ')) {
            continue;
        }
        for words in shell_words_after_rollcall(line) {
            found.push(invocation("rollcall.crontab", &words).expect("a command"));
            scheduled += 1;
        }
    }
    assert_eq!(scheduled, 2, "the crontab runs `run` and `rebuild`");
    for (file, document) in kubernetes_documents() {
        let Some(spec) = pod_specs(&[(file.clone(), document.clone())])
            .pop()
            .map(|(_, s)| s.clone())
        else {
            continue;
        };
        let container = the_container(&file, &spec);
        let args = args(container);
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let recipe = format!("{file}: {}", document["metadata"]["name"]);
        found.push(invocation(&recipe, &words).expect("args name a command"));
    }
    found
}

#[test]
fn recipes_call_commands_that_rollcall_help_lists() {
    let listed = listed_commands();
    let invocations = recipe_invocations();
    let named: BTreeSet<&str> = invocations.iter().map(|i| i.command.as_str()).collect();
    assert_eq!(named, BTreeSet::from(RECIPE_COMMANDS), "{invocations:#?}");
    for command in RECIPE_COMMANDS {
        assert!(
            listed.contains(command) || NOT_YET_LANDED.contains(&command),
            "`rollcall --help` does not list `{command}`: {listed:?}"
        );
    }
    for call in &invocations {
        if !listed.contains(&call.command) {
            continue;
        }
        // The whole line, flags included, must parse: `--help` at the end proves it without
        // running anything.
        let output = rollcall()
            .args(&call.globals)
            .arg(&call.command)
            .args(&call.rest)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}: {call:?}: {}",
            call.recipe,
            stderr(&output)
        );
    }
}

/// The code in a Markdown text: each line of a fenced block, and each inline code span.
fn code_snippets(markdown: &str) -> Vec<String> {
    let mut snippets = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            snippets.push(line.to_owned());
        } else {
            snippets.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    snippets
}

#[test]
fn runbook_commands_and_flags_exist() {
    let listed = listed_commands();
    let runbook = read("RUNBOOK.md");
    let mut checked = 0;
    let mut help_of: BTreeMap<String, String> = BTreeMap::new();
    for snippet in code_snippets(&runbook) {
        for words in shell_words_after_rollcall(&snippet) {
            let Some(call) = invocation("RUNBOOK.md", &words) else {
                continue;
            };
            // `sudo -u rollcall …`, `<command>` placeholders, SQL: not rollcall command lines.
            if !call
                .command
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-')
            {
                continue;
            }
            let line = &snippet;
            if !listed.contains(&call.command) {
                assert!(
                    NOT_YET_LANDED.contains(&call.command.as_str()),
                    "RUNBOOK.md: `rollcall {}` is not a command ({line})",
                    call.command
                );
                continue;
            }
            let mut path = vec![call.command.clone()];
            if call.command == "config" {
                path.push(call.rest.first().cloned().unwrap_or_default());
            }
            let help = help_of.entry(path.join(" ")).or_insert_with(|| {
                let output = rollcall().args(&path).arg("--help").output().unwrap();
                assert!(output.status.success(), "rollcall {path:?} --help");
                stdout(&output)
            });
            for flag in call
                .rest
                .iter()
                .chain(&call.globals)
                .filter(|w| w.starts_with("--"))
            {
                let flag = flag.split('=').next().unwrap();
                assert!(
                    help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                    "RUNBOOK.md: `rollcall {}` has no {flag} ({line})",
                    call.command
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "the runbook shows its commands ({checked} found)"
    );
}

#[test]
fn containerfile_builds_locked_in_rust_and_runs_as_a_non_root_user() {
    let text = read("Containerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(froms[0].contains("rust:1-bookworm") && froms[0].ends_with(" AS build"));
    assert!(froms[1].contains("debian:bookworm-slim"));
    assert!(text.contains("cargo build --release --locked"));
    assert!(text.contains("--features odbc") && text.contains("unixodbc-dev"));
    assert!(text.contains("ca-certificates") && text.contains("unixodbc"));
    assert!(text.contains(r#"ENTRYPOINT ["/usr/local/bin/rollcall"]"#));

    let user = text
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    let uid: u64 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric uid, for runAsNonRoot");
    assert_ne!(uid, 0);
    for (name, spec) in pod_specs(&kubernetes_documents()) {
        assert_eq!(
            spec["securityContext"]["runAsUser"], uid,
            "{name}: the image's user"
        );
    }

    // What the build needs is copied in: every target Cargo.toml names and every migrations
    // folder the binary embeds.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copied: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    for path in &copied {
        assert!(root.join(path).exists(), "COPY {path}: no such path");
    }
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let mut needed = vec!["Cargo.toml".to_owned(), "Cargo.lock".to_owned()];
    needed.push(manifest["lib"]["path"].as_str().unwrap().to_owned());
    for bin in manifest["bin"].as_array().unwrap() {
        needed.push(bin["path"].as_str().unwrap().to_owned());
    }
    for bench in manifest
        .get("bench")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
    {
        needed.push(format!("benches/{}.rs", bench["name"].as_str().unwrap()));
    }
    needed.push("migrations".to_owned());
    for path in needed {
        assert!(
            copied
                .iter()
                .any(|c| path == *c || Path::new(&path).starts_with(c)),
            "the Containerfile does not copy {path}"
        );
    }
}

/// configmap.yaml's rollcall.toml with its `[graph]` section replaced by a sign-in
/// variant's `graph.toml`.
fn with_variant_graph(variant: &str) -> toml::Table {
    let mut config: toml::Table = toml::from_str(&configmap_toml(&kubernetes_documents())).unwrap();
    let graph: toml::Table =
        toml::from_str(&read(&format!("kubernetes/{variant}/graph.toml"))).unwrap();
    config.insert("graph".to_owned(), graph["graph"].clone());
    config
}

/// The stand-in values for every `*_env` key of `config`.
fn dummy_env(config: &toml::Value) -> BTreeMap<String, String> {
    env_keys(config)
        .iter()
        .map(|(key, name)| (name.clone(), dummy_secret(key).to_owned()))
        .collect()
}

/// Writes a configuration to a file of its own and runs `config check` on it.
fn check_config(
    config: &toml::Table,
    env: &BTreeMap<String, String>,
) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollcall.toml");
    std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
    (config_check(&path, env), dir)
}

const CREDENTIAL_KEYS: [&str; 4] = [
    "client_secret_env",
    "client_secret_file",
    "certificate_path",
    "client_assertion_file",
];

#[test]
fn kubernetes_workload_identity_variant_has_no_secret_and_signs_in_from_the_webhooks_variables() {
    let documents = yaml_documents(&deploy_dir().join("kubernetes/workload-identity"));
    assert!(
        of_kind(&documents, "Secret").is_empty(),
        "no Secret: nothing to keep secret"
    );
    let account = only(&documents, "ServiceAccount");
    let annotations = &account["metadata"]["annotations"];
    let client_id = annotations["azure.workload.identity/client-id"]
        .as_str()
        .expect("the service account names the app registration");
    let tenant_id = annotations["azure.workload.identity/tenant-id"]
        .as_str()
        .unwrap();
    let specs = pod_specs(&documents);
    assert!(!specs.is_empty());
    for (file, document) in &documents {
        if document["kind"] == "CronJob" {
            assert_eq!(
                document["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"],
                "true",
                "{file}: the webhook injects only into labelled pods"
            );
        }
    }
    for (name, spec) in specs {
        assert_eq!(
            spec["serviceAccountName"], account["metadata"]["name"],
            "{name}"
        );
        assert!(spec.get("initContainers").is_none(), "{name}");
    }

    let config = with_variant_graph("workload-identity");
    let graph = config["graph"].as_table().unwrap();
    for key in CREDENTIAL_KEYS.iter().chain(&["tenant_id", "client_id"]) {
        assert!(
            !graph.contains_key(*key),
            "the webhook's variables give {key}"
        );
    }
    let mut env = dummy_env(&toml::Value::Table(config.clone()));
    let (output, _dir) = check_config(&config, &env);
    assert_eq!(
        output.status.code(),
        Some(2),
        "no credential without the webhook"
    );
    assert!(
        stderr(&output).contains("no credential"),
        "{}",
        stderr(&output)
    );

    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "header.claims.signature").unwrap();
    for (name, value) in [
        ("AZURE_FEDERATED_TOKEN_FILE", token.path().to_str().unwrap()),
        ("AZURE_CLIENT_ID", client_id),
        ("AZURE_TENANT_ID", tenant_id),
        ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/"),
    ] {
        env.insert(name.to_owned(), value.to_owned());
    }
    let (output, _dir) = check_config(&config, &env);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stdout(&output).contains("header.claims.signature"));
}

#[test]
fn kubernetes_certificate_variant_copies_the_key_to_a_file_only_rollcall_reads() {
    let documents = yaml_documents(&deploy_dir().join("kubernetes/certificate"));
    let secret = only(&documents, "Secret");
    let config = with_variant_graph("certificate");
    let certificate_path = PathBuf::from(config["graph"]["certificate_path"].as_str().unwrap());
    let file_name = certificate_path.file_name().unwrap().to_str().unwrap();
    assert!(
        secret["stringData"][file_name]
            .as_str()
            .unwrap()
            .contains("BEGIN PRIVATE KEY"),
        "the Secret holds {file_name}"
    );
    let specs = pod_specs(&documents);
    assert!(!specs.is_empty());
    for (name, spec) in specs {
        let volumes = spec["volumes"].as_array().unwrap();
        let volume = |volume: &str| {
            volumes
                .iter()
                .find(|v| v["name"] == volume)
                .unwrap_or_else(|| panic!("{name}: no volume {volume}"))
        };
        let init = &spec["initContainers"][0];
        let command: Vec<&str> = init["command"]
            .as_array()
            .expect("the init container copies the key")
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert_eq!(&command[..3], ["/usr/bin/install", "-m", "0600"], "{name}");
        assert_eq!(
            Path::new(command[command.len() - 1]),
            certificate_path,
            "{name}"
        );
        let mount_of = |container: &Value, path: &Path| -> String {
            container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
                .unwrap_or_else(|| panic!("{name}: nothing mounted at {}", path.display()))["name"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let source = Path::new(command[command.len() - 2]);
        assert_eq!(
            volume(&mount_of(init, source))["secret"]["secretName"],
            secret["metadata"]["name"],
            "{name}: the copy comes from the Secret"
        );
        let copy = mount_of(init, &certificate_path);
        assert_eq!(
            volume(&copy)["emptyDir"]["medium"],
            "Memory",
            "{name}: never on disk"
        );
        assert_eq!(
            mount_of(the_container(&name, spec), &certificate_path),
            copy,
            "{name}: rollcall reads the private copy"
        );
        assert_eq!(
            spec["securityContext"]["fsGroup"],
            spec["securityContext"]["runAsUser"]
        );
    }

    // The configuration passes config check with such a file, and refuses it group-readable.
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join(file_name);
    let certificate =
        crate::common::certificates::current_certificate(crate::common::certificates::Key::App);
    let key = crate::common::certificates::key_pem(crate::common::certificates::Key::App);
    crate::common::certificates::write_private(&pem, &format!("{certificate}{key}"), 0o600);
    let mut config = config;
    config["graph"].as_table_mut().unwrap().insert(
        "certificate_path".to_owned(),
        pem.display().to_string().into(),
    );
    let env = dummy_env(&toml::Value::Table(config.clone()));
    let (output, _dir) = check_config(&config, &env);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    crate::common::certificates::write_private(&pem, &format!("{certificate}{key}"), 0o640);
    let (output, _dir) = check_config(&config, &env);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("chmod 600"), "{}", stderr(&output));
}

#[test]
fn systemd_certificate_drop_in_passes_the_key_through_load_credential() {
    let text = read("systemd/rollcall-certificate.conf");
    let entries = parse_unit("rollcall-certificate.conf", &text);
    let loaded = unit_value(&entries, "Service", "LoadCredential");
    assert_eq!(loaded.len(), 1, "{entries:?}");
    let (name, source) = loaded[0].split_once(':').expect("LoadCredential=ID:PATH");
    assert!(source.starts_with("/etc/rollcall/"), "{source}");
    let setting = format!("certificate_path = \"$CREDENTIALS_DIRECTORY/{name}\"");
    assert!(text.contains(&setting), "the drop-in shows `{setting}`");

    // deploy/rollcall.toml with that setting in place of the client secret.
    let mut config: toml::Table = toml::from_str(&read("rollcall.toml")).unwrap();
    let graph = config["graph"].as_table_mut().unwrap();
    graph.remove("client_secret_env");
    graph.insert(
        "certificate_path".to_owned(),
        format!("$CREDENTIALS_DIRECTORY/{name}").into(),
    );
    let mut env = dummy_env(&toml::Value::Table(config.clone()));
    let (output, _dir) = check_config(&config, &env);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("CREDENTIALS_DIRECTORY is not set"),
        "{}",
        stderr(&output)
    );

    // systemd's copy: mode 0400 in the unit's credentials folder.
    let credentials = tempfile::tempdir().unwrap();
    let certificate =
        crate::common::certificates::current_certificate(crate::common::certificates::Key::App);
    let key = crate::common::certificates::key_pem(crate::common::certificates::Key::App);
    crate::common::certificates::write_private(
        &credentials.path().join(name),
        &format!("{certificate}{key}"),
        0o400,
    );
    env.insert(
        "CREDENTIALS_DIRECTORY".to_owned(),
        credentials.path().display().to_string(),
    );
    let (output, _dir) = check_config(&config, &env);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

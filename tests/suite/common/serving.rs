//! A `rollcall serve` process driven as a black box: started with JSON logs, its log lines
//! collected, its HTTP endpoints read, signals sent.

use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use super::tenant::Tenant;

/// How long a test waits for something `serve` should do within a few ticks.
pub const PATIENCE: Duration = Duration::from_secs(40);

/// A `rollcall serve` process, its JSON log lines collected as they come.
pub struct Serving {
    pub child: tokio::process::Child,
    pub pid: u32,
    logs: Arc<Mutex<Vec<Value>>>,
    /// The task collecting the log lines; it ends when serve's stderr closes.
    reader: Option<tokio::task::JoinHandle<()>>,
    /// The address it listens on, from its start line.
    pub address: String,
    http: reqwest::Client,
}

impl Serving {
    /// Starts `rollcall serve` and waits until it listens.
    pub async fn start(tenant: &Tenant) -> Serving {
        let mut child = tenant
            .command(&["--log-format", "json", "serve"])
            .spawn()
            .expect("`rollcall serve` starts");
        let pid = child.id().expect("serve runs");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let event =
                    serde_json::from_str(&line).unwrap_or_else(|_| json!({ "message": line }));
                sink.lock().unwrap().push(event);
            }
        });
        let mut serving = Serving {
            child,
            pid,
            logs,
            reader: Some(reader),
            address: String::new(),
            http: reqwest::Client::new(),
        };
        let started = serving.wait_logged("serving /healthz and /metrics").await;
        serving.address = started["address"]
            .as_str()
            .expect("the start line names the address")
            .to_owned();
        serving
    }

    /// The first log event whose message contains `needle`.
    pub fn logged(&self, needle: &str) -> Option<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .find(|e| e["message"].as_str().is_some_and(|m| m.contains(needle)))
            .cloned()
    }

    /// Waits for a log event whose message contains `needle`.
    pub async fn wait_logged(&mut self, needle: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(event) = self.logged(needle) {
                return event;
            }
            if let Some(status) = self.child.try_wait().expect("serve can be polled") {
                panic!(
                    "serve ended ({status}) before logging `{needle}`:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "serve never logged `{needle}`:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        let logs = self.logs.lock().unwrap();
        let lines: Vec<String> = logs.iter().map(Value::to_string).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `GET path`: the status and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let reply = self
            .http
            .get(format!("http://{}{path}", self.address))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = reply.status().as_u16();
        (status, reply.text().await.expect("the body is read"))
    }

    /// One sample of `/metrics`, by its name and labels as rendered (e.g.
    /// `rollcall_runs_total{kind="run",outcome="success"}`); 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200, "/metrics: {text}");
        sample_of(&text, sample)
    }

    pub fn signal(&self, name: &str) {
        let sent = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "{name} could not be sent");
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("serve can be polled")
            .is_none()
    }

    /// Waits for serve to exit, and for its last log lines to be collected.
    pub async fn exit(&mut self) -> ExitStatus {
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("serve did not exit:\n{}", self.log_text()))
            .expect("serve is waited for");
        if let Some(reader) = self.reader.take() {
            // The pipe closes with the process; lines written just before exit may still be
            // on their way to the collector.
            let _ = tokio::time::timeout(PATIENCE, reader).await;
        }
        status
    }

    /// The lease holder name of this process.
    pub fn holder_suffix(&self) -> String {
        format!(":{}", self.pid)
    }
}

/// One sample's value in a /metrics text, by its name and labels as rendered; 0 when absent.
pub fn sample_of(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |v| {
            v.parse().unwrap_or_else(|e| panic!("{sample} {v}: {e}"))
        })
}

//! Progress of a long step: a bar on a terminal, plain log lines otherwise (cron, systemd,
//! `--log-format json`).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a log line reports progress when there is no bar.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Progress of the current step.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    step: Mutex<Step>,
}

#[derive(Debug)]
struct Step {
    name: &'static str,
    total: u64,
    done: u64,
    logged: Instant,
}

impl Progress {
    /// A bar when stderr is a terminal and logs are for humans; log lines otherwise.
    pub fn new(human_terminal: bool) -> Progress {
        let bar = (human_terminal && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::hidden();
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>8} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
                )
                .expect("a valid progress template")
                .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            step: Mutex::new(Step {
                name: "",
                total: 0,
                done: 0,
                logged: Instant::now(),
            }),
        }
    }

    /// No progress shown at all (tests, `demo`'s own account).
    pub fn silent() -> Progress {
        Progress {
            bar: None,
            step: Mutex::new(Step {
                name: "",
                total: 0,
                done: 0,
                logged: Instant::now(),
            }),
        }
    }

    /// Starts a step of `total` units.
    pub fn start(&self, name: &'static str, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.reset();
            bar.set_length(total);
            bar.set_position(0);
            bar.set_message(name);
        }
        let mut step = self.step.lock().expect("progress lock");
        *step = Step {
            name,
            total,
            done: 0,
            logged: Instant::now(),
        };
    }

    /// Counts `n` more units done.
    pub fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        let mut step = self.step.lock().expect("progress lock");
        step.done += n;
        if step.logged.elapsed() >= LOG_EVERY {
            step.logged = Instant::now();
            tracing::info!(
                step = step.name,
                done = step.done,
                total = step.total,
                "progress"
            );
        }
    }

    /// Ends the step.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

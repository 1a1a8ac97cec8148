//! The retry policy, in one place: which failures are tried again, how long to wait first,
//! when to give up, and the throttle every request passes (GRAPH.md "Throttling").
//!
//! Throttling is expected, not an error: a 429 closes the [`Throttle`] for the whole client
//! (the app+tenant is one scope) until its `Retry-After` has passed, and only the total-time
//! cap ends a throttled request's retries. Faults (503/504, dropped connections, timeouts,
//! a group Graph has not replicated yet) count against the attempts cap as well.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::time::Instant;

/// How often and how long rollcall retries a Graph request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts per request when it keeps failing (throttling aside).
    pub max_attempts: u32,
    /// Most time from a request's first attempt to its last, throttling included.
    pub max_elapsed: Duration,
    /// The backoff cap after the first failure; it doubles with every further failure.
    pub base_delay: Duration,
    /// The largest backoff cap.
    pub max_delay: Duration,
    /// How long one HTTP attempt may take before it counts as a dropped connection.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    /// Production values: 8 attempts within 10 minutes, backoff from 0.5 s up to 30 s.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            max_elapsed: Duration::from_secs(600),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            request_timeout: Duration::from_secs(100),
        }
    }
}

/// Why an attempt did not succeed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fault {
    /// 429, with its `Retry-After` if it had one.
    Throttled(Option<Duration>),
    /// 503/504, with a `Retry-After` if it had one.
    Unavailable(Option<Duration>),
    /// No reply: connection refused or dropped, or the attempt timed out.
    NoReply,
    /// A write to a group Graph has not finished replicating (GRAPH.md "Changing members").
    NotReplicated,
}

/// One request's retry history.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempts {
    started: Instant,
    failures: u32,
    throttles: u32,
}

impl Attempts {
    /// A request about to be sent for the first time.
    pub(crate) fn start() -> Self {
        Self {
            started: Instant::now(),
            failures: 0,
            throttles: 0,
        }
    }

    /// Attempts that failed so far, throttled ones included.
    pub(crate) fn retries(&self) -> u32 {
        self.failures + self.throttles
    }
}

impl RetryPolicy {
    /// How long to wait before trying again after `fault`, or `None` to give up. For a
    /// throttled request the wait is the throttle's: the caller closes the [`Throttle`].
    pub(crate) fn next_delay(&self, attempts: &mut Attempts, fault: Fault) -> Option<Duration> {
        self.next_delay_with(attempts, fault, &mut rand::thread_rng())
    }

    fn next_delay_with(
        &self,
        attempts: &mut Attempts,
        fault: Fault,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        let delay = match fault {
            Fault::Throttled(retry_after) => {
                attempts.throttles += 1;
                retry_after.unwrap_or_else(|| self.backoff(attempts.throttles, rng))
            }
            Fault::Unavailable(_) | Fault::NoReply | Fault::NotReplicated => {
                attempts.failures += 1;
                if attempts.failures >= self.max_attempts {
                    return None;
                }
                match fault {
                    Fault::Unavailable(Some(retry_after)) => retry_after,
                    _ => self.backoff(attempts.failures, rng),
                }
            }
        };
        (attempts.started.elapsed() + delay <= self.max_elapsed).then_some(delay)
    }

    /// Exponential backoff with full jitter: anywhere from zero up to the `failures`-th cap.
    fn backoff(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let cap = self.backoff_cap(failures);
        Duration::from_secs_f64(rng.gen_range(0.0..=cap.as_secs_f64()))
    }

    /// `base_delay` doubled for every failure after the first, at most `max_delay`.
    fn backoff_cap(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.base_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }
}

/// Reads a `Retry-After` value: seconds, fractional ones included (`2.128`), or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(at.with_timezone(&chrono::Utc));
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The shared throttle: a gate no request passes while a `Retry-After` runs, and, once Graph
/// has pushed back or says it is near its limit, a window and a pace for the batched requests.
///
/// Graph charges throttled requests too (GRAPH.md), so sending a full load the moment the
/// gate opens is throttled again at once and digs the debt deeper. The window (requests per
/// round) halves after a throttled round and doubles after a clean one; while Graph reports
/// a bucket near its limit (`x-ms-throttle-limit-percentage`) and no pace is known yet, it
/// is one `$batch`, so the first 429s cost one batch and not a whole round. The pace spaces
/// rounds by the time Graph takes to grant one request, learnt from a batch's inner 429s:
/// their `Retry-After`s grow by that much from one throttled request to the next. After a
/// clean round the load decides: no percentage (under 80 % used) eases the pace, a high one
/// slows it a little so that a reserve is kept for the next round's burst, anything between
/// holds it. A run that keeps the bucket near its limit so goes at Graph's refill rate.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    state: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    open_at: Option<Instant>,
    window: Option<usize>,
    spacing: Option<Duration>,
    learnt: Option<Duration>,
    paced_until: Option<Instant>,
}

/// Below this, pacing is not worth a timer.
const MIN_SPACING: Duration = Duration::from_micros(100);
/// A learnt spacing beyond this is a misreading; Retry-After itself still applies.
const MAX_SPACING: Duration = Duration::from_secs(10);
/// The window while Graph is near its limit and no pace is known: one `$batch`.
const NEAR_LIMIT_WINDOW: usize = 20;
/// From this share of a bucket in use (`x-ms-throttle-limit-percentage`), the pace slows.
const SLOW_DOWN_PERCENT: u32 = 95;
/// How much a clean round with headroom eases the pace, and a nearly full one slows it.
const EASE: f64 = 0.95;
const SLOW: f64 = 1.1;
/// Easing stops at this share of the spacing last learnt from 429s: going faster than Graph
/// grants only drains the bucket into the next 429.
const EASE_FLOOR: f64 = 0.8;

impl Throttle {
    /// Closes the gate for `wait` from now (never shortening an earlier closing).
    pub(crate) fn close_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut state = self.state.lock().expect("throttle lock");
        if state.open_at.is_none_or(|at| at < until) {
            state.open_at = Some(until);
        }
        // The bucket is empty when the gate opens: paced rounds count from then.
        if state.paced_until.is_none_or(|at| at < until) {
            state.paced_until = Some(until);
        }
    }

    /// Waits until the gate is open.
    pub(crate) async fn wait_open(&self) {
        loop {
            let open_at = self.state.lock().expect("throttle lock").open_at;
            match open_at {
                Some(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
                _ => return,
            }
        }
    }

    /// How many batched requests the next round may send.
    pub(crate) fn window(&self) -> usize {
        self.state
            .lock()
            .expect("throttle lock")
            .window
            .unwrap_or(usize::MAX)
    }

    /// After a round: narrows the window when it had a 429 in it; otherwise `load` (the
    /// highest `x-ms-throttle-limit-percentage` its replies carried, `None` when none did,
    /// i.e. every bucket under 80 %) decides whether the window widens and the pace eases,
    /// holds, or slows.
    pub(crate) fn after_round(&self, sent: usize, throttled: bool, load: Option<u32>) {
        let mut state = self.state.lock().expect("throttle lock");
        if throttled {
            state.window = Some((sent / 2).max(1));
            return;
        }
        let widened = state.window.map(|w| w.saturating_mul(2));
        match load {
            None => {
                state.window = widened;
                let floor = state
                    .learnt
                    .map_or(Duration::ZERO, |l| l.mul_f64(EASE_FLOOR));
                state.spacing = state
                    .spacing
                    .map(|s| s.mul_f64(EASE).max(floor))
                    .filter(|s| *s >= MIN_SPACING);
            }
            Some(_) if state.spacing.is_none() => {
                state.window = Some(widened.unwrap_or(NEAR_LIMIT_WINDOW).min(NEAR_LIMIT_WINDOW));
            }
            Some(percent) => {
                state.window = widened;
                if percent >= SLOW_DOWN_PERCENT {
                    state.spacing = state.spacing.map(|s| s.mul_f64(SLOW).min(MAX_SPACING));
                }
            }
        }
    }

    /// Learns the pace from the `Retry-After`s of one batch's throttled requests.
    pub(crate) fn learn_spacing(&self, retry_afters: &[Duration]) {
        if let Some(spacing) = spacing_from(retry_afters) {
            let mut state = self.state.lock().expect("throttle lock");
            state.spacing = Some(spacing);
            state.learnt = Some(spacing);
        }
    }

    /// When a round of `requests` may go out, if Graph's pace is known: the time Graph takes
    /// to grant this many requests after the previous round went out (or after the gate
    /// opens, the bucket then being empty). Time the caller spends between rounds, such as a
    /// journal commit, counts towards it: Graph's bucket refills meanwhile.
    pub(crate) fn pace(&self, requests: usize) -> Option<Instant> {
        let mut state = self.state.lock().expect("throttle lock");
        let spacing = state.spacing?;
        let now = Instant::now();
        let start = state.paced_until.map_or(now, |at| {
            (at + spacing.saturating_mul(u32::try_from(requests).unwrap_or(u32::MAX))).max(now)
        });
        state.paced_until = Some(start);
        Some(start)
    }
}

/// The time Graph grants one more request: successive throttled requests in one batch are
/// each charged, so each one's `Retry-After` is that much longer than the one before.
fn spacing_from(retry_afters: &[Duration]) -> Option<Duration> {
    let (min, max) = (retry_afters.iter().min()?, retry_afters.iter().max()?);
    let steps = u32::try_from(retry_afters.len().checked_sub(1)?).ok()?;
    let spacing = max.checked_sub(*min)?.checked_div(steps)?;
    (MIN_SPACING..=MAX_SPACING)
        .contains(&spacing)
        .then_some(spacing)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            max_elapsed: Duration::from_secs(60),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn retry_after_takes_fractional_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(
            parse_retry_after("2.128", now),
            Some(Duration::from_millis(2_128))
        );
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        // 2015-10-21 07:28:00 UTC is 10 s after `now`.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_caps_double_from_base_to_max() {
        let policy = policy();
        let caps: Vec<u64> = (1..=6)
            .map(|n| policy.backoff_cap(n).as_millis() as u64)
            .collect();
        assert_eq!(caps, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(policy.backoff_cap(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_stays_within_its_cap_and_spreads_over_it() {
        let policy = policy();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..1_000).map(|_| policy.backoff(3, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        assert!(delays.iter().any(|d| *d < Duration::from_millis(40)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(360)));
    }

    #[test]
    fn faults_give_up_after_max_attempts() {
        let policy = policy();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut attempts = Attempts::start();
        let delays: Vec<Option<Duration>> = (0..4)
            .map(|_| policy.next_delay_with(&mut attempts, Fault::NoReply, &mut rng))
            .collect();
        assert!(delays[..3].iter().all(Option::is_some));
        assert_eq!(delays[3], None, "the fourth failure is the last attempt");
        assert_eq!(attempts.retries(), 4);
    }

    #[test]
    fn retry_after_is_waited_as_given() {
        let policy = policy();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut attempts = Attempts::start();
        let wait = Duration::from_millis(2_128);
        assert_eq!(
            policy.next_delay_with(&mut attempts, Fault::Unavailable(Some(wait)), &mut rng),
            Some(wait)
        );
        assert_eq!(
            policy.next_delay_with(&mut attempts, Fault::Throttled(Some(wait)), &mut rng),
            Some(wait)
        );
    }

    #[test]
    fn throttling_is_bounded_by_total_time_not_attempts() {
        let policy = policy();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut attempts = Attempts::start();
        for _ in 0..50 {
            let delay = policy.next_delay_with(
                &mut attempts,
                Fault::Throttled(Some(Duration::from_millis(10))),
                &mut rng,
            );
            assert!(delay.is_some());
        }
        let beyond = policy.next_delay_with(
            &mut attempts,
            Fault::Throttled(Some(Duration::from_secs(61))),
            &mut rng,
        );
        assert_eq!(
            beyond, None,
            "a Retry-After past the total-time cap ends the retries"
        );
    }

    #[tokio::test]
    async fn closed_gate_holds_requests_until_retry_after_has_passed() {
        let throttle = Throttle::default();
        throttle.wait_open().await;
        let closed = Instant::now();
        throttle.close_for(Duration::from_millis(80));
        throttle.close_for(Duration::from_millis(10));
        throttle.wait_open().await;
        assert!(closed.elapsed() >= Duration::from_millis(80));
    }

    #[test]
    fn spacing_is_the_step_between_a_batchs_retry_afters() {
        let ms = Duration::from_millis;
        assert_eq!(spacing_from(&[ms(100), ms(130), ms(115)]), Some(ms(15)));
        assert_eq!(
            spacing_from(&[ms(100)]),
            None,
            "one 429 says nothing about the pace"
        );
        assert_eq!(spacing_from(&[ms(100), ms(100)]), None);
        assert_eq!(spacing_from(&[]), None);
        assert_eq!(spacing_from(&[ms(0), Duration::from_secs(60)]), None);
    }

    #[tokio::test]
    async fn rounds_are_paced_once_the_spacing_is_known_and_ease_off_when_clean() {
        let throttle = Throttle::default();
        assert_eq!(throttle.pace(10), None, "no pace before Graph pushed back");
        let ms = Duration::from_millis;
        throttle.learn_spacing(&[ms(10), ms(20), ms(30)]);
        let first = throttle.pace(4).unwrap();
        assert!(
            first <= Instant::now(),
            "nothing sent yet: the first round goes at once"
        );
        let second = throttle.pace(2).unwrap();
        assert_eq!(
            second - first,
            ms(20),
            "each round waits for its own requests"
        );
        throttle.after_round(2, false, None);
        let eased = throttle.pace(1).unwrap();
        assert_eq!(eased - second, ms(10).mul_f64(EASE));
        for _ in 0..20 {
            throttle.after_round(2, false, None);
        }
        let floor = throttle.pace(1).unwrap();
        assert_eq!(
            floor - eased,
            ms(8),
            "easing stops short of going much faster than Graph granted"
        );
        let closed = Instant::now();
        throttle.close_for(ms(500));
        let after_429 = throttle.pace(3).unwrap();
        assert!(
            after_429 >= closed + ms(500) + ms(24),
            "after a Retry-After the bucket is empty: a round waits for its own requests from then"
        );
    }

    #[test]
    fn window_halves_when_throttled_and_doubles_when_clean() {
        let throttle = Throttle::default();
        assert_eq!(throttle.window(), usize::MAX);
        throttle.after_round(40, false, None);
        assert_eq!(throttle.window(), usize::MAX, "no throttling, no window");
        throttle.after_round(40, true, None);
        assert_eq!(throttle.window(), 20);
        throttle.after_round(20, true, None);
        throttle.after_round(10, true, None);
        throttle.after_round(5, true, None);
        throttle.after_round(2, true, None);
        throttle.after_round(1, true, None);
        assert_eq!(throttle.window(), 1, "never below one");
        throttle.after_round(1, false, None);
        throttle.after_round(2, false, None);
        assert_eq!(throttle.window(), 4);
    }

    /// Graph's write bucket as GRAPH.md and the sandbox model it: refilled continuously,
    /// throttled requests charged too, the fill reported from 80 %.
    struct WriteBucket {
        capacity: f64,
        per_second: f64,
        tokens: f64,
        at: Instant,
    }

    impl WriteBucket {
        fn charge(&mut self, now: Instant) -> Result<Option<u32>, Duration> {
            self.tokens =
                (self.tokens + (now - self.at).as_secs_f64() * self.per_second).min(self.capacity);
            self.at = now;
            let short = self.tokens < 1.0;
            self.tokens = (self.tokens - 1.0).max(-self.capacity);
            if short {
                return Err(Duration::from_secs_f64(
                    (1.0 - self.tokens) / self.per_second,
                ));
            }
            let used = (self.capacity - self.tokens) / self.capacity * 100.0;
            Ok((used >= 80.0).then_some(used as u32))
        }
    }

    /// How a run sends: requests per round (as `batch::send_all` cuts them), and the time
    /// between rounds (answers, the journal commit).
    struct Sender {
        round: usize,
        between: Duration,
        /// Writes left in the bucket when the run starts.
        bucket: f64,
    }

    /// Drives the throttle the way `batch::send_all` does until `writes` are through a bucket
    /// of 3,000 refilling `per_second`; returns (requests sent, 429s, writes the budget
    /// allowed over the run).
    async fn paced_run(writes: usize, per_second: f64, sender: Sender) -> (usize, usize, f64) {
        let throttle = Throttle::default();
        let started = Instant::now();
        let mut bucket = WriteBucket {
            capacity: 3_000.0,
            per_second,
            tokens: sender.bucket,
            at: started,
        };
        let (mut left, mut sent, mut throttled) = (writes, 0, 0);
        while left > 0 {
            throttle.wait_open().await;
            let round = left.min(sender.round).min(throttle.window());
            if let Some(start) = throttle.pace(round) {
                tokio::time::sleep_until(start).await;
            }
            let now = Instant::now();
            let mut retry_afters = Vec::new();
            let mut load = None;
            for _ in 0..round {
                match bucket.charge(now) {
                    Ok(percent) => {
                        left -= 1;
                        load = load.max(percent);
                    }
                    Err(wait) => retry_afters.push(wait),
                }
            }
            sent += round;
            throttled += retry_afters.len();
            for chunk in retry_afters.chunks(20) {
                throttle.learn_spacing(chunk);
            }
            for wait in &retry_afters {
                throttle.close_for(*wait);
            }
            throttle.after_round(round, !retry_afters.is_empty(), load);
            tokio::time::sleep(sender.between).await;
        }
        let allowed = sender.bucket + per_second * started.elapsed().as_secs_f64();
        (sent, throttled, allowed)
    }

    #[rstest::rstest]
    // Graph's own budget: 20 writes a second, rounds of up to 160 requests.
    #[case(20.0, Sender { round: 160, between: Duration::from_millis(5), bucket: 3_000.0 })]
    // The benchmark's 20× budget with journal batches of 80 requests and a commit between
    // them that takes a third of the time Graph needs to grant a batch.
    #[case(400.0, Sender { round: 80, between: Duration::from_millis(70), bucket: 3_000.0 })]
    // The same after group creations have emptied the bucket: 429s teach the pace at once.
    #[case(400.0, Sender { round: 80, between: Duration::from_millis(70), bucket: 0.0 })]
    #[tokio::test(start_paused = true)]
    async fn pacing_uses_the_write_budget_with_few_429s(
        #[case] per_second: f64,
        #[case] sender: Sender,
    ) {
        let writes = 20_000;
        let (sent, throttled, allowed) = paced_run(writes, per_second, sender).await;
        let share_429 = throttled as f64 / sent as f64;
        let used = writes as f64 / allowed;
        assert!(share_429 < 0.02, "{throttled} of {sent} requests throttled");
        assert!(
            used >= 0.9,
            "{:.1} % of the write budget used",
            used * 100.0
        );
    }

    #[test]
    fn near_the_limit_without_a_pace_the_window_is_one_batch() {
        let throttle = Throttle::default();
        throttle.after_round(160, false, Some(85));
        assert_eq!(throttle.window(), NEAR_LIMIT_WINDOW);
        throttle.after_round(20, false, Some(99));
        assert_eq!(throttle.window(), NEAR_LIMIT_WINDOW, "still no pace known");
        throttle.after_round(20, false, None);
        assert_eq!(throttle.window(), 2 * NEAR_LIMIT_WINDOW, "headroom again");
    }

    #[tokio::test(start_paused = true)]
    async fn the_load_holds_slows_or_eases_the_pace() {
        let ms = Duration::from_millis;
        let throttle = Throttle::default();
        throttle.learn_spacing(&[ms(100), ms(200)]);
        let step = |throttle: &Throttle| {
            let first = throttle.pace(1).unwrap();
            throttle.pace(1).unwrap() - first
        };
        let near = |a: Duration, b: Duration| a.abs_diff(b) < Duration::from_micros(1);
        assert!(near(step(&throttle), ms(100)));
        throttle.after_round(1, false, Some(85));
        assert!(near(step(&throttle), ms(100)), "80 to 95 % holds the pace");
        throttle.after_round(1, false, Some(97));
        let slowed = ms(100).mul_f64(SLOW);
        assert!(
            near(step(&throttle), slowed),
            "a nearly empty bucket slows it"
        );
        throttle.after_round(1, false, None);
        assert!(
            near(step(&throttle), slowed.mul_f64(EASE)),
            "headroom eases it"
        );
    }
}

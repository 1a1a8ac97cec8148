//! `$batch`: up to 20 requests per round trip, replies correlated by id, and each inner
//! request retried on its own (GRAPH.md "JSON batching": nobody retries inner 429s for you).
//!
//! Requests go out in rounds. A round sends the requests that are due, two batches per
//! concurrent request at most and no more than the throttle's window, packed 20 to a batch
//! in the order given, the batches in flight together (the transport's semaphore bounds how
//! many). Throttled requests wait for the shared gate, failed ones for their backoff, and
//! come back in a later round.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::error::{GraphError, is_not_replicated};
use super::retry::{Attempts, Fault};
use super::transport::{Reply, Request, Transport, inner_load, inner_retry_after};

/// Most requests one `$batch` carries.
pub(crate) const MAX_BATCH: usize = 20;

/// Which answers besides 429/503/504 an inner request is retried on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlsoRetry {
    /// None.
    Nothing,
    /// The 400 Graph gives for writes to a group it has not replicated yet.
    NotReplicated,
}

/// Sends `requests` packed into `$batch`es; one outcome per request, in the same order. Any
/// answer Graph gave (after retries) is a `Reply`; `Err` means no answer.
pub(crate) async fn send_all(
    transport: &Transport,
    requests: &[Request],
    also_retry: AlsoRetry,
) -> Vec<Result<Reply, GraphError>> {
    let mut outcomes: Vec<Option<Result<Reply, GraphError>>> =
        (0..requests.len()).map(|_| None).collect();
    // Started when a request is first sent: time spent queued behind others is no retrying.
    let mut attempts: Vec<Option<Attempts>> = requests.iter().map(|_| None).collect();
    let mut due: Vec<(usize, Instant)> = (0..requests.len()).map(|i| (i, Instant::now())).collect();
    while !due.is_empty() {
        let now = Instant::now();
        let mut ready: Vec<usize> = due
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(i, _)| *i)
            .collect();
        if ready.is_empty() {
            let next = due.iter().map(|(_, at)| *at).min().expect("not empty");
            tokio::time::sleep_until(next).await;
            continue;
        }
        // Keep the caller's order: it decides how requests share batches.
        ready.sort_unstable();
        // Two batches per permit keep every permit busy while the one before is answered,
        // and keep rounds short enough that throttling is noticed after a few batches.
        let round = MAX_BATCH * 2 * transport.max_concurrency();
        ready.truncate(transport.throttle.window().min(round));
        due.retain(|(i, _)| ready.binary_search(i).is_err());
        if let Some(start) = transport.throttle.pace(ready.len()) {
            let held = Instant::now();
            tokio::time::sleep_until(start).await;
            transport.counters.waited(held.elapsed());
        }
        for &i in &ready {
            attempts[i].get_or_insert_with(Attempts::start);
        }
        let answers = futures::future::join_all(
            ready
                .chunks(MAX_BATCH)
                .map(|chunk| send_batch(transport, requests, chunk)),
        )
        .await;
        let mut throttled = false;
        let mut load: Option<u32> = None;
        for (chunk, answer) in ready.chunks(MAX_BATCH).zip(answers) {
            let answers = match answer {
                Ok(answers) => answers,
                Err(error) => {
                    for &i in chunk {
                        outcomes[i] = Some(Err(error.clone()));
                    }
                    continue;
                }
            };
            let retry_afters: Vec<Duration> = answers
                .iter()
                .flatten()
                .filter(|reply| reply.status == 429)
                .filter_map(|reply| reply.retry_after)
                .collect();
            transport.throttle.learn_spacing(&retry_afters);
            load = answers
                .iter()
                .flatten()
                .filter_map(|reply| reply.load)
                .chain(load)
                .max();
            for (&i, answer) in chunk.iter().zip(answers) {
                let request = &requests[i];
                let (outcome, fault) = match answer {
                    None => (
                        Err(GraphError::Transport {
                            request: request.describe(),
                            reason: "the $batch reply had no response for it".to_owned(),
                        }),
                        Fault::NoReply,
                    ),
                    Some(reply) => match reply.status {
                        429 => {
                            throttled = true;
                            let retry_after = reply.retry_after;
                            (Ok(reply), Fault::Throttled(retry_after))
                        }
                        503 | 504 => {
                            let retry_after = reply.retry_after;
                            (Ok(reply), Fault::Unavailable(retry_after))
                        }
                        _ if also_retry == AlsoRetry::NotReplicated
                            && is_not_replicated(reply.status, &reply.body) =>
                        {
                            (Ok(reply), Fault::NotReplicated)
                        }
                        _ => {
                            outcomes[i] = Some(Ok(reply));
                            continue;
                        }
                    },
                };
                let history = attempts[i].get_or_insert_with(Attempts::start);
                let Some(delay) = transport.policy.next_delay(history, fault) else {
                    outcomes[i] = Some(outcome);
                    continue;
                };
                tracing::debug!(
                    request = %request.describe(),
                    failure = ?fault,
                    retries = history.retries(),
                    delay_ms = delay.as_millis() as u64,
                    "retrying a request inside a batch"
                );
                transport.counters.retry();
                if matches!(fault, Fault::Throttled(_)) {
                    // The gate holds every request, this one included, until then.
                    transport.throttle.close_for(delay);
                    due.push((i, Instant::now()));
                } else {
                    due.push((i, Instant::now() + delay));
                }
            }
        }
        transport.throttle.after_round(ready.len(), throttled, load);
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.expect("every request ends with an outcome"))
        .collect()
}

/// One `$batch` round trip for `chunk` (indices into `requests`); the answers in chunk order,
/// `None` where the reply had no response for a request.
async fn send_batch(
    transport: &Transport,
    requests: &[Request],
    chunk: &[usize],
) -> Result<Vec<Option<Reply>>, GraphError> {
    let endpoint = transport.endpoint();
    let entries: Vec<Value> = chunk
        .iter()
        .enumerate()
        .map(|(position, &i)| {
            let request = &requests[i];
            let mut entry = json!({
                "id": position.to_string(),
                "method": request.method.as_str(),
                "url": request.relative_url(endpoint),
            });
            if let Some(body) = &request.body {
                entry["headers"] = json!({"Content-Type": "application/json"});
                entry["body"] = body.clone();
            }
            entry
        })
        .collect();
    let batch = Request::with_body(
        graph_rs_sdk::http::Method::POST,
        transport.url(&["$batch"], &[]),
        json!({ "requests": entries }),
    );
    transport.counters.batched(chunk.len());
    let mut reply = transport.send(&batch).await?;
    if reply.status != 200 {
        return Err(reply.error(&batch));
    }
    let Some(responses) = reply.body["responses"].as_array_mut() else {
        return Err(GraphError::Other(format!(
            "{}: the reply has no `responses` array",
            batch.describe()
        )));
    };
    let mut answers: Vec<Option<Reply>> = chunk.iter().map(|_| None).collect();
    for response in responses {
        // Graph answers in any order: the id says which request a response is for.
        let Some(position) = response["id"]
            .as_str()
            .and_then(|id| id.parse::<usize>().ok())
            .filter(|&p| p < chunk.len())
        else {
            continue;
        };
        let status = response["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0);
        answers[position] = Some(Reply {
            status,
            retry_after: inner_retry_after(response),
            load: inner_load(response),
            body: response["body"].take(),
        });
    }
    Ok(answers)
}

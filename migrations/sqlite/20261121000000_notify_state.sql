-- The state the last notification told about (`[notify]`), so that a message goes out once per
-- change of state, across cron invocations and `serve` restarts. Losing it costs at most one
-- repeated message.
CREATE TABLE notify_state (
    channel VARCHAR(64) NOT NULL PRIMARY KEY,
    state VARCHAR(32) NOT NULL,
    run_id BIGINT,
    notified_at BIGINT NOT NULL
);

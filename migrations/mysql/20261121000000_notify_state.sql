-- The state the last notification told about (`[notify]`), so that a message goes out once per
-- change of state, across cron invocations and `serve` restarts. Losing it costs at most one
-- repeated message. IF NOT EXISTS: MySQL cannot roll DDL back, so this must be able to run again.
CREATE TABLE IF NOT EXISTS notify_state (
    channel VARCHAR(64) NOT NULL PRIMARY KEY,
    state VARCHAR(32) NOT NULL,
    run_id BIGINT,
    notified_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

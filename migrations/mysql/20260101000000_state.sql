-- rollcall state store, first schema (MySQL/MariaDB: InnoDB, utf8mb4 with binary collation so keys compare
-- exactly as on the other backends; VARCHAR(255) keys fit InnoDB's 3072-byte index limit).
-- Times are INTEGER milliseconds since the Unix epoch (UTC) on every backend; flags are
-- SMALLINT 0/1, so that one set of queries reads the same on SQLite, PostgreSQL and MariaDB.
-- MySQL cannot roll DDL back: a migration cut off halfway (a killed first run) leaves some
-- tables made. So every statement here can run again (IF NOT EXISTS, indexes declared inside
-- their table), and `Store::migrate` re-runs a migration sqlx recorded as unfinished.

CREATE TABLE IF NOT EXISTS runs (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind VARCHAR(16) NOT NULL,
    status VARCHAR(16) NOT NULL,
    holder VARCHAR(255),
    lease_token BIGINT,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    exit_code INTEGER,
    plan_summary LONGTEXT,
    report LONGTEXT,
    approvals TEXT,
    INDEX runs_status (status, id),
    INDEX runs_started (started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS source_snapshots (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    run_id BIGINT,
    source VARCHAR(255) NOT NULL,
    row_count BIGINT NOT NULL,
    distinct_count BIGINT NOT NULL,
    checksum VARCHAR(128) NOT NULL,
    accepted SMALLINT NOT NULL DEFAULT 0,
    accepted_at BIGINT,
    recorded_at BIGINT NOT NULL,
    CONSTRAINT source_snapshots_run_fk FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE SET NULL,
    INDEX source_snapshots_accepted (source, accepted, id),
    INDEX source_snapshots_run (run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS managed_groups (
    list_key VARCHAR(255) NOT NULL PRIMARY KEY,
    group_id VARCHAR(64) NOT NULL UNIQUE,
    family VARCHAR(255) NOT NULL,
    origin VARCHAR(16) NOT NULL,
    mail_nickname VARCHAR(255) NOT NULL,
    tagged SMALLINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS mirror (
    list_key VARCHAR(255) NOT NULL,
    member_id VARCHAR(64) NOT NULL,
    PRIMARY KEY (list_key, member_id),
    CONSTRAINT mirror_group_fk FOREIGN KEY (list_key) REFERENCES managed_groups (list_key) ON DELETE CASCADE ON UPDATE CASCADE,
    INDEX mirror_member (member_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS identities (
    key_kind VARCHAR(16) NOT NULL,
    key_value VARCHAR(255) NOT NULL,
    object_id VARCHAR(64),
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (key_kind, key_value),
    INDEX identities_object (object_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS journal (
    run_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    list_key VARCHAR(255) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    member_id VARCHAR(64),
    status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq),
    CONSTRAINT journal_run_fk FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE,
    INDEX journal_run_status (run_id, status, seq),
    INDEX journal_status (status, run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- "pending operations of run X in seq order" and "pending operations anywhere".

CREATE TABLE IF NOT EXISTS lease (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    holder VARCHAR(255),
    token BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS pause (
    id SMALLINT NOT NULL PRIMARY KEY,
    paused SMALLINT NOT NULL,
    reason TEXT,
    until_at BIGINT,
    set_by VARCHAR(255),
    set_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS delta_links (
    scope VARCHAR(64) NOT NULL PRIMARY KEY,
    link TEXT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

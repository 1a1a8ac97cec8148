-- rollcall state store, first schema (SQLite).
-- Times are INTEGER milliseconds since the Unix epoch (UTC) on every backend; flags are
-- SMALLINT 0/1, so that one set of queries reads the same on SQLite, PostgreSQL and MariaDB.

CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind VARCHAR(16) NOT NULL,
    status VARCHAR(16) NOT NULL,
    holder VARCHAR(255),
    lease_token BIGINT,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    exit_code INTEGER,
    plan_summary TEXT,
    report TEXT,
    approvals TEXT
);
CREATE INDEX runs_status ON runs (status, id);
CREATE INDEX runs_started ON runs (started_at);

CREATE TABLE source_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT REFERENCES runs (id) ON DELETE SET NULL,
    source VARCHAR(255) NOT NULL,
    row_count BIGINT NOT NULL,
    distinct_count BIGINT NOT NULL,
    checksum VARCHAR(128) NOT NULL,
    accepted SMALLINT NOT NULL DEFAULT 0,
    accepted_at BIGINT,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX source_snapshots_accepted ON source_snapshots (source, accepted, id);
CREATE INDEX source_snapshots_run ON source_snapshots (run_id);

CREATE TABLE managed_groups (
    list_key VARCHAR(255) NOT NULL PRIMARY KEY,
    group_id VARCHAR(64) NOT NULL UNIQUE,
    family VARCHAR(255) NOT NULL,
    origin VARCHAR(16) NOT NULL,
    mail_nickname VARCHAR(255) NOT NULL,
    tagged SMALLINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE mirror (
    list_key VARCHAR(255) NOT NULL REFERENCES managed_groups (list_key) ON DELETE CASCADE ON UPDATE CASCADE,
    member_id VARCHAR(64) NOT NULL,
    PRIMARY KEY (list_key, member_id)
);
CREATE INDEX mirror_member ON mirror (member_id);

CREATE TABLE identities (
    key_kind VARCHAR(16) NOT NULL,
    key_value VARCHAR(255) NOT NULL,
    object_id VARCHAR(64),
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (key_kind, key_value)
);
CREATE INDEX identities_object ON identities (object_id);

CREATE TABLE journal (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    list_key VARCHAR(255) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    member_id VARCHAR(64),
    status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
-- "pending operations of run X in seq order" and "pending operations anywhere".
CREATE INDEX journal_run_status ON journal (run_id, status, seq);
CREATE INDEX journal_status ON journal (status, run_id);

CREATE TABLE lease (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    holder VARCHAR(255),
    token BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE pause (
    id SMALLINT NOT NULL PRIMARY KEY,
    paused SMALLINT NOT NULL,
    reason TEXT,
    until_at BIGINT,
    set_by VARCHAR(255),
    set_at BIGINT NOT NULL
);

CREATE TABLE delta_links (
    scope VARCHAR(64) NOT NULL PRIMARY KEY,
    link TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

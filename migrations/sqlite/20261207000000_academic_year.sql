-- Removal grace (`[[family]] remove_after`): when each member whom a list's sources no longer
-- name was first found absent, so that the grace counts from then across runs, resumes and
-- restarts. A row goes when the member is named again or removed. Losing the table only
-- restarts every grace (members stay longer, never shorter).
CREATE TABLE member_absences (
    list_key VARCHAR(255) NOT NULL,
    member_id VARCHAR(64) NOT NULL,
    first_absent_at BIGINT NOT NULL,
    PRIMARY KEY (list_key, member_id)
);

-- Each managed group's visibility (Public, Private, HiddenMembership) as last read from (or
-- written to) Microsoft 365, so that a family that sets `visibility` sees which groups
-- differ without reading every group. NULL: not known yet (the next full read fills it).
ALTER TABLE managed_groups ADD COLUMN visibility VARCHAR(32) NULL;

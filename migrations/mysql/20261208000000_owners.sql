-- Owners (issue 15): each managed group's owners (users or service principals, by object id)
-- as last read from (or written to) Microsoft 365, kept like the membership mirror so that a
-- delta read knows who owns every group without reading each one.
-- IF NOT EXISTS: MySQL cannot roll DDL back, so a migration cut off half-way runs again.
CREATE TABLE IF NOT EXISTS owner_mirror (
    list_key VARCHAR(255) NOT NULL,
    owner_id VARCHAR(64) NOT NULL,
    PRIMARY KEY (list_key, owner_id),
    CONSTRAINT owner_mirror_group_fk FOREIGN KEY (list_key) REFERENCES managed_groups (list_key) ON DELETE CASCADE ON UPDATE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The groups delta link was taken without owners: forgetting it makes the first run after
-- the upgrade read every managed group in full, and so learn its owners.
DELETE FROM delta_links WHERE scope = 'groups';

-- Owners (issue 15): each managed group's owners (users or service principals, by object id)
-- as last read from (or written to) Microsoft 365, kept like the membership mirror so that a
-- delta read knows who owns every group without reading each one.
CREATE TABLE owner_mirror (
    list_key VARCHAR(255) NOT NULL REFERENCES managed_groups (list_key) ON DELETE CASCADE ON UPDATE CASCADE,
    owner_id VARCHAR(64) NOT NULL,
    PRIMARY KEY (list_key, owner_id)
);

-- The groups delta link was taken without owners: forgetting it makes the first run after
-- the upgrade read every managed group in full, and so learn its owners.
DELETE FROM delta_links WHERE scope = 'groups';

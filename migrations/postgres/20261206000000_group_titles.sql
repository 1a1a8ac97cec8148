-- Each managed group's title and description as last read from (or written to) Microsoft 365,
-- so that a run sees a retitle in the sources without reading every group. NULL: not known
-- yet (the next read fills it). Rebuilt like the rest of the state.
ALTER TABLE managed_groups ADD COLUMN display_name TEXT NULL;
ALTER TABLE managed_groups ADD COLUMN description TEXT NULL;

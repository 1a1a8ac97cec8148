-- Each managed group's title and description as last read from (or written to) Microsoft 365,
-- so that a run sees a retitle in the sources without reading every group. NULL: not known
-- yet (the next read fills it). Rebuilt like the rest of the state.
-- MySQL cannot roll DDL back, so each column is added only where it is missing: a migration
-- cut off half-way runs again (the same statements work on MySQL 8 and MariaDB).
SET @add_display_name := (
    SELECT IF(COUNT(*) = 0, 'ALTER TABLE managed_groups ADD COLUMN display_name TEXT NULL', 'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'managed_groups' AND column_name = 'display_name'
);
PREPARE add_display_name FROM @add_display_name;
EXECUTE add_display_name;
DEALLOCATE PREPARE add_display_name;
SET @add_description := (
    SELECT IF(COUNT(*) = 0, 'ALTER TABLE managed_groups ADD COLUMN description TEXT NULL', 'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'managed_groups' AND column_name = 'description'
);
PREPARE add_description FROM @add_description;
EXECUTE add_description;
DEALLOCATE PREPARE add_description;

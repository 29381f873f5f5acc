-- Which code wrote each alignment row (issue 13): a process that starts from the stored
-- projection uses a row only if its own projection code is of the same version, and
-- folds the initiative itself otherwise. Rows written before this column existed were
-- written by version 1.
ALTER TABLE alignment ADD COLUMN projection_version integer NOT NULL DEFAULT 1;

-- The side table of the online (blue/green) projection rebuild (issue 13): `accord
-- rebuild-projections --online` folds every initiative's alignment row here from the log
-- while `alignment` keeps serving, catches up the streams that moved meanwhile, and then,
-- in one transaction under the commit-order lock, replaces alignment's rows with these
-- and empties it. Empty at all other times; only the rebuild reads it, so it has no
-- index beyond its key.
CREATE TABLE alignment_next (LIKE alignment INCLUDING DEFAULTS);
ALTER TABLE alignment_next ADD PRIMARY KEY (initiative_id);

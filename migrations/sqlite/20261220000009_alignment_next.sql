-- The side table of the online (blue/green) projection rebuild (issue 13): `accord
-- rebuild-projections --online` folds every initiative's alignment row here from the log
-- while `alignment` keeps serving, catches up the streams that moved meanwhile, and then,
-- in one write transaction, replaces alignment's rows with these and empties it. Empty at
-- all other times. The same columns as alignment.
CREATE TABLE alignment_next (
    initiative_id         TEXT    PRIMARY KEY,
    key                   TEXT    NOT NULL,
    title                 TEXT    NOT NULL,
    owner                 TEXT    NOT NULL,
    stage                 TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    archived              INTEGER NOT NULL CHECK (archived IN (0, 1)),
    outstanding_functions TEXT    NOT NULL CHECK (json_type(outstanding_functions) = 'array'),
    awaiting              TEXT    NOT NULL CHECK (json_type(awaiting) = 'array'),
    score                 REAL    NOT NULL,
    last_activity         INTEGER NOT NULL,
    version               INTEGER NOT NULL,
    view                  TEXT    NOT NULL CHECK (json_valid(view)),
    projection_version    INTEGER NOT NULL DEFAULT 1
) STRICT;

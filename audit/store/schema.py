"""All DDL. Migrations are appended, never edited; each runs in the transaction of its
`schema_migration` row. Records are only ever inserted: no table here is updated in place."""
from __future__ import annotations

KINDS = ("retweet", "mention", "reply", "like", "follow", "message", "rating")

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial", f"""
CREATE TYPE interaction_kind AS ENUM ({", ".join(repr(k) for k in KINDS)});

-- One delivered input file, validated and content-hashed.
CREATE TABLE batch (
    batch_id        VARCHAR PRIMARY KEY,   -- b_ + 12 hex of content_hash
    content_hash    VARCHAR NOT NULL UNIQUE, -- sha256 of the normalised rows
    file_sha256     VARCHAR NOT NULL,      -- sha256 of the file bytes as delivered
    source_name     VARCHAR NOT NULL,      -- file name as given
    format          VARCHAR NOT NULL,      -- csv, parquet, snap-higgs, uvt, signed-csv
    batch_kind      VARCHAR NOT NULL,      -- interactions | accounts
    rows            BIGINT NOT NULL,
    accounts        BIGINT NOT NULL,
    min_ts          TIMESTAMPTZ,
    max_ts          TIMESTAMPTZ,
    validation      JSON NOT NULL,         -- the validation result, kept for reports
    ingested_at     TIMESTAMPTZ NOT NULL
);

-- Interaction rows, stored once per batch; snapshots select them, never copy them.
CREATE TABLE interaction (
    batch_id  VARCHAR NOT NULL,
    source    VARCHAR NOT NULL,
    target    VARCHAR NOT NULL,
    kind      interaction_kind NOT NULL,
    ts        TIMESTAMPTZ NOT NULL,
    weight    DOUBLE NOT NULL,
    topic     VARCHAR,
    event_id  VARCHAR
);

CREATE TABLE account (
    batch_id    VARCHAR NOT NULL,
    account_id  VARCHAR NOT NULL,
    handle      VARCHAR,
    followers   BIGINT,
    following   BIGINT,
    created_at  TIMESTAMPTZ
);

-- An immutable selection of stored inputs: which batches, as-of instant and window.
CREATE TABLE snapshot (
    snapshot_id     VARCHAR PRIMARY KEY,   -- s_ + 12 hex of content_hash
    content_hash    VARCHAR NOT NULL UNIQUE,
    label           VARCHAR,
    as_of           TIMESTAMPTZ NOT NULL,
    window_seconds  BIGINT,                -- NULL: everything up to as_of
    batch_ids       VARCHAR[] NOT NULL,    -- sorted
    interactions    BIGINT NOT NULL,
    accounts        BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

-- Hash chain over every record appended: each entry hashes the previous one and its content.
CREATE TABLE log (
    seq           BIGINT PRIMARY KEY,
    record_kind   VARCHAR NOT NULL,        -- batch, snapshot, algorithm, run, publication
    record_id     VARCHAR NOT NULL,
    content_hash  VARCHAR NOT NULL,
    prev_hash     VARCHAR NOT NULL,
    entry_hash    VARCHAR NOT NULL,
    logged_at     TIMESTAMPTZ NOT NULL
);
"""),
    (2, "algorithms and runs", """
-- A registered algorithm version: its full source text and parameters, hashed together.
CREATE TABLE algorithm (
    algorithm_id    VARCHAR PRIMARY KEY,   -- a_ + 12 hex of content_hash
    content_hash    VARCHAR NOT NULL UNIQUE,
    name            VARCHAR NOT NULL,
    version         INTEGER NOT NULL,
    description     VARCHAR NOT NULL,
    changelog       VARCHAR NOT NULL,
    params          JSON NOT NULL,         -- canonical JSON
    params_sha256   VARCHAR NOT NULL,
    source          VARCHAR NOT NULL,      -- the module's full source text; this is what runs
    source_sha256   VARCHAR NOT NULL,
    components      JSON NOT NULL,         -- [[column, plain label], ...] in output order
    reasons         JSON NOT NULL,         -- the versioned reason-code list
    registered_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (name, version)
);

-- A run: one snapshot scored by one algorithm version.
CREATE TABLE run (
    run_id          VARCHAR PRIMARY KEY,   -- r_ + 12 hex of sha256(snapshot hash, algorithm hash)
    content_hash    VARCHAR NOT NULL UNIQUE,
    snapshot_id     VARCHAR NOT NULL,
    algorithm_id    VARCHAR NOT NULL,
    accounts        BIGINT NOT NULL,
    result_hash     VARCHAR NOT NULL,      -- sha256 of the score rows in account order
    engines         JSON NOT NULL,         -- python, duckdb, polars, numpy, scipy versions
    seconds         DOUBLE NOT NULL,
    counterfactual  BOOLEAN NOT NULL,      -- computed for an explanation, not scored for release
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (snapshot_id, algorithm_id)
);

-- One row per account per run; components in the algorithm's declared order, adding up to raw.
CREATE TABLE score (
    run_id      VARCHAR NOT NULL,
    account_id  VARCHAR NOT NULL,
    raw         DOUBLE NOT NULL,
    score       DOUBLE NOT NULL,
    components  DOUBLE[] NOT NULL
);
"""),
    (3, "publications", """
-- "Run R is the published score for period P, from published_at on." A later publication for
-- the same period is a restatement: it names the one it restates, which stays as it was.
CREATE TABLE publication (
    publication_id  VARCHAR PRIMARY KEY,   -- p_ + 12 hex of content_hash
    content_hash    VARCHAR NOT NULL UNIQUE,
    run_id          VARCHAR NOT NULL,
    period          VARCHAR NOT NULL,
    restates        VARCHAR,               -- the publication this one restates, if any
    published_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (run_id, period)
);
"""),
    (4, "run normalisation", """
-- The population statistics a run's raw -> score mapping used (an algorithm's normalisation()),
-- written with the run, so an explanation needs not reload every score of the run.
CREATE TABLE run_normalisation (
    run_id  VARCHAR PRIMARY KEY,
    norm    JSON NOT NULL
);
"""),
    (5, "snapshot account rule", """
-- Which accounts of the account files a snapshot takes. NULL (snapshots made before this rule):
-- every account delivered. 2: only accounts not created after the as-of instant, so that a later
-- account file cannot put an account into a past snapshot. The rule enters the snapshot's id.
ALTER TABLE snapshot ADD COLUMN accounts_rule INTEGER;
"""),
    (6, "run engine", """
-- The engine is a property of a run: 'local' (polars, numpy, scipy: the reference) or 'spark' (the
-- version's compute_spark on Apache Spark). A Spark run and a local run of the same snapshot and
-- version are two runs side by side, so (snapshot_id, algorithm_id) is no longer unique; with the
-- engine it is. DuckDB cannot drop a constraint, so `run` is rebuilt: every row is copied as it is
-- (in stored order) with engine 'local', which every run before this migration was. Local run ids
-- and content hashes do not change (the engine enters them only when it is not 'local'); a test
-- checks every value and `verify --rerun` on a store made before the migration.
CREATE TABLE run_v6 (
    run_id          VARCHAR PRIMARY KEY,   -- r_ + 12 hex of sha256(snapshot hash, algorithm hash[, engine])
    content_hash    VARCHAR NOT NULL UNIQUE,
    snapshot_id     VARCHAR NOT NULL,
    algorithm_id    VARCHAR NOT NULL,
    accounts        BIGINT NOT NULL,
    result_hash     VARCHAR NOT NULL,      -- sha256 of the score rows in account order
    engines         JSON NOT NULL,         -- library versions; for spark also spark, java, master, partitions
    seconds         DOUBLE NOT NULL,
    counterfactual  BOOLEAN NOT NULL,      -- computed for an explanation, not scored for release
    created_at      TIMESTAMPTZ NOT NULL,
    engine          VARCHAR NOT NULL,      -- local | spark
    UNIQUE (snapshot_id, algorithm_id, engine)
);
INSERT INTO run_v6
    SELECT run_id, content_hash, snapshot_id, algorithm_id, accounts, result_hash, engines, seconds,
           counterfactual, created_at, 'local' FROM run ORDER BY rowid;
DROP TABLE run;
ALTER TABLE run_v6 RENAME TO run;
"""),
    (7, "gaming audit", """
-- A derived snapshot: its parent with some interactions left out (a counterfactual's input). It
-- copies the parent's as-of, window, batches and accounts rule, copies no interaction row, and
-- leaves out every interaction of the parent whose source and target are in the same part of
-- snapshot_exclusion. It keeps the parent's accounts. NULL: an ordinary snapshot.
ALTER TABLE snapshot ADD COLUMN parent_id VARCHAR;

-- The parts of a derived snapshot's exclusion: each account in at most one part.
CREATE TABLE snapshot_exclusion (
    snapshot_id  VARCHAR NOT NULL,
    part         INTEGER NOT NULL,
    account_id   VARCHAR NOT NULL,
    UNIQUE (snapshot_id, account_id)
);

-- A registered gaming detector version: its full source text and parameters, hashed together.
CREATE TABLE detector (
    detector_id     VARCHAR PRIMARY KEY,   -- d_ + 12 hex of content_hash
    content_hash    VARCHAR NOT NULL UNIQUE,
    name            VARCHAR NOT NULL,
    version         INTEGER NOT NULL,
    description     VARCHAR NOT NULL,
    changelog       VARCHAR NOT NULL,
    params          JSON NOT NULL,         -- canonical JSON
    params_sha256   VARCHAR NOT NULL,
    source          VARCHAR NOT NULL,      -- the module's full source text; this is what runs
    source_sha256   VARCHAR NOT NULL,
    registered_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (name, version)
);

-- A gaming audit: one run examined by one detector version. Its groups and findings are rows of
-- gaming_group, gaming_member and gaming_finding; the points cite the counterfactual run (the same
-- version on the derived snapshot that leaves the groups' interactions out). Scores are never edited.
CREATE TABLE gaming (
    gaming_id              VARCHAR PRIMARY KEY,   -- g_ + 12 hex of sha256(run hash, detector hash)
    content_hash           VARCHAR NOT NULL UNIQUE,
    run_id                 VARCHAR NOT NULL,
    detector_id            VARCHAR NOT NULL,
    snapshot_id            VARCHAR,               -- the derived snapshot (NULL: nothing flagged)
    counterfactual_run_id  VARCHAR,               -- its run (NULL: nothing flagged)
    groups                 BIGINT NOT NULL,
    flagged                BIGINT NOT NULL,
    groups_hash            VARCHAR NOT NULL,      -- sha256 of the group and member rows
    findings_hash          VARCHAR NOT NULL,      -- sha256 of the finding rows
    seconds                DOUBLE NOT NULL,
    created_at             TIMESTAMPTZ NOT NULL,
    UNIQUE (run_id, detector_id)
);

CREATE TABLE gaming_group (
    gaming_id  VARCHAR NOT NULL,
    group_no   INTEGER NOT NULL,
    pattern    VARCHAR NOT NULL,               -- ring | puppets
    accounts   BIGINT NOT NULL,
    evidence   JSON NOT NULL                   -- the detector's measures of the group
);

CREATE TABLE gaming_member (
    gaming_id   VARCHAR NOT NULL,
    group_no    INTEGER NOT NULL,
    account_id  VARCHAR NOT NULL,
    role        VARCHAR NOT NULL,              -- member | target | puppet
    received    DOUBLE NOT NULL,
    from_group  DOUBLE NOT NULL,
    given       DOUBLE NOT NULL,
    to_group    DOUBLE NOT NULL
);

-- One row per flagged account (ring members and puppet targets): points = score - score_without.
CREATE TABLE gaming_finding (
    gaming_id      VARCHAR NOT NULL,
    account_id     VARCHAR NOT NULL,
    group_no       INTEGER NOT NULL,
    pattern        VARCHAR NOT NULL,
    score          DOUBLE NOT NULL,
    score_without  DOUBLE NOT NULL,
    points         DOUBLE NOT NULL
);
"""),
    (8, "topics", """
-- Topics are a dimension of a score. A run of a topic version (one whose module declares
-- DIMENSION = "topic", e.g. topics@1) holds one row per (account, topic) it scored; its ranks are
-- taken within (run, topic), and its result hash covers the topic column. NULL for every other run,
-- which is every run made before this migration: their rows, ids and result hashes do not change.
ALTER TABLE score ADD COLUMN topic VARCHAR;
"""),
    (9, "derived features", """
-- Facts about each account of a snapshot that compare, segments and explain read, computed once per
-- snapshot from its interactions and accounts (they were read again from every interaction of the
-- snapshot each time). A derived record like a run: named by its snapshot's content hash and the
-- recipe of the features, logged, and recomputed by `verify --rerun`.
CREATE TABLE features (
    features_id   VARCHAR PRIMARY KEY,     -- f_ + 12 hex of sha256(snapshot hash, recipe)
    content_hash  VARCHAR NOT NULL UNIQUE,
    snapshot_id   VARCHAR NOT NULL UNIQUE,
    recipe        INTEGER NOT NULL,        -- which definitions of the features (1: these tables)
    accounts      BIGINT NOT NULL,         -- rows of account_feature
    out_rows      BIGINT NOT NULL,         -- rows of account_out
    rows_hash     VARCHAR NOT NULL,        -- sha256 of both tables' rows, in order
    created_at    TIMESTAMPTZ NOT NULL
);

-- One row per account of the snapshot (ids in its window and the accounts its rule takes): the
-- segment features (interactions received and given, self-interactions included, distinct engagers,
-- followers, age in days at the latest interaction) and interactions given to another account.
CREATE TABLE account_feature (
    features_id        VARCHAR NOT NULL,
    account_id         VARCHAR NOT NULL,
    received           BIGINT NOT NULL,
    given              BIGINT NOT NULL,
    distinct_engagers  BIGINT NOT NULL,
    followers          BIGINT,
    age_days           DOUBLE,
    given_others       BIGINT NOT NULL
);

-- What each account gave to other accounts, by kind and sign of the weight: how many interactions
-- and their weights added up. Any version's out-weight that is a sum over the interactions of
-- kind_weight * max(weight, 0), * weight or * |weight| is the same sum over these rows, so one table
-- serves every version and its parameters.
CREATE TABLE account_out (
    features_id  VARCHAR NOT NULL,
    account_id   VARCHAR NOT NULL,
    kind         interaction_kind NOT NULL,
    negative     BOOLEAN NOT NULL,         -- weight < 0
    n            BIGINT NOT NULL,
    weight       DOUBLE NOT NULL
);
"""),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]

MIGRATION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migration (
    version  INTEGER PRIMARY KEY,
    name     VARCHAR NOT NULL
)"""

-- Bookkeeping tables in the warehouse (idempotent).
CREATE SCHEMA IF NOT EXISTS warehouse_sync;

CREATE TABLE IF NOT EXISTS warehouse_sync.audit (
    id            bigserial PRIMARY KEY,
    pipeline      text        NOT NULL,
    run_id        text        NOT NULL,
    step          text        NOT NULL,   -- plan | extract | load | reconcile_window | reconcile_table
    batch_index   integer,
    window_start  timestamptz,
    window_end    timestamptz NOT NULL,
    rows          bigint      NOT NULL DEFAULT 0,
    bytes         bigint      NOT NULL DEFAULT 0,
    seconds       double precision NOT NULL DEFAULT 0,
    status        text        NOT NULL,   -- ok | failed | drift
    detail        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS audit_pipeline_window ON warehouse_sync.audit (pipeline, window_end);

CREATE TABLE IF NOT EXISTS warehouse_sync.sync_state (
    pipeline        text PRIMARY KEY,
    late_horizon    timestamptz,          -- oldest source transaction still open when a window was read
    high_watermark  timestamptz,          -- greatest window end loaded
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS warehouse_sync.drift_history (
    id            bigserial PRIMARY KEY,
    pipeline      text        NOT NULL,
    run_id        text        NOT NULL,
    scope         text        NOT NULL,   -- window | table
    as_of         timestamptz NOT NULL,   -- rows with cursor >= as_of were in flight
    segments      integer     NOT NULL,
    missing       integer     NOT NULL,
    extra         integer     NOT NULL,
    changed       integer     NOT NULL,
    repaired      integer     NOT NULL,
    refused       boolean     NOT NULL DEFAULT false,
    seconds       double precision NOT NULL,
    sample        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS warehouse_sync.dq_results (
    id                 bigserial PRIMARY KEY,
    pipeline           text        NOT NULL,
    dag_id             text        NOT NULL,
    run_id             text        NOT NULL,
    window_start       timestamptz,           -- NULL for a full snapshot
    window_end         timestamptz NOT NULL,
    expectation        text        NOT NULL,  -- Great Expectations type, e.g. expect_column_values_to_be_in_set
    label              text        NOT NULL,  -- plain-language name shown on the report page
    columns            text,
    severity           text        NOT NULL,  -- fail | warn
    success            boolean     NOT NULL,
    observed_value     text,
    element_count      bigint,
    unexpected_count   bigint,
    unexpected_percent double precision,
    sample             jsonb       NOT NULL DEFAULT '[]'::jsonb,  -- failing rows: key columns and the value
    docs_path          text,                  -- Data Docs page, relative to the reports root
    recorded_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dq_results_pipeline_run ON warehouse_sync.dq_results (pipeline, window_end DESC);

CREATE TABLE IF NOT EXISTS warehouse_sync.schema_history (
    id            bigserial PRIMARY KEY,
    pipeline      text        NOT NULL,
    run_id        text        NOT NULL,
    target        text        NOT NULL,   -- schema.table in the warehouse
    column_name   text        NOT NULL,
    change        text        NOT NULL,   -- added | dropped | widened | narrowed | incompatible
    old_type      text,                   -- the target's type before (NULL when added)
    new_type      text,                   -- the source's type (NULL when dropped)
    policy        text        NOT NULL,   -- evolve | freeze | discard
    outcome       text        NOT NULL,   -- applied | kept | ignored | rejected
    detail        text        NOT NULL DEFAULT '',
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS schema_history_pipeline ON warehouse_sync.schema_history (pipeline, recorded_at DESC);

-- An integer cursor's value at each window end a plan recorded (docs/operating.md, "Integer cursors").
CREATE TABLE IF NOT EXISTS warehouse_sync.cursor_marks (
    pipeline    text        NOT NULL,
    window_end  timestamptz NOT NULL,
    mark        bigint,                 -- rows with cursor < mark were read; NULL: the source had no row
    read_at     timestamptz NOT NULL,   -- source clock, after the read: later writers take greater values
    PRIMARY KEY (pipeline, window_end)
);

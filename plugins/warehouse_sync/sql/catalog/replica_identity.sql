-- A table's replica identity: what an UPDATE or DELETE writes to the WAL about the old row, which
-- logical decoding passes on. relreplident: d (default: the primary key's columns), i (the columns of
-- the index marked indisreplident), f (full: every column), n (nothing). With d and no primary key,
-- or with n, PostgreSQL rejects every UPDATE and DELETE on the table once a publication publishes them.
-- Also: the first unique index whose columns are exactly the pipeline's key and may serve as the
-- replica identity (not partial, no expression, not deferrable, every column NOT NULL), for the fix.
-- Binds: schema, table, key (the pipeline's key columns, sorted).
WITH t AS (
    SELECT c.oid, c.relreplident
    FROM pg_catalog.pg_class AS c
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relname = %(table)s
), indexes AS (
    SELECT i.indexrelid, i.indisprimary, i.indisreplident, i.indisunique, i.indimmediate,
           i.indpred IS NULL AND i.indexprs IS NULL AS plain,
           array_agg(a.attname::text ORDER BY k.ord) AS columns,
           array_agg(a.attname::text ORDER BY a.attname::text COLLATE "C") AS sorted_columns,
           bool_and(a.attnotnull) AS not_null
    FROM t
    JOIN pg_catalog.pg_index AS i ON i.indrelid = t.oid
    CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    GROUP BY i.indexrelid, i.indisprimary, i.indisreplident, i.indisunique, i.indimmediate, plain
)
SELECT t.relreplident::text AS identity,
       (SELECT x.columns FROM indexes AS x
        WHERE (t.relreplident = 'd' AND x.indisprimary) OR (t.relreplident = 'i' AND x.indisreplident)
        LIMIT 1) AS identity_columns,
       (SELECT ic.relname::text FROM indexes AS x JOIN pg_catalog.pg_class AS ic ON ic.oid = x.indexrelid
        WHERE x.indisunique AND x.indimmediate AND x.plain AND x.not_null
          AND x.sorted_columns = %(key)s::text[]
        ORDER BY x.indisprimary DESC, ic.relname LIMIT 1) AS candidate_index
FROM t

-- Column lists of the primary key and every unique index of one table (key order kept), and whether
-- every column of it is NOT NULL. Partial and expression indexes are left out: neither makes its
-- columns a key of every row.
-- Binds: schema, table.
SELECT i.indisprimary AS is_primary,
       array_agg(a.attname ORDER BY k.ord) AS columns,
       bool_and(a.attnotnull) AS not_null
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE n.nspname = %(schema)s
  AND c.relname = %(table)s
  AND i.indisunique
  AND i.indpred IS NULL
  AND i.indexprs IS NULL
GROUP BY i.indexrelid, i.indisprimary
ORDER BY i.indisprimary DESC

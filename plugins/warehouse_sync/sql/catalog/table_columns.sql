-- Columns of one table, in table order, with their SQL type as PostgreSQL prints it.
-- Binds: schema, table.
SELECT a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS sql_type,
       t.typname AS type_name,
       a.attnotnull AS not_null
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE n.nspname = %(schema)s
  AND c.relname = %(table)s
  AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY a.attnum

-- Columns of one table, in table order, with their SQL type as PostgreSQL prints it, and what the
-- warehouse type policy (target/types.py) needs: the type a domain stands for (domains of domains
-- followed to the end) and whether that type is an enum or an array of enums.
-- Binds: schema, table.
WITH RECURSIVE cols AS (
    SELECT a.attnum, a.attname, a.atttypid, a.atttypmod, a.attnotnull
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s
      AND c.relname = %(table)s
      AND a.attnum > 0
      AND NOT a.attisdropped
), resolved AS (
    SELECT attnum, atttypid AS type_oid, atttypmod AS type_mod FROM cols
    UNION ALL
    SELECT r.attnum, t.typbasetype, t.typtypmod
    FROM resolved r
    JOIN pg_catalog.pg_type t ON t.oid = r.type_oid
    WHERE t.typtype = 'd'
)
SELECT cols.attname AS name,
       format_type(cols.atttypid, cols.atttypmod) AS sql_type,
       t.typname AS type_name,
       cols.attnotnull AS not_null,
       format_type(r.type_oid, r.type_mod) AS base_type,
       CASE WHEN b.typtype = 'e' THEN 'enum'
            WHEN e.typtype = 'e' THEN 'enum[]'
            ELSE '' END AS kind
FROM cols
JOIN pg_catalog.pg_type t ON t.oid = cols.atttypid
JOIN resolved r ON r.attnum = cols.attnum
JOIN pg_catalog.pg_type b ON b.oid = r.type_oid AND b.typtype <> 'd'
LEFT JOIN pg_catalog.pg_type e ON e.oid = b.typelem AND b.typcategory = 'A'
ORDER BY cols.attnum

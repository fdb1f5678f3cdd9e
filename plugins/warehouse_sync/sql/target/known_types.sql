-- Which of the named types the warehouse has: each name with its pg_type.typname, or NULL when the
-- warehouse has no such type (e.g. PostGIS's geometry without the extension).
-- Binds: names (text[], format_type spellings such as 'numeric(12,2)' or 'geometry(Point,4326)[]').
SELECT s.name, t.typname
FROM unnest(%(names)s::text[]) AS s(name)
LEFT JOIN pg_catalog.pg_type AS t ON t.oid = to_regtype(s.name)

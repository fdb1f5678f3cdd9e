-- The first key (in key order) whose first column is at least %(cut)s: one probe of the key index.
-- Values come back as text, like plan_boundaries.sql's (ORDER BY names the table's columns, t.*,
-- not the text output columns of the same names).
SELECT {key_text}
FROM {table} AS t
WHERE t.{first} >= %(cut)s
ORDER BY {keys}
LIMIT 1

-- Keyset batch boundaries: the first keyset row ((cursor, key...), or the key alone for a snapshot) of every batch of %(batch_size)s rows in the window,
-- in one streamed index-order scan of the key columns only (no OFFSET). Values come back as text so
-- that they travel through XCom exactly and bind back as untyped literals.
SELECT {key_text}, rn
FROM (
    SELECT {keys}, row_number() OVER (ORDER BY {keys}) AS rn
    FROM {table}
    WHERE {window}
) AS k
WHERE (rn - 1) %% %(batch_size)s = 0
ORDER BY rn

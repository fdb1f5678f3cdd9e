-- One schema change of a pipeline's source. A lasting difference that every run sees again (a new
-- column ignored, a dropped column kept) is recorded once: skipped when the column's latest row
-- already says the same. A rejection is recorded by every run that hit it.
INSERT INTO warehouse_sync.schema_history
    (pipeline, run_id, target, column_name, change, old_type, new_type, policy, outcome, detail)
SELECT %(pipeline)s, %(run_id)s, %(target)s, %(column)s, %(change)s, %(old_type)s, %(new_type)s, %(policy)s,
       %(outcome)s, %(detail)s
WHERE %(outcome)s::text = 'rejected' OR NOT EXISTS (
    SELECT 1
    FROM (SELECT h.change, h.old_type, h.new_type, h.outcome
          FROM warehouse_sync.schema_history AS h
          WHERE h.pipeline = %(pipeline)s::text AND h.target = %(target)s::text AND h.column_name = %(column)s::text
          ORDER BY h.id DESC LIMIT 1) AS latest
    WHERE latest.change = %(change)s::text AND latest.outcome = %(outcome)s::text
      AND latest.old_type IS NOT DISTINCT FROM %(old_type)s::text AND latest.new_type IS NOT DISTINCT FROM %(new_type)s::text
)

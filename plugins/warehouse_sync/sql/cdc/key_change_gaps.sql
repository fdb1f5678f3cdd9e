-- The columns some update that changed the key ('K', staged right after the delete of its old key) did not
-- carry: unchanged TOAST values, which the new key's row must take from the old key's (cdc/fill_key_change.sql).
SELECT DISTINCT unnest(_unchanged) FROM {staging} WHERE _op = 'K'

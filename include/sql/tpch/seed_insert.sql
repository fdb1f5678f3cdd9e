-- Seed rows with updated_at spread deterministically over the 24 hours before %(anchor)s.
INSERT INTO {table}
SELECT s.*, %(anchor)s::timestamptz - interval '24 hours'
       + (abs(hashint8extended({spread_key}, 0)) %% 86400000000) * interval '1 microsecond'
FROM {staging} AS s

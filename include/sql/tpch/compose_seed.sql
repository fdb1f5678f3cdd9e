-- docker compose's demo source: small TPC-H-shaped orders and lineitem, generated in SQL (no dbgen in
-- the image), updated_at spread over the 24 hours before the database's first start, so that the
-- shipped pipelines (include/pipelines.yaml) have rows in every two-hour window and pass their
-- expectations. Runs once, from /docker-entrypoint-initdb.d/, after schema.sql and before indexes.sql.
BEGIN;
SET LOCAL tpch.seeding = 'on';

INSERT INTO tpch.orders
SELECT o,
       1 + (o * 7919) % 1500,
       (ARRAY['O', 'F', 'P'])[1 + o % 3],
       round((1000 + (o * 104729) % 400000) / 1.0, 2),
       date '1995-01-01' + (o % 2400)::int,
       (ARRAY['1-URGENT', '2-HIGH', '3-MEDIUM', '4-NOT SPECIFIED', '5-LOW'])[1 + o % 5],
       'Clerk#' || lpad(((o * 31) % 1000)::text, 9, '0'),
       0,
       'generated order ' || o,
       date_trunc('hour', now()) - interval '24 hours' + (o - 1) * interval '24 hours' / 15000
FROM generate_series(1, 15000) AS o;

INSERT INTO tpch.lineitem
SELECT o.o_orderkey,
       1 + (o.o_orderkey * 13 + n) % 20000,
       1 + (o.o_orderkey * 17 + n) % 1000,
       n,
       1 + (o.o_orderkey + n) % 50,
       round(((o.o_orderkey * 37 + n) % 100000) / 1.0, 2),
       ((o.o_orderkey + n) % 11) / 100.0,
       ((o.o_orderkey + 2 * n) % 9) / 100.0,
       (ARRAY['R', 'A', 'N'])[1 + (o.o_orderkey + n) % 3],
       (ARRAY['O', 'F'])[1 + (o.o_orderkey + n) % 2],
       o.o_orderdate + n,
       o.o_orderdate + n + 30,
       o.o_orderdate + n + ((o.o_orderkey + n) % 30)::int,
       (ARRAY['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'])[1 + n % 4],
       (ARRAY['AIR', 'MAIL', 'SHIP', 'TRUCK', 'RAIL'])[1 + (o.o_orderkey + n) % 5],
       'generated line ' || n,
       o.updated_at
FROM tpch.orders AS o, generate_series(1, 1 + o.o_orderkey::int % 7) AS n;

COMMIT;

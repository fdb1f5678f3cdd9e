-- One order that breaks the domain rules (status X, negative total price); its key is returned.
INSERT INTO tpch.orders (o_orderkey, o_custkey, o_orderstatus, o_totalprice, o_orderdate, o_orderpriority,
                         o_clerk, o_shippriority, o_comment)
SELECT max(o_orderkey) + 1, 1, 'X', -1.00, current_date, '5-LOW', 'Clerk#000000001', 0,
       'deliberately broken row (demo)'
FROM tpch.orders
RETURNING o_orderkey

-- A fixed workload: only the lineitems of the refresh orders kept (keep_first_orders.sql).
DELETE FROM {staging} AS l WHERE NOT EXISTS (SELECT 1 FROM _tbl_orders AS o WHERE o.o_orderkey = l.l_orderkey)

-- A fixed workload: only the first %(orders)s refresh orders are inserted.
DELETE FROM {staging} WHERE o_orderkey > (SELECT max(o_orderkey) FROM (SELECT o_orderkey FROM {staging} ORDER BY 1 LIMIT %(orders)s) AS f)

-- Refresh-function 2: hard deletes of orders' lineitems (a cursor never sees these).
DELETE FROM tpch.lineitem WHERE l_orderkey = ANY(%(keys)s)

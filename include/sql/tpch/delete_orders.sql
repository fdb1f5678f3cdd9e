-- Refresh-function 2: hard deletes of orders (after their lineitems).
DELETE FROM tpch.orders WHERE o_orderkey = ANY(%(keys)s)

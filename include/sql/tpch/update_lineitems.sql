-- Discount changes for the lineitems of the same orders.
UPDATE tpch.lineitem
SET l_discount = CASE WHEN l_discount >= 0.09 THEN 0.00 ELSE l_discount + 0.01 END
WHERE l_orderkey >= %(lo)s AND l_orderkey < %(hi)s
  AND abs(hashint8(l_orderkey + %(seed)s)) %% %(every)s = 0

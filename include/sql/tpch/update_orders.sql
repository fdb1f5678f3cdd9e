-- Status and price changes for about 1 in %(every)s orders in [%(lo)s, %(hi)s) (a refund or a shipment).
UPDATE tpch.orders
SET o_orderstatus = CASE o_orderstatus WHEN 'O' THEN 'F' WHEN 'P' THEN 'F' ELSE 'P' END,
    o_totalprice  = round(o_totalprice * 0.97, 2)
WHERE o_orderkey >= %(lo)s AND o_orderkey < %(hi)s
  AND abs(hashint8(o_orderkey + %(seed)s)) %% %(every)s = 0

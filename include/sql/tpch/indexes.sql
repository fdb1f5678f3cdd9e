-- Keyset indexes for the cursor (created after the bulk seed; faster than maintaining them).
CREATE INDEX IF NOT EXISTS orders_updated_at_key ON tpch.orders (updated_at, o_orderkey);
CREATE INDEX IF NOT EXISTS lineitem_updated_at_key ON tpch.lineitem (updated_at, l_orderkey, l_linenumber);
ANALYZE tpch.orders;
ANALYZE tpch.lineitem;

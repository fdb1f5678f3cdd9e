-- TPC-H orders and lineitem as OLTP source tables, with an updated_at cursor kept by a trigger.
CREATE SCHEMA IF NOT EXISTS tpch;
DROP TABLE IF EXISTS tpch.lineitem, tpch.orders;

CREATE TABLE tpch.orders (
    o_orderkey      bigint        NOT NULL,
    o_custkey       bigint        NOT NULL,
    o_orderstatus   char(1)       NOT NULL,
    o_totalprice    numeric(15,2) NOT NULL,
    o_orderdate     date          NOT NULL,
    o_orderpriority char(15)      NOT NULL,
    o_clerk         char(15)      NOT NULL,
    o_shippriority  integer       NOT NULL,
    o_comment       varchar(79)   NOT NULL,
    updated_at      timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (o_orderkey)
);

CREATE TABLE tpch.lineitem (
    l_orderkey      bigint        NOT NULL,
    l_partkey       bigint        NOT NULL,
    l_suppkey       bigint        NOT NULL,
    l_linenumber    integer       NOT NULL,
    l_quantity      numeric(15,2) NOT NULL,
    l_extendedprice numeric(15,2) NOT NULL,
    l_discount      numeric(15,2) NOT NULL,
    l_tax           numeric(15,2) NOT NULL,
    l_returnflag    char(1)       NOT NULL,
    l_linestatus    char(1)       NOT NULL,
    l_shipdate      date          NOT NULL,
    l_commitdate    date          NOT NULL,
    l_receiptdate   date          NOT NULL,
    l_shipinstruct  char(25)      NOT NULL,
    l_shipmode      char(10)      NOT NULL,
    l_comment       varchar(44)   NOT NULL,
    updated_at      timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (l_orderkey, l_linenumber)
);

-- Every insert and update moves the cursor to the transaction's start time, unless a bulk
-- seed sets it on purpose (SET LOCAL tpch.seeding = 'on').
CREATE OR REPLACE FUNCTION tpch.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('tpch.seeding', true), '') <> 'on' THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER orders_touch BEFORE INSERT OR UPDATE ON tpch.orders
    FOR EACH ROW EXECUTE FUNCTION tpch.touch_updated_at();
CREATE TRIGGER lineitem_touch BEFORE INSERT OR UPDATE ON tpch.lineitem
    FOR EACH ROW EXECUTE FUNCTION tpch.touch_updated_at();

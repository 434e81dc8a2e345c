"""SQLAlchemy reflection and pandas read_sql through pgveil, as an analyst's notebook uses them:
inspect tables, views, columns, keys and indexes (what a BI tool or an ORM does on connect),
reflect a table into a MetaData and select through it, then DataFrames with read_sql and
read_sql_table. Both over psycopg 3 (the default PostgreSQL driver of SQLAlchemy 2 here).
Run by tests/drivers.rs; see common.py for what is compared."""
import datetime

import pandas as pd
import sqlalchemy as sa

from common import (CLEAR_SQL, MASKED_SQL, PHONE, Checker, check_customer_masks, direct_url, proxy_url,
                    visible_queries)

ck = Checker("sqlalchemy+pandas")
print(f"SQLAlchemy {sa.__version__}, pandas {pd.__version__}")

direct = sa.create_engine(direct_url("postgresql+psycopg"))
analyst = sa.create_engine(proxy_url("analyst", "postgresql+psycopg"))
TABLES = ["customers", "employees", "orders", "suppliers"]


def reflection():
    pi, di = sa.inspect(analyst), sa.inspect(direct)
    ck.eq("get_schema_names", pi.get_schema_names(), di.get_schema_names())
    ck.eq("get_table_names", sorted(pi.get_table_names()), TABLES)
    ck.eq("get_view_names", pi.get_view_names(), di.get_view_names())
    ck.eq("get_view_definition", pi.get_view_definition("customer_contacts"),
          di.get_view_definition("customer_contacts"))
    for t in TABLES:
        strip = lambda cols: [{k: str(v) if k == "type" else v for k, v in c.items()} for c in cols]  # noqa: E731
        ck.eq(f"get_columns({t})", strip(pi.get_columns(t)), strip(di.get_columns(t)))
        ck.eq(f"get_pk_constraint({t})", pi.get_pk_constraint(t), di.get_pk_constraint(t))
        ck.eq(f"get_foreign_keys({t})", pi.get_foreign_keys(t), di.get_foreign_keys(t))
        ck.eq(f"get_indexes({t})", pi.get_indexes(t), di.get_indexes(t))
        ck.eq(f"get_unique_constraints({t})", pi.get_unique_constraints(t), di.get_unique_constraints(t))
        ck.eq(f"get_check_constraints({t})", pi.get_check_constraints(t), di.get_check_constraints(t))
    # The bulk reflection SQLAlchemy 2 uses for MetaData.reflect.
    ck.eq("get_multi_columns", {k: [c["name"] for c in v] for k, v in pi.get_multi_columns().items()},
          {k: [c["name"] for c in v] for k, v in di.get_multi_columns().items()})
    ck.ok("has_table", pi.has_table("customers") and not pi.has_table("no_such_table"))


def reflected_select():
    md = sa.MetaData()
    md.reflect(bind=analyst, only=["customers", "orders"])
    c, o = md.tables["customers"], md.tables["orders"]
    ck.eq("reflected customers columns", [col.name for col in c.columns],
          ["id", "name", "id_number", "phone", "email", "bank_card", "address", "birth_date", "city",
           "vip_level", "consent_transfer", "notes", "created_at"])
    ck.ok("reflected foreign key orders.customer_id -> customers.id",
          [fk.target_fullname for fk in o.c.customer_id.foreign_keys] == ["customers.id"])
    q = (sa.select(c.c.city, sa.func.count(o.c.id).label("n"))
         .join(o, o.c.customer_id == c.c.id).group_by(c.c.city).order_by(c.c.city))
    with analyst.connect() as conn:
        got = conn.execute(q).all()
    with direct.connect() as conn:
        want = conn.execute(q.where(c.c.consent_transfer)).all()
    ck.eq("ORM-style select with join and group by (bound parameters none)", got, want)
    q = sa.select(c.c.id, c.c.phone).where(c.c.vip_level >= sa.bindparam("v")).order_by(c.c.id)
    with analyst.connect() as conn:
        got = conn.execute(q, {"v": 4}).all()
    with direct.connect() as conn:
        want = conn.execute(q.where(c.c.consent_transfer), {"v": 4}).all()
    ck.ok("select with a bound parameter: same ids, phones masked",
          [r[0] for r in got] == [r[0] for r in want] and all(PHONE.match(r[1]) for r in got) and got, got[:2])


def frames():
    for label, proxy_sql, direct_sql in visible_queries():
        got, want = pd.read_sql(sa.text(proxy_sql), analyst), pd.read_sql(sa.text(direct_sql), direct)
        try:
            pd.testing.assert_frame_equal(got, want)
            ck.ok(f"read_sql [{label}]: same DataFrame as direct ({len(want)} rows)", len(want) > 0)
        except AssertionError as e:
            ck.ok(f"read_sql [{label}]", False, str(e)[:500])
    masked = pd.read_sql(sa.text(MASKED_SQL), analyst)
    clear = pd.read_sql(sa.text(CLEAR_SQL), direct)

    def as_rows(df):
        return [tuple(None if pd.isna(v) else (v.date() if isinstance(v, pd.Timestamp) else v) for v in r)
                for r in df.itertuples(index=False)]
    check_customer_masks(ck, "read_sql masked customers", as_rows(masked), as_rows(clear))
    stats = pd.read_sql(sa.text("SELECT city, vip_level, count(*) AS n FROM customers GROUP BY 1, 2"), analyst)
    ck.eq("DataFrame aggregate on public columns",
          int(stats["n"].sum()), int(pd.read_sql(sa.text("SELECT count(*) FROM customers WHERE consent_transfer"),
                                                  direct).iloc[0, 0]))
    chunks = list(pd.read_sql(sa.text("SELECT id, created_at FROM customers ORDER BY id"), analyst, chunksize=100))
    ck.eq("read_sql chunksize=100", sum(len(c) for c in chunks), len(clear))
    ck.ok("read_sql parses timestamps", isinstance(chunks[0]["created_at"].iloc[0], (pd.Timestamp, datetime.datetime)))


def frames_of_tables():
    """read_sql_table reflects the table first (MetaData.reflect), then selects every column."""
    table = pd.read_sql_table("orders", analyst)
    dtable = pd.read_sql_table("orders", direct)
    cols = ["id", "customer_id", "order_no", "status", "ordered_at"]
    try:
        pd.testing.assert_frame_equal(table[cols], dtable[cols])
        ck.ok(f"read_sql_table(orders): clear columns as direct ({len(table)} rows)", len(table) > 0)
    except AssertionError as e:
        ck.ok("read_sql_table(orders): clear columns as direct", False, str(e)[:500])
    ck.eq("read_sql_table(orders): amount (internal) redacted", sorted(set(table["amount"].astype(str))), ["0.0"])


def refused():
    try:
        pd.read_sql_table("employees", analyst)
        ck.ok("read_sql_table(employees) refused (salary is secret)", False, "it ran")
    except (sa.exc.ProgrammingError, pd.errors.DatabaseError) as e:
        # pandas 3 wraps SQLAlchemy's error in its own DatabaseError; the driver's error
        # (with its SQLSTATE) is SQLAlchemy's `orig`, wherever it sits in the chain.
        err = e
        while err is not None and not hasattr(err, "orig"):
            err = err.__cause__ or err.__context__
        orig = getattr(err, "orig", e)
        ck.ok("read_sql_table(employees) refused with 42501 naming salary",
              getattr(orig, "sqlstate", None) == "42501" and "employees.salary" in str(orig), str(orig))
    df = pd.read_sql_table("employees", analyst, columns=["id", "department", "hired_on"])
    ck.eq("read_sql_table(employees, columns=public ones)", len(df), 50)


for name, fn in [("reflection", reflection), ("reflected select", reflected_select), ("pandas read_sql", frames),
                 ("pandas read_sql_table", frames_of_tables),
                 ("refusals", refused)]:
    ck.run(name, fn)
ck.finish()

"""psycopg 3 through pgveil: text and binary cursors, parameters and prepared statements,
server-side (named) cursors, COPY TO STDOUT, errors; as analyst, auditor and dba.
Run by tests/drivers.rs; see common.py for what is compared."""
import psycopg
from psycopg import errors

from common import (CLEAR_SQL, DENIED_SQL, MASKED_SQL, Checker, check_customer_masks, direct_kwargs,
                    proxy_kwargs, valid_resident_id, visible_queries)

ck = Checker("psycopg")
print(f"psycopg {psycopg.__version__} (libpq {psycopg.pq.version()}, impl {psycopg.pq.__impl__})")

direct = psycopg.connect(**direct_kwargs(), autocommit=True)
analyst = psycopg.connect(**proxy_kwargs("analyst"), autocommit=True)


def fetch(conn, sql, params=None, binary=False):
    with conn.cursor(binary=binary) as cur:
        cur.execute(sql, params)
        return [d.name for d in cur.description], cur.fetchall()


def visible():
    for binary in (False, True):
        fmt = "binary" if binary else "text"
        for label, proxy_sql, direct_sql in visible_queries():
            got = fetch(analyst, proxy_sql, binary=binary)
            want = fetch(direct, direct_sql, binary=binary)
            ck.ok(f"{fmt}: [{label}] has rows", len(want[1]) > 0, "direct gave no rows")
            ck.eq(f"{fmt}: [{label}] same columns and rows as direct", got, want)


def parameters():
    sql = "SELECT id, city, created_at FROM customers WHERE vip_level = %s AND city = ANY(%s) ORDER BY id"
    dsql = sql.replace("WHERE", "WHERE consent_transfer AND")
    for binary in (False, True):
        for vip in (0, 3, 5):
            params = (vip, ["深圳", "上海", "成都", "北京"])
            ck.eq(f"{'binary' if binary else 'text'}: parameters vip={vip}",
                  fetch(analyst, sql, params, binary), fetch(direct, dsql, params, binary))
    # prepare=True: a named server-side statement, Bind/Execute only from the 2nd run on.
    with analyst.cursor() as cur, direct.cursor() as dcur:
        for vip in range(6):
            cur.execute("SELECT id, phone FROM customers WHERE vip_level = %s ORDER BY id", (vip,), prepare=True)
            dcur.execute("SELECT id, phone FROM customers WHERE consent_transfer AND vip_level = %s ORDER BY id",
                         (vip,), prepare=True)
            got, want = cur.fetchall(), dcur.fetchall()
            ck.ok(f"prepared vip={vip}: same ids, phones masked with last 4 kept",
                  [r[0] for r in got] == [r[0] for r in want]
                  and all(g[1] != w[1] and g[1][-4:] == w[1][-4:] for g, w in zip(got, want)),
                  f"{got[:2]} vs {want[:2]}")


def masks():
    clear = fetch(direct, CLEAR_SQL)[1]
    for binary in (False, True):
        rows = fetch(analyst, MASKED_SQL, binary=binary)[1]
        check_customer_masks(ck, f"{'binary' if binary else 'text'} masked customers", rows, clear)
    # Masked values compare, group and sort as masked values: a filter on the masked phone
    # finds the rows whose masked phone matches, the same ones in text and binary.
    sample = fetch(analyst, "SELECT phone FROM customers ORDER BY id LIMIT 1")[1][0][0]
    ids = fetch(analyst, "SELECT id FROM customers WHERE phone = %s ORDER BY id", (sample,))[1]
    ck.ok("WHERE on a masked column compares the masked value", len(ids) >= 1, f"{sample!r}: {ids}")
    amounts = fetch(analyst, "SELECT DISTINCT amount FROM orders")[1]
    ck.eq("orders.amount (internal) is redacted for the analyst", [str(a[0]) for a in amounts], ["0.00"])


def server_side_cursor():
    clear = fetch(direct, CLEAR_SQL)[1]
    for binary in (False, True):
        with analyst.transaction():
            with analyst.cursor(name="masked_customers", binary=binary) as cur:
                cur.itersize = 97
                cur.execute(MASKED_SQL)
                rows = []
                while batch := cur.fetchmany(97):
                    rows.extend(batch)
        check_customer_masks(ck, f"server-side cursor ({'binary' if binary else 'text'})", rows, clear)
    label, proxy_sql, direct_sql = visible_queries()[1]
    with analyst.transaction(), analyst.cursor(name="orders_cur") as cur:
        cur.execute(proxy_sql)
        got = [row for row in cur]
    ck.eq(f"server-side cursor: [{label}] same as direct", got, fetch(direct, direct_sql)[1])


def copy_out(conn, sql):
    out = bytearray()
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for chunk in copy:
            out += chunk
    return out.decode("utf-8")


def copy():
    got = copy_out(analyst, "COPY (SELECT id, city, vip_level, created_at FROM customers ORDER BY id) TO STDOUT")
    want = copy_out(direct, "COPY (SELECT id, city, vip_level, created_at FROM customers WHERE consent_transfer "
                            "ORDER BY id) TO STDOUT")
    ck.ok("COPY (query) TO STDOUT: has rows", want.count("\n") > 100, want[:100])
    ck.eq("COPY (query) TO STDOUT: same text as direct", got, want)
    got = copy_out(analyst, "COPY (SELECT id, status FROM orders ORDER BY id) TO STDOUT (FORMAT csv, HEADER)")
    want = copy_out(direct, "COPY (SELECT id, status FROM orders ORDER BY id) TO STDOUT (FORMAT csv, HEADER)")
    ck.eq("COPY TO STDOUT csv with header: same as direct", got, want)
    lines = copy_out(analyst, "COPY customers (id, phone, id_number) TO STDOUT").splitlines()
    clear = {r[0]: r for r in fetch(direct, "SELECT id, phone, id_number FROM customers WHERE consent_transfer")[1]}
    bad = [ln for ln in lines if not (len(ln.split("\t")) == 3 and int(ln.split("\t")[0]) in clear
                                      and ln.split("\t")[1][-4:] == clear[int(ln.split("\t")[0])][1][-4:]
                                      and "*" in ln.split("\t")[1] and ln.split("\t")[2].endswith("*" * 12))]
    ck.ok(f"COPY table (cols) TO STDOUT: {len(lines)} rows, filtered and masked",
          len(lines) == len(clear) and not bad, f"{len(lines)} vs {len(clear)}; {bad[:3]}")


def copy_binary():
    sql = "COPY (SELECT id, phone, birth_date FROM customers ORDER BY id) TO STDOUT (FORMAT BINARY)"
    with analyst.cursor() as cur, cur.copy(sql) as cp:
        cp.set_types(["int4", "varchar", "date"])
        got = list(cp.rows())
    want = fetch(analyst, "SELECT id, phone, birth_date FROM customers ORDER BY id")[1]
    ck.ok("COPY TO STDOUT (FORMAT BINARY): has rows", len(want) > 100)
    ck.eq("COPY TO STDOUT (FORMAT BINARY): the same masked rows as SELECT", got, want)


def denied():
    for sql in DENIED_SQL:
        for binary in (False, True):
            try:
                fetch(analyst, sql, binary=binary)
                ck.ok(f"refused: {sql}", False, "it ran")
            except errors.InsufficientPrivilege as e:
                ck.ok(f"refused with 42501 ({'binary' if binary else 'text'}): {sql}",
                      e.sqlstate == "42501" and "salary" in str(e), str(e))
    # In a transaction the error aborts it as PostgreSQL would; rollback recovers.
    with psycopg.connect(**proxy_kwargs("analyst")) as conn:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM customers")
        try:
            cur.execute("SELECT salary FROM employees")
        except errors.InsufficientPrivilege:
            pass
        try:
            cur.execute("SELECT 1")
            ck.ok("failed statement aborts the transaction", False, "SELECT 1 ran")
        except errors.InFailedSqlTransaction:
            ck.ok("failed statement aborts the transaction", True)
        conn.rollback()
        cur.execute("SELECT count(*) FROM customers")
        ck.ok("after ROLLBACK the session works", cur.fetchone()[0] > 0)


def auditor():
    with psycopg.connect(**proxy_kwargs("auditor"), autocommit=True) as conn:
        sql = "SELECT id, id_number FROM customers ORDER BY id"
        text, binary = fetch(conn, sql)[1], fetch(conn, sql, binary=True)[1]
        clear = dict(fetch(direct, sql)[1])
        ck.ok("auditor: id_number tokens are valid resident IDs, none equal to the real one",
              all(valid_resident_id(t) and t != clear[i] for i, t in text), text[:3])
        ck.eq("auditor: tokens identical in text and binary", binary, text)
        ck.ok("auditor: tokens are distinct per distinct ID", len({t for _, t in text}) == len(set(clear.values())))
        again = fetch(conn, "SELECT id, id_number FROM customers WHERE id = %s", (text[0][0],), binary=True)[1]
        ck.eq("auditor: same token with parameters", again, text[:1])
        # COPY in its default text format: pgveil masks the rows it relays, tokens included.
        copied = copy_out(conn, "COPY (SELECT id, id_number FROM customers ORDER BY id) TO STDOUT")
        rows = [line.split("\t") for line in copied.splitlines()]
        ck.eq("auditor: COPY text gives the same tokens as SELECT", [(int(i), t) for i, t in rows], text)
        # With options (csv, binary...) the rows are not masked by pgveil: a token is refused.
        try:
            copy_out(conn, "COPY (SELECT id, id_number FROM customers) TO STDOUT (FORMAT csv)")
            ck.ok("auditor: COPY csv of a keyed (token) column refused", False, "it ran")
        except errors.FeatureNotSupported as e:
            ck.ok("auditor: COPY csv of a keyed (token) column refused with 0A000", e.sqlstate == "0A000", str(e))
        got = fetch(conn, "SELECT id, amount FROM orders ORDER BY id")
        ck.eq("auditor: orders.amount (internal) in clear", got, fetch(direct, "SELECT id, amount FROM orders ORDER BY id"))


def dba():
    with psycopg.connect(**proxy_kwargs("dba"), autocommit=True) as conn:
        for binary in (False, True):
            sql = "SELECT * FROM customers ORDER BY id"
            ck.eq(f"dba: every column clear ({'binary' if binary else 'text'})",
                  fetch(conn, sql, binary=binary), fetch(direct, sql, binary=binary))
        sql = "SELECT name, salary FROM employees ORDER BY id"
        ck.eq("dba: salaries", fetch(conn, sql), fetch(direct, sql))


for name, fn in [("visible data", visible), ("parameters", parameters), ("masks", masks),
                 ("server-side cursor", server_side_cursor), ("COPY", copy), ("COPY binary", copy_binary),
                 ("refusals", denied),
                 ("auditor", auditor), ("dba", dba)]:
    ck.run(name, fn)
ck.finish()

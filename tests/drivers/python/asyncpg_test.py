"""asyncpg through pgveil: binary results everywhere, its statement cache (named prepared
statements), explicit prepared statements, portal cursors (Execute with a row limit), COPY out,
a connection pool under concurrency; as analyst, auditor and dba.
Run by tests/drivers.rs; see common.py for what is compared."""
import asyncio
import io

import asyncpg

from common import (CLEAR_SQL, DENIED_SQL, MASKED_SQL, Checker, check_customer_masks, direct_kwargs,
                    proxy_kwargs, valid_resident_id, visible_queries)

ck = Checker("asyncpg")
print(f"asyncpg {asyncpg.__version__}")


def kw(d):
    d = dict(d)
    d["database"] = d.pop("dbname")
    return d


def rows(records):
    return [tuple(r.values()) for r in records]


def cols(records):
    return list(records[0].keys()) if records else []


async def visible(analyst, direct):
    for label, proxy_sql, direct_sql in visible_queries():
        got, want = await analyst.fetch(proxy_sql), await direct.fetch(direct_sql)
        ck.ok(f"[{label}] has rows", len(want) > 0)
        ck.eq(f"[{label}] same columns as direct", cols(got), cols(want))
        ck.eq(f"[{label}] same rows as direct (binary)", rows(got), rows(want))
    # Second run: served from asyncpg's statement cache (Bind/Execute of a named statement).
    label, proxy_sql, direct_sql = visible_queries()[0]
    ck.eq(f"[{label}] again, from the statement cache", rows(await analyst.fetch(proxy_sql)),
          rows(await direct.fetch(direct_sql)))


async def prepared(analyst, direct):
    stmt = await analyst.prepare("SELECT id, city, created_at FROM customers WHERE vip_level = $1 AND city = ANY($2::text[]) ORDER BY id")
    dstmt = await direct.prepare("SELECT id, city, created_at FROM customers WHERE consent_transfer AND vip_level = $1 "
                                 "AND city = ANY($2::text[]) ORDER BY id")
    ck.eq("prepared: parameter types", [t.name for t in stmt.get_parameters()],
          [t.name for t in dstmt.get_parameters()])
    ck.eq("prepared: result attributes", [(a.name, a.type.name) for a in stmt.get_attributes()],
          [(a.name, a.type.name) for a in dstmt.get_attributes()])
    for vip in range(6):
        args = (vip, ["深圳", "上海", "成都", "北京", "广州"])
        ck.eq(f"prepared: vip={vip}", rows(await stmt.fetch(*args)), rows(await dstmt.fetch(*args)))
    masked = await analyst.prepare(MASKED_SQL)
    ck.eq("prepared masked statement: attribute types", [a.type.name for a in masked.get_attributes()],
          ["int4", "text", "varchar", "varchar", "text", "varchar", "text", "date", "text"])
    check_customer_masks(ck, "prepared statement (binary)", rows(await masked.fetch()), rows(await direct.fetch(CLEAR_SQL)))
    one = await analyst.fetchrow("SELECT phone, birth_date FROM customers WHERE id = $1",
                                 (await analyst.fetchval("SELECT min(id) FROM customers")))
    ck.ok("fetchrow with a parameter: masked phone and year-truncated date",
          one["phone"].count("*") == 4 and one["birth_date"].month == 1 and one["birth_date"].day == 1, one)


async def cursor(analyst, direct):
    clear = rows(await direct.fetch(CLEAR_SQL))
    async with analyst.transaction():
        got = [tuple(r.values()) async for r in analyst.cursor(MASKED_SQL, prefetch=50)]
    check_customer_masks(ck, "cursor, prefetch 50 (Execute with row limit)", got, clear)
    async with analyst.transaction():
        cur = await analyst.cursor("SELECT id, customer_id, order_no, status FROM orders ORDER BY id")
        first = await cur.fetch(100)
        await cur.forward(10)
        after = await cur.fetch(5)
    want = rows(await direct.fetch("SELECT id, customer_id, order_no, status FROM orders ORDER BY id LIMIT 115"))
    ck.eq("cursor: fetch 100, forward 10, fetch 5", rows(first) + rows(after), want[:100] + want[110:115])


async def copy(analyst, direct):
    async def out(conn, sql, **opts):
        buf = io.BytesIO()
        await conn.copy_from_query(sql, output=buf, **opts)
        return buf.getvalue().decode()
    got = await out(analyst, "SELECT id, city, vip_level FROM customers ORDER BY id", format="csv")
    want = await out(direct, "SELECT id, city, vip_level FROM customers WHERE consent_transfer ORDER BY id", format="csv")
    ck.ok("copy_from_query csv: rows", want.count("\n") > 100)
    ck.eq("copy_from_query csv: same as direct", got, want)
    masked = await out(analyst, "SELECT id, phone FROM customers ORDER BY id")
    ck.ok("copy_from_query text: phones masked",
          all(line.split("\t")[1].count("*") == 4 for line in masked.splitlines()) and masked, masked[:80])


async def denied(analyst):
    for sql in DENIED_SQL:
        try:
            await analyst.fetch(sql)
            ck.ok(f"refused: {sql}", False, "it ran")
        except asyncpg.exceptions.InsufficientPrivilegeError as e:
            ck.ok(f"refused with 42501: {sql}", e.sqlstate == "42501", str(e))
    try:
        await analyst.prepare("SELECT id, salary FROM employees WHERE id = $1")
        ck.ok("prepare of a denied column refused", False, "prepared")
    except asyncpg.exceptions.InsufficientPrivilegeError:
        ck.ok("prepare of a denied column refused with 42501", True)
    ck.ok("connection usable after refusals", await analyst.fetchval("SELECT count(*) FROM suppliers") == 20)


async def pool(direct):
    want = rows(await direct.fetch("SELECT id, city FROM customers WHERE consent_transfer AND vip_level = $1 ORDER BY id", 2))

    async def run(label, **opts):
        async with asyncpg.create_pool(**kw(proxy_kwargs("analyst")), min_size=2, max_size=3, **opts) as p:
            async def one(i):
                async with p.acquire() as conn:
                    got = rows(await conn.fetch("SELECT id, city FROM customers WHERE vip_level = $1 ORDER BY id", 2))
                    masked = await conn.fetchval("SELECT id_number FROM customers ORDER BY id LIMIT 1 OFFSET $1", i)
                    return got, masked
            results = await asyncio.gather(*(one(i) for i in range(24)), return_exceptions=True)
        errs = [r for r in results if isinstance(r, BaseException)]
        ck.ok(f"pool ({label}): 24 concurrent acquire/query/release on 3 connections", not errs,
              f"{len(errs)} failed, first: {errs[0]!r}" if errs else "")
        good = [r for r in results if not isinstance(r, BaseException)]
        ck.ok(f"pool ({label}): same rows as direct, id numbers masked",
              good and all(g == want and m.endswith("*" * 12) for g, m in good), good[:1])

    # A pool-released connection is reset with "SELECT pg_advisory_unlock_all(); CLOSE ALL;
    # UNLISTEN *; RESET ALL;" (asyncpg's Connection.reset).
    await run("default reset")

    async def keep_session(conn):
        await conn.execute("CLOSE ALL; UNLISTEN *")
    await run("reset=CLOSE ALL; UNLISTEN *", reset=keep_session)


async def auditor(direct):
    conn = await asyncpg.connect(**kw(proxy_kwargs("auditor")))
    try:
        got = rows(await conn.fetch("SELECT id, id_number FROM customers ORDER BY id"))
        clear = dict(rows(await direct.fetch("SELECT id, id_number FROM customers")))
        ck.ok("auditor (binary): tokens are valid resident IDs, never the real one",
              all(valid_resident_id(t) and t != clear[i] for i, t in got), got[:3])
        stmt = await conn.prepare("SELECT id, id_number FROM customers WHERE id = $1")
        ck.eq("auditor: prepared statement gives the same token", rows(await stmt.fetch(got[5][0])), [got[5]])
        ck.eq("auditor: amounts clear", rows(await conn.fetch("SELECT id, amount FROM orders ORDER BY id")),
              rows(await direct.fetch("SELECT id, amount FROM orders ORDER BY id")))
    finally:
        await conn.close()


async def dba(direct):
    conn = await asyncpg.connect(**kw(proxy_kwargs("dba")))
    try:
        for sql in ["SELECT * FROM customers ORDER BY id", "SELECT * FROM employees ORDER BY id"]:
            ck.eq(f"dba: {sql}", rows(await conn.fetch(sql)), rows(await direct.fetch(sql)))
    finally:
        await conn.close()


async def main():
    direct = await asyncpg.connect(**kw(direct_kwargs()))
    analyst = await asyncpg.connect(**kw(proxy_kwargs("analyst")))
    for name, make in [("visible data", lambda: visible(analyst, direct)),
                       ("prepared statements", lambda: prepared(analyst, direct)),
                       ("cursors", lambda: cursor(analyst, direct)), ("COPY", lambda: copy(analyst, direct)),
                       ("refusals", lambda: denied(analyst)), ("pool", lambda: pool(direct)),
                       ("auditor", lambda: auditor(direct)), ("dba", lambda: dba(direct))]:
        await ck.run_async(name, make)
    await analyst.close()
    await direct.close()


async def connect_or_report():
    try:
        conn = await asyncpg.connect(**kw(proxy_kwargs("analyst")))
    except Exception as e:  # noqa: BLE001 - the one check that gates the others
        ck.ok("connect as analyst (asyncpg sends client_encoding='utf-8', quotes included)", False, repr(e))
        return False
    await conn.close()
    return True


if asyncio.run(connect_or_report()):
    asyncio.run(main())
ck.finish()

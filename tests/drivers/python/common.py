"""Shared helpers of the Python driver scripts run by tests/drivers.rs.

Each script connects through pgveil (PGVEIL_HOST/PGVEIL_PORT) as the demo logins of rules/
and directly to PostgreSQL (DIRECT_HOST/DIRECT_PORT/DIRECT_USER, trust auth) as the
superuser, runs the same statements both ways and compares:
  - visible data (tests/drivers/queries.txt): the same rows, in the same order;
  - masked columns: well-formed masked values that keep exactly what rules/MASKS.md says
    they keep, computed from the clear value read directly;
  - denied columns: refused with SQLSTATE 42501.
A script prints one line per check and exits 1 if any failed (all checks run).
"""
import datetime
import os
import re
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run this script through `cargo test --test drivers`")
    return value


DB = env("PGVEIL_DB")
PROXY = {"host": env("PGVEIL_HOST"), "port": int(env("PGVEIL_PORT"))}
DIRECT = {"host": env("DIRECT_HOST"), "port": int(env("DIRECT_PORT")), "user": env("DIRECT_USER")}

# The demo logins (rules/logins.yaml): each password is the user name.
ROLES = ("analyst", "auditor", "dba")


def proxy_url(role, driver="postgresql"):
    return f"{driver}://{role}:{role}@{PROXY['host']}:{PROXY['port']}/{DB}"


def direct_url(driver="postgresql"):
    return f"{driver}://{DIRECT['user']}@{DIRECT['host']}:{DIRECT['port']}/{DB}"


def proxy_kwargs(role):
    return dict(host=PROXY["host"], port=PROXY["port"], user=role, password=role, dbname=DB)


def direct_kwargs():
    return dict(host=DIRECT["host"], port=DIRECT["port"], user=DIRECT["user"], dbname=DB)


def visible_queries():
    """(label, proxy_sql, direct_sql) from tests/drivers/queries.txt."""
    out, label, proxy, direct = [], None, None, None

    def flush():
        if label is not None:
            if proxy is None:
                raise ValueError(f"queries.txt: block [{label}] has no proxy: line")
            out.append((label, proxy, direct or proxy))

    for line in (HERE.parent / "queries.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            flush()
            label, proxy, direct = line[1:-1], None, None
        elif line.startswith("proxy:"):
            proxy = line[len("proxy:"):].strip()
        elif line.startswith("direct:"):
            direct = line[len("direct:"):].strip()
        else:
            raise ValueError(f"queries.txt: unexpected line {line!r}")
    flush()
    if len(out) < 5:
        raise ValueError(f"queries.txt: only {len(out)} blocks")
    return out


# The statement whose masked columns are checked, and its direct twin (clear values).
CUSTOMER_COLUMNS = "id, name, id_number, phone, email, bank_card, address, birth_date, notes"
MASKED_SQL = f"SELECT {CUSTOMER_COLUMNS} FROM customers ORDER BY id"
CLEAR_SQL = f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE consent_transfer ORDER BY id"
DENIED_SQL = ["SELECT name, salary FROM employees", "SELECT * FROM employees",
              "SELECT department, sum(salary) FROM employees GROUP BY department"]

PHONE = re.compile(r"^1[3-9]\d\*{4}\d{4}$")
CN_ID = re.compile(r"^\d{6}\*{12}$")
CARD = re.compile(r"^\*{8,15}\d{4}$")
EMAIL = re.compile(r"^[^@]\*{5}@[^@]+$")
NAME = re.compile(r"^\w{1,2}\*\*$")


def valid_resident_id(s):
    """A PRC resident ID: 17 digits, a real date at 7..14, ISO 7064 MOD 11-2 check char."""
    if not isinstance(s, str) or not re.fullmatch(r"\d{17}[\dX]", s):
        return False
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(c) * w for c, w in zip(s[:17], weights))
    if "10X98765432"[total % 11] != s[17]:
        return False
    try:
        datetime.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return True


class Checker:
    """Counts checks; a failed check is printed and remembered, never raised."""

    def __init__(self, script):
        self.script = script
        self.passed = 0
        self.failed = []

    def ok(self, what, cond, detail=""):
        if cond:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed.append(what)
            print(f"FAIL {what}: {detail}")
        return cond

    def eq(self, what, got, want):
        if got == want:
            return self.ok(what, True)
        detail = f"{len(got)} vs {len(want)} items" if isinstance(got, list) and isinstance(want, list) else ""
        if isinstance(got, list) and isinstance(want, list):
            for i, (g, w) in enumerate(zip(got, want)):
                if g != w:
                    detail += f"; first difference at {i}: got {g!r}, want {w!r}"
                    break
        else:
            detail = f"got {got!r}, want {want!r}"
        return self.ok(what, False, detail)

    def run(self, what, fn):
        """Runs a group of checks; an exception fails the group with its traceback."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report and go on with the next group
            self.failed.append(what)
            print(f"FAIL {what}: {type(e).__name__}: {e}")
            traceback.print_exc(file=sys.stdout)

    async def run_async(self, what, make):
        """Like run, for a coroutine made by make()."""
        try:
            await make()
        except Exception as e:  # noqa: BLE001 - report and go on with the next group
            self.failed.append(what)
            print(f"FAIL {what}: {type(e).__name__}: {e}")
            traceback.print_exc(file=sys.stdout)

    def finish(self):
        print(f"{self.script}: {self.passed} passed, {len(self.failed)} failed")
        if self.failed:
            print("failed: " + "; ".join(self.failed))
            sys.exit(1)


def check_customer_masks(ck, label, masked_rows, clear_rows):
    """masked_rows: MASKED_SQL through pgveil as analyst; clear_rows: CLEAR_SQL direct.
    Rows are sequences in CUSTOMER_COLUMNS order, with str/date/None values."""
    ck.eq(f"{label}: row filter keeps exactly the consenting customers",
          [r[0] for r in masked_rows], [r[0] for r in clear_rows])
    bad = []
    for m, c in zip(masked_rows, clear_rows):
        _, name, idn, phone, email, card, address, birth, notes = m
        _, cname, cidn, cphone, cemail, ccard, caddress, cbirth, cnotes = c
        checks = [
            ("name", NAME.match(name or "") and cname.startswith(name[:-2])),
            ("id_number", CN_ID.match(idn or "") and idn[:6] == cidn[:6]),
            ("phone", PHONE.match(phone or "") and phone[:3] == cphone[:3] and phone[-4:] == cphone[-4:]),
            ("email", EMAIL.match(email or "") and email[0] == cemail[0]
             and email.split("@")[1] == cemail.rsplit("@", 1)[1]),
            ("bank_card", CARD.match(card or "") and len(card) == len(ccard) and card[-4:] == ccard[-4:]),
            ("address", address is not None and (address == "****" or
                                                 (caddress.startswith(address) and len(address) < len(caddress)))),
            ("birth_date", birth == datetime.date(cbirth.year, 1, 1)),
            ("notes", notes == (None if cnotes is None else "****")),
        ]
        for col, good in checks:
            if not good:
                bad.append(f"id {m[0]} {col}: {dict(zip(CUSTOMER_COLUMNS.split(', '), m))[col]!r}")
    ck.ok(f"{label}: {len(masked_rows)} customers, every masked column well-formed and keeping only "
          f"what rules/MASKS.md says", not bad and masked_rows, "; ".join(bad[:5]))

// node-postgres (`pg`) through pgveil: simple-protocol queries, parameterised (extended) queries,
// named prepared statements, rowMode 'array', binary results, a Pool under concurrency, errors;
// as analyst, auditor and dba. Run by tests/drivers.rs with PGVEIL_HOST/PGVEIL_PORT (pgveil),
// DIRECT_HOST/DIRECT_PORT/DIRECT_USER (PostgreSQL, trust) and PGVEIL_DB.
//
// Compared: visible data (../queries.txt) gives the same rows as direct; masked columns are
// well-formed and keep exactly what rules/MASKS.md says (checked against the clear value read
// directly); denied columns are refused with SQLSTATE 42501. Prints one line per check; exits 1
// if any failed (all checks run).
'use strict';
const fs = require('fs');
const path = require('path');
const assert = require('assert');
const { Client, Pool } = require('pg');

function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set: run this script through \`cargo test --test drivers\``);
    process.exit(2);
  }
  return v;
}
const DB = env('PGVEIL_DB');
const proxy = (role, extra = {}) => ({
  host: env('PGVEIL_HOST'), port: Number(env('PGVEIL_PORT')), user: role, password: role, database: DB, ...extra,
});
const direct = (extra = {}) => ({
  host: env('DIRECT_HOST'), port: Number(env('DIRECT_PORT')), user: env('DIRECT_USER'), database: DB, ...extra,
});

let passed = 0;
const failed = [];
function ok(what, cond, detail = '') {
  if (cond) {
    passed += 1;
    console.log(`ok   ${what}`);
  } else {
    failed.push(what);
    console.log(`FAIL ${what}: ${detail}`);
  }
  return cond;
}
function eq(what, got, want) {
  try {
    assert.deepStrictEqual(got, want);
    return ok(what, true);
  } catch (e) {
    return ok(what, false, e.message.slice(0, 800));
  }
}
async function group(what, fn) {
  try {
    await fn();
  } catch (e) {
    failed.push(what);
    console.log(`FAIL ${what}: ${e.stack}`);
  }
}

function visibleQueries() {
  const out = [];
  let cur = null;
  const text = fs.readFileSync(path.join(__dirname, '..', 'queries.txt'), 'utf8');
  for (let line of text.split('\n')) {
    line = line.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('[') && line.endsWith(']')) {
      cur = { label: line.slice(1, -1) };
      out.push(cur);
    } else if (line.startsWith('proxy:')) cur.proxy = line.slice(6).trim();
    else if (line.startsWith('direct:')) cur.direct = line.slice(7).trim();
    else throw new Error(`queries.txt: unexpected line ${line}`);
  }
  for (const q of out) q.direct = q.direct || q.proxy;
  if (out.length < 5 || out.some((q) => !q.proxy)) throw new Error('queries.txt: malformed');
  return out;
}

const COLS = 'id, name, id_number, phone, email, bank_card, address, birth_date, notes';
const MASKED_SQL = `SELECT ${COLS} FROM customers ORDER BY id`;
const CLEAR_SQL = `SELECT ${COLS} FROM customers WHERE consent_transfer ORDER BY id`;
const PHONE = /^1[3-9]\d\*{4}\d{4}$/;
const CN_ID = /^\d{6}\*{12}$/;
const CARD = /^\*{8,15}\d{4}$/;
const EMAIL = /^[^@]\*{5}@[^@]+$/;
const NAME = /^.{1,2}\*\*$/u;

function validResidentId(s) {
  if (typeof s !== 'string' || !/^\d{17}[\dX]$/.test(s)) return false;
  const w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  let total = 0;
  for (let i = 0; i < 17; i++) total += Number(s[i]) * w[i];
  return '10X98765432'[total % 11] === s[17];
}

// masked/clear: rows as arrays in COLS order (birth_date a Date, TZ=UTC).
function checkCustomerMasks(label, masked, clear) {
  eq(`${label}: row filter keeps exactly the consenting customers`, masked.map((r) => r[0]), clear.map((r) => r[0]));
  const bad = [];
  masked.forEach((m, i) => {
    const c = clear[i] || [];
    const [, name, idn, phone, email, card, address, birth, notes] = m;
    const [, cname, cidn, cphone, cemail, ccard, caddress, cbirth, cnotes] = c;
    const checks = {
      name: NAME.test(name || '') && cname.startsWith([...name].slice(0, -2).join('')),
      id_number: CN_ID.test(idn || '') && idn.slice(0, 6) === cidn.slice(0, 6),
      phone: PHONE.test(phone || '') && phone.slice(0, 3) === cphone.slice(0, 3) && phone.slice(-4) === cphone.slice(-4),
      email: EMAIL.test(email || '') && email[0] === cemail[0] && email.split('@')[1] === cemail.split('@').pop(),
      bank_card: CARD.test(card || '') && card.length === ccard.length && card.slice(-4) === ccard.slice(-4),
      address: address === '****' || (typeof address === 'string' && caddress.startsWith(address) && address.length < caddress.length),
      birth_date: birth instanceof Date && birth.getUTCFullYear() === cbirth.getUTCFullYear()
        && birth.getUTCMonth() === 0 && birth.getUTCDate() === 1,
      notes: notes === (cnotes === null ? null : '****'),
    };
    for (const [col, good] of Object.entries(checks)) if (!good) bad.push(`id ${m[0]} ${col}: ${JSON.stringify(m)}`);
  });
  ok(`${label}: ${masked.length} customers, every masked column well-formed`, bad.length === 0 && masked.length > 0,
    bad.slice(0, 3).join('; '));
}

async function connect(cfg) {
  const c = new Client(cfg);
  await c.connect();
  return c;
}

async function main() {
  console.log(`node ${process.version}, pg ${require('pg/package.json').version}`);
  const d = await connect(direct());
  const a = await connect(proxy('analyst'));
  const arrays = async (c, text, values) => (await c.query({ text, values, rowMode: 'array' })).rows;
  const names = async (c, text) => (await c.query(text)).fields.map((f) => [f.name, f.dataTypeID]);

  await group('visible data', async () => {
    for (const q of visibleQueries()) {
      const got = await a.query(q.proxy);
      const want = await d.query(q.direct);
      ok(`[${q.label}] has rows`, want.rows.length > 0);
      eq(`[${q.label}] same fields as direct`, got.fields.map((f) => [f.name, f.dataTypeID]),
        want.fields.map((f) => [f.name, f.dataTypeID]));
      eq(`[${q.label}] same rows as direct (simple protocol)`, got.rows, want.rows);
      // The same statement through the extended protocol (a parameterless prepared query).
      eq(`[${q.label}] same rows as direct (extended protocol)`, await arrays(a, q.proxy, []), await arrays(d, q.direct, []));
    }
  });

  await group('parameters and named statements', async () => {
    for (const vip of [0, 2, 5]) {
      const sql = 'SELECT id, city, created_at FROM customers WHERE vip_level = $1 AND city = ANY($2) ORDER BY id';
      const args = [vip, ['深圳', '上海', '成都', '北京']];
      eq(`parameters vip=${vip}`, await arrays(a, sql, args),
        await arrays(d, sql.replace('WHERE', 'WHERE consent_transfer AND'), args));
    }
    for (let i = 0; i < 4; i++) {
      const got = await a.query({ name: 'phones_by_vip', text: 'SELECT id, phone FROM customers WHERE vip_level = $1 ORDER BY id', values: [i] });
      const want = await d.query({ name: 'phones_by_vip', text: 'SELECT id, phone FROM customers WHERE consent_transfer AND vip_level = $1 ORDER BY id', values: [i] });
      ok(`named statement run ${i + 1}: same ids, phones masked keeping the last 4`,
        got.rows.length > 0 && got.rows.length === want.rows.length
        && got.rows.every((r, j) => r.id === want.rows[j].id && PHONE.test(r.phone) && r.phone.slice(-4) === want.rows[j].phone.slice(-4)),
        JSON.stringify(got.rows.slice(0, 2)));
    }
  });

  await group('masks', async () => {
    const clear = await arrays(d, CLEAR_SQL);
    checkCustomerMasks('simple protocol', (await a.query({ text: MASKED_SQL, rowMode: 'array' })).rows, clear);
    checkCustomerMasks('extended protocol', await arrays(a, MASKED_SQL, []), clear);
    eq('masked columns keep their types in RowDescription', await names(a, MASKED_SQL), await names(d, MASKED_SQL));
    const amounts = await arrays(a, 'SELECT DISTINCT amount FROM orders');
    eq('orders.amount (internal) redacted for the analyst', amounts, [['0.00']]);
  });

  await group('binary results', async () => {
    const ab = await connect(proxy('analyst', { binary: true }));
    const db = await connect(direct({ binary: true }));
    try {
      for (const sql of ['SELECT id, vip_level, consent_transfer, created_at FROM customers WHERE consent_transfer ORDER BY id',
        'SELECT id, customer_id, order_no, status, ordered_at FROM orders ORDER BY id']) {
        const proxied = sql.replace('WHERE consent_transfer ', '');
        eq(`binary: ${proxied}`, await arrays(ab, proxied, []), await arrays(db, sql, []));
      }
      const rows = await arrays(ab, 'SELECT id, phone, id_number FROM customers ORDER BY id', []);
      ok('binary: masked text columns', rows.length > 0 && rows.every((r) => PHONE.test(r[1]) && CN_ID.test(r[2])),
        JSON.stringify(rows.slice(0, 2)));
    } finally {
      await ab.end();
      await db.end();
    }
  });

  await group('refusals', async () => {
    for (const sql of ['SELECT name, salary FROM employees', 'SELECT * FROM employees']) {
      for (const extended of [false, true]) {
        try {
          await a.query(extended ? { text: sql, values: [] } : sql);
          ok(`refused: ${sql}`, false, 'it ran');
        } catch (e) {
          ok(`refused with 42501 (${extended ? 'extended' : 'simple'}): ${sql}`, e.code === '42501' && /salary/.test(e.message), `${e.code} ${e.message}`);
        }
      }
    }
    await a.query('BEGIN');
    await a.query('SELECT 1');
    await a.query('SELECT salary FROM employees').catch(() => {});
    const aborted = await a.query('SELECT 1').then(() => 'ran', (e) => e.code);
    eq('failed statement aborts the transaction (25P02)', aborted, '25P02');
    await a.query('ROLLBACK');
    eq('after ROLLBACK the session works', (await a.query('SELECT count(*)::int AS n FROM suppliers')).rows, [{ n: 20 }]);
  });

  await group('pool', async () => {
    const want = await arrays(d, 'SELECT id, city FROM customers WHERE consent_transfer AND vip_level = $1 ORDER BY id', [1]);
    const pool = new Pool(proxy('analyst', { max: 3 }));
    try {
      const results = await Promise.all(Array.from({ length: 24 }, () => pool.query({ text: 'SELECT id, city FROM customers WHERE vip_level = $1 ORDER BY id', values: [1], rowMode: 'array' })));
      ok('pool: 24 concurrent queries on 3 connections, same rows as direct',
        results.every((r) => JSON.stringify(r.rows) === JSON.stringify(want)) && want.length > 0, JSON.stringify(results[0].rows.slice(0, 3)));
    } finally {
      await pool.end();
    }
  });

  await group('auditor', async () => {
    const au = await connect(proxy('auditor'));
    try {
      const tokens = await arrays(au, 'SELECT id, id_number FROM customers ORDER BY id');
      const clear = new Map(await arrays(d, 'SELECT id, id_number FROM customers'));
      ok('auditor: tokens are valid resident IDs, never the real one',
        tokens.length > 0 && tokens.every(([id, t]) => validResidentId(t) && t !== clear.get(id)), JSON.stringify(tokens.slice(0, 3)));
      eq('auditor: same tokens through the extended protocol', await arrays(au, 'SELECT id, id_number FROM customers ORDER BY id', []), tokens);
      eq('auditor: amounts clear', await arrays(au, 'SELECT id, amount FROM orders ORDER BY id'), await arrays(d, 'SELECT id, amount FROM orders ORDER BY id'));
    } finally {
      await au.end();
    }
  });

  await group('dba', async () => {
    const dba = await connect(proxy('dba'));
    try {
      for (const sql of ['SELECT * FROM customers ORDER BY id', 'SELECT * FROM employees ORDER BY id']) {
        eq(`dba: ${sql}`, (await dba.query(sql)).rows, (await d.query(sql)).rows);
      }
    } finally {
      await dba.end();
    }
  });

  await a.end();
  await d.end();
}

main().catch((e) => {
  failed.push('main');
  console.log(`FAIL main: ${e.stack}`);
}).finally(() => {
  console.log(`node-postgres: ${passed} passed, ${failed.length} failed`);
  if (failed.length) {
    console.log(`failed: ${failed.join('; ')}`);
    process.exitCode = 1;
  }
});

-- Attack corpus of tests/noninterference.rs.
--
-- Format: `-- shape: NAME` starts a group; `-- shape: NAME [refused]` means pgveil must refuse
-- (or the server must reject) every statement of the group, in every mode; `[answered]` means
-- every statement must be answered (plain reads the contract promises: masked, not refused). Every other
-- non-empty line that does not start with `--` is one attack. `\then` splits an attack into
-- statements run one after the other on the same session (inside one transaction); `⏎` stands
-- for a line break inside a statement; a line
-- holding `;`-separated statements is one Simple Query (in extended mode it is one Parse,
-- which PostgreSQL rejects, identically on both twins).
--
-- Hidden for the demo analyst: the masked parts of customers.{name, id_number, phone, email,
-- bank_card, address, birth_date, notes}, employees.{name, id_number, phone},
-- suppliers.{uscc, contact_phone}, orders.amount (class internal); employees.salary (denied);
-- every customer with consent_transfer = false (their number and content). Orders are
-- visible whole but for amount, including the customer ids of hidden customers: orders of
-- hidden customers are identical in both twins, and extra hidden customers have no orders.

-- shape: direct column [answered]
SELECT id_number FROM customers ORDER BY id
SELECT id, name, phone, email FROM customers ORDER BY id
SELECT bank_card, address, birth_date, notes FROM customers ORDER BY id
SELECT id, amount FROM orders ORDER BY id
SELECT name, id_number, phone FROM employees ORDER BY id
SELECT uscc, contact_phone FROM suppliers ORDER BY id
SELECT customers.phone FROM customers WHERE id < 20 ORDER BY id
SELECT id, notes FROM customers WHERE notes IS NOT NULL ORDER BY id

-- shape: aliases
SELECT c.id FROM customers c(a, b, cc, id) ORDER BY a
SELECT c.phone FROM customers c(phone) ORDER BY 1
SELECT c.id_number AS x FROM customers c ORDER BY c.id
SELECT x.p FROM (SELECT phone AS p, id FROM customers) x ORDER BY x.id
SELECT k.c FROM customers AS k(a, b, c) ORDER BY k.a
SELECT t.n FROM customers t(i, n) ORDER BY t.i
SELECT "PHONE_ALIAS" FROM (SELECT phone AS "PHONE_ALIAS", id FROM customers) s ORDER BY id
SELECT e.salary AS pay FROM employees e
SELECT id AS phone, phone AS id FROM customers ORDER BY 1

-- shape: quoted and qualified names
SELECT "id_number" FROM "customers" ORDER BY "id"
SELECT public.customers.phone FROM public.customers ORDER BY 1
SELECT "public"."customers"."bank_card" FROM "public"."customers" ORDER BY 1
SELECT c."email" FROM public.customers AS "c" ORDER BY c.id
SELECT ID_NUMBER FROM CUSTOMERS ORDER BY ID
SELECT Phone FROM Public.Customers ORDER BY Id
SELECT pg_catalog.upper(id_number) FROM public.customers ORDER BY id
SELECT phone FROM ONLY customers ORDER BY id
SELECT "salary" FROM "public"."employees"

-- shape: unicode identifiers
SELECT U&"id\005fnumber" FROM customers ORDER BY id
SELECT U&"\0070hone" FROM customers ORDER BY id
SELECT U&"!0073alary" UESCAPE '!' FROM employees
SELECT U&"s\0061lary" FROM employees
SELECT x.U&"\0065mail" FROM customers x ORDER BY x.id
SELECT U&"bank\005fcard" FROM U&"\0063ustomers" ORDER BY 1
SELECT id FROM customers WHERE U&"id\005fnumber" LIKE '1101051990%' ORDER BY id

-- shape: star
SELECT * FROM customers ORDER BY id
SELECT c.* FROM customers c ORDER BY c.id
SELECT * FROM orders ORDER BY id
SELECT * FROM suppliers ORDER BY id
SELECT o.*, c.* FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id
SELECT (c).* FROM customers c ORDER BY 1
SELECT * FROM employees ORDER BY id
SELECT e.* FROM employees e
TABLE customers
TABLE orders

-- shape: whole-row references
SELECT array_agg(c ORDER BY c.id) FROM customers c
SELECT count(*) FROM customers c WHERE c IS NOT NULL
SELECT c1.id FROM customers c1 JOIN customers c2 ON c1 < c2 AND c1.id = c2.id - 1 ORDER BY 1
SELECT c FROM customers c ORDER BY c.id
SELECT customers FROM customers ORDER BY id
SELECT row_to_json(c) FROM customers c ORDER BY c.id
SELECT c::text FROM customers c ORDER BY c.id
SELECT hashtext(c::text) FROM customers c ORDER BY c.id
SELECT to_json(c) FROM customers c ORDER BY id
SELECT md5(c::text) FROM customers c ORDER BY id
SELECT json_agg(c ORDER BY c.id) FROM customers c
SELECT row(c.*)::text FROM customers c ORDER BY c.id
SELECT (c).id_number FROM customers c ORDER BY c.id
SELECT jsonb_populate_record(NULL::customers, to_jsonb(c)) FROM customers c ORDER BY id
SELECT count(*) FROM customers c WHERE c::text LIKE '%-03-%'
SELECT o FROM orders o ORDER BY o.id
SELECT to_jsonb(e) FROM employees e

-- shape: expressions and casts
SELECT pg_typeof(phone), birth_date::text FROM customers ORDER BY id
SELECT jsonb_path_query(to_jsonb(c), '$.phone') FROM customers c ORDER BY id
SELECT xmlforest(phone, email) FROM customers ORDER BY id
SELECT string_to_array(id_number, NULL) FROM customers ORDER BY id
SELECT to_char(birth_date, 'DDD') FROM customers ORDER BY id
SELECT upper(id_number) FROM customers ORDER BY id
SELECT id_number || '' FROM customers ORDER BY id
SELECT substr(id_number, 7, 8) FROM customers ORDER BY id
SELECT length(notes) FROM customers ORDER BY id
SELECT md5(phone) FROM customers ORDER BY id
SELECT ascii(substr(phone, 4, 1)) FROM customers ORDER BY id
SELECT position('5' in phone) FROM customers ORDER BY id
SELECT regexp_match(email, '^[^@]+') FROM customers ORDER BY id
SELECT to_json(bank_card) FROM customers ORDER BY id
SELECT id_number::text FROM customers ORDER BY id
SELECT birth_date + 1 FROM customers ORDER BY id
SELECT extract(month FROM birth_date) FROM customers ORDER BY id
SELECT to_char(birth_date, 'MM-DD') FROM customers ORDER BY id
SELECT char_length(name) FROM customers ORDER BY id
SELECT reverse(email) FROM customers ORDER BY id
SELECT translate(phone, '0123456789', 'abcdefghij') FROM customers ORDER BY id
SELECT split_part(address, '市', 2) FROM customers ORDER BY id
SELECT amount * 100 FROM orders ORDER BY id
SELECT round(amount) FROM orders ORDER BY id
SELECT encode(convert_to(name, 'UTF8'), 'hex') FROM customers ORDER BY id
SELECT octet_length(address) FROM customers ORDER BY id
SELECT CASE WHEN substr(id_number, 15, 1) > '5' THEN 'a' ELSE 'b' END FROM customers ORDER BY id
SELECT left(bank_card, 6) FROM customers ORDER BY id
SELECT format('%s', phone) FROM customers ORDER BY id
SELECT quote_literal(email) FROM customers ORDER BY id
SELECT id_number COLLATE "C" FROM customers ORDER BY id
SELECT (SELECT id_number) FROM customers ORDER BY id
SELECT array[phone, email] FROM customers ORDER BY id
SELECT row(id, phone) FROM customers ORDER BY id
SELECT $$x$$ || phone FROM customers ORDER BY id
SELECT E'\x41' || bank_card FROM customers ORDER BY id
SELECT /* comment */ id_number FROM customers ORDER BY id
SELECT to_tsvector('simple', notes) FROM customers ORDER BY id

-- shape: aggregates
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM birth_date)) FROM customers
SELECT corr(vip_level, extract(doy FROM birth_date)) FROM customers
SELECT min(id_number), max(id_number) FROM customers
SELECT max(phone) FROM customers
SELECT string_agg(phone, ',' ORDER BY id) FROM customers
SELECT array_agg(email ORDER BY id) FROM customers
SELECT count(DISTINCT name) FROM customers
SELECT count(DISTINCT id_number) FROM customers
SELECT count(*) FROM customers WHERE extract(day FROM birth_date) < 15
SELECT sum(amount), avg(amount) FROM orders
SELECT sum(length(notes)) FROM customers
SELECT string_agg((substr(phone, 4, 1) < '5')::text, ',' ORDER BY id) FROM customers
SELECT min(birth_date) FROM customers
SELECT mode() WITHIN GROUP (ORDER BY substr(phone, 4, 4)) FROM customers
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY amount) FROM orders
SELECT json_object_agg(id, bank_card) FROM customers
SELECT count(*) FILTER (WHERE substr(phone, 4, 1) = '5') FROM customers
SELECT string_agg(DISTINCT address, '|') FROM customers
SELECT xmlagg(xmlelement(name x, notes)) FROM customers
SELECT max(salary) FROM employees

-- shape: WHERE oracles
SELECT id FROM customers WHERE birth_date BETWEEN SYMMETRIC '1990-12-31' AND '1990-01-02' ORDER BY id
SELECT id FROM customers WHERE phone ^@ '1385' ORDER BY id
SELECT id FROM customers WHERE 1/(CASE WHEN id = 1 AND substr(phone, 4, 1) < '5' THEN 0 ELSE 1 END) = 1 ORDER BY id
SELECT id FROM customers WHERE (phone, email) > ('138', 'm') ORDER BY id
SELECT id FROM customers WHERE phone IS DISTINCT FROM '13812345678' AND substr(phone, 5, 1) < '5' ORDER BY id
SELECT id FROM customers WHERE birth_date IN (SELECT hired_on FROM employees) OR extract(day FROM birth_date) = 1 ORDER BY id
SELECT id FROM customers WHERE substr(id_number, 13, 2) = (SELECT substr(id_number, 13, 2) FROM customers WHERE id = 1) ORDER BY id
SELECT id FROM customers WHERE substr(id_number, 7, 4) = '1990' ORDER BY id
SELECT id FROM customers WHERE id_number LIKE '______198%' ORDER BY id
SELECT id FROM customers WHERE phone LIKE '13_5%' ORDER BY id
SELECT id FROM customers WHERE phone > '1385' ORDER BY id
SELECT id FROM customers WHERE birth_date > '1980-06-30' ORDER BY id
SELECT id FROM customers WHERE extract(month FROM birth_date) = 3 ORDER BY id
SELECT id FROM customers WHERE name LIKE '_伟%' ORDER BY id
SELECT id FROM customers WHERE char_length(name) = 2 ORDER BY id
SELECT id FROM customers WHERE email ~ '^[a-z][a-m]' ORDER BY id
SELECT id FROM customers WHERE address LIKE '%南山区%' ORDER BY id
SELECT id FROM customers WHERE notes LIKE '%13%' ORDER BY id
SELECT id FROM customers WHERE bank_card LIKE '6222%' ORDER BY id
SELECT id FROM orders WHERE amount > 10000 ORDER BY id
SELECT id FROM customers WHERE phone BETWEEN '13800000000' AND '13850000000' ORDER BY id
SELECT id FROM customers WHERE id_number SIMILAR TO '%19(8|9)%' ORDER BY id
SELECT id FROM customers WHERE birth_date = date_trunc('year', birth_date) ORDER BY id
SELECT id FROM customers WHERE md5(phone) < '8' ORDER BY id
SELECT id FROM employees WHERE salary > 30000

-- shape: HAVING oracles
SELECT city FROM customers GROUP BY city HAVING sum(ascii(substr(phone, 5, 1))) % 2 = 0 ORDER BY city
SELECT city, count(*) FROM customers GROUP BY city HAVING sum(length(address)) > 40 ORDER BY city
SELECT vip_level FROM customers GROUP BY vip_level HAVING sum(extract(doy FROM birth_date)) % 2 = 0 ORDER BY 1
SELECT customer_id FROM orders GROUP BY customer_id HAVING sum(amount) > 15000 ORDER BY 1
SELECT department FROM employees GROUP BY department HAVING avg(salary) > 20000

-- shape: ORDER BY oracles
SELECT id FROM customers ORDER BY phone USING >, id
SELECT id FROM customers ORDER BY (phone, email), id
SELECT id FROM customers ORDER BY extract(doy FROM birth_date), id
SELECT id FROM customers ORDER BY phone, id
SELECT id FROM customers ORDER BY id_number DESC, id
SELECT id FROM customers ORDER BY substr(bank_card, 7, 4), id
SELECT id FROM customers ORDER BY birth_date NULLS FIRST, id
SELECT id FROM customers ORDER BY name, id
SELECT id FROM orders ORDER BY amount, id
SELECT id FROM customers ORDER BY md5(email), id
SELECT city FROM customers ORDER BY notes LIMIT 5
SELECT id FROM employees ORDER BY salary

-- shape: GROUP BY and DISTINCT
SELECT count(*) FROM customers c GROUP BY c ORDER BY 1
SELECT DISTINCT ON (phone) id FROM customers ORDER BY phone, id
SELECT count(*) FROM customers GROUP BY substr(name, 2) ORDER BY 1
SELECT substr(phone, 4, 4), count(*) FROM customers GROUP BY 1 ORDER BY 1
SELECT DISTINCT substr(id_number, 7, 4) FROM customers ORDER BY 1
SELECT DISTINCT ON (name) name, id FROM customers ORDER BY name, id
SELECT extract(month FROM birth_date) m, count(*) FROM customers GROUP BY m ORDER BY m
SELECT count(*) FROM (SELECT DISTINCT bank_card FROM customers) s
SELECT email, count(*) FROM customers GROUP BY email ORDER BY 1
SELECT city, count(DISTINCT address) FROM customers GROUP BY city ORDER BY city
SELECT left(notes, 3), count(*) FROM customers GROUP BY GROUPING SETS ((left(notes, 3)), ()) ORDER BY 1
SELECT department, sum(salary) FROM employees GROUP BY 1

-- shape: joins
SELECT a.id, b.id FROM customers a JOIN customers b ON substr(a.phone, 4, 2) = substr(b.phone, 4, 2) AND a.id < b.id ORDER BY 1, 2
SELECT c.id, e.id FROM customers c JOIN employees e ON substr(c.id_number, 13, 2) = substr(e.id_number, 13, 2) ORDER BY 1, 2
SELECT count(*) FROM customers a JOIN customers b USING (name)
SELECT count(*) FROM customers a JOIN customers b ON extract(month FROM a.birth_date) = extract(month FROM b.birth_date)
SELECT count(*) FROM customer_contacts NATURAL JOIN customers
SELECT c.id, e.id FROM customers c JOIN employees e ON right(c.name, 1) = right(e.name, 1) ORDER BY 1, 2
SELECT c.id, s.id FROM customers c JOIN suppliers s ON substr(c.phone, 4, 1) = substr(s.contact_phone, 4, 1) ORDER BY 1, 2
SELECT c.id, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY o.id
SELECT count(*) FROM customers c FULL JOIN orders o ON o.amount::int % 97 = c.id
SELECT c1.id, c2.id FROM customers c1 CROSS JOIN customers c2 WHERE extract(day FROM c1.birth_date) = extract(day FROM c2.birth_date) AND c1.id < c2.id ORDER BY 1, 2
SELECT c.id FROM customers c LEFT JOIN employees e ON e.salary > c.id * 100

-- shape: subqueries
SELECT (SELECT id_number FROM customers WHERE id = 2)
SELECT (SELECT max(phone) FROM customers)
SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM customers d WHERE d.birth_date - c.birth_date BETWEEN 1 AND 30) ORDER BY id
SELECT id FROM customers WHERE substr(phone, 4, 2) IN (SELECT substr(contact_phone, 4, 2) FROM suppliers) ORDER BY id
SELECT id FROM customers WHERE substr(phone, 4, 1) = ANY (SELECT substr(phone, 4, 1) FROM employees) ORDER BY id
SELECT id, (SELECT count(*) FROM orders o WHERE o.amount > c.vip_level * 3000 AND o.customer_id = c.id) FROM customers c ORDER BY id
SELECT id FROM customers WHERE id_number > ALL (SELECT id_number FROM employees) ORDER BY id
SELECT id FROM customers WHERE (SELECT sum(amount) FROM orders WHERE customer_id = customers.id) > 20000 ORDER BY id
SELECT * FROM (SELECT id, phone FROM customers) s ORDER BY id
SELECT (SELECT salary FROM employees LIMIT 1)

-- shape: CTEs
WITH x AS (SELECT id, id_number FROM customers) SELECT * FROM x ORDER BY id
WITH x AS MATERIALIZED (SELECT phone FROM customers) SELECT count(DISTINCT phone) FROM x
WITH x AS (SELECT * FROM customers) SELECT x FROM x ORDER BY id
WITH RECURSIVE r(i, s) AS (SELECT 1, (SELECT phone::text FROM customers ORDER BY id LIMIT 1) UNION ALL SELECT i + 1, substr(s, 2) FROM r WHERE i < 5) SELECT * FROM r
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 12) SELECT n, (SELECT count(*) FROM customers WHERE extract(month FROM birth_date) = n) FROM r ORDER BY n
WITH RECURSIVE r AS (SELECT id, phone FROM customers WHERE id = (SELECT min(id) FROM customers) UNION SELECT c.id, c.phone FROM customers c JOIN r ON c.id = r.id + 1) SELECT * FROM r ORDER BY id
WITH x AS (SELECT name n, birth_date b FROM customers) SELECT n, b FROM x WHERE b > '1990-07-01' ORDER BY n, b
WITH s AS (SELECT salary FROM employees) SELECT 1

-- shape: set operations
SELECT phone FROM customers UNION SELECT contact_phone FROM suppliers ORDER BY 1
SELECT id_number FROM customers INTERSECT SELECT id_number FROM customers WHERE id < 40 ORDER BY 1
SELECT birth_date FROM customers EXCEPT SELECT date_trunc('year', birth_date)::date FROM customers ORDER BY 1
SELECT name FROM customers UNION ALL SELECT name FROM employees ORDER BY 1
SELECT count(*) FROM (SELECT phone FROM customers UNION SELECT phone FROM employees) u
SELECT id, amount FROM orders UNION SELECT id, salary FROM employees

-- shape: LATERAL
SELECT c.id, l.x FROM customers c, LATERAL (SELECT substr(c.phone, 4, 4) AS x) l ORDER BY c.id
SELECT c.id, l.n FROM customers c CROSS JOIN LATERAL (SELECT count(*) n FROM orders o WHERE o.customer_id = c.id AND o.amount > 5000) l ORDER BY c.id
SELECT c.id, t.* FROM customers c, LATERAL unnest(string_to_array(c.address, '区')) t ORDER BY 1, 2
SELECT c.id, r.* FROM customers c LEFT JOIN LATERAL regexp_matches(c.notes, '1[3-9][0-9]{9}') r ON true ORDER BY 1
SELECT * FROM customers c, LATERAL (SELECT e.salary FROM employees e WHERE e.id = c.id) z

-- shape: window functions
SELECT id, count(*) OVER (ORDER BY birth_date RANGE BETWEEN INTERVAL '30 days' PRECEDING AND CURRENT ROW) FROM customers ORDER BY id
SELECT id, row_number() OVER (ORDER BY phone) FROM customers ORDER BY id
SELECT id, rank() OVER (PARTITION BY city ORDER BY birth_date) FROM customers ORDER BY id
SELECT id, lag(id_number) OVER (ORDER BY id) FROM customers ORDER BY id
SELECT id, first_value(email) OVER (PARTITION BY city ORDER BY id) FROM customers ORDER BY id
SELECT id, sum(amount) OVER (PARTITION BY customer_id) FROM orders ORDER BY id
SELECT id, count(*) OVER (PARTITION BY name) FROM customers ORDER BY id
SELECT id, ntile(4) OVER (ORDER BY bank_card) FROM customers ORDER BY id
SELECT id, max(phone) OVER w FROM customers WINDOW w AS (ORDER BY id ROWS 2 PRECEDING) ORDER BY id
SELECT id, percent_rank() OVER (ORDER BY salary) FROM employees

-- shape: views and inline subqueries [answered]
SELECT * FROM customer_contacts ORDER BY id
SELECT phone FROM customer_contacts WHERE phone LIKE '13_5%' ORDER BY id
SELECT v FROM customer_contacts v ORDER BY id
SELECT count(*) FROM customer_contacts
SELECT id, upper(email) FROM customer_contacts ORDER BY id
SELECT count(DISTINCT name) FROM customer_contacts
TABLE customer_contacts
SELECT * FROM (SELECT id, phone, email FROM customers) inline ORDER BY id
SELECT * FROM (VALUES (1), (2), (3)) v(x), LATERAL (SELECT name FROM customers WHERE id = v.x) y ORDER BY x

-- shape: errors as oracle
SELECT count(*) FROM (SELECT generate_series(1, ascii(substr(phone, 4, 1)) - 40) FROM customers) s
SELECT id FROM customers ORDER BY id LIMIT (SELECT ascii(substr(max(phone), 5, 1)) - 40 FROM customers)
SELECT (ascii(substr(phone, 5, 1)) * 600)::int2 FROM customers WHERE id = 1
SELECT repeat('x', ascii(substr(notes, 1, 1)) % 3) FROM customers ORDER BY id
SELECT 1/(CASE WHEN substr(phone, 4, 1) = '5' THEN 0 ELSE 1 END) FROM customers
SELECT phone::int8 FROM customers
SELECT id_number::numeric FROM customers
SELECT 1/(CASE WHEN birth_date > '1990-06-15' AND birth_date < '1990-12-31' THEN 0 ELSE 1 END) FROM customers
SELECT CAST(substr(id_number, 7, 8) AS date) FROM customers
SELECT name::int FROM customers
SELECT to_date(substr(id_number, 7, 8), 'YYYYMMDD') FROM customers ORDER BY id
SELECT 1/(length(email) - 10) FROM customers
SELECT substr(id_number, 7, 4)::int FROM customers ORDER BY id
SELECT make_date(2000, substr(phone, 4, 1)::int + 1, 1) FROM customers ORDER BY id
SELECT (amount * 1e300 * 1e300)::float8 FROM orders
SELECT (max(amount)::text || 'x')::numeric FROM orders
SELECT notes::xml FROM customers ORDER BY id
SELECT address::jsonb FROM customers ORDER BY id

-- shape: COPY
COPY (SELECT id_number FROM customers ORDER BY id) TO STDOUT
COPY (SELECT * FROM customers ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)
COPY (SELECT phone, email FROM customers ORDER BY id) TO STDOUT (FORMAT binary)
COPY customers TO STDOUT
COPY customers (phone, birth_date) TO STDOUT
COPY orders TO STDOUT WITH (FORMAT csv)
COPY employees TO STDOUT
COPY (SELECT salary FROM employees) TO STDOUT
COPY customer_contacts TO STDOUT

-- shape: cursors
DECLARE c1 CURSOR FOR SELECT id_number FROM customers ORDER BY id \then FETCH 10 FROM c1
DECLARE c2 SCROLL CURSOR FOR SELECT phone FROM customers ORDER BY id \then FETCH LAST FROM c2 \then FETCH PRIOR FROM c2
DECLARE c3 CURSOR FOR SELECT * FROM customers ORDER BY id \then FETCH ALL FROM c3
DECLARE c4 BINARY CURSOR FOR SELECT bank_card, birth_date FROM customers ORDER BY id \then FETCH 5 FROM c4
DECLARE c6 CURSOR WITH HOLD FOR SELECT email FROM customers ORDER BY id \then FETCH 3 FROM c6 \then MOVE 2 IN c6 \then FETCH 1 FROM c6
DECLARE c7 CURSOR FOR SELECT phone FROM customers ORDER BY id \then SELECT cursor_to_xml('c7', 5, false, false, '')
DECLARE c5 CURSOR FOR SELECT salary FROM employees \then FETCH 1 FROM c5

-- shape: PREPARE and EXECUTE
PREPARE p1 AS SELECT id_number FROM customers ORDER BY id \then EXECUTE p1
PREPARE p2(text) AS SELECT id FROM customers WHERE phone LIKE $1 ORDER BY id \then EXECUTE p2('13_5%')
PREPARE p3(int) AS SELECT substr(phone, $1, 4) FROM customers ORDER BY id \then EXECUTE p3(4)
PREPARE p6 AS SELECT * FROM customers ORDER BY id \then EXECUTE p6
PREPARE p7(date) AS SELECT count(*) FROM customers WHERE birth_date > $1 \then EXECUTE p7('1985-06-01')
PREPARE p4 AS SELECT salary FROM employees \then EXECUTE p4

-- shape: EXPLAIN
PREPARE px AS SELECT * FROM customers WHERE phone LIKE '13%' \then EXPLAIN EXECUTE px
EXPLAIN SELECT * FROM customers WHERE phone = '13812345678'
EXPLAIN (COSTS OFF) SELECT id FROM customers WHERE substr(id_number, 7, 4) = '1990'
EXPLAIN ANALYZE SELECT id FROM customers WHERE phone LIKE '1385%'
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT id FROM customers WHERE phone LIKE '____5%'
EXPLAIN (VERBOSE) SELECT phone FROM customers
EXPLAIN SELECT * FROM customers
EXPLAIN (FORMAT JSON) SELECT count(*) FROM customers WHERE birth_date > '1990-01-01'
EXPLAIN (COSTS ON) SELECT * FROM orders WHERE amount > 1000
EXPLAIN SELECT salary FROM employees

-- shape: catalog statistics
SELECT pg_stat_get_tuples_returned('customers'::regclass), pg_stat_get_numscans('customers'::regclass)
SELECT n_live_tup FROM pg_stat_all_tables WHERE relname = 'customers'
SELECT n_tup_ins FROM pg_stat_xact_user_tables WHERE relname = 'customers'
SELECT heap_blks_read FROM pg_statio_user_tables WHERE relname = 'customers'
SELECT * FROM pg_stats_ext
SELECT * FROM pg_statistic_ext_data
SELECT currtid2('customers'::text, '(0,80)'::tid)
SELECT pg_database_size(current_database())
SELECT pg_indexes_size('customers')
SELECT pg_stat_file('base')
SELECT attname, most_common_vals::text, histogram_bounds::text FROM pg_stats WHERE tablename = 'customers' ORDER BY attname
SELECT null_frac, n_distinct FROM pg_stats WHERE tablename = 'customers' AND attname = 'phone'
SELECT stavalues1::text FROM pg_statistic WHERE starelid = 'customers'::regclass
SELECT reltuples, relpages FROM pg_class WHERE relname = 'customers'
SELECT n_live_tup, n_tup_ins FROM pg_stat_user_tables WHERE relname = 'customers'
SELECT pg_relation_size('customers')
SELECT pg_total_relation_size('customers')
SELECT pg_table_size('customers')
SELECT pg_column_size(c) FROM customers c ORDER BY id
SELECT pg_column_size(address) FROM customers ORDER BY id
SELECT sum(pg_column_size(notes)) FROM customers
SELECT pg_stat_get_live_tuples('customers'::regclass)
SELECT ctid, id FROM customers ORDER BY id
SELECT count(*) FROM pg_stats WHERE tablename = 'customers' AND most_common_vals IS NOT NULL
SELECT avg_width FROM pg_stats WHERE tablename = 'orders' AND attname = 'amount'
SELECT * FROM pg_stats WHERE tablename = 'employees' AND attname = 'salary'

-- shape: functions
SELECT pg_column_compression(notes) FROM customers ORDER BY id
SELECT schema_to_xml('public', true, false, '')
SELECT query_to_xml_and_xmlschema('SELECT phone FROM customers', true, false, '')
SELECT database_to_xml(true, false, '')
LISTEN ch \then SELECT pg_notify('ch', (SELECT string_agg(phone, ',' ORDER BY id) FROM customers))
SELECT pg_try_advisory_xact_lock(ascii(substr(phone, 4, 1))) FROM customers ORDER BY id
SELECT * FROM json_populate_recordset(NULL::customers, (SELECT json_agg(c) FROM customers c)) ORDER BY id
SELECT name, statement FROM pg_prepared_statements
SELECT query_to_xml('SELECT id_number FROM customers ORDER BY id', true, false, '')
SELECT table_to_xml('customers', true, false, '')
SELECT xpath('//text()', query_to_xml('SELECT phone FROM customers ORDER BY id', true, false, ''))
SELECT pg_read_file('postgresql.conf', 0, 100)
SELECT current_setting('data_directory')
SELECT dblink('dbname=postgres', 'SELECT 1')
SELECT * FROM ts_stat('SELECT to_tsvector(''simple'', notes) FROM customers') ORDER BY 1
SELECT pg_ls_dir('.')
SELECT lo_import('/etc/hostname')
SELECT pg_sleep(CASE WHEN substr(phone, 4, 1) = '5' THEN 0.001 ELSE 0 END) FROM customers LIMIT 3
SELECT pg_get_viewdef('customer_contacts')
SELECT has_column_privilege('employees', 'salary', 'SELECT')
SELECT current_setting('search_path')

-- shape: session state
SET client_min_messages = log \then SET debug_print_plan = on \then SELECT count(*) FROM customers WHERE phone LIKE '13%'
SET client_min_messages = log \then SET log_statement_stats = on \then SELECT count(*) FROM customers
SET client_min_messages = log \then SET trace_sort = on \then SELECT phone FROM customers ORDER BY phone
SET client_min_messages = debug5 \then SELECT max(phone) FROM customers
SET transform_null_equals = on \then SELECT id, phone FROM customers ORDER BY id
SET session_replication_role = replica \then SELECT id_number FROM customers ORDER BY id
SET enable_seqscan = off \then SELECT id, phone FROM customers WHERE id < 30
LOAD 'auto_explain' \then SELECT count(*) FROM customers
SET search_path = pg_temp, public \then SELECT phone FROM customers ORDER BY id
SET search_path TO 'nonexistent' \then SELECT id_number FROM customers ORDER BY id
SET ROLE postgres \then SELECT salary FROM employees
RESET ALL \then SELECT phone FROM customers ORDER BY id
DISCARD ALL \then SELECT id_number FROM customers ORDER BY id
SET standard_conforming_strings = off \then SELECT 'a\', id_number FROM customers ORDER BY id
SELECT set_config('search_path', 'pg_catalog', false) \then SELECT phone FROM public.customers ORDER BY id
SET SESSION AUTHORIZATION postgres \then SELECT salary FROM employees
SET LOCAL search_path = public \then SELECT * FROM customers ORDER BY id
SET row_security = off \then SELECT count(*) FROM customers
SET client_encoding = 'LATIN1' \then SELECT notes FROM customers ORDER BY id
SET bytea_output = 'escape' \then SELECT convert_to(name, 'UTF8') FROM customers ORDER BY id
SET DateStyle = 'German' \then SELECT birth_date FROM customers ORDER BY id
SET TimeZone = 'America/New_York' \then SELECT birth_date::timestamptz FROM customers ORDER BY id
SET extra_float_digits = 0 \then SELECT amount::float8 FROM orders ORDER BY id
CREATE TEMP TABLE customers (id int, phone text) \then SELECT phone FROM customers

-- shape: writes [refused]
COPY (SELECT phone FROM customers) TO PROGRAM 'cat > /dev/null'
COPY customers TO '/dev/null'
SELECT lo_from_bytea(0, convert_to((SELECT max(phone) FROM customers), 'UTF8'))
SELECT * FROM customers WHERE id = 3 FOR UPDATE
INSERT INTO orders VALUES (99999, 1, '1', 1, 'x', now())
UPDATE customers SET phone = '1' WHERE id = 1
DELETE FROM customers WHERE substr(phone, 4, 1) = '5'
CREATE TABLE leak AS SELECT * FROM customers
SELECT * INTO leak2 FROM customers
DO $$ BEGIN RAISE NOTICE '%', (SELECT string_agg(phone, ',') FROM customers); END $$
CALL nonexistent_proc()
WITH d AS (DELETE FROM orders WHERE amount > 100 RETURNING *) SELECT count(*) FROM d
WITH u AS (UPDATE customers SET notes = notes RETURNING phone) SELECT * FROM u
INSERT INTO orders SELECT * FROM orders WHERE false RETURNING *
TRUNCATE orders
CREATE VIEW v AS SELECT * FROM customers
CREATE FUNCTION f() RETURNS text LANGUAGE sql AS 'SELECT phone FROM customers LIMIT 1'
ALTER TABLE customers DISABLE ROW LEVEL SECURITY
GRANT SELECT ON customers TO PUBLIC
CREATE TEMP TABLE t AS SELECT phone FROM customers
MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN DO NOTHING
COPY customers FROM STDIN
VACUUM customers
ANALYZE customers
SELECT 1; SELECT id_number FROM customers ORDER BY id; INSERT INTO orders VALUES (99998, 1, '1', 1, 'x', now())

-- shape: row filter
SELECT o.id, (SELECT city FROM customers c WHERE c.id = o.customer_id) FROM orders o ORDER BY o.id
SELECT * FROM customers WHERE id IN (8, 12, 14, 1000, 1001, 1010) ORDER BY id
SELECT (SELECT phone FROM customers c2 WHERE c2.id = c.id + 1) FROM customers c ORDER BY c.id
SELECT count(*) FROM orders o WHERE o.customer_id IN (SELECT id FROM customers WHERE city = '北京')
SELECT id, phone FROM customer_contacts WHERE id IN (SELECT customer_id FROM orders) ORDER BY id
SELECT count(*), count(DISTINCT city) FROM customers WHERE created_at < '2020-01-01'
SELECT count(*) FROM customers
SELECT max(id), min(id) FROM customers
SELECT id FROM customers WHERE NOT consent_transfer
SELECT count(*) FROM customers WHERE consent_transfer IS NOT TRUE
SELECT id FROM customers WHERE id > 900 ORDER BY id
SELECT id, city, vip_level, created_at FROM customers WHERE consent_transfer = false ORDER BY id
SELECT o.id, c.city FROM orders o LEFT JOIN customers c ON c.id = o.customer_id ORDER BY o.id
SELECT customer_id, count(*) FROM orders WHERE customer_id NOT IN (SELECT id FROM customers) GROUP BY 1 ORDER BY 1
SELECT c.id, sum(o.amount) FROM customers c RIGHT JOIN orders o ON o.customer_id = c.id GROUP BY c.id ORDER BY 1
SELECT count(*) FROM customers TABLESAMPLE SYSTEM (100)
SELECT count(*) FROM ONLY public.customers
SELECT sum(vip_level) FROM customers
SELECT (SELECT count(*) FROM customers c2 WHERE c2.id < c.id) FROM customers c ORDER BY c.id
SELECT city, count(*) FROM customers GROUP BY city ORDER BY city
SELECT count(*) FROM customers c JOIN orders o ON o.customer_id = c.id
SELECT ctid FROM customers WHERE id = (SELECT max(id) FROM customers)
SELECT id FROM customers WHERE id = 3 FOR SHARE
SELECT count(*) FROM customer_contacts WHERE id > 900
SELECT max(created_at), min(created_at) FROM customers

-- shape: denied column [refused]
SELECT salary FROM employees
SELECT e.salary FROM employees e
SELECT "salary" FROM employees
SELECT U&"\0073alary" FROM employees
SELECT * FROM employees
SELECT e FROM employees e
SELECT row_to_json(e) FROM employees e
SELECT salary::text FROM employees
SELECT sum(salary) FROM employees
SELECT id FROM employees WHERE salary > 20000
SELECT id FROM employees ORDER BY salary DESC, id
SELECT count(*) FROM employees a JOIN employees b USING (salary)
SELECT id FROM employees WHERE EXISTS (SELECT 1 WHERE salary > 1)
WITH s AS (SELECT salary FROM employees) SELECT count(*) FROM s
SELECT salary FROM employees UNION SELECT 0
SELECT 1/(salary - salary) FROM employees
COPY (SELECT id, salary FROM employees ORDER BY id) TO STDOUT WITH (FORMAT csv)
SELECT id FROM employees NATURAL JOIN (SELECT 1::numeric AS salary) x
SELECT count(*) FROM employees e1 JOIN employees e2 ON e1.id = e2.id WHERE e1 = e2
SELECT md5(e::text) FROM employees e
SELECT id FROM employees e WHERE e::text LIKE '%.5%'
SELECT pg_column_size(e) FROM employees e
SELECT (e).salary FROM employees e
SELECT count(*) FROM employees GROUP BY salary
SELECT DISTINCT salary > 30000 FROM employees
SELECT id, lag(salary) OVER (ORDER BY id) FROM employees
SELECT (SELECT max(salary) FROM employees WHERE department = d.department) FROM employees d
PREPARE p9 AS SELECT sum(salary) FROM employees \then EXECUTE p9
EXPLAIN SELECT id FROM employees WHERE salary > 30000

-- shape: miscellaneous
SELECT * FROM customers* ORDER BY id
SELECT ARRAY(SELECT phone FROM customers ORDER BY id)
SELECT id, phone FROM customers GROUP BY id ORDER BY id
SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()
WITH employees AS (SELECT 1 AS salary) SELECT salary FROM employees
WITH customers AS (SELECT * FROM public.customers) SELECT phone FROM customers ORDER BY id
SELECT phone FROM customers AS customer_contacts ORDER BY id
SELECT (SELECT c.phone) FROM customers c ORDER BY c.id
SELECT phone -- a comment ⏎ FROM customers ORDER BY id
SELECT $$;$$, phone FROM customers ORDER BY id
SELECT E'\'', phone FROM customers ORDER BY id
SELECT phone::"varchar" FROM customers ORDER BY id
SELECT count(*) FROM (SELECT 1 FROM customers LIMIT 100) s
SELECT (NULL::customers).*
SELECT phone FROM customers
SELECT city, count(*) FROM customers GROUP BY city
SELECT DISTINCT city, vip_level FROM customers
SELECT c.id, o.id FROM customers c JOIN orders o ON o.customer_id = c.id
SELECT id FROM customers WHERE phone = ANY('{13812345678,13900000000}') ORDER BY id
SELECT id_number FROM customers ORDER BY id LIMIT 1 OFFSET 3
VALUES ((SELECT max(phone) FROM customers))
SELECT 1; SELECT phone FROM customers ORDER BY id
SELECT id FROM customers; SELECT salary FROM employees
SHOW search_path
SELECT id, phone FROM customers ORDER BY id FETCH FIRST 3 ROWS WITH TIES
SELECT id FROM customers WHERE phone = '13812345678' OR true ORDER BY id
SELECT count(*) FROM customers WHERE id_number = ANY (ARRAY['110105199001011234', '440305198512120012'])
SELECT (xpath('/x/text()', ('<x>' || notes || '</x>')::xml))[1] FROM customers ORDER BY id
SELECT jsonb_agg(jsonb_build_object('p', phone, 'b', birth_date) ORDER BY id) FROM customers
SELECT id, phone FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE status = 'paid') ORDER BY id

-- shape: masks pgveil applies to the result [answered]
-- A column that is only selected is masked by pgveil in the rows; every other use of it
-- must make the database compute on its masked value (positions, output names, DISTINCT,
-- whole rows, stars next to it, COPY).
SELECT * FROM customers ORDER BY id
SELECT *, phone FROM customers ORDER BY id
SELECT c.*, c.phone AS p FROM customers c ORDER BY c.id
SELECT phone FROM customers ORDER BY 1, id
SELECT phone AS p FROM customers ORDER BY p, id
SELECT phone FROM customers ORDER BY U&"p\0068one", id
SELECT DISTINCT phone FROM customers ORDER BY 1
SELECT phone, count(*) FROM customers GROUP BY 1 ORDER BY 1
SELECT phone FROM customers GROUP BY ROLLUP (1) ORDER BY 1
SELECT id, phone FROM customers c WHERE c IS NOT NULL ORDER BY id
SELECT id, phone FROM customers c ORDER BY c
SELECT id, email FROM customers ORDER BY id LIMIT 5 OFFSET (SELECT count(*) FROM customers WHERE email > 'm')
SELECT id, name FROM customers ORDER BY id FETCH FIRST 3 ROWS WITH TIES
SELECT id, name FROM customers ORDER BY length(name), id
SELECT id, phone, 'phone' FROM customers ORDER BY id
SELECT id, notes FROM customers WHERE notes IS NOT NULL ORDER BY 2, 1
COPY (SELECT phone FROM customers ORDER BY 1) TO STDOUT
COPY (SELECT id, name, email FROM customers ORDER BY id) TO STDOUT
COPY (SELECT DISTINCT email FROM customers) TO STDOUT
COPY customers (id, bank_card, notes) TO STDOUT
COPY (SELECT * FROM customers ORDER BY id) TO STDOUT

// pgjdbc through pgveil, as DBeaver, Metabase and other JDBC tools use it: the DatabaseMetaData
// calls they make at connect, catalog queries of the shapes they send, server-side prepared
// statements with binary transfer (prepareThreshold=1, binaryTransfer=true), fetch-size cursors
// (autocommit off, setFetchSize: portals executed with a row limit), errors; as analyst,
// auditor and dba. Run by tests/drivers.rs (`java -cp postgresql.jar PgjdbcTest.java`) with
// PGVEIL_HOST/PGVEIL_PORT (pgveil), DIRECT_HOST/DIRECT_PORT/DIRECT_USER (PostgreSQL, trust)
// and PGVEIL_DB.
//
// Compared: metadata and visible data (../queries.txt) as direct; masked columns well-formed,
// keeping exactly what rules/MASKS.md says (checked against the clear value read directly);
// denied columns refused with SQLSTATE 42501. One line per check; exit 1 if any failed.
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.Properties;
import java.util.regex.Pattern;

public class PgjdbcTest {
    static int passed = 0;
    static final List<String> failed = new ArrayList<>();

    static String env(String name) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty()) {
            System.err.println(name + " is not set: run this through `cargo test --test drivers`");
            System.exit(2);
        }
        return v;
    }

    static final String DB = env("PGVEIL_DB");

    static Connection proxy(String role, String options) throws SQLException {
        String url = "jdbc:postgresql://" + env("PGVEIL_HOST") + ":" + env("PGVEIL_PORT") + "/" + DB + options;
        Properties p = new Properties();
        p.setProperty("user", role);
        p.setProperty("password", role);
        return DriverManager.getConnection(url, p);
    }

    static Connection direct(String options) throws SQLException {
        String url = "jdbc:postgresql://" + env("DIRECT_HOST") + ":" + env("DIRECT_PORT") + "/" + DB + options;
        Properties p = new Properties();
        p.setProperty("user", env("DIRECT_USER"));
        return DriverManager.getConnection(url, p);
    }

    static boolean ok(String what, boolean cond, Object detail) {
        if (cond) {
            passed++;
            System.out.println("ok   " + what);
        } else {
            failed.add(what);
            String d = String.valueOf(detail);
            System.out.println("FAIL " + what + ": " + (d.length() > 800 ? d.substring(0, 800) + "..." : d));
        }
        return cond;
    }

    static boolean eq(String what, List<List<String>> got, List<List<String>> want) {
        if (got.equals(want)) {
            return ok(what, true, "");
        }
        String detail = got.size() + " vs " + want.size() + " rows";
        for (int i = 0; i < Math.min(got.size(), want.size()); i++) {
            if (!got.get(i).equals(want.get(i))) {
                detail += "; first difference at row " + i + ": got " + got.get(i) + ", want " + want.get(i);
                break;
            }
        }
        return ok(what, false, detail);
    }

    interface Body {
        void run() throws Exception;
    }

    static void group(String what, Body body) {
        try {
            body.run();
        } catch (Exception e) {
            failed.add(what);
            System.out.println("FAIL " + what + ": " + e);
            e.printStackTrace(System.out);
        }
    }

    /** Every row as strings (getString), with the column labels as the first row. */
    static List<List<String>> rows(ResultSet rs) throws SQLException {
        List<List<String>> out = new ArrayList<>();
        ResultSetMetaData md = rs.getMetaData();
        List<String> head = new ArrayList<>();
        for (int i = 1; i <= md.getColumnCount(); i++) {
            head.add(md.getColumnLabel(i) + ":" + md.getColumnTypeName(i));
        }
        out.add(head);
        while (rs.next()) {
            List<String> row = new ArrayList<>();
            for (int i = 1; i <= md.getColumnCount(); i++) {
                row.add(rs.getString(i));
            }
            out.add(row);
        }
        rs.close();
        return out;
    }

    static List<List<String>> query(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement()) {
            return rows(st.executeQuery(sql));
        }
    }

    static List<List<String>> prepared(Connection c, String sql, Object... params) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 0; i < params.length; i++) {
                ps.setObject(i + 1, params[i]);
            }
            return rows(ps.executeQuery());
        }
    }

    record Q(String label, String proxy, String direct) {}

    static List<Q> visibleQueries() throws Exception {
        List<Q> out = new ArrayList<>();
        String label = null, p = null, d = null;
        Path file = Path.of(System.getProperty("user.dir")).resolve("../queries.txt");
        for (String raw : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            String line = raw.trim();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            if (line.startsWith("[") && line.endsWith("]")) {
                if (label != null) {
                    out.add(new Q(label, p, d == null ? p : d));
                }
                label = line.substring(1, line.length() - 1);
                p = null;
                d = null;
            } else if (line.startsWith("proxy:")) {
                p = line.substring(6).trim();
            } else if (line.startsWith("direct:")) {
                d = line.substring(7).trim();
            } else {
                throw new IllegalStateException("queries.txt: unexpected line " + line);
            }
        }
        if (label != null) {
            out.add(new Q(label, p, d == null ? p : d));
        }
        if (out.size() < 5 || out.stream().anyMatch(q -> q.proxy() == null)) {
            throw new IllegalStateException("queries.txt: malformed");
        }
        return out;
    }

    static final String COLS = "id, name, id_number, phone, email, bank_card, address, birth_date, notes";
    static final String MASKED_SQL = "SELECT " + COLS + " FROM customers ORDER BY id";
    static final String CLEAR_SQL = "SELECT " + COLS + " FROM customers WHERE consent_transfer ORDER BY id";
    static final Pattern PHONE = Pattern.compile("^1[3-9]\\d\\*{4}\\d{4}$");
    static final Pattern CN_ID = Pattern.compile("^\\d{6}\\*{12}$");
    static final Pattern CARD = Pattern.compile("^\\*{8,15}\\d{4}$");
    static final Pattern EMAIL = Pattern.compile("^[^@]\\*{5}@[^@]+$");
    static final Pattern NAME = Pattern.compile("^\\p{IsHan}{1,2}\\*\\*$");

    static boolean m(Pattern p, String s) {
        return s != null && p.matcher(s).matches();
    }

    static boolean validResidentId(String s) {
        if (s == null || !s.matches("\\d{17}[\\dX]")) {
            return false;
        }
        int[] w = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
        int total = 0;
        for (int i = 0; i < 17; i++) {
            total += (s.charAt(i) - '0') * w[i];
        }
        return "10X98765432".charAt(total % 11) == s.charAt(17);
    }

    /** Rows (with header) of MASKED_SQL through pgveil and CLEAR_SQL direct. */
    static void checkCustomerMasks(String label, List<List<String>> masked, List<List<String>> clear) {
        List<String> mids = new ArrayList<>(), cids = new ArrayList<>();
        masked.stream().skip(1).forEach(r -> mids.add(r.get(0)));
        clear.stream().skip(1).forEach(r -> cids.add(r.get(0)));
        ok(label + ": row filter keeps exactly the consenting customers", mids.equals(cids), mids.size() + " vs " + cids.size());
        List<String> bad = new ArrayList<>();
        for (int i = 1; i < Math.min(masked.size(), clear.size()); i++) {
            List<String> mr = masked.get(i), cr = clear.get(i);
            String name = mr.get(1), idn = mr.get(2), phone = mr.get(3), email = mr.get(4), card = mr.get(5),
                    addr = mr.get(6), birth = mr.get(7), notes = mr.get(8);
            Map<String, Boolean> checks = new HashMap<>();
            checks.put("name", m(NAME, name) && cr.get(1).startsWith(name.substring(0, name.length() - 2)));
            checks.put("id_number", m(CN_ID, idn) && idn.substring(0, 6).equals(cr.get(2).substring(0, 6)));
            checks.put("phone", m(PHONE, phone) && phone.substring(0, 3).equals(cr.get(3).substring(0, 3))
                    && phone.endsWith(cr.get(3).substring(cr.get(3).length() - 4)));
            checks.put("email", m(EMAIL, email) && email.charAt(0) == cr.get(4).charAt(0)
                    && email.substring(email.indexOf('@')).equals(cr.get(4).substring(cr.get(4).lastIndexOf('@'))));
            checks.put("bank_card", m(CARD, card) && card.length() == cr.get(5).length()
                    && card.endsWith(cr.get(5).substring(cr.get(5).length() - 4)));
            checks.put("address", "****".equals(addr) || (addr != null && cr.get(6).startsWith(addr) && addr.length() < cr.get(6).length()));
            checks.put("birth_date", Objects.equals(birth, cr.get(7).substring(0, 4) + "-01-01"));
            checks.put("notes", Objects.equals(notes, cr.get(8) == null ? null : "****"));
            for (Map.Entry<String, Boolean> e : checks.entrySet()) {
                if (!e.getValue()) {
                    bad.add("id " + mr.get(0) + " " + e.getKey() + ": " + mr);
                }
            }
        }
        ok(label + ": " + (masked.size() - 1) + " customers, every masked column well-formed",
                bad.isEmpty() && masked.size() > 1, bad.subList(0, Math.min(3, bad.size())));
    }

    static String copyOut(Connection c, String sql) throws Exception {
        java.io.StringWriter out = new java.io.StringWriter();
        new org.postgresql.copy.CopyManager(c.unwrap(org.postgresql.core.BaseConnection.class)).copyOut(sql, out);
        return out.toString();
    }

    static final String[] TABLES = {"customers", "employees", "orders", "suppliers"};

    static void metadata(Connection a, Connection d) throws SQLException {
        DatabaseMetaData pm = a.getMetaData(), dm = d.getMetaData();
        ok("getDatabaseProductName/Version", pm.getDatabaseProductName().equals(dm.getDatabaseProductName())
                && pm.getDatabaseProductVersion().equals(dm.getDatabaseProductVersion()), pm.getDatabaseProductVersion());
        eq("getCatalogs", rows(pm.getCatalogs()), rows(dm.getCatalogs()));
        eq("getSchemas", rows(pm.getSchemas()), rows(dm.getSchemas()));
        eq("getSchemas(null, public)", rows(pm.getSchemas(null, "public")), rows(dm.getSchemas(null, "public")));
        eq("getTableTypes", rows(pm.getTableTypes()), rows(dm.getTableTypes()));
        eq("getTables(public, %)", rows(pm.getTables(null, "public", "%", null)), rows(dm.getTables(null, "public", "%", null)));
        eq("getTables(TABLE, VIEW)", rows(pm.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"})),
                rows(dm.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"})));
        eq("getColumns(public, %, %)", rows(pm.getColumns(null, "public", "%", "%")), rows(dm.getColumns(null, "public", "%", "%")));
        for (String t : TABLES) {
            eq("getPrimaryKeys(" + t + ")", rows(pm.getPrimaryKeys(null, "public", t)), rows(dm.getPrimaryKeys(null, "public", t)));
            eq("getImportedKeys(" + t + ")", rows(pm.getImportedKeys(null, "public", t)), rows(dm.getImportedKeys(null, "public", t)));
            eq("getExportedKeys(" + t + ")", rows(pm.getExportedKeys(null, "public", t)), rows(dm.getExportedKeys(null, "public", t)));
            // CARDINALITY and PAGES come from pg_class.reltuples/relpages, which count rows a row
            // filter hides: pgveil reads them as -1 and 0 (src/policy/guards.rs), as for a table
            // never analysed. Every other column as direct.
            List<List<String>> pi = rows(pm.getIndexInfo(null, "public", t, false, true));
            List<List<String>> di = rows(dm.getIndexInfo(null, "public", t, false, true));
            boolean guarded = pi.size() > 1;
            for (List<String> r : pi.subList(1, pi.size())) {
                guarded &= "-1".equals(r.get(10)) && "0".equals(r.get(11));
            }
            ok("getIndexInfo(" + t + "): CARDINALITY -1 and PAGES 0 (catalog statistics guarded)", guarded, pi);
            eq("getIndexInfo(" + t + "): every other column as direct", dropColumns(pi, 10, 11), dropColumns(di, 10, 11));
        }
        eq("getCrossReference(customers, orders)", rows(pm.getCrossReference(null, "public", "customers", null, "public", "orders")),
                rows(dm.getCrossReference(null, "public", "customers", null, "public", "orders")));
        eq("getTypeInfo", rows(pm.getTypeInfo()), rows(dm.getTypeInfo()));
        eq("getUDTs", rows(pm.getUDTs(null, "public", "%", null)), rows(dm.getUDTs(null, "public", "%", null)));
        eq("getFunctions(public)", rows(pm.getFunctions(null, "public", "%")), rows(dm.getFunctions(null, "public", "%")));
        eq("getProcedures(public)", rows(pm.getProcedures(null, "public", "%")), rows(dm.getProcedures(null, "public", "%")));
        eq("getTablePrivileges(customers)", rows(pm.getTablePrivileges(null, "public", "customers")),
                rows(dm.getTablePrivileges(null, "public", "customers")));
        eq("getBestRowIdentifier(orders)", rows(pm.getBestRowIdentifier(null, "public", "orders", DatabaseMetaData.bestRowSession, true)),
                rows(dm.getBestRowIdentifier(null, "public", "orders", DatabaseMetaData.bestRowSession, true)));
        ok("getSQLKeywords / identifier quote", pm.getSQLKeywords().equals(dm.getSQLKeywords())
                && pm.getIdentifierQuoteString().equals(dm.getIdentifierQuoteString()), pm.getIdentifierQuoteString());
        ok("getUserName is the pgveil login", "analyst".equals(pm.getUserName()), pm.getUserName());
    }

    static List<List<String>> dropColumns(List<List<String>> rows, int... cols) {
        List<List<String>> out = new ArrayList<>();
        for (List<String> r : rows) {
            List<String> keep = new ArrayList<>();
            for (int i = 0; i < r.size(); i++) {
                final int j = i;
                if (java.util.Arrays.stream(cols).noneMatch(c -> c == j)) {
                    keep.add(r.get(i));
                }
            }
            out.add(keep);
        }
        return out;
    }

    /** Catalog statements of the shapes DBeaver and Metabase send when they open a connection. */
    static final String[][] TOOL_QUERIES = {
        {"DBeaver: current schema", "SELECT current_schema(), session_user"},
        {"DBeaver: search_path", "SHOW search_path"},
        {"DBeaver: version", "SELECT version()"},
        {"DBeaver: schemas", "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d "
            + "ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass ORDER BY nspname"},
        {"DBeaver: tables", "SELECT c.oid,c.relname,c.relkind,c.relnamespace,c.relowner,c.relhasindex,d.description FROM pg_catalog.pg_class c "
            + "LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass "
            + "WHERE c.relnamespace='public'::regnamespace AND c.relkind NOT IN ('i','I','c') ORDER BY c.relname"},
        {"DBeaver: columns", "SELECT c.relname, a.attname, a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull, "
            + "pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) AS def_value, dsc.description FROM pg_catalog.pg_attribute a "
            + "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON a.attrelid=ad.adrelid AND a.attnum = ad.adnum "
            + "LEFT OUTER JOIN pg_catalog.pg_description dsc ON dsc.objoid=a.attrelid AND dsc.objsubid=a.attnum "
            + "WHERE c.relnamespace='public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum"},
        {"DBeaver: constraints", "SELECT c.oid,c.conname,c.contype,c.conrelid::regclass::text,pg_catalog.pg_get_constraintdef(c.oid) AS def "
            + "FROM pg_catalog.pg_constraint c WHERE c.connamespace='public'::regnamespace ORDER BY c.conname"},
        {"DBeaver: view definition", "SELECT pg_catalog.pg_get_viewdef('public.customer_contacts'::regclass, true)"},
        {"Metabase: time zone", "show timezone;"},
        {"Metabase: enum types", "SELECT nspname, typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            + "WHERE t.oid IN (SELECT DISTINCT enumtypid FROM pg_enum e)"},
        {"Metabase: table privileges", "with table_privileges as ( select NULL as role, t.schemaname as schema, t.objectname as table, "
            + "pg_catalog.has_any_column_privilege(current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\".\"' || replace(t.objectname, '\"', '\"\"') || '\"', 'select') as select, "
            + "pg_catalog.has_table_privilege(current_user, '\"' || replace(t.schemaname, '\"', '\"\"') || '\".\"' || replace(t.objectname, '\"', '\"\"') || '\"', 'delete') as delete "
            + "from ( select schemaname, tablename as objectname from pg_catalog.pg_tables union select schemaname, viewname as objectname from pg_catalog.pg_views "
            + "union select schemaname, matviewname as objectname from pg_catalog.pg_matviews ) t where t.schemaname !~ '^pg_' and t.schemaname <> 'information_schema' "
            + "and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')) select t.* from table_privileges t order by 2, 3"},
        {"Metabase: describe fields", "SELECT c.column_name AS name, format('%s', c.udt_name) AS \"database-type\", c.ordinal_position - 1 AS \"database-position\", "
            + "c.table_schema AS \"table-schema\", c.table_name AS \"table-name\", pk.column_name IS NOT NULL AS \"pk?\", "
            + "col_description(CAST(CAST(format('%I.%I', CAST(c.table_schema AS text), CAST(c.table_name AS text)) AS regclass) AS oid), c.ordinal_position) AS \"field-comment\" "
            + "FROM information_schema.columns AS c LEFT JOIN (SELECT tc.table_schema, tc.table_name, kc.column_name FROM information_schema.table_constraints AS tc "
            + "INNER JOIN information_schema.key_column_usage AS kc ON (tc.constraint_name = kc.constraint_name) AND (tc.table_schema = kc.table_schema) AND (tc.table_name = kc.table_name) "
            + "WHERE tc.constraint_type = 'PRIMARY KEY') AS pk ON (c.table_schema = pk.table_schema) AND (c.table_name = pk.table_name) AND (c.column_name = pk.column_name) "
            + "WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND c.table_schema IN ('public') ORDER BY \"table-schema\", \"table-name\", \"database-position\""},
        {"Metabase: describe foreign keys", "SELECT fk_ns.nspname AS \"fk-table-schema\", fk_table.relname AS \"fk-table-name\", fk_column.attname AS \"fk-column-name\", "
            + "pk_ns.nspname AS \"pk-table-schema\", pk_table.relname AS \"pk-table-name\", pk_column.attname AS \"pk-column-name\" FROM pg_constraint AS c "
            + "INNER JOIN pg_class AS fk_table ON c.conrelid = fk_table.oid INNER JOIN pg_namespace AS fk_ns ON c.connamespace = fk_ns.oid "
            + "INNER JOIN pg_attribute AS fk_column ON c.conrelid = fk_column.attrelid INNER JOIN pg_class AS pk_table ON c.confrelid = pk_table.oid "
            + "INNER JOIN pg_namespace AS pk_ns ON pk_table.relnamespace = pk_ns.oid INNER JOIN pg_attribute AS pk_column ON c.confrelid = pk_column.attrelid "
            + "WHERE fk_ns.nspname !~ '^information_schema|catalog_history|pg_' AND c.contype = 'f'::char AND fk_column.attnum = ANY(c.conkey) "
            + "AND pk_column.attnum = ANY(c.confkey) ORDER BY \"fk-table-schema\", \"fk-table-name\""},
        {"Metabase: can read customers", "SELECT TRUE AS \"_\" FROM \"public\".\"customers\" WHERE 1 <> 1 LIMIT 0"},
        {"Metabase: field fingerprint of a public column", "SELECT \"public\".\"customers\".\"city\" AS \"city\" FROM \"public\".\"customers\" "
            + "WHERE \"public\".\"customers\".\"consent_transfer\" ORDER BY \"public\".\"customers\".\"id\" LIMIT 10000"},
        {"information_schema.columns", "SELECT table_name, column_name, data_type, is_nullable, ordinal_position FROM information_schema.columns "
            + "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"},
    };

    public static void main(String[] args) throws Exception {
        Class.forName("org.postgresql.Driver");
        System.out.println("java " + System.getProperty("java.version") + ", pgjdbc "
                + new org.postgresql.Driver().getMajorVersion() + "." + new org.postgresql.Driver().getMinorVersion()
                + " (" + org.postgresql.util.DriverInfo.DRIVER_FULL_NAME + ")");
        String plain = "?sslmode=disable";
        String binary = "?sslmode=disable&prepareThreshold=1&binaryTransfer=true";
        try (Connection a = proxy("analyst", plain); Connection d = direct(plain);
             Connection ab = proxy("analyst", binary); Connection db = direct(binary)) {
            group("DatabaseMetaData", () -> metadata(a, d));
            group("tool catalog queries", () -> {
                for (String[] q : TOOL_QUERIES) {
                    try {
                        eq(q[0], query(a, q[1]), query(d, q[1]));
                    } catch (SQLException e) {
                        ok(q[0], false, e.getSQLState() + " " + e.getMessage());
                    }
                }
                // Metabase's table list (describe-database) also reads estimated row counts from
                // pg_stat_user_tables. Expected: the same tables as direct; the estimate (which
                // counts rows a row filter hides) may be withheld.
                String tables = "SELECT n.nspname AS schema, c.relname AS name, CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' "
                        + "WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS type, d.description AS description, "
                        + "stat.n_live_tup AS estimated_row_count FROM pg_catalog.pg_class AS c INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid "
                        + "LEFT JOIN pg_catalog.pg_description AS d ON (c.oid = d.objoid) AND (d.objsubid = 0) AND (d.classoid = 'pg_class'::regclass) "
                        + "LEFT JOIN pg_stat_user_tables AS stat ON (n.nspname = stat.schemaname) AND (c.relname = stat.relname) "
                        + "WHERE (c.relnamespace = n.oid) AND (n.nspname !~ ?) AND (n.nspname <> ?) AND c.relkind in ('r', 'p', 'v', 'f', 'm') "
                        + "AND (n.nspname IN (?)) ORDER BY type ASC, schema ASC, name ASC";
                try {
                    eq("Metabase: describe-database table list (estimated_row_count aside)",
                            dropColumns(prepared(a, tables, "^pg_", "information_schema", "public"), 4),
                            dropColumns(prepared(d, tables, "^pg_", "information_schema", "public"), 4));
                } catch (SQLException e) {
                    ok("Metabase: describe-database table list (joins pg_stat_user_tables)", false, e.getSQLState() + " " + e.getMessage());
                }
                // Sizes reveal how long hidden values are: refused by design (ARCHITECTURE.md).
                try {
                    query(a, "SELECT c.oid, pg_catalog.pg_total_relation_size(c.oid) AS total_rel_size, pg_catalog.pg_relation_size(c.oid) AS rel_size "
                            + "FROM pg_catalog.pg_class c WHERE c.relnamespace = 'public'::regnamespace");
                    ok("DBeaver: table sizes refused", false, "it ran");
                } catch (SQLException e) {
                    ok("DBeaver: table sizes (pg_total_relation_size) refused with 42501", "42501".equals(e.getSQLState()), e.getMessage());
                }
                ok("connection usable after the refusal", query(a, "SELECT 1").size() == 2, "");
                // What Metabase samples to fingerprint a column: masked values for a masked column.
                List<List<String>> sample = query(a, "SELECT \"public\".\"customers\".\"phone\" AS \"phone\" FROM \"public\".\"customers\" LIMIT 10000");
                ok("Metabase: fingerprint sample of customers.phone is masked", sample.size() > 1
                        && sample.stream().skip(1).allMatch(r -> m(PHONE, r.get(0))), sample.subList(0, Math.min(3, sample.size())));
            });
            group("visible data", () -> {
                for (Q q : visibleQueries()) {
                    List<List<String>> want = query(d, q.direct());
                    ok("[" + q.label() + "] has rows", want.size() > 1, want.size());
                    eq("[" + q.label() + "] same as direct (simple statement)", query(a, q.proxy()), want);
                    // Twice: the second execution uses the named server-side statement, binary results.
                    for (int run = 1; run <= 2; run++) {
                        eq("[" + q.label() + "] same as direct (prepared, binary, run " + run + ")",
                                prepared(ab, q.proxy()), prepared(db, q.direct()));
                    }
                }
            });
            group("server-side prepared statements with binary transfer", () -> {
                String sql = "SELECT id, city, created_at, vip_level, consent_transfer FROM customers WHERE vip_level = ? AND created_at > ? ORDER BY id";
                String dsql = sql.replace("WHERE", "WHERE consent_transfer AND");
                java.sql.Timestamp since = java.sql.Timestamp.valueOf("2019-01-01 00:00:00");
                try (PreparedStatement ps = ab.prepareStatement(sql); PreparedStatement ds = db.prepareStatement(dsql)) {
                    for (int vip = 0; vip <= 5; vip++) {
                        ps.setInt(1, vip);
                        ps.setTimestamp(2, since);
                        ds.setInt(1, vip);
                        ds.setTimestamp(2, since);
                        eq("prepared vip=" + vip, rows(ps.executeQuery()), rows(ds.executeQuery()));
                    }
                }
                List<List<String>> clear = query(d, CLEAR_SQL);
                for (int run = 1; run <= 3; run++) {
                    checkCustomerMasks("masked customers, prepared binary run " + run, prepared(ab, MASKED_SQL), clear);
                }
                checkCustomerMasks("masked customers, simple statement", query(a, MASKED_SQL), clear);
                try (PreparedStatement ps = ab.prepareStatement("SELECT birth_date, phone FROM customers WHERE id = ?")) {
                    ps.setInt(1, Integer.parseInt(clear.get(1).get(0)));
                    for (int run = 1; run <= 3; run++) {
                        try (ResultSet rs = ps.executeQuery()) {
                            rs.next();
                            java.time.LocalDate day = rs.getObject(1, java.time.LocalDate.class);
                            ok("binary date mask decodes as a date (run " + run + ")",
                                    day.getDayOfYear() == 1 && String.valueOf(day.getYear()).equals(clear.get(1).get(7).substring(0, 4))
                                    && m(PHONE, rs.getString(2)), day + " " + rs.getString(2));
                        }
                    }
                }
                eq("orders.amount (internal) redacted, binary numeric", prepared(ab, "SELECT DISTINCT amount FROM orders"),
                        List.of(List.of("amount:numeric"), List.of("0.00")));
            });
            group("fetch-size cursors", () -> {
                List<List<String>> clear = query(d, CLEAR_SQL);
                for (Connection c : new Connection[] {a, ab}) {
                    c.setAutoCommit(false);
                    try (Statement st = c.createStatement()) {
                        st.setFetchSize(50);
                        checkCustomerMasks("fetch size 50 (" + (c == ab ? "binary" : "text") + ")", rows(st.executeQuery(MASKED_SQL)), clear);
                    }
                    try (PreparedStatement ps = c.prepareStatement("SELECT id, customer_id, order_no, status, ordered_at FROM orders WHERE id > ? ORDER BY id")) {
                        ps.setFetchSize(128);
                        ps.setInt(1, 10);
                        eq("fetch size 128, prepared (" + (c == ab ? "binary" : "text") + ")", rows(ps.executeQuery()),
                                prepared(db, "SELECT id, customer_id, order_no, status, ordered_at FROM orders WHERE id > ? ORDER BY id", 10));
                    }
                    c.commit();
                    c.setAutoCommit(true);
                }
            });
            group("COPY TO STDOUT (CopyManager)", () -> {
                String sql = "COPY (SELECT id, city, vip_level FROM customers ORDER BY id) TO STDOUT (FORMAT csv)";
                String dsql = "COPY (SELECT id, city, vip_level FROM customers WHERE consent_transfer ORDER BY id) TO STDOUT (FORMAT csv)";
                String got = copyOut(a, sql), want = copyOut(d, dsql);
                ok("copyOut csv: has rows", want.split("\n").length > 100, want.length());
                ok("copyOut csv: same as direct", got.equals(want), got.substring(0, Math.min(200, got.length())));
                String phones = copyOut(a, "COPY customers (id, phone) TO STDOUT");
                boolean masked = !phones.isEmpty();
                for (String line : phones.split("\n")) {
                    masked &= m(PHONE, line.split("\t")[1]);
                }
                ok("copyOut of a table: phones masked", masked, phones.substring(0, Math.min(200, phones.length())));
            });
            group("refusals", () -> {
                for (String sql : new String[] {"SELECT name, salary FROM employees", "SELECT * FROM employees"}) {
                    for (Connection c : new Connection[] {a, ab}) {
                        try {
                            prepared(c, sql);
                            ok("refused: " + sql, false, "it ran");
                        } catch (SQLException e) {
                            ok("refused with 42501 (" + (c == ab ? "binary" : "text") + "): " + sql,
                                    "42501".equals(e.getSQLState()) && e.getMessage().contains("salary"), e.getSQLState() + " " + e.getMessage());
                        }
                    }
                }
                a.setAutoCommit(false);
                try {
                    query(a, "SELECT salary FROM employees");
                } catch (SQLException e) {
                    // expected
                }
                try {
                    query(a, "SELECT 1");
                    ok("failed statement aborts the transaction", false, "SELECT 1 ran");
                } catch (SQLException e) {
                    ok("failed statement aborts the transaction (25P02)", "25P02".equals(e.getSQLState()), e.getSQLState());
                }
                a.rollback();
                a.setAutoCommit(true);
                eq("after rollback the connection works", query(a, "SELECT count(*) AS n FROM suppliers"),
                        List.of(List.of("n:int8"), List.of("20")));
            });
        }
        group("auditor", () -> {
            try (Connection c = proxy("auditor", binary); Connection t = proxy("auditor", plain); Connection d = direct(plain)) {
                List<List<String>> tokens = prepared(c, "SELECT id, id_number FROM customers ORDER BY id");
                Map<String, String> clear = new HashMap<>();
                query(d, "SELECT id, id_number FROM customers").stream().skip(1).forEach(r -> clear.put(r.get(0), r.get(1)));
                boolean good = tokens.size() > 1;
                Set<String> distinct = new HashSet<>();
                for (List<String> r : tokens.subList(1, tokens.size())) {
                    good &= validResidentId(r.get(1)) && !r.get(1).equals(clear.get(r.get(0)));
                    distinct.add(r.get(1));
                }
                ok("auditor: tokens are valid resident IDs, never the real one", good, tokens.subList(0, Math.min(3, tokens.size())));
                ok("auditor: one token per distinct ID", distinct.size() == new HashSet<>(clear.values()).size(), distinct.size());
                eq("auditor: same tokens in text (simple statement)", query(t, "SELECT id, id_number FROM customers ORDER BY id"), tokens);
                eq("auditor: amounts clear", prepared(c, "SELECT id, amount FROM orders ORDER BY id"),
                        prepared(d, "SELECT id, amount FROM orders ORDER BY id"));
            }
        });
        group("dba", () -> {
            try (Connection c = proxy("dba", binary); Connection d = direct(binary)) {
                for (String sql : new String[] {"SELECT * FROM customers ORDER BY id", "SELECT * FROM employees ORDER BY id"}) {
                    eq("dba: " + sql, prepared(c, sql), prepared(d, sql));
                }
                metadata2(c, d);
            }
        });
        System.out.println("pgjdbc: " + passed + " passed, " + failed.size() + " failed");
        if (!failed.isEmpty()) {
            System.out.println("failed: " + String.join("; ", failed));
            System.exit(1);
        }
    }

    static void metadata2(Connection c, Connection d) throws SQLException {
        eq("dba: getColumns(customers)", rows(c.getMetaData().getColumns(null, "public", "customers", "%")),
                rows(d.getMetaData().getColumns(null, "public", "customers", "%")));
    }

}

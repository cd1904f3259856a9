// The Trino JDBC driver against a running `tsql serve` (demo data, Trino
// protocol on the port given). Run by tests/python/test_trino_jdbc.py as
//
//   java -cp trino-jdbc.jar TrinoJdbcCheck.java PORT SECTION [ARGS]
//
// SECTION is one of
//   basic                  queries, a PreparedStatement, errors, cancel
//   metadata SCHEMA_FILE   every DatabaseMetaData method (SCHEMA_FILE: the
//                          demo tables from `tsql schema --demo`, one
//                          "table<TAB>column<TAB>TYPE<TAB>YES|NO" line per
//                          column, the last field whether it can be null)
//   values SCHEMA_FILE     every demo table read with getObject and the typed
//                          getters, ResultSetMetaData; prints each row as a
//                          "ROW" line that the Python side compares with the
//                          same query over Flight SQL
//   params                 PreparedStatement parameters of every type
//   tls CERT CUSTOMERS     HTTPS: the right password works (count(*) of customers
//                          is CUSTOMERS), a wrong one is an SQLException, not a hang
//
// Each named check runs on its own: "PASS name" or "FAIL name: why", with the
// SQL the driver sent for a failed check (from system.runtime.queries) on
// "SENT" lines. The exit code is the number of failed checks (0: all passed).
import java.math.BigDecimal;
import java.nio.file.*;
import java.sql.*;
import java.time.*;
import java.time.format.DateTimeFormatter;
import java.util.*;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

public class TrinoJdbcCheck {
    static String port;
    static int failed = 0;
    static Set<String> seenQueries = new HashSet<>();

    interface Check {
        void run() throws Exception;
    }

    static void ok(boolean cond, String what) {
        if (!cond) {
            throw new AssertionError(what);
        }
    }

    static void eq(Object got, Object want, String what) {
        if (!Objects.equals(got, want)) {
            throw new AssertionError(what + ": got " + got + ", want " + want);
        }
    }

    static Connection connect(String extra) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", "admin");
        return DriverManager.getConnection("jdbc:trino://127.0.0.1:" + port + "/cyoda/entities" + extra, p);
    }

    /** The queries the server has seen since the last call (id, state, sql, error). */
    static List<String> newQueries() {
        List<String> out = new ArrayList<>();
        try (Connection c = connect(""); Statement s = c.createStatement();
             ResultSet r = s.executeQuery(System.getProperty("queries",
                     "SELECT query_id, state, sql, error FROM system.runtime.queries ORDER BY started"))) {
            while (r.next()) {
                String id = r.getString(1);
                String sql = r.getString(3);
                if (seenQueries.add(id) && !sql.contains("system.runtime.queries")) {
                    String error = r.getString(4);
                    out.add(r.getString(2) + ": " + sql.replace("\n", " ")
                            + (error == null ? "" : "\n      error: " + error.replace("\n", " ")));
                }
            }
        } catch (Exception e) {
            out.add("(system.runtime.queries unreadable: " + e + ")");
        }
        return out;
    }

    static void check(String name, Check c) {
        newQueries();
        try {
            c.run();
            System.out.println("PASS " + name);
        } catch (Throwable e) {
            failed++;
            String why = String.valueOf(e.getMessage() == null ? e : e.getClass().getSimpleName() + ": " + e.getMessage());
            System.out.println("FAIL " + name + ": " + why.replace("\n", " "));
            for (String q : newQueries()) {
                System.out.println("  SENT " + q);
            }
        }
    }

    /** The driver's own "not supported" (SQLFeatureNotSupportedException or its NotImplementedException): as against Trino. */
    static void driverDoesNotImplement(SQLException e) throws SQLException {
        if (!(e instanceof SQLFeatureNotSupportedException) && !e.getClass().getSimpleName().equals("NotImplementedException")) {
            throw e;
        }
    }

    static List<List<Object>> rows(ResultSet r) throws SQLException {
        List<List<Object>> out = new ArrayList<>();
        int n = r.getMetaData().getColumnCount();
        while (r.next()) {
            List<Object> row = new ArrayList<>();
            for (int i = 1; i <= n; i++) row.add(r.getObject(i));
            out.add(row);
        }
        r.close();
        return out;
    }

    static List<List<Object>> query(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement()) {
            return rows(s.executeQuery(sql));
        }
    }

    static Object scalar(Connection c, String sql) throws SQLException {
        List<List<Object>> r = query(c, sql);
        eq(r.size(), 1, "one row from " + sql);
        return r.get(0).get(0);
    }

    static List<String> labels(ResultSet r) throws SQLException {
        ResultSetMetaData m = r.getMetaData();
        List<String> out = new ArrayList<>();
        for (int i = 1; i <= m.getColumnCount(); i++) out.add(m.getColumnLabel(i).toUpperCase(Locale.ROOT));
        return out;
    }

    /** The column labels JDBC's javadoc gives a metadata result set, and no rows. */
    static void emptyWithColumns(ResultSet r, String... columns) throws SQLException {
        List<String> got = labels(r);
        eq(got, Arrays.asList(columns), "columns");
        ok(!r.next(), "no rows");
        r.close();
    }

    // ----------------------------------------------------------------- demo schema

    /** "table.column" -> YES or NO (the schema file's fourth field: tsql's information_schema.columns.is_nullable). */
    static Map<String, String> nullable = new HashMap<>();

    /** table -> ordered column -> tsql type (upper case, as `tsql schema` prints it). */
    static LinkedHashMap<String, LinkedHashMap<String, String>> schema(String file) throws Exception {
        LinkedHashMap<String, LinkedHashMap<String, String>> out = new LinkedHashMap<>();
        for (String line : Files.readAllLines(Path.of(file))) {
            if (line.isBlank()) continue;
            String[] f = line.split("\t");
            out.computeIfAbsent(f[0], k -> new LinkedHashMap<>()).put(f[1], f[2]);
            if (f.length > 3) nullable.put(f[0] + "." + f[1], f[3]);
        }
        return out;
    }

    static int jdbcType(String tsqlType) {
        String t = tsqlType.toUpperCase(Locale.ROOT);
        if (t.startsWith("ARRAY")) return Types.ARRAY;
        switch (t) {
            case "VARCHAR": return Types.VARCHAR;
            case "BIGINT": return Types.BIGINT;
            case "INTEGER": return Types.INTEGER;
            case "SMALLINT": return Types.SMALLINT;
            case "TINYINT": return Types.TINYINT;
            case "DOUBLE": return Types.DOUBLE;
            case "REAL": return Types.REAL;
            case "BOOLEAN": return Types.BOOLEAN;
            case "DATE": return Types.DATE;
            case "TIME": return Types.TIME;
            case "TIMESTAMP": return Types.TIMESTAMP;
            case "TIMESTAMP WITH TIME ZONE": return Types.TIMESTAMP_WITH_TIMEZONE;
            case "VARBINARY": return Types.VARBINARY;
            default: throw new AssertionError("no JDBC type known for " + tsqlType);
        }
    }

    /** Trino's system.jdbc.columns COLUMN_SIZE for a Trino type name (ColumnJdbcTable.columnSize). */
    static Integer trinoColumnSize(String trinoType) {
        int maxZone = ZoneId.getAvailableZoneIds().stream().mapToInt(String::length).max().getAsInt();
        java.util.regex.Matcher m;
        if (trinoType.equals("bigint")) return 19;
        if (trinoType.equals("integer")) return 10;
        if (trinoType.equals("smallint")) return 5;
        if (trinoType.equals("tinyint")) return 3;
        if (trinoType.equals("real")) return 24;
        if (trinoType.equals("double")) return 53;
        if (trinoType.equals("varchar") || trinoType.equals("varbinary")) return Integer.MAX_VALUE;
        if (trinoType.equals("date")) return 14;
        if ((m = Pattern.compile("time\\((\\d+)\\)").matcher(trinoType)).matches()) {
            int p = Integer.parseInt(m.group(1));
            return 8 + Math.min(p, 1) + p;
        }
        if ((m = Pattern.compile("timestamp\\((\\d+)\\) with time zone").matcher(trinoType)).matches()) {
            int p = Integer.parseInt(m.group(1));
            return 1 + 6 + 15 + Math.min(p, 1) + p + 1 + maxZone;
        }
        if ((m = Pattern.compile("timestamp\\((\\d+)\\)").matcher(trinoType)).matches()) {
            int p = Integer.parseInt(m.group(1));
            return 1 + 5 + 15 + Math.min(p, 1) + p;
        }
        return null;
    }

    /** DECIMAL_DIGITS: the precision of times and timestamps, the scale of decimals. */
    static Integer trinoDecimalDigits(String trinoType) {
        java.util.regex.Matcher m = Pattern.compile("(?:time|timestamp)\\((\\d+)\\).*").matcher(trinoType);
        if (m.matches()) return Integer.parseInt(m.group(1));
        m = Pattern.compile("decimal\\(\\d+,\\s*(\\d+)\\)").matcher(trinoType);
        if (m.matches()) return Integer.parseInt(m.group(1));
        return null;
    }

    static Integer trinoRadix(String trinoType) {
        if (List.of("bigint", "integer", "smallint", "tinyint").contains(trinoType) || trinoType.startsWith("decimal")) return 10;
        if (List.of("real", "double").contains(trinoType)) return 2;
        return null;
    }

    static String javaClass(int jdbcType) {
        switch (jdbcType) {
            case Types.VARCHAR: return "java.lang.String";
            case Types.BIGINT: return "java.lang.Long";
            case Types.INTEGER: return "java.lang.Integer";
            case Types.DOUBLE: return "java.lang.Double";
            case Types.BOOLEAN: return "java.lang.Boolean";
            case Types.DATE: return "java.sql.Date";
            case Types.TIME: return "java.sql.Time";
            // 476's TrinoResultSetMetaData has no case for this type (String, against Trino too); 484 says Timestamp.
            case Types.TIMESTAMP_WITH_TIMEZONE: return "java.sql.Timestamp|java.lang.String";
            case Types.ARRAY: return "java.sql.Array";
            default: return "?";
        }
    }

    /** A JDBC LIKE pattern (with `\` escaping `_` and `%`) as a regex. */
    static Pattern like(String pattern) {
        StringBuilder re = new StringBuilder();
        for (int i = 0; i < pattern.length(); i++) {
            char ch = pattern.charAt(i);
            if (ch == '\\' && i + 1 < pattern.length()) {
                re.append(Pattern.quote(String.valueOf(pattern.charAt(++i))));
            } else if (ch == '%') {
                re.append(".*");
            } else if (ch == '_') {
                re.append(".");
            } else {
                re.append(Pattern.quote(String.valueOf(ch)));
            }
        }
        return Pattern.compile(re.toString(), Pattern.DOTALL);
    }

    /** Trino's type of every column of `table` (typeof over the server). */
    static Map<String, String> typeofs(Connection c, String table, Collection<String> columns) throws SQLException {
        String sql = "SELECT " + columns.stream().map(col -> "typeof(\"" + col + "\")").collect(Collectors.joining(", "))
                + " FROM " + table + " LIMIT 1";
        List<Object> row = query(c, sql).get(0);
        Map<String, String> out = new LinkedHashMap<>();
        int i = 0;
        for (String col : columns) out.put(col, (String) row.get(i++));
        return out;
    }

    // ----------------------------------------------------------------- sections

    public static void main(String[] args) throws Exception {
        port = args[0];
        switch (args[1]) {
            case "basic": basic(); break;
            case "metadata": metadata(schema(args[2])); break;
            case "values": values(schema(args[2])); break;
            case "params": params(""); params("?explicitPrepare=false"); break;
            case "tls": tls(args[2], Long.parseLong(args[3])); break;
            default: throw new IllegalArgumentException(args[1]);
        }
        System.out.println(failed == 0 ? "trino-jdbc " + args[1] + ": every check passed" : "trino-jdbc " + args[1] + ": " + failed + " failed");
        System.exit(Math.min(failed, 100));
    }

    static void basic() throws Exception {
        try (Connection c = connect("")) {
            long[] orders = new long[1];
            check("query: group by, ResultSetMetaData", () -> {
                try (Statement s = c.createStatement();
                     ResultSet r = s.executeQuery("SELECT channel, count(*) AS n, min(placed) AS first FROM orders GROUP BY channel ORDER BY channel")) {
                    ResultSetMetaData m = r.getMetaData();
                    eq(m.getColumnCount(), 3, "three columns");
                    ok(m.getColumnType(1) == Types.VARCHAR && m.getColumnType(2) == Types.BIGINT, "varchar, bigint: " + m.getColumnTypeName(1) + " " + m.getColumnTypeName(2));
                    eq(m.getColumnType(3), Types.TIMESTAMP_WITH_TIMEZONE, "timestamp with time zone: " + m.getColumnTypeName(3));
                    List<String> channels = new ArrayList<>();
                    while (r.next()) {
                        channels.add(r.getString(1));
                        orders[0] += r.getLong(2);
                        ok(r.getTimestamp(3) != null, "a timestamp");
                    }
                    eq(channels, List.of("phone", "store", "web"), "channels");
                }
                eq(scalar(c, "SELECT count(*) FROM orders"), orders[0], "count");
            });
            check("PreparedStatement: varchar and timestamp", () -> {
                try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM orders WHERE channel = ? AND placed >= ?")) {
                    ps.setString(1, "web");
                    ps.setTimestamp(2, Timestamp.valueOf("2024-01-01 00:00:00"));
                    try (ResultSet r = ps.executeQuery()) {
                        r.next();
                        eq(r.getLong(1), scalar(c, "SELECT count(*) FROM orders WHERE channel = 'web' AND placed >= TIMESTAMP '2024-01-01 00:00:00'"), "prepared count");
                    }
                }
            });
            check("errors: TABLE_NOT_FOUND", () -> {
                try (Statement s = c.createStatement()) {
                    s.executeQuery("SELECT * FROM nosuch");
                    ok(false, "an unknown table fails");
                } catch (SQLException e) {
                    ok(e.getMessage().contains("nosuch"), "the error names the table: " + e.getMessage());
                    eq(e.getErrorCode(), 46, "TABLE_NOT_FOUND's code");
                }
            });
            check("Statement.cancel during a long query", () -> {
                try (Statement s = c.createStatement()) {
                    Thread canceller = new Thread(() -> {
                        try {
                            Thread.sleep(1000);
                            s.cancel();
                        } catch (Exception e) {
                            throw new RuntimeException(e);
                        }
                    });
                    canceller.start();
                    long started = System.currentTimeMillis();
                    try {
                        s.executeQuery("SELECT count(*) FROM orders_lines a CROSS JOIN orders_lines b CROSS JOIN orders_lines c").next();
                        ok(false, "a cancelled query fails");
                    } catch (SQLException e) {
                        ok(System.currentTimeMillis() - started < 10_000, "cancelled in time");
                    }
                    canceller.join();
                }
                // The connection still works, and the server says the query was cancelled.
                eq(scalar(c, "SELECT count(*) FROM orders"), orders[0], "a query after the cancel");
                Object state = scalar(c, "SELECT state FROM system.runtime.queries WHERE sql LIKE '%CROSS JOIN orders_lines c' ORDER BY started DESC LIMIT 1");
                eq(state, "cancelled", "state of the cancelled query");
            });
        }
    }

    static void metadata(LinkedHashMap<String, LinkedHashMap<String, String>> demo) throws Exception {
        try (Connection c = connect("")) {
            DatabaseMetaData md = c.getMetaData();
            check("getDatabaseProductName/Version", () -> {
                eq(md.getDatabaseProductName(), "Trino", "product name");
                eq(md.getDatabaseProductVersion(), scalar(c, "SELECT version()"), "product version = version()");
            });
            check("getSearchStringEscape, getIdentifierQuoteString", () -> {
                eq(md.getSearchStringEscape(), "\\", "escape");
                eq(md.getIdentifierQuoteString(), "\"", "quote");
            });
            check("getCatalogs", () -> {
                ResultSet r = md.getCatalogs();
                eq(labels(r), List.of("TABLE_CAT"), "columns");
                List<Object> got = rows(r).stream().map(x -> x.get(0)).collect(Collectors.toList());
                List<Object> want = query(c, "SHOW CATALOGS").stream().map(x -> x.get(0)).sorted().collect(Collectors.toList());
                eq(got, want, "catalogs = SHOW CATALOGS");
                ok(got.contains("cyoda") && got.contains("system"), "cyoda and system: " + got);
            });
            List<List<Object>> allSchemas = new ArrayList<>();
            check("getSchemas()", () -> {
                ResultSet r = md.getSchemas();
                eq(labels(r), List.of("TABLE_SCHEM", "TABLE_CATALOG"), "columns");
                List<List<Object>> got = rows(r);
                List<List<Object>> want = new ArrayList<>();
                for (List<Object> cat : query(c, "SHOW CATALOGS")) {
                    for (List<Object> s : query(c, "SHOW SCHEMAS FROM " + cat.get(0))) want.add(List.of(s.get(0), cat.get(0)));
                }
                want.sort(Comparator.comparing((List<Object> x) -> (String) x.get(1)).thenComparing(x -> (String) x.get(0)));
                eq(got, want, "schemas = SHOW SCHEMAS FROM each catalog");
                allSchemas.addAll(got);
                ok(got.contains(List.of("entities", "cyoda")) && got.contains(List.of("information_schema", "cyoda")), "cyoda.entities and cyoda.information_schema");
            });
            check("getSchemas(catalog, pattern)", () -> {
                eq(rows(md.getSchemas("cyoda", "ent%")), List.of(List.of("entities", "cyoda")), "ent%");
                eq(rows(md.getSchemas("cyoda", "entities")), List.of(List.of("entities", "cyoda")), "entities");
                eq(rows(md.getSchemas("cyoda", "information\\_schema")), List.of(List.of("information_schema", "cyoda")), "escaped _");
                eq(rows(md.getSchemas("cyoda", "nomatch%")), List.of(), "no match");
                eq(rows(md.getSchemas("nosuch", null)), List.of(), "unknown catalog");
                List<List<Object>> sys = rows(md.getSchemas("system", null));
                ok(sys.contains(List.of("runtime", "system")) && sys.contains(List.of("jdbc", "system")), "system.runtime and system.jdbc: " + sys);
            });
            check("getTableTypes", () -> {
                ResultSet r = md.getTableTypes();
                eq(labels(r), List.of("TABLE_TYPE"), "columns");
                eq(rows(r), List.of(List.of("TABLE"), List.of("VIEW")), "table types (Trino: TABLE, VIEW)");
            });
            List<String> tableColumns = List.of("TABLE_CAT", "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE", "REMARKS", "TYPE_CAT",
                    "TYPE_SCHEM", "TYPE_NAME", "SELF_REFERENCING_COL_NAME", "REF_GENERATION");
            check("getTables(cyoda, entities, %, null): every demo table", () -> {
                ResultSet r = md.getTables("cyoda", "entities", "%", null);
                eq(labels(r), tableColumns, "columns");
                List<List<Object>> got = rows(r);
                List<Object> names = got.stream().map(x -> x.get(2)).collect(Collectors.toList());
                eq(names, new ArrayList<>(new TreeSet<>(demo.keySet())), "tables = tsql schema --demo");
                for (List<Object> t : got) {
                    eq(t.subList(0, 2), List.of("cyoda", "entities"), "catalog, schema");
                    eq(t.get(3), "TABLE", "type of " + t.get(2));
                }
            });
            for (String[] types : new String[][] {{"TABLE"}, {"VIEW"}, {"TABLE", "VIEW"}, {"SYSTEM TABLE"}}) {
                check("getTables types " + Arrays.toString(types), () -> {
                    List<Object> got = rows(md.getTables("cyoda", "entities", null, types)).stream().map(x -> x.get(2)).collect(Collectors.toList());
                    List<Object> want = Arrays.asList(types).contains("TABLE") ? new ArrayList<>(new TreeSet<>(demo.keySet())) : List.of();
                    eq(got, want, "tables of types " + Arrays.toString(types));
                });
            }
            check("getTables(null, null, null, null): every catalog", () -> {
                List<List<Object>> got = rows(md.getTables(null, null, null, null));
                Set<String> where = got.stream().map(x -> x.get(0) + "." + x.get(1)).collect(Collectors.toSet());
                for (List<Object> s : allSchemas) {
                    if (!s.get(0).equals("information_schema")) continue;
                    ok(where.contains(s.get(1) + ".information_schema"), "tables of " + s.get(1) + ".information_schema: " + where);
                }
                ok(got.stream().anyMatch(x -> x.get(0).equals("system") && x.get(1).equals("runtime") && x.get(2).equals("queries")), "system.runtime.queries");
                ok(got.stream().anyMatch(x -> x.get(0).equals("system") && x.get(1).equals("jdbc") && x.get(2).equals("types")), "system.jdbc.types");
                long demoTables = got.stream().filter(x -> x.get(0).equals("cyoda") && x.get(1).equals("entities")).count();
                eq(demoTables, (long) demo.size(), "demo tables");
            });
            for (String pattern : new String[] {"orders", "orders%", "orders\\_lines", "orders\\_lines%", "orders_lines", "orders\\_%", "%\\_json",
                    "_rders", "ORDERS", "no\\%such"}) {
                check("getTables pattern " + pattern, () -> {
                    List<Object> got = rows(md.getTables("cyoda", "entities", pattern, null)).stream().map(x -> x.get(2)).collect(Collectors.toList());
                    Pattern re = like(pattern);
                    List<Object> want = demo.keySet().stream().filter(t -> re.matcher(t).matches()).sorted().collect(Collectors.toList());
                    eq(got, want, "tables matching " + pattern);
                });
            }
            check("getTables schema pattern ent_ties, catalog \"\"", () -> {
                eq(rows(md.getTables("cyoda", "ent_ties", "orders", null)).size(), 1, "ent_ties matches entities");
                eq(rows(md.getTables("", "entities", "orders", null)).size(), 0, "catalog \"\": tables without a catalog");
            });
            List<String> columnColumns = List.of("TABLE_CAT", "TABLE_SCHEM", "TABLE_NAME", "COLUMN_NAME", "DATA_TYPE", "TYPE_NAME",
                    "COLUMN_SIZE", "BUFFER_LENGTH", "DECIMAL_DIGITS", "NUM_PREC_RADIX", "NULLABLE", "REMARKS", "COLUMN_DEF",
                    "SQL_DATA_TYPE", "SQL_DATETIME_SUB", "CHAR_OCTET_LENGTH", "ORDINAL_POSITION", "IS_NULLABLE", "SCOPE_CATALOG",
                    "SCOPE_SCHEMA", "SCOPE_TABLE", "SOURCE_DATA_TYPE", "IS_AUTOINCREMENT", "IS_GENERATEDCOLUMN");
            for (Map.Entry<String, LinkedHashMap<String, String>> table : demo.entrySet()) {
                check("getColumns " + table.getKey(), () -> {
                    Map<String, String> trinoTypes = typeofs(c, table.getKey(), table.getValue().keySet());
                    try (ResultSet r = md.getColumns("cyoda", "entities", table.getKey().replace("_", "\\_"), "%")) {
                        eq(labels(r), columnColumns, "columns");
                        List<String> names = new ArrayList<>();
                        List<String> wrong = new ArrayList<>();
                        int position = 0;
                        while (r.next()) {
                            position++;
                            String col = r.getString("COLUMN_NAME");
                            names.add(col);
                            String tsqlType = table.getValue().get(col);
                            if (tsqlType == null) continue;
                            String trinoType = trinoTypes.get(col);
                            List<Object> got = Arrays.asList(r.getString("TABLE_CAT"), r.getString("TABLE_SCHEM"), r.getString("TABLE_NAME"),
                                    r.getInt("DATA_TYPE"), r.getString("TYPE_NAME"), r.getObject("COLUMN_SIZE"), r.getObject("DECIMAL_DIGITS"),
                                    r.getObject("NUM_PREC_RADIX"), r.getInt("NULLABLE"), r.getInt("ORDINAL_POSITION"), r.getString("IS_NULLABLE"),
                                    r.getObject("BUFFER_LENGTH"), r.getObject("CHAR_OCTET_LENGTH"), r.getString("REMARKS"), r.getString("COLUMN_DEF"));
                            Integer size = trinoColumnSize(trinoType);
                            Integer digits = trinoDecimalDigits(trinoType);
                            Integer radix = trinoRadix(trinoType);
                            // Trino 476's system.jdbc.columns: NULLABLE and IS_NULLABLE from the column's nullability,
                            // BUFFER_LENGTH 0, CHAR_OCTET_LENGTH the varchar length (unbounded: 2147483647), no REMARKS.
                            String isNullable = nullable.getOrDefault(table.getKey() + "." + col, "YES");
                            List<Object> want = Arrays.asList("cyoda", "entities", table.getKey(), jdbcType(tsqlType), trinoType,
                                    size == null ? null : (Object) size.longValue(), digits == null ? null : (Object) digits.longValue(),
                                    radix == null ? null : (Object) radix.longValue(),
                                    isNullable.equals("YES") ? DatabaseMetaData.columnNullable : DatabaseMetaData.columnNoNulls, position, isNullable,
                                    0L, trinoType.equals("varchar") ? (Object) (long) Integer.MAX_VALUE : null, null, null);
                            String[] fields = {"TABLE_CAT", "TABLE_SCHEM", "TABLE_NAME", "DATA_TYPE", "TYPE_NAME", "COLUMN_SIZE",
                                    "DECIMAL_DIGITS", "NUM_PREC_RADIX", "NULLABLE", "ORDINAL_POSITION", "IS_NULLABLE", "BUFFER_LENGTH",
                                    "CHAR_OCTET_LENGTH", "REMARKS", "COLUMN_DEF"};
                            for (int f = 0; f < fields.length; f++) {
                                if (!Objects.equals(got.get(f), want.get(f))) wrong.add(col + "." + fields[f] + " " + got.get(f) + " (want " + want.get(f) + ")");
                            }
                        }
                        eq(names, new ArrayList<>(table.getValue().keySet()), "column names in order");
                        ok(wrong.isEmpty(), String.join("; ", wrong));
                    }
                });
            }
            check("getColumns column pattern customer\\_% and table pattern orders%", () -> {
                List<Object> got = rows(md.getColumns("cyoda", "entities", "orders", "customer\\_%")).stream().map(x -> x.get(3)).collect(Collectors.toList());
                Pattern re = like("customer\\_%");
                List<Object> want = demo.get("orders").keySet().stream().filter(x -> re.matcher(x).matches()).collect(Collectors.toList());
                eq(got, want, "orders' customer_ columns");
                List<List<Object>> all = rows(md.getColumns("cyoda", "entities", "orders%", "entity\\_id"));
                List<Object> tables = all.stream().map(x -> x.get(2)).collect(Collectors.toList());
                List<Object> wantTables = demo.keySet().stream().filter(t -> t.startsWith("orders")).sorted().collect(Collectors.toList());
                eq(tables, wantTables, "entity_id of every orders% table");
            });
            check("getTypeInfo", () -> {
                ResultSet r = md.getTypeInfo();
                eq(labels(r), List.of("TYPE_NAME", "DATA_TYPE", "PRECISION", "LITERAL_PREFIX", "LITERAL_SUFFIX", "CREATE_PARAMS", "NULLABLE",
                        "CASE_SENSITIVE", "SEARCHABLE", "UNSIGNED_ATTRIBUTE", "FIXED_PREC_SCALE", "AUTO_INCREMENT", "LOCAL_TYPE_NAME",
                        "MINIMUM_SCALE", "MAXIMUM_SCALE", "SQL_DATA_TYPE", "SQL_DATETIME_SUB", "NUM_PREC_RADIX"), "columns");
                Map<String, Integer> got = new HashMap<>();
                int last = Integer.MIN_VALUE;
                while (r.next()) {
                    got.put(r.getString("TYPE_NAME"), r.getInt("DATA_TYPE"));
                    ok(r.getInt("DATA_TYPE") >= last, "ordered by DATA_TYPE");
                    last = r.getInt("DATA_TYPE");
                }
                // As Trino 476 answers: the plain types with their java.sql.Types code, array ARRAY, and
                // the parametric ones (varchar, decimal, time, timestamp with time zone) JAVA_OBJECT.
                Map<String, Integer> want = new LinkedHashMap<>();
                want.put("bigint", Types.BIGINT);
                want.put("integer", Types.INTEGER);
                want.put("smallint", Types.SMALLINT);
                want.put("tinyint", Types.TINYINT);
                want.put("double", Types.DOUBLE);
                want.put("real", Types.REAL);
                want.put("boolean", Types.BOOLEAN);
                want.put("date", Types.DATE);
                want.put("varbinary", Types.VARBINARY);
                want.put("array", Types.ARRAY);
                for (String parametric : List.of("varchar", "decimal", "time", "timestamp", "timestamp with time zone", "map", "row")) {
                    want.put(parametric, Types.JAVA_OBJECT);
                }
                List<String> wrong = new ArrayList<>();
                for (Map.Entry<String, Integer> w : want.entrySet()) {
                    if (!Objects.equals(got.get(w.getKey()), w.getValue())) wrong.add(w.getKey() + " " + got.get(w.getKey()) + " (want " + w.getValue() + ")");
                }
                ok(wrong.isEmpty(), "DATA_TYPE of " + wrong);
            });
            // The driver selects `null, null, null` for the reserved columns: Trino names them _col3.._col5.
            check("getProcedures", () -> emptyWithColumns(md.getProcedures(null, null, null), "PROCEDURE_CAT", "PROCEDURE_SCHEM",
                    "PROCEDURE_NAME", "_COL3", "_COL4", "_COL5", "REMARKS", "PROCEDURE_TYPE", "SPECIFIC_NAME"));
            check("getProcedureColumns", () -> emptyWithColumns(md.getProcedureColumns(null, null, null, null), "PROCEDURE_CAT",
                    "PROCEDURE_SCHEM", "PROCEDURE_NAME", "COLUMN_NAME", "COLUMN_TYPE", "DATA_TYPE", "TYPE_NAME", "PRECISION", "LENGTH",
                    "SCALE", "RADIX", "NULLABLE", "REMARKS", "COLUMN_DEF", "SQL_DATA_TYPE", "SQL_DATETIME_SUB", "CHAR_OCTET_LENGTH",
                    "ORDINAL_POSITION", "IS_NULLABLE", "SPECIFIC_NAME"));
            check("getSuperTypes", () -> emptyWithColumns(md.getSuperTypes(null, null, null), "TYPE_CAT", "TYPE_SCHEM", "TYPE_NAME",
                    "SUPERTYPE_CAT", "SUPERTYPE_SCHEM", "SUPERTYPE_NAME"));
            check("getSuperTables", () -> emptyWithColumns(md.getSuperTables(null, null, null), "TABLE_CAT", "TABLE_SCHEM", "TABLE_NAME",
                    "SUPERTABLE_NAME"));
            check("getUDTs", () -> emptyWithColumns(md.getUDTs(null, null, null, null), "TYPE_CAT", "TYPE_SCHEM", "TYPE_NAME",
                    "CLASS_NAME", "DATA_TYPE", "REMARKS", "BASE_TYPE"));
            check("getAttributes", () -> emptyWithColumns(md.getAttributes(null, null, null, null), "TYPE_CAT", "TYPE_SCHEM", "TYPE_NAME",
                    "ATTR_NAME", "DATA_TYPE", "ATTR_TYPE_NAME", "ATTR_SIZE", "DECIMAL_DIGITS", "NUM_PREC_RADIX", "NULLABLE", "REMARKS",
                    "ATTR_DEF", "SQL_DATA_TYPE", "SQL_DATETIME_SUB", "CHAR_OCTET_LENGTH", "ORDINAL_POSITION", "IS_NULLABLE",
                    "SCOPE_CATALOG", "SCOPE_SCHEMA", "SCOPE_TABLE", "SOURCE_DATA_TYPE"));
            check("getPseudoColumns", () -> emptyWithColumns(md.getPseudoColumns(null, null, null, null), "TABLE_CAT", "TABLE_SCHEM",
                    "TABLE_NAME", "COLUMN_NAME", "DATA_TYPE", "COLUMN_SIZE", "DECIMAL_DIGITS", "NUM_PREC_RADIX", "COLUMN_USAGE",
                    "REMARKS", "CHAR_OCTET_LENGTH", "IS_NULLABLE"));
            check("getPrimaryKeys", () -> emptyWithColumns(md.getPrimaryKeys("cyoda", "entities", "orders"), "TABLE_CAT",
                    "TABLE_SCHEM", "TABLE_NAME", "COLUMN_NAME", "KEY_SEQ", "PK_NAME"));
            check("getImportedKeys", () -> emptyWithColumns(md.getImportedKeys("cyoda", "entities", "orders_lines"), "PKTABLE_CAT",
                    "PKTABLE_SCHEM", "PKTABLE_NAME", "PKCOLUMN_NAME", "FKTABLE_CAT", "FKTABLE_SCHEM", "FKTABLE_NAME", "FKCOLUMN_NAME",
                    "KEY_SEQ", "UPDATE_RULE", "DELETE_RULE", "FK_NAME", "PK_NAME", "DEFERRABILITY"));
            // Not sent to the server by the driver: they throw SQLFeatureNotSupportedException as against Trino.
            Map<String, Check> unsupported = new LinkedHashMap<>();
            unsupported.put("getExportedKeys", () -> md.getExportedKeys("cyoda", "entities", "orders"));
            unsupported.put("getCrossReference", () -> md.getCrossReference("cyoda", "entities", "orders", "cyoda", "entities", "orders_lines"));
            unsupported.put("getIndexInfo", () -> md.getIndexInfo("cyoda", "entities", "orders", false, true));
            unsupported.put("getBestRowIdentifier", () -> md.getBestRowIdentifier("cyoda", "entities", "orders", DatabaseMetaData.bestRowSession, true));
            unsupported.put("getVersionColumns", () -> md.getVersionColumns("cyoda", "entities", "orders"));
            unsupported.put("getColumnPrivileges", () -> md.getColumnPrivileges("cyoda", "entities", "orders", "%"));
            unsupported.put("getTablePrivileges", () -> md.getTablePrivileges("cyoda", "entities", "%"));
            for (Map.Entry<String, Check> u : unsupported.entrySet()) {
                check(u.getKey() + " (driver: not supported)", () -> {
                    try {
                        u.getValue().run();
                        ok(false, "the driver answers it");
                    } catch (SQLException e) {
                        driverDoesNotImplement(e);
                    }
                });
            }
            check("getFunctions", () -> {
                // The driver either throws SQLFeatureNotSupportedException or answers an empty result.
                try {
                    emptyWithColumns(md.getFunctions(null, null, "%"), "FUNCTION_CAT", "FUNCTION_SCHEM", "FUNCTION_NAME", "REMARKS",
                            "FUNCTION_TYPE", "SPECIFIC_NAME");
                } catch (SQLException e) {
                    driverDoesNotImplement(e);
                }
            });
            check("getFunctionColumns", () -> {
                try {
                    md.getFunctionColumns(null, null, "%", "%").close();
                } catch (SQLException e) {
                    driverDoesNotImplement(e);
                }
            });
            check("getClientInfoProperties", () -> {
                ResultSet r = md.getClientInfoProperties();
                eq(labels(r), List.of("NAME", "MAX_LEN", "DEFAULT_VALUE", "DESCRIPTION"), "columns");
                List<Object> names = rows(r).stream().map(x -> x.get(0)).collect(Collectors.toList());
                ok(names.containsAll(List.of("ApplicationName", "ClientInfo", "ClientTags", "TraceToken")), "client info properties " + names);
            });
            check("getUserName (SELECT current_user)", () -> eq(md.getUserName(), "admin", "user"));
        }
    }

    // ----------------------------------------------------------------- values

    static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("HH:mm:ss.SSSSSS");

    static String esc(String s) {
        return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n");
    }

    /** The canonical text of a value, as the Python side makes it of the Flight SQL value. */
    static String canon(ResultSet r, int i, int type) throws SQLException {
        Object o = r.getObject(i);
        if (o == null) {
            ok(r.wasNull(), "wasNull");
            return "\\N";
        }
        switch (type) {
            case Types.VARCHAR: {
                ok(o instanceof String, "getObject of varchar: " + o.getClass());
                eq(r.getString(i), o, "getString");
                return "S:" + esc((String) o);
            }
            case Types.BIGINT: {
                ok(o instanceof Long, "getObject of bigint: " + o.getClass());
                eq(r.getLong(i), o, "getLong");
                eq(r.getBigDecimal(i), BigDecimal.valueOf((Long) o), "getBigDecimal");
                eq(r.getString(i), o.toString(), "getString");
                return "I:" + o;
            }
            case Types.INTEGER: {
                ok(o instanceof Integer, "getObject of integer: " + o.getClass());
                eq(r.getInt(i), o, "getInt");
                eq(r.getLong(i), ((Integer) o).longValue(), "getLong");
                return "I:" + o;
            }
            case Types.DOUBLE: {
                ok(o instanceof Double, "getObject of double: " + o.getClass());
                eq(r.getDouble(i), o, "getDouble");
                eq(r.getFloat(i), ((Double) o).floatValue(), "getFloat");
                return "D:" + o;
            }
            case Types.BOOLEAN: {
                ok(o instanceof Boolean, "getObject of boolean: " + o.getClass());
                eq(r.getBoolean(i), o, "getBoolean");
                return "B:" + o;
            }
            case Types.DATE: {
                ok(o instanceof java.sql.Date, "getObject of date: " + o.getClass());
                LocalDate d = r.getObject(i, LocalDate.class);
                eq(r.getDate(i).toLocalDate(), d, "getDate = getObject(LocalDate)");
                eq(r.getString(i), d.toString(), "getString");
                return "DATE:" + d;
            }
            case Types.TIME: {
                ok(o instanceof Time, "getObject of time: " + o.getClass());
                // (the driver has no getObject(i, LocalTime.class))
                LocalTime t = LocalTime.parse(r.getString(i));
                eq(r.getTime(i).toLocalTime(), t.withNano(0), "getTime = getString to the second");
                eq(((Time) o).toLocalTime(), t.withNano(0), "getObject = getString to the second");
                return "TIME:" + t.format(TIME);
            }
            case Types.TIMESTAMP_WITH_TIMEZONE: {
                ok(o instanceof Timestamp, "getObject of timestamp with time zone: " + o.getClass());
                ZonedDateTime z = r.getObject(i, ZonedDateTime.class);
                Instant at = z.toInstant();
                eq(r.getTimestamp(i).toInstant(), at, "getTimestamp = getObject(ZonedDateTime)");
                eq(((Timestamp) o).toInstant(), at, "getObject = getObject(ZonedDateTime)");
                return "TS:" + (at.getEpochSecond() * 1_000_000L + at.getNano() / 1000);
            }
            case Types.ARRAY: {
                Array a = r.getArray(i);
                Object[] items = (Object[]) a.getArray();
                ok(o instanceof Array || o instanceof List, "getObject of an array: " + o.getClass());
                List<String> out = new ArrayList<>();
                for (Object x : items) out.add(x == null ? "\\N" : x instanceof String ? "S:" + esc((String) x) : "I:" + x);
                return "A:[" + String.join("\u001f", out) + "]";
            }
            default:
                throw new AssertionError("type " + type);
        }
    }

    static String orderBy(Collection<String> columns) {
        List<String> keys = new ArrayList<>(List.of("entity_id"));
        for (String c : columns) if (c.startsWith("index_")) keys.add(c);
        return String.join(", ", keys);
    }

    static void values(LinkedHashMap<String, LinkedHashMap<String, String>> demo) throws Exception {
        try (Connection c = connect("")) {
            for (Map.Entry<String, LinkedHashMap<String, String>> table : demo.entrySet()) {
                String sql = "SELECT * FROM " + table.getKey() + " ORDER BY " + orderBy(table.getValue().keySet()) + " LIMIT 40";
                check("values and ResultSetMetaData of " + table.getKey(), () -> {
                    Map<String, String> trinoTypes = typeofs(c, table.getKey(), table.getValue().keySet());
                    List<String> names = new ArrayList<>(table.getValue().keySet());
                    try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) {
                        ResultSetMetaData m = r.getMetaData();
                        eq(m.getColumnCount(), names.size(), "column count");
                        List<String> wrong = new ArrayList<>();
                        for (int i = 1; i <= names.size(); i++) {
                            String col = names.get(i - 1);
                            int type = jdbcType(table.getValue().get(col));
                            String className = m.getColumnClassName(i);
                            if (Arrays.asList(javaClass(type).split("\\|")).contains(className)) className = javaClass(type);
                            List<Object> got = Arrays.asList(m.getColumnName(i), m.getColumnLabel(i), m.getColumnType(i), m.getColumnTypeName(i),
                                    className, m.isNullable(i));
                            List<Object> want = Arrays.asList(col, col, type, trinoTypes.get(col), javaClass(type), ResultSetMetaData.columnNullableUnknown);
                            if (!got.equals(want)) wrong.add(col + " " + got + " want " + want);
                        }
                        ok(wrong.isEmpty(), "[name, label, type, type name, class, nullable]: " + wrong);
                        System.out.println("SQL\t" + table.getKey() + "\t" + sql);
                        int n = 0;
                        while (r.next()) {
                            List<String> row = new ArrayList<>();
                            for (int i = 1; i <= names.size(); i++) {
                                int type = m.getColumnType(i);
                                try {
                                    row.add(canon(r, i, type));
                                } catch (AssertionError | SQLException e) {
                                    throw new AssertionError(names.get(i - 1) + " (" + m.getColumnTypeName(i) + "): " + e.getMessage(), e);
                                }
                            }
                            System.out.println("ROW\t" + table.getKey() + "\t" + String.join("\t", row));
                            n++;
                        }
                        ok(n > 0, "rows");
                    }
                });
            }
        }
    }

    // ----------------------------------------------------------------- parameters

    interface Setter {
        void set(PreparedStatement ps) throws SQLException;
    }

    interface Getter {
        Object get(ResultSet r) throws SQLException;
    }

    static void roundTrip(Connection c, String mode, String name, Setter set, int type, Getter get, Object want) {
        check("SELECT ? " + name + mode, () -> {
            try (PreparedStatement ps = c.prepareStatement("SELECT ?")) {
                set.set(ps);
                try (ResultSet r = ps.executeQuery()) {
                    ok(r.next(), "a row");
                    eq(r.getMetaData().getColumnType(1), type, "JDBC type (" + r.getMetaData().getColumnTypeName(1) + ")");
                    Object got = get.get(r);
                    if (want instanceof byte[]) {
                        ok(Arrays.equals((byte[]) got, (byte[]) want), "bytes " + Arrays.toString((byte[]) got));
                    } else {
                        eq(got, want, "value");
                    }
                }
            }
        });
    }

    /** count(*) with the parameter = count(*) with the literal, and the filter is not trivial. */
    static void filter(Connection c, String mode, String name, String table, String condition, Setter set, String literal) {
        filterAs(c, mode, name, table, condition, set, condition.replace("?", literal));
    }

    static void filterAs(Connection c, String mode, String name, String table, String condition, Setter set, String literalCondition) {
        check("filter " + name + mode, () -> {
            long total = ((Number) scalar(c, "SELECT count(*) FROM " + table)).longValue();
            long want = ((Number) scalar(c, "SELECT count(*) FROM " + table + " WHERE " + literalCondition)).longValue();
            ok(want > 0 && want < total, "a non-trivial filter: " + want + " of " + total + " (" + literalCondition + ")");
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM " + table + " WHERE " + condition)) {
                set.set(ps);
                try (ResultSet r = ps.executeQuery()) {
                    r.next();
                    eq(r.getLong(1), want, "count with the parameter = with " + literalCondition);
                }
            }
        });
    }

    static void params(String options) throws Exception {
        String mode = options.isEmpty() ? "" : " [" + options.substring(1) + "]";
        try (Connection c = connect(options)) {
            byte[] bytes = {1, 2, 3, (byte) 0xff, 0};
            roundTrip(c, mode, "setLong", ps -> ps.setLong(1, Long.MAX_VALUE - 1), Types.BIGINT, r -> r.getLong(1), Long.MAX_VALUE - 1);
            roundTrip(c, mode, "setInt", ps -> ps.setInt(1, -2147483647), Types.INTEGER, r -> r.getInt(1), -2147483647);
            roundTrip(c, mode, "setShort", ps -> ps.setShort(1, (short) -32000), Types.SMALLINT, r -> r.getShort(1), (short) -32000);
            roundTrip(c, mode, "setByte", ps -> ps.setByte(1, (byte) -100), Types.TINYINT, r -> r.getByte(1), (byte) -100);
            roundTrip(c, mode, "setDouble", ps -> ps.setDouble(1, 1.0 / 3), Types.DOUBLE, r -> r.getDouble(1), 1.0 / 3);
            roundTrip(c, mode, "setFloat", ps -> ps.setFloat(1, 1.1f), Types.REAL, r -> r.getFloat(1), 1.1f);
            roundTrip(c, mode, "setBigDecimal", ps -> ps.setBigDecimal(1, new BigDecimal("-12345.6789")), Types.DECIMAL, r -> r.getBigDecimal(1),
                    new BigDecimal("-12345.6789"));
            roundTrip(c, mode, "setString", ps -> ps.setString(1, "it's ü \\ %"), Types.VARCHAR, r -> r.getString(1), "it's ü \\ %");
            roundTrip(c, mode, "setBoolean", ps -> ps.setBoolean(1, true), Types.BOOLEAN, r -> r.getBoolean(1), true);
            roundTrip(c, mode, "setDate", ps -> ps.setDate(1, java.sql.Date.valueOf("2024-02-29")), Types.DATE, r -> r.getDate(1).toString(), "2024-02-29");
            roundTrip(c, mode, "setTime", ps -> ps.setTime(1, Time.valueOf("13:45:10")), Types.TIME, r -> r.getTime(1).toString(), "13:45:10");
            roundTrip(c, mode, "setTimestamp", ps -> ps.setTimestamp(1, Timestamp.valueOf("2024-03-01 08:00:00.123")), Types.TIMESTAMP,
                    r -> r.getTimestamp(1), Timestamp.valueOf("2024-03-01 08:00:00.123"));
            roundTrip(c, mode, "setBytes", ps -> ps.setBytes(1, bytes), Types.VARBINARY, r -> r.getBytes(1), bytes);
            roundTrip(c, mode, "setNull(VARCHAR)", ps -> ps.setNull(1, Types.VARCHAR), Types.VARCHAR, r -> r.getString(1) == null && r.wasNull(), true);
            roundTrip(c, mode, "setNull(BIGINT)", ps -> ps.setNull(1, Types.BIGINT), Types.BIGINT, r -> r.getObject(1), null);
            roundTrip(c, mode, "setObject(Long)", ps -> ps.setObject(1, 42L), Types.BIGINT, r -> r.getObject(1), 42L);
            roundTrip(c, mode, "setObject(Integer)", ps -> ps.setObject(1, 42), Types.INTEGER, r -> r.getObject(1), 42);
            roundTrip(c, mode, "setObject(String)", ps -> ps.setObject(1, "x'y"), Types.VARCHAR, r -> r.getObject(1), "x'y");
            roundTrip(c, mode, "setObject(BigDecimal)", ps -> ps.setObject(1, new BigDecimal("1.50")), Types.DECIMAL, r -> r.getObject(1),
                    new BigDecimal("1.50"));
            roundTrip(c, mode, "setObject(Boolean)", ps -> ps.setObject(1, false), Types.BOOLEAN, r -> r.getObject(1), false);
            roundTrip(c, mode, "setObject(Double)", ps -> ps.setObject(1, 2.5e300), Types.DOUBLE, r -> r.getObject(1), 2.5e300);
            roundTrip(c, mode, "setObject(LocalDate)", ps -> ps.setObject(1, LocalDate.of(1999, 12, 31)), Types.DATE,
                    r -> r.getObject(1, LocalDate.class), LocalDate.of(1999, 12, 31));
            roundTrip(c, mode, "setObject(Time)", ps -> ps.setObject(1, Time.valueOf("23:59:58")), Types.TIME,
                    r -> r.getTime(1), Time.valueOf("23:59:58"));
            // The driver sends TIME '23:59:58.000': Trino types it time(3), as many digits as the literal has;
            // tsql types time literals time(6) (so they compare with its time(6) columns; README, what differs).
            roundTrip(c, mode, "setTime: type time(6)", ps -> ps.setTime(1, Time.valueOf("01:02:03")), Types.TIME,
                    r -> r.getMetaData().getColumnTypeName(1), "time(6)");
            // The driver sends DECIMAL '-12345.6789': Trino types it decimal(9,4).
            roundTrip(c, mode, "setBigDecimal: type decimal(9,4)", ps -> ps.setBigDecimal(1, new BigDecimal("-12345.6789")), Types.DECIMAL,
                    r -> r.getMetaData().getColumnTypeName(1), "decimal(9,4)");
            roundTrip(c, mode, "setObject(Timestamp)", ps -> ps.setObject(1, Timestamp.valueOf("2024-01-02 03:04:05.5")), Types.TIMESTAMP,
                    r -> r.getTimestamp(1), Timestamp.valueOf("2024-01-02 03:04:05.5"));
            roundTrip(c, mode, "setObject(java.sql.Date)", ps -> ps.setObject(1, java.sql.Date.valueOf("2000-01-01")), Types.DATE,
                    r -> r.getDate(1), java.sql.Date.valueOf("2000-01-01"));
            roundTrip(c, mode, "setObject(LocalDateTime)", ps -> ps.setObject(1, LocalDateTime.of(2024, 1, 2, 3, 4, 5, 6_000)), Types.TIMESTAMP,
                    r -> r.getObject(1, LocalDateTime.class), LocalDateTime.of(2024, 1, 2, 3, 4, 5, 6_000));
            roundTrip(c, mode, "setObject(byte[])", ps -> ps.setObject(1, bytes), Types.VARBINARY, r -> r.getBytes(1), bytes);
            roundTrip(c, mode, "setObject(String, Types.BIGINT)", ps -> ps.setObject(1, "7", Types.BIGINT), Types.BIGINT, r -> r.getObject(1), 7L);

            // Filters on the demo tables: thresholds in the middle of each column's range.
            // (min and max read with the driver and halved here, not with server functions).
            long points;
            String since, placed;
            LocalTime callMid;
            double price;
            try {
                List<Object> p = query(c, "SELECT min(points), max(points) FROM customers").get(0);
                points = (((Number) p.get(0)).longValue() + ((Number) p.get(1)).longValue()) / 2;
                try (Statement st = c.createStatement();
                     ResultSet r = st.executeQuery("SELECT min(since), max(since), min(callafter), max(callafter) FROM customers")) {
                    r.next();
                    LocalDate lo = r.getObject(1, LocalDate.class), hi = r.getObject(2, LocalDate.class);
                    since = lo.plusDays((hi.toEpochDay() - lo.toEpochDay()) / 2).toString();
                    LocalTime tlo = LocalTime.parse(r.getString(3)), thi = LocalTime.parse(r.getString(4));
                    callMid = LocalTime.ofSecondOfDay((tlo.toSecondOfDay() + thi.toSecondOfDay()) / 2).withSecond(0);
                }
                try (Statement st = c.createStatement(); ResultSet r = st.executeQuery("SELECT min(placed), max(placed) FROM orders")) {
                    r.next();
                    Instant lo = r.getObject(1, ZonedDateTime.class).toInstant(), hi = r.getObject(2, ZonedDateTime.class).toInstant();
                    placed = LocalDate.ofInstant(Instant.ofEpochSecond((lo.getEpochSecond() + hi.getEpochSecond()) / 2), ZoneOffset.UTC).toString();
                }
                List<Object> pr = query(c, "SELECT min(price), max(price) FROM orders_lines").get(0);
                price = (((Number) pr.get(0)).doubleValue() + ((Number) pr.get(1)).doubleValue()) / 2;
            } catch (Exception e) {
                check("filter thresholds from the demo data" + mode, () -> {
                    throw e;
                });
                return;
            }
            filter(c, mode, "setString", "orders", "channel = ?", ps -> ps.setString(1, "web"), "'web'");
            filter(c, mode, "setLong", "customers", "points > ?", ps -> ps.setLong(1, points), String.valueOf(points));
            filter(c, mode, "setInt", "customers", "points > ?", ps -> ps.setInt(1, (int) points), String.valueOf(points));
            filter(c, mode, "setShort", "orders_lines", "qty > ?", ps -> ps.setShort(1, (short) 1), "1");
            filter(c, mode, "setByte", "orders_lines", "qty > ?", ps -> ps.setByte(1, (byte) 1), "1");
            filter(c, mode, "setInt on an integer column", "orders_lines", "index_0 = ?", ps -> ps.setInt(1, 1), "1");
            filter(c, mode, "setDouble", "orders_lines", "price > ?", ps -> ps.setDouble(1, price), Double.toString(price) + "e0");
            filter(c, mode, "setFloat", "orders_lines", "price > ?", ps -> ps.setFloat(1, (float) price), "REAL '" + (float) price + "'");
            filter(c, mode, "setBigDecimal", "customers", "points > ?", ps -> ps.setBigDecimal(1, new BigDecimal(points + ".5")), points + ".5");
            filter(c, mode, "setBoolean", "customers", "vip = ?", ps -> ps.setBoolean(1, true), "true");
            filter(c, mode, "setDate", "customers", "since < ?", ps -> ps.setDate(1, java.sql.Date.valueOf(since)), "DATE '" + since + "'");
            filter(c, mode, "setObject(LocalDate)", "customers", "since < ?", ps -> ps.setObject(1, LocalDate.parse(since)), "DATE '" + since + "'");
            String t = callMid.toString() + ":00";
            filter(c, mode, "setTime", "customers", "callafter < ?", ps -> ps.setTime(1, Time.valueOf(t)), "TIME '" + t + "'");
            filter(c, mode, "setObject(Time)", "customers", "callafter < ?", ps -> ps.setObject(1, Time.valueOf(t)), "TIME '" + t + "'");
            filter(c, mode, "setTimestamp", "orders", "placed >= ?", ps -> ps.setTimestamp(1, Timestamp.valueOf(placed + " 00:00:00")),
                    "TIMESTAMP '" + placed + " 00:00:00'");
            filter(c, mode, "setObject(LocalDateTime)", "orders", "placed >= ?", ps -> ps.setObject(1, LocalDate.parse(placed).atStartOfDay()),
                    "TIMESTAMP '" + placed + " 00:00:00'");
            filter(c, mode, "setNull", "orders", "note IS NOT DISTINCT FROM ?", ps -> ps.setNull(1, Types.VARCHAR), "NULL");
            filterAs(c, mode, "two parameters", "orders", "channel = ? AND placed >= ?", ps -> {
                ps.setString(1, "web");
                ps.setTimestamp(2, Timestamp.valueOf(placed + " 00:00:00"));
            }, "channel = 'web' AND placed >= TIMESTAMP '" + placed + " 00:00:00'");
            check("a PreparedStatement run again with other values" + mode, () -> {
                try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM orders WHERE channel = ?")) {
                    for (String ch : List.of("web", "store", "phone", "none")) {
                        ps.setString(1, ch);
                        try (ResultSet r = ps.executeQuery()) {
                            r.next();
                            eq(r.getLong(1), scalar(c, "SELECT count(*) FROM orders WHERE channel = '" + ch + "'"), ch);
                        }
                    }
                }
            });
        }
    }

    // ----------------------------------------------------------------- HTTPS

    static void tls(String cert, long customers) throws Exception {
        String base = "jdbc:trino://127.0.0.1:" + port + "/cyoda/entities?SSL=true&SSLTrustStorePath=" + cert;
        check("HTTPS with the right password", () -> {
            Properties p = new Properties();
            p.setProperty("user", "admin");
            p.setProperty("password", "admin");
            try (Connection c = DriverManager.getConnection(base, p)) {
                eq(scalar(c, "SELECT count(*) FROM customers"), customers, "customers, as over Flight SQL");
            }
        });
        for (String password : new String[] {"wrong", ""}) {
            check("HTTPS with a wrong password \"" + password + "\": SQLException, not a hang", () -> {
                Properties p = new Properties();
                p.setProperty("user", "admin");
                if (!password.isEmpty()) p.setProperty("password", password);
                long started = System.currentTimeMillis();
                try (Connection c = DriverManager.getConnection(base, p); Statement s = c.createStatement()) {
                    s.executeQuery("SELECT 1").next();
                    ok(false, "a wrong password fails");
                } catch (SQLException e) {
                    String all = e.toString() + (e.getCause() == null ? "" : " " + e.getCause());
                    ok(all.contains("401") || all.toLowerCase(Locale.ROOT).contains("authentication") || all.contains("Unauthorized"),
                            "the error says the login failed: " + all);
                }
                ok(System.currentTimeMillis() - started < 20_000, "answered in time: " + (System.currentTimeMillis() - started) + " ms");
            });
        }
    }
}

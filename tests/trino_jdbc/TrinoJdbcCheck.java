// The Trino JDBC driver against a running `tsql serve` (demo data, Trino
// protocol on the port given): queries, ResultSetMetaData, a
// PreparedStatement with parameters, DatabaseMetaData from system.jdbc,
// errors with Trino's names, cancel. Run by tests/python/test_trino_jdbc.py
// as `java -cp trino-jdbc.jar TrinoJdbcCheck.java PORT`; exits non-zero
// with the first failed check.
import java.sql.*;
import java.util.*;

public class TrinoJdbcCheck {
    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:trino://127.0.0.1:" + args[0] + "/cyoda/entities";
        Properties p = new Properties();
        p.setProperty("user", "admin");
        try (Connection c = DriverManager.getConnection(url, p)) {
            long orders;
            try (Statement s = c.createStatement();
                 ResultSet r = s.executeQuery("SELECT channel, count(*) AS n, min(placed) AS first FROM orders GROUP BY channel ORDER BY channel")) {
                ResultSetMetaData m = r.getMetaData();
                check(m.getColumnCount() == 3, "three columns");
                check(m.getColumnType(1) == Types.VARCHAR && m.getColumnType(2) == Types.BIGINT, "varchar, bigint: " + m.getColumnTypeName(1) + " " + m.getColumnTypeName(2));
                check(m.getColumnType(3) == Types.TIMESTAMP_WITH_TIMEZONE, "timestamp with time zone: " + m.getColumnTypeName(3));
                long total = 0;
                List<String> channels = new ArrayList<>();
                while (r.next()) {
                    channels.add(r.getString(1));
                    total += r.getLong(2);
                    check(r.getTimestamp(3) != null, "a timestamp");
                }
                check(channels.equals(List.of("phone", "store", "web")), "channels " + channels);
                orders = total;
            }
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT count(*) FROM orders")) {
                r.next();
                check(r.getLong(1) == orders, "count " + r.getLong(1) + " = " + orders);
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM orders WHERE channel = ? AND placed >= ?")) {
                ps.setString(1, "web");
                ps.setTimestamp(2, Timestamp.valueOf("2024-01-01 00:00:00"));
                try (ResultSet r = ps.executeQuery()) {
                    r.next();
                    check(r.getLong(1) > 0 && r.getLong(1) < orders, "prepared count " + r.getLong(1));
                }
            }
            DatabaseMetaData md = c.getMetaData();
            List<String> catalogs = new ArrayList<>();
            try (ResultSet r = md.getCatalogs()) {
                while (r.next()) catalogs.add(r.getString("TABLE_CAT"));
            }
            check(catalogs.contains("cyoda"), "catalogs " + catalogs);
            List<String> tables = new ArrayList<>();
            try (ResultSet r = md.getTables("cyoda", "entities", "orders%", new String[] {"TABLE"})) {
                while (r.next()) tables.add(r.getString("TABLE_NAME"));
            }
            check(tables.contains("orders") && tables.contains("orders_lines"), "tables " + tables);
            Map<String, Integer> types = new LinkedHashMap<>();
            int first = -1;
            try (ResultSet r = md.getColumns("cyoda", "entities", "orders", "%")) {
                while (r.next()) {
                    types.put(r.getString("COLUMN_NAME"), r.getInt("DATA_TYPE"));
                    if (first < 0) first = r.getInt("ORDINAL_POSITION");
                }
            }
            check(first == 1, "ordinal positions start at 1: " + first);
            check(types.get("entity_id") == Types.VARCHAR && types.get("placed") == Types.TIMESTAMP_WITH_TIMEZONE
                    && types.get("tags_array") == Types.ARRAY, "column types " + types);
            try (Statement s = c.createStatement()) {
                s.executeQuery("SELECT * FROM nosuch");
                check(false, "an unknown table fails");
            } catch (SQLException e) {
                check(e.getMessage().contains("nosuch"), "the error names the table: " + e.getMessage());
                check(e.getErrorCode() == 46, "TABLE_NOT_FOUND's code 46: " + e.getErrorCode());
            }
            // Cancel a long query from another thread.
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
                    check(false, "a cancelled query fails");
                } catch (SQLException e) {
                    check(System.currentTimeMillis() - started < 10_000, "cancelled in time");
                }
                canceller.join();
            }
        }
        System.out.println("trino-jdbc: every check passed");
    }
}

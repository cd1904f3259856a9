// The JDBC side of benches/trino_protocol.py: runs one query through the
// Trino JDBC driver, reads every value of every row, prints
// `rows=<n> seconds=<t>`.
//   java -cp trino-jdbc.jar benches/TrinoJdbcScan.java PORT "SQL"
import java.sql.*;
import java.util.Properties;

public class TrinoJdbcScan {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.setProperty("user", "admin");
        try (Connection c = DriverManager.getConnection("jdbc:trino://127.0.0.1:" + args[0] + "/cyoda/entities", p);
             Statement s = c.createStatement()) {
            long started = System.nanoTime();
            long rows = 0, sink = 0;
            try (ResultSet r = s.executeQuery(args[1])) {
                int n = r.getMetaData().getColumnCount();
                while (r.next()) {
                    rows++;
                    for (int i = 1; i <= n; i++) {
                        Object v = r.getObject(i);
                        if (v != null) sink += v.hashCode();
                    }
                }
            }
            double seconds = (System.nanoTime() - started) / 1e9;
            System.out.println("rows=" + rows + " seconds=" + seconds + " sink=" + sink);
        }
    }
}

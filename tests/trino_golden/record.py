#!/usr/bin/env python3
"""Records golden transcripts from a real Trino 476 for tests/python/test_trino_golden.py.

    python3 tests/trino_golden/record.py              # starts Trino 476 (benches/trino_server.py), records, stops it
    python3 tests/trino_golden/record.py --url http://127.0.0.1:18080   # a running one (needs a `memory` catalog)

Each statement below is sent over plain HTTP (POST /v1/statement, then every
nextUri) and what the client sees is written into one JSON file per group next
to this script: the final `columns`, all `data` rows, the `error` (without its
stack), `updateType`, the X-Trino-* response headers, and for the `protocol`
group the shape of the responses. Volatile things (query ids, timings, URIs,
transaction ids) are not stored. Every statement is data-independent: literals,
inline VALUES, and catalog/schema names that test_trino_golden.py maps onto
tsql's (`memory.default` here is `cyoda.entities` there; a `memory.default.orders`
table is created first because tsql's demo data has an `orders` table).
Standard library only.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

USER = "golden"
# Sent with every statement (and replayed by the test, with the names mapped).
BASE_HEADERS = {"X-Trino-User": USER, "X-Trino-Catalog": "memory", "X-Trino-Schema": "default",
                "X-Trino-Time-Zone": "UTC", "X-Trino-Source": "golden",
                # what the JDBC driver and the CLI send; without PARAMETRIC_DATETIME Trino rounds
                # timestamps to milliseconds and calls them `timestamp`
                "X-Trino-Client-Capabilities": "PATH,PARAMETRIC_DATETIME,SESSION_AUTHORIZATION"}
NO_CAPABILITIES = {"X-Trino-Client-Capabilities": None}  # None: the header is not sent
# X-Trino-Prepared-Statement for `PREPARE s FROM SELECT ? + 1` (Trino's own X-Trino-Added-Prepare
# carries its formatting of the text, `SELECT (? + 1)`; either works)
PREPARED = "s=SELECT+%3F+%2B+1"
SETUP = ["CREATE TABLE IF NOT EXISTS memory.default.orders "
         "(entity_id varchar, placed timestamp(6) with time zone, qty bigint)"]

# A case: (id, sql) or (id, sql, options). Options:
#   headers  extra request headers (a value "$txn" is the transaction id a START TRANSACTION
#            run just before as a setup step answered with)
#   check    what the test compares: "exact" (column types and data; values/functions),
#            "types" (column names and types only), "rows" (column names, types and data),
#            "approx" (types, data with a tolerance), "error", "headers", "protocol"
#   setup    "transaction": run START TRANSACTION first and use its id as $txn
#   loose_varchar  the varchar lengths of the columns follow the rows (SHOW ..., DESCRIBE ...)


def V(id, sql, **o):
    return (id, sql, o)


VALUES = [
    V("integer_literal", "SELECT 1"),
    V("bigint", "SELECT BIGINT '9223372036854775807'"),
    V("bigint_min", "SELECT BIGINT '-9223372036854775808'"),
    V("integer", "SELECT CAST(2147483647 AS integer)"),
    V("smallint", "SELECT SMALLINT '-32768'"),
    V("tinyint", "SELECT TINYINT '127'"),
    V("double", "SELECT 1.5e0"),
    V("double_small", "SELECT DOUBLE '1e-10'"),
    V("double_large", "SELECT DOUBLE '1e20'"),
    V("double_third", "SELECT 1e0 / 3"),
    V("double_whole", "SELECT DOUBLE '2'"),
    V("double_negative_zero", "SELECT -0e0"),
    V("double_nan", "SELECT nan()"),
    V("double_infinity", "SELECT infinity()"),
    V("double_minus_infinity", "SELECT -infinity()"),
    V("double_divide_by_zero", "SELECT 1e0 / 0"),
    V("real", "SELECT REAL '1.5'"),
    V("real_third", "SELECT CAST(1 AS real) / 3"),
    V("decimal_literal", "SELECT 1.25"),
    V("decimal_10_2", "SELECT CAST(12.3 AS decimal(10,2))"),
    V("decimal_10_2_negative", "SELECT CAST(-0.5 AS decimal(10,2))"),
    V("decimal_38_18", "SELECT CAST('12345678901234567890.123456789012345678' AS decimal(38,18))"),
    V("decimal_arithmetic", "SELECT 1.10 + 2.205"),
    V("varchar_literal", "SELECT 'abc'"),
    V("varchar", "SELECT CAST('abc' AS varchar)"),
    V("varchar_n", "SELECT CAST('abc' AS varchar(10))"),
    V("varchar_unicode", "SELECT CAST('äö€😀' AS varchar)"),
    V("varchar_empty", "SELECT CAST('' AS varchar)"),
    V("char", "SELECT CAST('ab' AS char(4))"),
    V("boolean_true", "SELECT true"),
    V("boolean_false", "SELECT false"),
    V("date", "SELECT DATE '2024-02-29'"),
    V("date_old", "SELECT DATE '0001-01-01'"),
    V("time", "SELECT TIME '12:34:56'"),
    V("time_3", "SELECT TIME '12:34:56.123'"),
    V("timestamp_0", "SELECT TIMESTAMP '2024-01-02 03:04:05'"),
    V("timestamp_3", "SELECT TIMESTAMP '2024-01-02 03:04:05.123'"),
    V("timestamp_6", "SELECT TIMESTAMP '2024-01-02 03:04:05.123456'"),
    V("timestamp_9", "SELECT TIMESTAMP '2024-01-02 03:04:05.123456789'"),
    V("timestamp_cast_3", "SELECT CAST(TIMESTAMP '2024-01-02 03:04:05.123456' AS timestamp(3))"),
    V("timestamp_cast_6", "SELECT CAST(TIMESTAMP '2024-01-02 03:04:05' AS timestamp(6))"),
    V("timestamptz_0", "SELECT TIMESTAMP '2024-01-02 03:04:05 UTC'"),
    V("timestamptz_3", "SELECT TIMESTAMP '2024-01-02 03:04:05.123 UTC'"),
    V("timestamptz_6", "SELECT TIMESTAMP '2024-01-02 03:04:05.123456 UTC'"),
    V("timestamptz_offset", "SELECT TIMESTAMP '2024-01-02 03:04:05 +01:00'"),
    V("timestamp_6_without_capabilities", "SELECT TIMESTAMP '2024-01-02 03:04:05.123456'", headers=NO_CAPABILITIES),
    V("timestamptz_6_without_capabilities", "SELECT TIMESTAMP '2024-01-02 03:04:05.123456 UTC'",
      headers=NO_CAPABILITIES),
    V("timestamptz_cast_6", "SELECT CAST(TIMESTAMP '2024-01-02 03:04:05.123 UTC' AS timestamp(6) with time zone)"),
    V("varbinary", "SELECT X'0102'"),
    V("varbinary_empty", "SELECT X''"),
    V("json_object", """SELECT json_parse('{"a":1}')"""),
    V("json_array", "SELECT JSON '[1, \"x\", null]'"),
    V("array_integer", "SELECT ARRAY[1, 2, 3]"),
    V("array_bigint", "SELECT ARRAY[BIGINT '1', 2]"),
    V("array_varchar_literal", "SELECT ARRAY['a', 'bc']"),
    V("array_varchar", "SELECT CAST(ARRAY['a', 'bc'] AS array(varchar))"),
    V("array_with_null", "SELECT ARRAY[1, NULL]"),
    V("array_double", "SELECT ARRAY[1e0, nan()]"),
    V("array_empty", "SELECT ARRAY[]"),
    V("array_empty_bigint", "SELECT CAST(ARRAY[] AS array(bigint))"),
    V("map", "SELECT MAP(ARRAY['a', 'b'], ARRAY[BIGINT '1', 2])"),
    V("map_varchar_bigint", "SELECT CAST(MAP(ARRAY['a'], ARRAY[1]) AS map(varchar, bigint))"),
    V("map_empty", "SELECT CAST(MAP() AS map(varchar, bigint))"),
    V("row_named", "SELECT CAST(ROW(1, 'x') AS ROW(a bigint, b varchar))"),
    V("row_anonymous", "SELECT ROW(1, 'x')"),
    V("array_of_rows", "SELECT ARRAY[CAST(ROW(1, ARRAY['x']) AS ROW(a bigint, b array(varchar)))]"),
    V("nested_arrays", "SELECT ARRAY[ARRAY[1, 2], ARRAY[], NULL]"),
    V("map_of_arrays", "SELECT MAP(ARRAY['k'], ARRAY[ARRAY[CAST(ROW('v', 2e0) AS ROW(s varchar, d double))]])"),
    V("null_unknown", "SELECT NULL"),
    *[V(f"null_{re.sub(r'[^a-z0-9]+', '_', t).strip('_')}", f"SELECT CAST(NULL AS {t})") for t in [
        "bigint", "integer", "smallint", "tinyint", "double", "real", "decimal(10,2)", "decimal(38,18)",
        "varchar", "varchar(5)", "boolean", "date", "time", "timestamp(3)", "timestamp(6)",
        "timestamp(6) with time zone", "varbinary", "json", "array(bigint)", "map(varchar, bigint)",
        "row(a bigint, b varchar)"]],
    V("several_rows", "SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, NULL)) AS t(n, s)"),
    V("integer_division", "SELECT 7 / 2, -7 / 2, 7 % 3, -7 % 3"),
    V("decimal_division", "SELECT 1 / 2.0"),
    V("cast_double_to_integer", "SELECT CAST(2.5e0 AS integer), CAST(-2.5e0 AS integer), CAST(1.5 AS bigint)"),
    V("cast_double_to_varchar", "SELECT CAST(1e0 / 3 AS varchar), CAST(1e0 AS varchar), "
                                "CAST(DOUBLE '1e20' AS varchar)"),
    V("cast_to_varchar", "SELECT CAST(DATE '2024-01-02' AS varchar), "
                         "CAST(TIMESTAMP '2024-01-02 03:04:05.120' AS varchar), "
                         "CAST(true AS varchar), CAST(1.50 AS varchar)"),
    V("sum_avg_types", "SELECT sum(x), avg(x), sum(CAST(x AS decimal(10,2))), avg(CAST(x AS decimal(10,2))) "
                       "FROM (VALUES (1), (2), (4)) AS t(x)"),
    V("count_types", "SELECT count(*), count(x), min(x), max(x) FROM (VALUES (1), (NULL)) AS t(x)"),
    V("values_bare_rows", "SELECT x FROM (VALUES 1, 2) AS t(x)"),
    V("values_statement", "VALUES (1, 'a'), (2, 'b')"),
    V("empty_result", "SELECT x FROM (VALUES (1)) AS t(x) WHERE x > 1"),
]

TS = "TIMESTAMP '2024-05-15 13:45:30.123456'"
TSZ = "TIMESTAMP '2024-05-15 13:45:30.123456 UTC'"
DT = "DATE '2024-05-15'"
UNITS = ["millisecond", "second", "minute", "hour", "day", "week", "month", "quarter", "year"]
KV = "MAP(ARRAY['a', 'b'], ARRAY[1, 2])"

FUNCTIONS = [
    *[V(f"date_trunc_{u}_timestamp", f"SELECT date_trunc('{u}', {TS})") for u in UNITS],
    *[V(f"date_trunc_{u}_timestamptz", f"SELECT date_trunc('{u}', {TSZ})") for u in UNITS],
    *[V(f"date_trunc_{u}_date", f"SELECT date_trunc('{u}', {DT})") for u in UNITS[4:]],
    V("date_add_day_date", "SELECT date_add('day', 1, DATE '2024-01-31')"),
    V("date_add_month_end", "SELECT date_add('month', 1, DATE '2024-01-31')"),
    V("date_add_month_negative", "SELECT date_add('month', -1, DATE '2024-03-31')"),
    V("date_add_quarter_date", "SELECT date_add('quarter', 1, DATE '2024-11-30')"),
    V("date_add_week_date", "SELECT date_add('week', 2, DATE '2024-12-25')"),
    V("date_add_hour_timestamp", "SELECT date_add('hour', 25, TIMESTAMP '2024-01-01 00:00:00')"),
    V("date_add_year_leap", "SELECT date_add('year', 1, TIMESTAMP '2024-02-29 10:00:00.123')"),
    V("date_add_millisecond", "SELECT date_add('millisecond', 1500, TIMESTAMP '2024-01-01 00:00:00.000')"),
    V("date_add_minute_timestamptz", f"SELECT date_add('minute', 90, {TSZ})"),
    V("date_add_month_timestamptz", "SELECT date_add('month', 1, TIMESTAMP '2024-01-31 12:00:00 UTC')"),
    V("date_diff_day", "SELECT date_diff('day', DATE '2024-01-01', DATE '2024-03-01')"),
    V("date_diff_month_end", "SELECT date_diff('month', DATE '2024-01-31', DATE '2024-02-29')"),
    V("date_diff_month_end_2", "SELECT date_diff('month', DATE '2024-01-31', DATE '2024-03-30')"),
    V("date_diff_month_negative", "SELECT date_diff('month', DATE '2024-03-31', DATE '2024-02-29')"),
    V("date_diff_year", "SELECT date_diff('year', DATE '2020-02-29', DATE '2024-02-28')"),
    V("date_diff_week", "SELECT date_diff('week', DATE '2024-01-01', DATE '2024-01-14')"),
    V("date_diff_quarter", "SELECT date_diff('quarter', DATE '2024-01-15', DATE '2024-07-14')"),
    V("date_diff_hour", "SELECT date_diff('hour', TIMESTAMP '2024-01-01 00:30:00', TIMESTAMP '2024-01-02 00:29:59')"),
    V("date_diff_second_timestamptz", "SELECT date_diff('second', TIMESTAMP '2024-01-01 00:00:00 UTC', "
                                      "TIMESTAMP '2024-01-01 00:01:00.999 UTC')"),
    V("date_diff_millisecond_negative", "SELECT date_diff('millisecond', TIMESTAMP '2024-01-01 00:00:01', "
                                        "TIMESTAMP '2024-01-01 00:00:00.250')"),
    V("date_format_ymd_his", f"SELECT date_format({TS}, '%Y-%m-%d %H:%i:%s')"),
    V("date_format_names", f"SELECT date_format({TS}, '%W %M %e %y')"),
    V("date_format_short_names", f"SELECT date_format({TS}, '%a %b %c %j')"),
    V("date_format_fraction", f"SELECT date_format({TS}, '%f')"),
    V("date_format_12h", f"SELECT date_format({TS}, '%p %h %I %l %r %T %k')"),
    V("date_format_percent", f"SELECT date_format({TS}, '100%% %Y')"),
    V("date_format_timestamptz", f"SELECT date_format({TSZ}, '%Y-%m-%d %H:%i')"),
    V("date_format_unsupported", f"SELECT date_format({TS}, '%U')"),
    V("format_datetime_iso", f"SELECT format_datetime({TS}, 'yyyy-MM-dd HH:mm:ss.SSS')"),
    V("format_datetime_names", f"SELECT format_datetime({TS}, 'EEE, dd MMM yyyy')"),
    V("format_datetime_long_names", f"SELECT format_datetime({TS}, 'EEEE MMMM d')"),
    V("format_datetime_12h", f"SELECT format_datetime({TS}, 'hh:mm a')"),
    V("format_datetime_compact", f"SELECT format_datetime({TS}, 'yyyyMMdd')"),
    V("format_datetime_literal", f"SELECT format_datetime({TS}, 'yyyy''T''HH')"),
    V("format_datetime_zone", f"SELECT format_datetime({TSZ}, 'HH:mm Z ZZ')"),
    V("format_datetime_day_of_year_week", f"SELECT format_datetime({TS}, 'D w')"),
    V("from_iso8601_timestamp_z", "SELECT from_iso8601_timestamp('2024-01-02T03:04:05Z')"),
    V("from_iso8601_timestamp_offset", "SELECT from_iso8601_timestamp('2024-01-02T03:04:05.123+01:00')"),
    V("from_iso8601_timestamp_nanos", "SELECT from_iso8601_timestamp('2024-01-02T03:04:05.123456789-05:30')"),
    V("from_iso8601_timestamp_micros_z", "SELECT from_iso8601_timestamp('2024-01-02T03:04:05.123456Z')"),
    V("from_iso8601_timestamp_date_only", "SELECT from_iso8601_timestamp('2024-01-02')"),
    V("from_iso8601_timestamp_no_zone", "SELECT from_iso8601_timestamp('2024-01-02T03:04')"),
    V("from_iso8601_timestamp_invalid", "SELECT from_iso8601_timestamp('nope')"),
    V("from_unixtime_zero", "SELECT from_unixtime(0)"),
    V("from_unixtime_int", "SELECT from_unixtime(1700000000)"),
    V("from_unixtime_fraction", "SELECT from_unixtime(1700000000.5)"),
    V("from_unixtime_negative", "SELECT from_unixtime(-1.25)"),
    V("to_unixtime_timestamptz", "SELECT to_unixtime(TIMESTAMP '2024-01-02 03:04:05.5 UTC')"),
    V("to_unixtime_timestamp", "SELECT to_unixtime(TIMESTAMP '2024-01-02 03:04:05')"),
    V("day_of_week_sunday", "SELECT day_of_week(DATE '2024-01-07')"),
    V("day_of_week_monday", "SELECT day_of_week(DATE '2024-01-08')"),
    V("dow_timestamp", f"SELECT dow({TS})"),
    V("day_of_year", "SELECT day_of_year(DATE '2024-12-31')"),
    V("doy_timestamptz", f"SELECT doy({TSZ})"),
    V("week_iso_next_year", "SELECT week(DATE '2024-12-30')"),
    V("week_iso_53", "SELECT week(DATE '2021-01-03')"),
    V("week_of_year", f"SELECT week_of_year({TS})"),
    V("quarter", f"SELECT quarter({DT})"),
    V("year_month_day_date", f"SELECT year({DT}), month({DT}), day({DT}), day_of_month({DT})"),
    V("year_to_second_timestamp", f"SELECT year({TS}), month({TS}), day({TS}), hour({TS}), minute({TS}), second({TS})"),
    V("year_to_second_timestamptz", f"SELECT year({TSZ}), hour({TSZ}), minute({TSZ}), second({TSZ})"),
    V("json_extract_object", """SELECT json_extract('{"a":{"b":1}}', '$.a')"""),
    V("json_extract_string", """SELECT json_extract('{"a":"x"}', '$.a')"""),
    V("json_extract_json_type", """SELECT json_extract(json_parse('{"a":[1,2]}'), '$.a[1]')"""),
    V("json_extract_missing", """SELECT json_extract('{"a":1}', '$.b')"""),
    V("json_extract_scalar_member", """SELECT json_extract_scalar('{"a":"x"}', '$.a')"""),
    V("json_extract_scalar_index", """SELECT json_extract_scalar('{"a":[10,20]}', '$.a[0]')"""),
    V("json_extract_scalar_bracket", """SELECT json_extract_scalar('{"k":true}', '$["k"]')"""),
    V("json_extract_scalar_missing", """SELECT json_extract_scalar('{"a":1}', '$.missing')"""),
    V("json_extract_scalar_object", """SELECT json_extract_scalar('{"a":{"b":1}}', '$.a')"""),
    V("json_extract_scalar_number", """SELECT json_extract_scalar('{"a":1.50}', '$.a')"""),
    V("json_extract_scalar_null", """SELECT json_extract_scalar('{"a":null}', '$.a')"""),
    V("json_extract_scalar_not_json", "SELECT json_extract_scalar('not json', '$.a')"),
    V("json_format", """SELECT json_format(json_parse('{"b":1, "a":[1, 2.5, "x", null, true]}'))"""),
    V("json_parse_array", "SELECT json_parse('[1,  2]')"),
    V("json_parse_scalar", "SELECT json_parse('\"x\"')"),
    V("json_parse_invalid", "SELECT json_parse('{nope')"),
    V("regexp_like_true", "SELECT regexp_like('abc', 'b')"),
    V("regexp_like_anchor", "SELECT regexp_like('abc', '^b')"),
    V("regexp_extract", "SELECT regexp_extract('a1b22', '\\d+')"),
    V("regexp_extract_group", "SELECT regexp_extract('a1b22', '([a-z])(\\d+)', 2)"),
    V("regexp_extract_no_match", "SELECT regexp_extract('abc', '\\d+')"),
    V("regexp_replace_remove", "SELECT regexp_replace('abcb', 'b')"),
    V("regexp_replace_backreference", "SELECT regexp_replace('a1b2', '(\\d)', '<$1>')"),
    V("regexp_invalid", "SELECT regexp_like('a', '(')"),
    V("split", "SELECT split('a,b,,c', ',')"),
    V("strpos", "SELECT strpos('hello', 'l'), strpos('hello', 'z')"),
    V("length", "SELECT length('äb'), length('')"),
    V("lower_upper", "SELECT lower('ÄBc'), upper('äbC')"),
    V("concat_2", "SELECT concat('a', 'b')"),
    V("concat_3", "SELECT concat('a', 'b', 'c')"),
    V("concat_null", "SELECT concat('a', CAST(NULL AS varchar))"),
    V("concat_operator_null", "SELECT 'a' || CAST(NULL AS varchar)"),
    V("coalesce", "SELECT coalesce(NULL, 2, 3)"),
    V("coalesce_all_null", "SELECT coalesce(NULL, NULL)"),
    V("if_true", "SELECT if(true, 1, 2)"),
    V("if_no_else", "SELECT if(false, 1)"),
    V("if_null_condition", "SELECT if(NULL, 'a', 'b')"),
    V("try_division_by_zero", "SELECT try(1 / 0)"),
    V("try_cast_failure", "SELECT try(CAST('x' AS integer))"),
    V("try_cast_function_fail", "SELECT try_cast('x' AS integer)"),
    V("try_cast_function_ok", "SELECT try_cast('12' AS bigint)"),
    V("approx_distinct", "SELECT approx_distinct(x) FROM (VALUES (1), (2), (2), (3), (NULL)) AS t(x)"),
    V("approx_percentile_integer", "SELECT approx_percentile(x, 0.5) FROM (VALUES (1), (2), (3), (4), (5)) AS t(x)",
      check="approx"),
    V("approx_percentile_double", "SELECT approx_percentile(x, 0.9) "
                                  "FROM (VALUES (1e0), (2e0), (3e0), (4e0), (5e0)) AS t(x)", check="approx"),
    V("arbitrary", "SELECT arbitrary(x) FROM (VALUES ('only')) AS t(x)"),
    V("max_by", "SELECT max_by(x, y) FROM (VALUES ('a', 1), ('b', 3), ('c', 2)) AS t(x, y)"),
    V("min_by", "SELECT min_by(x, y) FROM (VALUES ('a', 1), ('b', 3), ('c', 2)) AS t(x, y)"),
    V("max_by_null_key", "SELECT max_by(x, y) FROM (VALUES ('a', 1), ('b', NULL)) AS t(x, y)"),
    V("count_if", "SELECT count_if(x > 1) FROM (VALUES (1), (2), (3), (NULL)) AS t(x)"),
    V("bool_and_or", "SELECT bool_and(b), bool_or(b) FROM (VALUES (true), (false), (NULL)) AS t(b)"),
    V("group_by_aggregates", "SELECT k, count(*), sum(v) FROM (VALUES ('a', 1), ('b', 2), ('a', 3)) AS t(k, v) "
                             "GROUP BY k ORDER BY k"),
    V("cardinality_array", "SELECT cardinality(ARRAY[1, 2, 3])"),
    V("cardinality_map", f"SELECT cardinality({KV})"),
    V("element_at_array", "SELECT element_at(ARRAY[10, 20, 30], 1)"),
    V("element_at_array_negative", "SELECT element_at(ARRAY[10, 20, 30], -1)"),
    V("element_at_array_out_of_range", "SELECT element_at(ARRAY[10, 20, 30], 5)"),
    V("element_at_array_zero", "SELECT element_at(ARRAY[10, 20, 30], 0)"),
    V("element_at_map", f"SELECT element_at({KV}, 'b')"),
    V("element_at_map_missing", f"SELECT element_at({KV}, 'z')"),
    V("subscript_array", "SELECT ARRAY[10, 20][2]"),
    V("subscript_array_out_of_range", "SELECT ARRAY[10, 20][3]"),
    V("subscript_map", f"SELECT {KV}['a']"),
    V("contains", "SELECT contains(ARRAY[1, 2], 2), contains(ARRAY['a'], 'b')"),
    V("contains_null", "SELECT contains(ARRAY[1, NULL], 3)"),
    V("array_join", "SELECT array_join(ARRAY['a', NULL, 'b'], ',')"),
    V("array_join_null_replacement", "SELECT array_join(ARRAY['a', NULL, 'b'], ',', 'x')"),
    V("array_join_integers", "SELECT array_join(ARRAY[1, 2], '-')"),
    V("map_keys", f"SELECT map_keys({KV})"),
    V("map_values", f"SELECT map_values({KV})"),
    *[V(f"typeof_{name}", f"SELECT typeof({expr})") for name, expr in [
        ("integer", "1"), ("bigint", "BIGINT '1'"), ("decimal", "1.5"), ("double", "1e0"), ("real", "REAL '1'"),
        ("varchar_literal", "'abc'"), ("varchar", "CAST('abc' AS varchar)"), ("boolean", "true"),
        ("date", "DATE '2024-01-02'"), ("timestamp", "TIMESTAMP '2024-01-02 03:04:05'"),
        ("timestamp_6", "TIMESTAMP '2024-01-02 03:04:05.123456'"),
        ("timestamptz", "TIMESTAMP '2024-01-02 03:04:05.123 UTC'"), ("array", "ARRAY[1]"),
        ("map", KV), ("row", "ROW(1, 'a')"), ("null", "NULL"), ("now", "now()"), ("current_date", "current_date"),
        ("json", "json_parse('1')"), ("varbinary", "X'01'"), ("decimal_10_2", "CAST(1 AS decimal(10,2))"),
        ("from_unixtime", "from_unixtime(0)"), ("count", "count(*)")]],
    V("unnest_with_ordinality", "SELECT * FROM UNNEST(ARRAY['a', 'b']) WITH ORDINALITY AS t(x, n)"),
    V("unnest", "SELECT x FROM UNNEST(ARRAY[1, 2]) AS t(x)"),
    V("cross_join_unnest", "SELECT id, x FROM (VALUES (1, ARRAY['a', 'b']), (2, ARRAY[])) AS t(id, arr) "
                           "CROSS JOIN UNNEST(arr) AS u(x)"),
    V("timestamptz_equal_across_zones", "SELECT TIMESTAMP '2024-01-02 03:04:05 UTC' = "
                                        "TIMESTAMP '2024-01-02 04:04:05 +01:00'"),
    V("timestamptz_vs_timestamp", "SELECT TIMESTAMP '2024-01-02 03:04:05 UTC' > TIMESTAMP '2024-01-02 03:04:04'"),
    V("timestamptz_in_where", "SELECT count(*) FROM (VALUES (TIMESTAMP '2024-01-02 03:04:05 UTC'), ("
                              "TIMESTAMP '2023-01-01 00:00:00 UTC')) AS t(ts) "
                              "WHERE ts > TIMESTAMP '2024-01-01 00:00:00 UTC'"),
    V("like_escape", "SELECT 'a%' LIKE 'a!%' ESCAPE '!', 'ab' LIKE 'a!%' ESCAPE '!'"),
    V("like_underscore", "SELECT 'abc' LIKE 'a_c', 'abc' LIKE 'A%'"),
    V("fetch_first", "SELECT x FROM (VALUES (3), (1), (2)) AS t(x) ORDER BY x FETCH FIRST 2 ROWS ONLY"),
    V("offset_fetch_next", "SELECT x FROM (VALUES (3), (1), (2)) AS t(x) ORDER BY x "
                           "OFFSET 1 ROWS FETCH NEXT 1 ROW ONLY"),
    V("limit", "SELECT x FROM (VALUES (3), (1), (2)) AS t(x) ORDER BY x DESC LIMIT 1"),
    V("current_timezone", "SELECT current_timezone()"),
]

E = lambda id, sql, **o: V(id, sql, **{"check": "error", **o})  # noqa: E731
ERRORS = [
    E("syntax_misspelled_keyword", "SELEC 1"),
    E("syntax_missing_from_target", "SELECT 1 FROM"),
    E("syntax_unclosed_parenthesis", "SELECT (1"),
    E("syntax_second_line", "SELECT 1,\n  FROM t"),
    E("syntax_trailing_where", "SELECT * FROM (VALUES (1)) AS t(x) WHERE"),
    E("syntax_unterminated_string", "SELECT 'abc"),
    E("empty_statement_semicolon", ";"),
    E("unknown_table", "SELECT * FROM nosuch"),
    E("unknown_table_qualified", "SELECT * FROM memory.default.nosuch"),
    E("unknown_column", "SELECT nosuchcol FROM (VALUES (1)) AS t(a)"),
    E("unknown_function", "SELECT nosuchfn(1)"),
    E("division_by_zero", "SELECT 1 / 0"),
    E("modulus_by_zero", "SELECT 1 % 0"),
    E("cast_failure", "SELECT CAST('x' AS integer)"),
    E("cast_failure_date", "SELECT CAST('2024-13-01' AS date)"),
    E("integer_overflow", "SELECT 2147483647 + 1"),
    E("type_mismatch_comparison", "SELECT 1 = 'a'"),
    E("type_mismatch_arithmetic", "SELECT 'a' + 1"),
    E("wrong_argument_count", "SELECT length('a', 'b')"),
    E("wrong_argument_count_date_add", "SELECT date_add('day', 1)"),
    E("unknown_catalog", "SELECT * FROM nosuchcat.s.t"),
    E("unknown_schema", "SELECT * FROM memory.nosuchschema.t"),
    E("show_tables_unknown_schema", "SHOW TABLES FROM memory.nosuchschema"),
    E("use_unknown_catalog", "USE nosuchcat.s"),
    E("execute_unknown_prepared", "EXECUTE nope USING 1"),
    E("not_aggregate", "SELECT a, count(*) FROM (VALUES (1, 2)) AS t(a, b)"),
    E("ambiguous_column", "SELECT a FROM (VALUES (1)) AS t(a), (VALUES (2)) AS u(a)"),
    E("where_not_boolean", "SELECT 1 WHERE 1"),
]

H = lambda id, sql, **o: V(id, sql, **{"check": "headers", **o})  # noqa: E731
SESSION = [
    H("use_catalog_schema", "USE memory.default"),
    H("use_schema", "USE default"),
    H("use_system_runtime", "USE system.runtime"),
    H("set_session", "SET SESSION query_max_run_time = '1h'"),
    H("set_session_unknown", "SET SESSION nosuch_property = 1"),
    H("reset_session", "RESET SESSION query_max_run_time"),
    H("prepare", "PREPARE s FROM SELECT ? + 1"),
    H("execute", "EXECUTE s USING 41", headers={"X-Trino-Prepared-Statement": PREPARED}),
    H("deallocate", "DEALLOCATE PREPARE s", headers={"X-Trino-Prepared-Statement": PREPARED}),
    H("execute_immediate", "EXECUTE IMMEDIATE 'SELECT ?' USING 'x'"),
    H("execute_immediate_two_parameters", "EXECUTE IMMEDIATE 'SELECT ? * 2, ?' USING 21, DATE '2024-01-02'"),
    H("describe_input", "DESCRIBE INPUT s", headers={"X-Trino-Prepared-Statement": PREPARED}, loose_varchar=True),
    H("describe_output", "DESCRIBE OUTPUT s", headers={"X-Trino-Prepared-Statement": PREPARED}, loose_varchar=True),
    H("start_transaction", "START TRANSACTION", headers={"X-Trino-Transaction-Id": "NONE"}),
    H("start_transaction_read_only", "START TRANSACTION READ ONLY", headers={"X-Trino-Transaction-Id": "NONE"}),
    H("commit", "COMMIT", headers={"X-Trino-Transaction-Id": "$txn"}, setup="transaction"),
    H("rollback", "ROLLBACK", headers={"X-Trino-Transaction-Id": "$txn"}, setup="transaction"),
    H("commit_without_transaction", "COMMIT"),
    H("set_path", "SET PATH memory.default"),
    H("set_time_zone", "SET TIME ZONE 'America/New_York'"),
    H("version", "SELECT version()", check="types"),
    H("kill_query_unknown", "CALL system.runtime.kill_query(query_id => 'nonexistent_id', message => 'x')"),
]

JDBC_TABLES = ["attributes", "catalogs", "columns", "procedure_columns", "procedures", "pseudo_columns", "schemas",
               "super_tables", "super_types", "table_types", "tables", "types", "udts"]
INFO_TABLES = ["applicable_roles", "columns", "enabled_roles", "roles", "schemata",
               "table_privileges", "tables", "views"]
T = lambda id, sql, **o: V(id, sql, **{"check": "types", **o})  # noqa: E731
METADATA = [
    *[T(f"system_jdbc_{t}", f"SELECT * FROM system.jdbc.{t} WHERE false") for t in JDBC_TABLES],
    V("system_jdbc_types_rows", "SELECT * FROM system.jdbc.types", check="rows"),
    V("system_jdbc_table_types_rows", "SELECT * FROM system.jdbc.table_types", check="rows"),
    *[T(f"information_schema_{t}", f"SELECT * FROM information_schema.{t} WHERE false") for t in INFO_TABLES],
    V("information_schema_tables_list", "SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = 'information_schema' ORDER BY 1", check="rows"),
    T("system_metadata_table_comments", "SELECT * FROM system.metadata.table_comments WHERE false"),
    T("system_metadata_catalogs", "SELECT * FROM system.metadata.catalogs WHERE false"),
    T("system_runtime_queries", "SELECT * FROM system.runtime.queries WHERE false"),
    T("show_functions", "SHOW FUNCTIONS", loose_varchar=True),
    T("show_functions_like", "SHOW FUNCTIONS LIKE 'date\\_%' ESCAPE '\\'", loose_varchar=True),
    T("show_create_table", "SHOW CREATE TABLE orders", loose_varchar=True),
    T("describe", "DESCRIBE orders"),
    T("show_columns", "SHOW COLUMNS FROM memory.default.orders"),
    T("show_catalogs", "SHOW CATALOGS", loose_varchar=True),
    T("show_schemas", "SHOW SCHEMAS"),
    T("show_schemas_from", "SHOW SCHEMAS FROM memory"),
    T("show_tables", "SHOW TABLES"),
    T("show_tables_like", "SHOW TABLES LIKE 'ord%'"),
    T("show_session", "SHOW SESSION", loose_varchar=True),
    T("show_stats_for_query", "SHOW STATS FOR (SELECT 1 AS x)"),
    T("explain", "EXPLAIN SELECT 1", loose_varchar=True),
]

P = lambda id, sql, **o: V(id, sql, **{"check": "protocol", **o})  # noqa: E731
PROTOCOL = [
    P("select", "SELECT 1"),
    P("error", "SELEC 1"),
    P("session_statement", "USE memory.default"),
    P("unaliased_column_names", "SELECT 1, 'a' AS x, 1 + 1, CAST(NULL AS varchar) AS \"Mixed Case\""),
    P("empty_statement", ""),
    P("no_user", "SELECT 1", headers={"X-Trino-User": None}),
    P("info", "GET /v1/info"),
]

GROUPS = {"values": VALUES, "functions": FUNCTIONS, "errors": ERRORS, "session": SESSION, "metadata": METADATA,
          "protocol": PROTOCOL}
DEFAULT_CHECK = {"values": "exact", "functions": "exact"}

TRINO_HEADERS = ("x-trino-",)
VOLATILE_HEADER_VALUES = {"x-trino-started-transaction-id": "<transaction id>"}


# --------------------------------------------------------------------------- protocol client

class Client:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def request(self, method, url, body=None, headers=None):
        """(status, X-Trino-* response headers, JSON body or text)"""
        hdrs = {k: v for k, v in (headers or {}).items() if v is not None}
        req = urllib.request.Request(url if url.startswith("http") else self.url + url,
                                     data=body.encode() if body is not None else None, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                status, raw, rh = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, raw, rh = e.code, e.read(), e.headers
        trino = {k: v for k, v in rh.items() if k.lower().startswith(TRINO_HEADERS)}
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        return status, trino, payload

    def run(self, sql, headers):
        """Every response of one statement: [(status, headers, body), ...]."""
        out = [self.request("POST", "/v1/statement", sql, headers)]
        while isinstance(out[-1][2], dict) and "nextUri" in out[-1][2]:
            get_headers = {"X-Trino-User": headers.get("X-Trino-User")} if headers.get("X-Trino-User") else {}
            out.append(self.request("GET", out[-1][2]["nextUri"], None, get_headers))
        return out


def transcript(responses):
    """What a client sees of one statement, without the volatile parts."""
    columns, data, error, update_type, headers, state = None, [], None, None, {}, None
    for _, h, body in responses:
        for k, v in h.items():
            headers[k] = VOLATILE_HEADER_VALUES.get(k.lower(), v)
        if not isinstance(body, dict):
            continue
        if body.get("columns") is not None and columns is None:
            columns = body["columns"]
        data.extend(body.get("data") or [])
        if "error" in body:
            e = body["error"]
            error = {k: e.get(k) for k in ("errorName", "errorCode", "errorType", "errorLocation", "message")}
        update_type = body.get("updateType", update_type)
        state = (body.get("stats") or {}).get("state", state)
    if error:  # whether the columns (or an updateType) came before the failure is a matter of timing
        columns, update_type = None, None
    return {"columns": columns, "data": data, "error": error, "updateType": update_type,
            "responseHeaders": dict(sorted(headers.items())), "state": state}


def shape(status, body):
    if not isinstance(body, dict):
        return {"status": status, "body": "text" if body else None}
    return {"status": status, "keys": sorted(body), "state": (body.get("stats") or {}).get("state"),
            "statsKeys": sorted(body.get("stats") or {}), "hasNextUri": "nextUri" in body,
            "hasInfoUri": "infoUri" in body}


def case_headers(opts):
    h = dict(BASE_HEADERS)
    h.update(opts.get("headers") or {})
    return h


def start_transaction(client):
    responses = client.run("START TRANSACTION", {**BASE_HEADERS, "X-Trino-Transaction-Id": "NONE"})
    for _, h, _ in responses:
        for k, v in h.items():
            if k.lower() == "x-trino-started-transaction-id":
                return v
    raise RuntimeError("START TRANSACTION gave no transaction id")


def record(url, only=None):
    client = Client(url)
    for sql in SETUP:
        t = transcript(client.run(sql, BASE_HEADERS))
        if t["error"]:
            raise RuntimeError(f"setup {sql!r}: {t['error']}")
    for group, cases in GROUPS.items():
        if only and group not in only:
            continue
        ids = [c[0] for c in cases]
        dup = {i for i in ids if ids.count(i) > 1}
        assert not dup, dup
        recorded = []
        for case in cases:
            if case[2].get("setup") == "transaction":
                txn = start_transaction(client)
                case = (case[0], case[1], {**case[2], "_txn": txn})
            recorded.append(_record(client, group, case))
        path = os.path.join(HERE, f"{group}.json")
        with open(path, "w") as f:
            json.dump({"trino": "476", "group": group, "cases": recorded}, f, indent=1, sort_keys=True,
                      ensure_ascii=False)
            f.write("\n")
        errors = sum(1 for c in recorded if c.get("error"))
        print(f"{group}: {len(recorded)} cases ({errors} with an error) -> {os.path.relpath(path, ROOT)}")


def _record(client, group, case):
    id, sql, opts = case
    check = opts.get("check", DEFAULT_CHECK.get(group, "exact"))
    headers = case_headers({k: v for k, v in opts.items() if k == "headers"})
    out = {"id": id, "sql": sql, "check": check, "requestHeaders": headers}
    if opts.get("setup"):
        out["setup"] = opts["setup"]
    if opts.get("loose_varchar"):
        # Trino types these columns from the rows (varchar(n), n the longest value)
        out["varcharLengthsFollowData"] = True
    if sql.startswith("GET "):  # a plain GET, not a statement
        status, _, body = client.request("GET", sql[4:], None, {"X-Trino-User": USER})
        out["response"] = {"status": status, "keys": sorted(body),
                           "nodeVersionKeys": sorted(body.get("nodeVersion") or {})}
        return out
    send = {k: (opts["_txn"] if v == "$txn" else v) for k, v in headers.items()}
    responses = client.run(sql, send)
    t = transcript(responses)
    if group == "protocol":
        out["first"] = shape(responses[0][0], responses[0][2])
        out["final"] = shape(responses[-1][0], responses[-1][2])
        for k in ("columns", "data", "error", "updateType"):
            out[k] = t[k]
        return out
    out.update(t)
    if check == "types":
        out["data"] = None  # names and types only: the rows depend on data, version, catalogs
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running Trino 476 (with a `memory` catalog) instead of starting one")
    ap.add_argument("--only", nargs="*", help="record only these groups")
    a = ap.parse_args()
    if a.url:
        record(a.url, a.only)
        return
    sys.path.insert(0, os.path.join(ROOT, "benches"))
    from trino_server import Trino, fetch

    fetch()
    with tempfile.TemporaryDirectory(prefix="trino-golden-") as work:
        with Trino(work, catalogs={"memory": {"connector.name": "memory"}, "tpch": {"connector.name": "tpch"}}) as t:
            print(f"Trino 476 on {t.url} (started in {t.start_seconds:.1f} s)", file=sys.stderr)
            record(t.url, a.only)


if __name__ == "__main__":
    main()

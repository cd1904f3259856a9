//! Parsing of the ISO temporal forms used by entity data, straight to Arrow's
//! representations: days since the epoch, microseconds of the day, and
//! microseconds since the epoch (UTC for zoned values).

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() {
        return None;
    }
    let mut v = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    Some(v)
}

/// Days since 1970-01-01 of a valid proleptic Gregorian date (H. Hinnant's algorithm).
fn days(year: i64, month: i64, day: i64) -> Option<i32> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) as i32)
}

/// `YYYY-MM-DD` → days since 1970-01-01.
pub fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    days(digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?)
}

/// `YYYY-MM` (a Cyoda YEAR_MONTH) → its first day, or `YYYY` (YEAR) → January 1.
pub fn parse_year_or_month(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    match b.len() {
        4 => days(digits(b)?, 1, 1),
        7 if b[4] == b'-' => days(digits(&b[0..4])?, digits(&b[5..7])?, 1),
        _ => None,
    }
}

/// `HH:MM[:SS[.ffffff]]` → microseconds since midnight.
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 5 || b[2] != b':' {
        return None;
    }
    let h = digits(&b[0..2])?;
    let m = digits(&b[3..5])?;
    let mut micros = 0;
    let mut sec = 0;
    if b.len() > 5 {
        if b[5] != b':' || b.len() < 8 {
            return None;
        }
        sec = digits(&b[6..8])?;
        if b.len() > 8 {
            if b[8] != b'.' || b.len() == 9 || b.len() > 18 {
                return None;
            }
            let frac = &b[9..];
            let mut v = digits(frac)?;
            for _ in frac.len()..6 {
                v *= 10;
            }
            for _ in 6..frac.len() {
                v /= 10;
            }
            micros = v;
        }
    }
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * MICROS_PER_SECOND + micros)
}

/// `YYYY-MM-DDTHH:MM[:SS[.f]][Z|±HH:MM|±HHMM]` → (microseconds since the epoch in UTC, had a zone).
/// Without a zone the local wall time is returned as if it were UTC.
pub fn parse_timestamp(s: &str) -> Option<(i64, bool)> {
    let b = s.as_bytes();
    if b.len() < 16 || (b[10] != b'T' && b[10] != b't') {
        return None;
    }
    let day = parse_date(&s[..10])? as i64;
    let rest = &s[11..];
    let (time_part, offset_secs, zoned) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0, true)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let zb = z[1..].as_bytes();
        let (hh, mm) = match zb.len() {
            5 if zb[2] == b':' => (digits(&zb[0..2])?, digits(&zb[3..5])?),
            4 => (digits(&zb[0..2])?, digits(&zb[2..4])?),
            2 => (digits(zb)?, 0),
            _ => return None,
        };
        if hh > 18 || mm > 59 {
            return None;
        }
        (t, sign * (hh * 3600 + mm * 60), true)
    } else {
        (rest, 0, false)
    };
    let tod = parse_time(time_part)?;
    Some((
        day * MICROS_PER_DAY + tod - offset_secs * MICROS_PER_SECOND,
        zoned,
    ))
}

/// Days since the epoch → microseconds at midnight.
pub fn date_to_micros(days: i32) -> i64 {
    days as i64 * MICROS_PER_DAY
}

/// Formats UTC microseconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn format_micros_utc(micros: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(micros) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string(),
        None => micros.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_times_and_instants() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_date("2024-02-29"), Some(19782));
        assert_eq!(parse_date("1900-02-29"), None);
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("2000-03-01"), Some(11017));
        assert_eq!(parse_year_or_month("1970-02"), Some(31));
        assert_eq!(parse_year_or_month("1971"), Some(365));
        assert_eq!(parse_time("00:00:01.5"), Some(1_500_000));
        assert_eq!(parse_time("24:00:00"), None);
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:01Z"),
            Some((1_000_000, true))
        );
        assert_eq!(
            parse_timestamp("1970-01-01T02:00:00+02:00"),
            Some((0, true))
        );
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:00-0100"),
            Some((3_600_000_000, true))
        );
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:00.000001"),
            Some((1, false))
        );
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), None);
    }
}

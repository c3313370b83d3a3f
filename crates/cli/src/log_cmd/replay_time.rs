//! Times in the replay tools: proposal stamps (ms since the Unix epoch) shown as RFC 3339 in
//! UTC, and `--until-time` parsed from RFC 3339 or plain unix milliseconds.
//!
//! Only the RFC 3339 profile (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`) is accepted, and only
//! years from 1970 on; no time-zone database, no leap seconds (stamps never carry them).

/// Milliseconds per day.
const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic, 400-year cycles).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A stamp as `2026-11-23T03:12:00.000Z`.
pub(super) fn format_ms(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let (days, in_day) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (second, milli) = (in_day / 1000 % 60, in_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

fn number(text: &str, what: &str, min: i64, max: i64) -> Result<i64, String> {
    let value: i64 = text
        .parse()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("bad {what} {text:?}"))?;
    if !(min..=max).contains(&value) {
        return Err(format!("{what} {value} is outside {min}..={max}"));
    }
    Ok(value)
}

/// Parses `--until-time`: unix milliseconds, or RFC 3339 with a `Z` or `±HH:MM` offset.
/// Fractions beyond milliseconds are cut, not rounded.
pub(super) fn parse_time(text: &str) -> Result<u64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|e| format!("bad unix ms {text:?}: {e}"));
    }
    let context = |e: String| format!("{e} in {text:?} (expected RFC 3339 or unix ms)");
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !shape_ok || !text.is_char_boundary(19) {
        return Err(context("not a date-time".into()));
    }
    let year = number(&text[0..4], "year", 1970, 9999).map_err(context)?;
    let month = number(&text[5..7], "month", 1, 12).map_err(context)?;
    let day = number(&text[8..10], "day", 1, 31).map_err(context)?;
    let hour = number(&text[11..13], "hour", 0, 23).map_err(context)?;
    let minute = number(&text[14..16], "minute", 0, 59).map_err(context)?;
    let second = number(&text[17..19], "second", 0, 60).map_err(context)?;
    let mut rest = &text[19..];
    let mut milli = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(context("empty fraction".into()));
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        milli = number(&padded, "fraction", 0, 999).map_err(context)?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ if rest.is_ascii() && rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(context(format!("bad offset {rest:?}"))),
            };
            let hours = number(&rest[1..3], "offset hours", 0, 23).map_err(context)?;
            let minutes = number(&rest[4..6], "offset minutes", 0, 59).map_err(context)?;
            sign * (hours * 60 + minutes)
        }
        _ => return Err(context(format!("bad offset {rest:?}"))),
    };
    let days = days_from_civil(year, month, day);
    let seconds = ((days * 24 + hour) * 60 + minute - offset_minutes) * 60 + second;
    u64::try_from(seconds * 1000 + milli).map_err(|_| context("before 1970".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_stamps() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_ms(1_795_403_520_123), "2026-11-23T03:12:00.123Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for ms in [0, 951_782_400_000, 1_795_403_520_123, 4_102_444_799_999] {
            assert_eq!(parse_time(&format_ms(ms)), Ok(ms), "{ms}");
        }
        assert_eq!(parse_time("1795403520123"), Ok(1_795_403_520_123));
        assert_eq!(
            parse_time("2026-11-23T05:12:00.1234+02:00"),
            Ok(1_795_403_520_123)
        );
        assert_eq!(parse_time("2026-11-23T03:12:00Z"), Ok(1_795_403_520_000));
        assert_eq!(
            parse_time("2026-11-22T22:12:00-05:00"),
            Ok(1_795_403_520_000)
        );
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-22T03:12:00",
            "2026-11-22T03:12:00.Z",
            "2026-11-22T03:12:00+0200",
            "1969-12-31T23:59:59Z",
            "2026-11-22T03:12:00Ü",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }
}

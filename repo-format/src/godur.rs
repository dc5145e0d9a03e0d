//! Go's `time.Duration` text: what restic's flags (`--retry-lock 5m`) and released
//! Stash's fields (`@every 1h`, `timeOut: 30m`) are written in.

use std::time::Duration;

/// Go's `time.ParseDuration` syntax (`1h30m`, `1.5s`, `300ms`), limited like Go to
/// `i64::MAX` nanoseconds; negative durations are refused. The error says what is
/// wrong with the text.
pub fn parse(text: &str) -> Result<Duration, String> {
    let quoted = format!("{text:?}");
    let mut rest = match text.strip_prefix('+').unwrap_or(text) {
        "0" => "",
        rest => rest,
    };
    if rest.starts_with('-') {
        return Err(format!("{quoted} is negative"));
    } else if text.is_empty() {
        return Err("missing duration".into());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(digits(rest));
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => a.split_at(digits(a)),
            None => ("", after),
        };
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.');
        let (unit, after) = after.split_at(unit_len.unwrap_or(after.len()));
        let scale: u128 = match unit {
            _ if int.is_empty() && frac.is_empty() => {
                return Err(format!("{quoted} is not a Go duration such as 1h30m"))
            }
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("{quoted} is missing a unit (h, m, s, ms)")),
            _ => return Err(format!("unknown unit {unit:?} in {quoted}")),
        };
        let whole = if int.is_empty() {
            Ok(0)
        } else {
            int.parse::<u128>()
        };
        let frac = frac.get(..18).unwrap_or(frac);
        let frac_nanos = frac
            .parse::<u128>()
            .map_or(0, |f| f * scale / 10u128.pow(frac.len() as u32));
        total = whole
            .ok()
            .and_then(|w| {
                w.checked_mul(scale)?
                    .checked_add(frac_nanos)?
                    .checked_add(total)
            })
            .filter(|&v| v <= i64::MAX as u128)
            .ok_or_else(|| format!("{quoted} is too large"))?;
        rest = after;
    }
    Ok(Duration::from_nanos(total as u64))
}

/// A duration as Go prints it, without zero parts: `1h30m`, `1m30s`, `1.5s`, `0s`.
pub fn format(d: Duration) -> String {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    let frac = format!("{nanos:09}");
    match (nanos, s) {
        (1.., _) => out.push_str(&format!("{s}.{}s", frac.trim_end_matches('0'))),
        (0, 1..) => out.push_str(&format!("{s}s")),
        _ if secs == 0 => out.push_str("0s"),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_syntax_round_trips() {
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        for bad in ["", "5", "-1s", "1x", "h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

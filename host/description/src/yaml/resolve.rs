//! YAML 1.1 implicit typing of plain scalars, as PyYAML (and so Occopus 1.10) does it:
//! `yes`/`no`/`on`/`off` are booleans, `0777` is octal, `1:30` is sexagesimal, `1e5` is a
//! string (a float needs a `.`), and `2021-01-01` is a timestamp.
//!
//! Owns: the resolver rules, written out by hand (no regex crate). Must not: know about
//! descriptions.

/// The value a plain scalar resolves to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string (including timestamps, which JSON cannot hold otherwise).
    Str,
}

/// Resolve a plain scalar by PyYAML's implicit resolvers.
pub(crate) fn resolve_plain(s: &str) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Resolved::Bool(true);
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Resolved::Bool(false);
        }
        _ => {}
    }
    if is_float(s) {
        return match float_value(s) {
            Some(f) => Resolved::Float(f),
            None => Resolved::Str,
        };
    }
    if is_int(s) {
        return match int_value(s) {
            Some(i) => Resolved::Int(i),
            // Larger than i64: keep the number as a float, as JSON would.
            None => float_value(s).map_or(Resolved::Str, Resolved::Float),
        };
    }
    Resolved::Str
}

/// Whether a plain scalar with this text would be read as a timestamp by PyYAML.
pub(crate) fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if !(digits(0..4) && b.get(4) == Some(&b'-')) {
        return false;
    }
    // Date only: YYYY-MM-DD.
    if b.len() == 10 && digits(5..7) && b[7] == b'-' && digits(8..10) {
        return true;
    }
    // Date and time: anything longer that starts like a date and has a `:` is treated
    // as a timestamp candidate (conservative: callers only use this to decide quoting).
    b.len() > 10 && s.contains(':')
}

fn strip_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

fn all(s: &str, f: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(f)
}

fn digit_or_us(b: u8) -> bool {
    b.is_ascii_digit() || b == b'_'
}

/// `[0-9][0-9_]*`
fn dec_run(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_digit) && s.bytes().all(digit_or_us)
}

/// `(:[0-5]?[0-9])+` after the first part.
fn sexagesimal_tail(parts: &[&str]) -> bool {
    !parts.is_empty()
        && parts.iter().all(|p| match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
            _ => false,
        })
}

/// `[eE][-+][0-9]+` or empty.
fn exponent_ok(e: &str) -> bool {
    if e.is_empty() {
        return true;
    }
    let b = e.as_bytes();
    matches!(b[0], b'e' | b'E')
        && b.len() >= 3
        && matches!(b[1], b'-' | b'+')
        && b[2..].iter().all(u8::is_ascii_digit)
}

fn split_exponent(s: &str) -> (&str, &str) {
    match s.find(['e', 'E']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn is_float(s: &str) -> bool {
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (_, body) = strip_sign(s);
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    // `\.[0-9][0-9_]*(exp)?` (no sign allowed)
    if let Some(rest) = s.strip_prefix('.') {
        let (mant, exp) = split_exponent(rest);
        return dec_run(mant) && exponent_ok(exp);
    }
    // `[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`
    if body.contains(':') {
        let Some((int_part, frac)) = body.split_once('.') else {
            return false;
        };
        let parts: Vec<&str> = int_part.split(':').collect();
        return dec_run(parts[0]) && sexagesimal_tail(&parts[1..]) && frac.bytes().all(digit_or_us);
    }
    // `[-+]?[0-9][0-9_]*\.[0-9_]*(exp)?`
    let Some((int_part, rest)) = body.split_once('.') else {
        return false;
    };
    let (frac, exp) = split_exponent(rest);
    dec_run(int_part) && frac.bytes().all(digit_or_us) && exponent_ok(exp)
}

fn float_value(s: &str) -> Option<f64> {
    let clean: String = s.chars().filter(|c| *c != '_').collect::<String>();
    let lower = clean.to_ascii_lowercase();
    let (neg, body) = strip_sign(&lower);
    let sign = if neg { -1.0 } else { 1.0 };
    if body == ".inf" {
        return Some(sign * f64::INFINITY);
    }
    if body == ".nan" {
        return Some(f64::NAN);
    }
    if body.contains(':') {
        let mut v = 0.0;
        for part in body.split(':') {
            v = v * 60.0 + part.parse::<f64>().ok()?;
        }
        return Some(sign * v);
    }
    // Python accepts `1.` and `1.e+5`; make them explicit for Rust's parser.
    let fixed = body.replace(".e", ".0e");
    let fixed = if fixed.ends_with('.') {
        format!("{fixed}0")
    } else {
        fixed
    };
    fixed.parse::<f64>().ok().map(|v| sign * v)
}

fn is_int(s: &str) -> bool {
    let (_, body) = strip_sign(s);
    if let Some(bits) = body.strip_prefix("0b") {
        return all(bits, |b| matches!(b, b'0' | b'1' | b'_'));
    }
    if let Some(hex) = body.strip_prefix("0x") {
        return all(hex, |b| b.is_ascii_hexdigit() || b == b'_');
    }
    if body == "0" {
        return true;
    }
    if let Some(oct) = body.strip_prefix('0') {
        return all(oct, |b| matches!(b, b'0'..=b'7' | b'_'));
    }
    if body.contains(':') {
        let parts: Vec<&str> = body.split(':').collect();
        return parts[0]
            .as_bytes()
            .first()
            .is_some_and(|b| (b'1'..=b'9').contains(b))
            && dec_run(parts[0])
            && sexagesimal_tail(&parts[1..]);
    }
    body.as_bytes()
        .first()
        .is_some_and(|b| (b'1'..=b'9').contains(b))
        && dec_run(body)
}

fn int_value(s: &str) -> Option<i64> {
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    let (neg, body) = strip_sign(&clean);
    let v: i64 = if let Some(bits) = body.strip_prefix("0b") {
        i64::from_str_radix(if bits.is_empty() { "0" } else { bits }, 2).ok()?
    } else if let Some(hex) = body.strip_prefix("0x") {
        i64::from_str_radix(if hex.is_empty() { "0" } else { hex }, 16).ok()?
    } else if body.contains(':') {
        let mut v: i64 = 0;
        for part in body.split(':') {
            v = v.checked_mul(60)?.checked_add(part.parse::<i64>().ok()?)?;
        }
        v
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8).ok()?
    } else if body.is_empty() {
        0
    } else {
        body.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::Resolved::*;
    use super::*;

    #[test]
    fn pyyaml_rules() {
        // Checked against PyYAML 6 `yaml.safe_load`.
        let cases: &[(&str, Resolved)] = &[
            ("", Null),
            ("~", Null),
            ("null", Null),
            ("yes", Bool(true)),
            ("Off", Bool(false)),
            ("False", Bool(false)),
            ("y", Str),
            ("0", Int(0)),
            ("42", Int(42)),
            ("-17", Int(-17)),
            ("1_000", Int(1000)),
            ("0777", Int(511)),
            ("08", Str),
            ("0x1F", Int(31)),
            ("0b101", Int(5)),
            ("1:30", Int(90)),
            ("1.5", Float(1.5)),
            ("1.", Float(1.0)),
            ("-.5", Str),
            (".5", Float(0.5)),
            ("1e5", Str),
            ("1.0e+5", Float(100000.0)),
            ("1.0e5", Str),
            ("1:30.5", Float(90.5)),
            ("3.2", Float(3.2)),
            ("1.9.1", Str),
            ("5:20.10.2~3-0~ubuntu", Str),
            ("2021-01-01", Str),
            ("ping-receiver", Str),
            ("9223372036854775808", Float(9223372036854775808.0)),
        ];
        for (text, want) in cases {
            assert_eq!(resolve_plain(text), *want, "{text:?}");
        }
        assert!(matches!(resolve_plain(".inf"), Float(f) if f.is_infinite()));
        assert!(matches!(resolve_plain(".NaN"), Float(f) if f.is_nan()));
        assert!(is_timestamp("2021-01-01"));
        assert!(is_timestamp("2001-12-14t21:59:43.10-05:00"));
        assert!(!is_timestamp("2021-1"));
    }
}

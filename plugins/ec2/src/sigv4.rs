//! AWS Signature Version 4 (header signing, `AWS4-HMAC-SHA256`): canonical request,
//! string to sign, signing key and the `Authorization` header.
//!
//! Pure functions over their inputs: no clock, no network, no logging. The secret key only
//! feeds the HMAC chain; it never appears in any returned string. Exposed publicly so the
//! native end-to-end tests sign their own requests to the emulator with the same code.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The algorithm name written in the string to sign and the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// An access key pair (and an optional STS session token). `Debug` hides the secret and
/// the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// Access key id (`AKIA…`); not secret, it appears in the `Authorization` header.
    pub access_key: String,
    /// Secret access key. Never log it.
    pub secret_key: String,
    /// Session token of temporary credentials, sent as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// One request to sign.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The URL path as sent (already percent-encoded); empty means `/`.
    pub path: &'a str,
    /// Query parameters, decoded (they are encoded while canonicalising).
    pub query: &'a [(String, String)],
    /// The headers to sign, with `host` and `x-amz-date` among them. Names are
    /// case-insensitive; every header given is signed.
    pub headers: &'a [(String, String)],
    /// The body.
    pub payload: &'a [u8],
}

/// Everything the signing steps produced; `authorization` is the header value to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub canonical_request: String,
    pub string_to_sign: String,
    /// `host;x-amz-date` (sorted, lower-case).
    pub signed_headers: String,
    /// Lower-case hex.
    pub signature: String,
    /// `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
    pub authorization: String,
}

/// Sign `req` for `region`/`service` at `amz_date` (`YYYYMMDDTHHMMSSZ`).
pub fn sign(req: &Request<'_>, key: &Key, region: &str, service: &str, amz_date: &str) -> Signed {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let (canonical_headers, signed_headers) = canonical_headers(req.headers);
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.path),
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        hex_sha256(req.payload)
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical_request.as_bytes())
    );
    let k_date = hmac(
        format!("AWS4{}", key.secret_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, string_to_sign.as_bytes()));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        key.access_key
    );
    Signed {
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
        authorization,
    }
}

/// Lower-case hex SHA-256 of `data`.
pub fn hex_sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// RFC 3986 percent-encoding as SigV4 wants it: everything except `A-Z a-z 0-9 - _ . ~`
/// is encoded, with upper-case hex digits.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
        }
    }
    out
}

/// The canonical URI of every service but S3: each path segment encoded once more (the
/// path is already encoded on the wire), empty paths become `/`.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() || path == "/" {
        return "/".into();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// `name=value` pairs, encoded, sorted by name then value, joined with `&`.
fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Canonical header block (`name:value\n` per header, sorted, values trimmed with inner
/// runs of spaces collapsed, repeated names joined with commas) and the signed header
/// list.
fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut merged: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => merged.push((name, value)),
        }
    }
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    let block: String = merged.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let names = merged
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (block, names)
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time in milliseconds (UTC).
pub fn amz_date(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    //! Vectors of AWS's published Signature Version 4 test suite: the example key pair,
    //! region `us-east-1`, service `service`, time 2015-08-30 12:36:00 UTC.
    use super::*;

    const DATE: &str = "20150830T123600Z";

    fn example_key() -> Key {
        Key {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut h = vec![
            ("Host".to_string(), "example.amazonaws.com".to_string()),
            ("X-Amz-Date".to_string(), DATE.to_string()),
        ];
        h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        h
    }

    fn vector(method: &str, query: &[(&str, &str)], extra: &[(&str, &str)], body: &[u8]) -> Signed {
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let headers = headers(extra);
        let req = Request {
            method,
            path: "/",
            query: &query,
            headers: &headers,
            payload: body,
        };
        sign(&req, &example_key(), "us-east-1", "service", DATE)
    }

    #[test]
    fn get_vanilla() {
        let s = vector("GET", &[], &[], b"");
        assert_eq!(
            s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let s = vector(
            "GET",
            &[("Param2", "value2"), ("Param1", "value1")],
            &[],
            b"",
        );
        assert!(
            s.canonical_request
                .starts_with("GET\n/\nParam1=value1&Param2=value2\n")
        );
        assert_eq!(
            s.signature,
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn post_vanilla() {
        let s = vector("POST", &[], &[], b"");
        assert_eq!(
            s.string_to_sign.rsplit('\n').next(),
            Some("553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87")
        );
        assert_eq!(
            s.signature,
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let s = vector(
            "POST",
            &[],
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"Param1=value1",
        );
        assert_eq!(s.signed_headers, "content-type;host;x-amz-date");
        assert!(
            s.canonical_request
                .ends_with("9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"),
            "{}",
            s.canonical_request
        );
        assert_eq!(
            s.signature,
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    #[test]
    fn a_different_secret_changes_the_signature_and_never_shows() {
        let mut key = example_key();
        key.secret_key = "another-secret".into();
        let headers = headers(&[]);
        let req = Request {
            method: "GET",
            path: "/",
            query: &[],
            headers: &headers,
            payload: b"",
        };
        let s = sign(&req, &key, "us-east-1", "service", DATE);
        assert_ne!(
            s.signature,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        let all = format!("{s:?} {key:?}");
        assert!(!all.contains("another-secret"), "{all}");
    }

    #[test]
    fn header_values_are_trimmed_and_names_merged() {
        let (block, names) = canonical_headers(&[
            ("My-Header1".into(), "  a   b  c ".into()),
            ("host".into(), "h".into()),
            ("my-header1".into(), "d".into()),
        ]);
        assert_eq!(block, "host:h\nmy-header1:a b c,d\n");
        assert_eq!(names, "host;my-header1");
    }

    #[test]
    fn encoding_and_paths() {
        assert_eq!(uri_encode("a b+/=~._-Z9"), "a%20b%2B%2F%3D~._-Z9");
        assert_eq!(uri_encode("é"), "%C3%A9");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a b/c"), "/a%20b/c");
        assert_eq!(canonical_uri("/%E1%88%B4"), "/%25E1%2588%25B4");
    }

    #[test]
    fn amz_dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160_000), DATE);
        // A leap day, and the end of a year.
        assert_eq!(amz_date(951_782_400_000), "20000229T000000Z");
        assert_eq!(amz_date(1_798_761_599_999), "20261231T235959Z");
    }
}

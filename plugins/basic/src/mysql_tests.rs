//! Tests of the MySQL login exchange against scripted server packets.

use super::*;

/// A fake connection: reads come from a script of server packets, writes are recorded.
struct Script {
    input: io::Cursor<Vec<u8>>,
    written: Vec<u8>,
}

impl Script {
    fn new(packets: &[(u8, Vec<u8>)]) -> Self {
        let mut input = Vec::new();
        for (seq, payload) in packets {
            input.extend_from_slice(&frame(*seq, payload));
        }
        Self {
            input: io::Cursor::new(input),
            written: Vec::new(),
        }
    }
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    let l = (payload.len() as u32).to_le_bytes();
    let mut out = vec![l[0], l[1], l[2], seq];
    out.extend_from_slice(payload);
    out
}

/// Split recorded client output into (sequence, payload) packets.
fn packets(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = usize::from(bytes[0]) | usize::from(bytes[1]) << 8 | usize::from(bytes[2]) << 16;
        out.push((bytes[3], bytes[4..4 + len].to_vec()));
        bytes = &bytes[4 + len..];
    }
    out
}

const NONCE: [u8; 20] = [
    70, 114, 92, 94, 1, 38, 11, 116, 63, 114, 23, 101, 126, 103, 26, 95, 81, 17, 24, 21,
];

/// A v10 greeting as servers send it (layout from the protocol documentation).
fn greeting(version: &str, plugin: &str, nonce: &[u8; 20]) -> Vec<u8> {
    let caps: u32 = caps::LONG_PASSWORD
        | caps::CONNECT_WITH_DB
        | caps::PROTOCOL_41
        | caps::TRANSACTIONS
        | caps::SECURE_CONNECTION
        | caps::PLUGIN_AUTH;
    let mut g = vec![10];
    g.extend_from_slice(version.as_bytes());
    g.push(0);
    g.extend_from_slice(&7u32.to_le_bytes());
    g.extend_from_slice(&nonce[..8]);
    g.push(0);
    g.extend_from_slice(&(caps as u16).to_le_bytes());
    g.push(33);
    g.extend_from_slice(&2u16.to_le_bytes());
    g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    g.push(21);
    g.extend_from_slice(&[0; 10]);
    g.extend_from_slice(&nonce[8..]);
    g.push(0);
    g.extend_from_slice(plugin.as_bytes());
    g.push(0);
    g
}

fn ok_packet() -> Vec<u8> {
    vec![0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]
}

fn err_packet(code: u16, state: &str, message: &str) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    p.extend_from_slice(state.as_bytes());
    p.extend_from_slice(message.as_bytes());
    p
}

#[test]
fn native_scramble_matches_the_go_driver_vector() {
    // go-sql-driver/mysql, TestAuthFastNativePassword.
    let expected = [
        53, 177, 140, 159, 251, 189, 127, 53, 109, 252, 172, 50, 211, 192, 240, 164, 26, 48, 207,
        45,
    ];
    assert_eq!(scramble_native(b"secret", &NONCE), expected);
    assert!(scramble_native(b"", &NONCE).is_empty());
}

#[test]
fn caching_sha2_scramble_matches_the_go_driver_vectors() {
    // go-sql-driver/mysql, TestScrambleSHA256Pass.
    let nonce = [
        10, 47, 74, 111, 75, 73, 34, 48, 88, 76, 114, 74, 37, 13, 3, 80, 82, 2, 23, 21,
    ];
    let hex = |b: Vec<u8>| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        hex(scramble_caching_sha2(b"secret", &nonce)),
        "f490e76f66d9d86665ce54d98c78d0acfe2fb0b08b423da807144873d30b312c"
    );
    assert_eq!(
        hex(scramble_caching_sha2(b"secret2", &nonce)),
        "abc3934a012cf342e876071c8ee202de51785b430258a7a0138bc79c4d800bc6"
    );
    assert!(scramble_caching_sha2(b"", &nonce).is_empty());
}

#[test]
fn greeting_is_parsed_field_by_field() {
    let g = parse_greeting(&greeting("10.11.6-MariaDB", NATIVE, &NONCE)).unwrap();
    assert_eq!(g.server_version, "10.11.6-MariaDB");
    assert_eq!(g.connection_id, 7);
    assert_eq!(g.nonce, NONCE);
    assert_eq!(g.auth_plugin, NATIVE);
    assert_ne!(g.capabilities & caps::PLUGIN_AUTH, 0);

    // Some servers omit the NUL after the plugin name.
    let mut no_nul = greeting("8.0.36", CACHING_SHA2, &NONCE);
    no_nul.pop();
    assert_eq!(parse_greeting(&no_nul).unwrap().auth_plugin, CACHING_SHA2);
}

#[test]
fn bad_greetings_are_errors_not_panics() {
    let full = greeting("10.11.6-MariaDB", NATIVE, &NONCE);
    for cut in [0, 1, 5, 17, 20, 30] {
        assert!(parse_greeting(&full[..cut]).is_err(), "cut at {cut}");
    }
    assert!(matches!(
        parse_greeting(&[9, b'x', 0]),
        Err(LoginError::Unsupported(_))
    ));
    let refused = err_packet(1130, "HY000", "Host '10.0.0.9' is not allowed to connect");
    let mut no_state = refused.clone();
    no_state.drain(3..9);
    assert_eq!(
        parse_greeting(&no_state),
        Err(LoginError::Server {
            code: 1130,
            message: "Host '10.0.0.9' is not allowed to connect".into()
        })
    );
}

#[test]
fn handshake_response_has_the_documented_layout() {
    let g = parse_greeting(&greeting("10.11.6-MariaDB", NATIVE, &NONCE)).unwrap();
    let (r, plugin) = handshake_response(&g, "wp", "secret", "wordpress").unwrap();
    assert_eq!(plugin, NATIVE);
    let flags = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
    for f in [
        caps::PROTOCOL_41,
        caps::SECURE_CONNECTION,
        caps::CONNECT_WITH_DB,
        caps::PLUGIN_AUTH,
    ] {
        assert_ne!(flags & f, 0, "flag {f:#x}");
    }
    assert_eq!(&r[8..9], &[33]);
    assert_eq!(&r[9..32], &[0; 23]);
    let rest = &r[32..];
    assert_eq!(&rest[..3], b"wp\0");
    assert_eq!(rest[3], 20);
    assert_eq!(&rest[4..24], scramble_native(b"secret", &NONCE).as_slice());
    assert_eq!(&rest[24..], b"wordpress\0mysql_native_password\0");

    // Without a database, CONNECT_WITH_DB is not claimed.
    let (r, _) = handshake_response(&g, "wp", "", "").unwrap();
    let flags = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
    assert_eq!(flags & caps::CONNECT_WITH_DB, 0);
    assert_eq!(&r[32..], b"wp\0\0mysql_native_password\0");
}

#[test]
fn native_login_succeeds_and_quits() {
    let mut s = Script::new(&[
        (0, greeting("10.11.6-MariaDB", NATIVE, &NONCE)),
        (2, ok_packet()),
    ]);
    let ok = login(&mut s, "wp", "secret", "wordpress").unwrap();
    assert_eq!(ok.server_version, "10.11.6-MariaDB");
    assert_eq!(ok.plugin, NATIVE);
    let sent = packets(&s.written);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].0, 1, "handshake response continues the sequence");
    assert_eq!(sent[1], (0, vec![0x01]), "COM_QUIT starts a new command");
}

#[test]
fn wrong_password_reports_the_server_message() {
    let mut s = Script::new(&[
        (0, greeting("10.11.6-MariaDB", NATIVE, &NONCE)),
        (
            2,
            err_packet(
                1045,
                "28000",
                "Access denied for user 'wp'@'10.0.0.1' (using password: YES)",
            ),
        ),
    ]);
    let e = login(&mut s, "wp", "wrong", "wordpress").unwrap_err();
    assert_eq!(
        e,
        LoginError::Server {
            code: 1045,
            message: "Access denied for user 'wp'@'10.0.0.1' (using password: YES)".into()
        }
    );
    assert!(!e.to_string().contains("wrong"));
}

#[test]
fn auth_switch_to_native_is_answered_with_the_new_nonce() {
    let fresh: [u8; 20] = [9; 20];
    let mut switch = vec![0xfe];
    switch.extend_from_slice(b"mysql_native_password\0");
    switch.extend_from_slice(&fresh);
    switch.push(0);
    let mut s = Script::new(&[
        (0, greeting("8.0.36", CACHING_SHA2, &NONCE)),
        (2, switch),
        (4, ok_packet()),
    ]);
    let ok = login(&mut s, "wp", "secret", "wp").unwrap();
    assert_eq!(ok.plugin, NATIVE);
    let sent = packets(&s.written);
    // First answer used caching_sha2 (the server's default) ...
    assert!(sent[0].1.ends_with(b"caching_sha2_password\0"));
    // ... then the switch is answered with sequence 3 and the native scramble of the new
    // nonce.
    assert_eq!(sent[1], (3, scramble_native(b"secret", &fresh)));
}

#[test]
fn caching_sha2_fast_path_and_full_auth() {
    let mut s = Script::new(&[
        (0, greeting("8.0.36", CACHING_SHA2, &NONCE)),
        (2, vec![0x01, 0x03]),
        (3, ok_packet()),
    ]);
    let ok = login(&mut s, "root", "secret", "mysql").unwrap();
    assert_eq!(ok.plugin, CACHING_SHA2);
    let sent = packets(&s.written);
    let response = &sent[0].1;
    let auth = scramble_caching_sha2(b"secret", &NONCE);
    assert!(response.windows(32).any(|w| w == auth.as_slice()));

    let mut s = Script::new(&[
        (0, greeting("8.0.36", CACHING_SHA2, &NONCE)),
        (2, vec![0x01, 0x04]),
    ]);
    let e = login(&mut s, "root", "secret", "mysql").unwrap_err();
    assert!(
        matches!(&e, LoginError::Unsupported(m) if m.contains("full authentication")),
        "{e}"
    );
}

#[test]
fn cleartext_and_old_password_switches_are_refused() {
    let mut clear = vec![0xfe];
    clear.extend_from_slice(b"mysql_clear_password\0");
    let mut s = Script::new(&[(0, greeting("10.11.6", NATIVE, &NONCE)), (2, clear)]);
    let e = login(&mut s, "wp", "secret", "wp").unwrap_err();
    assert!(matches!(e, LoginError::Unsupported(_)), "{e}");
    assert_eq!(packets(&s.written).len(), 1, "the password was not sent");

    let mut s = Script::new(&[(0, greeting("10.11.6", NATIVE, &NONCE)), (2, vec![0xfe])]);
    assert!(matches!(
        login(&mut s, "wp", "secret", "wp"),
        Err(LoginError::Unsupported(_))
    ));
}

#[test]
fn a_closed_connection_is_an_io_error() {
    let mut s = Script::new(&[(0, greeting("10.11.6", NATIVE, &NONCE))]);
    let e = login(&mut s, "wp", "secret", "wp").unwrap_err();
    assert_eq!(
        e,
        LoginError::Io("reading from the server: connection closed by the server".into())
    );
    let mut s = Script::new(&[]);
    assert!(matches!(
        login(&mut s, "u", "p", "d"),
        Err(LoginError::Io(_))
    ));
}

#[test]
fn oversized_packets_are_rejected() {
    let mut s = Script::new(&[]);
    s.input = io::Cursor::new(vec![0xff, 0xff, 0xff, 0]);
    assert!(matches!(
        login(&mut s, "u", "p", "d"),
        Err(LoginError::Protocol(_))
    ));
}

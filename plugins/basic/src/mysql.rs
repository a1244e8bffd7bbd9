//! The client side of the MySQL/MariaDB connection phase: enough protocol to log in to a
//! database and log out, which is what Occopus's `mysqldbs` check does.
//!
//! Supported: the v10 handshake, `mysql_native_password` (SHA-1 scramble),
//! `caching_sha2_password` fast authentication (SHA-256 scramble; the server must already
//! have the password cached), auth-switch requests between those two, and
//! `CLIENT_CONNECT_WITH_DB`. Not supported, with a message saying so: TLS,
//! `caching_sha2_password` full authentication (needs TLS or RSA), cleartext and
//! pre-4.1 passwords.
//!
//! Generic over any `Read + Write` stream, so the whole exchange is unit-tested with
//! scripted server packets. Never puts the password in an error.

use sha1::{Digest, Sha1};
use sha2::Sha256;
use std::fmt;
use std::io::{self, Read, Write};

/// Capability flags (the subset this client uses).
pub mod caps {
    /// New, more secure passwords.
    pub const LONG_PASSWORD: u32 = 0x0000_0001;
    /// A database may be named in the handshake response.
    pub const CONNECT_WITH_DB: u32 = 0x0000_0008;
    /// The 4.1 protocol.
    pub const PROTOCOL_41: u32 = 0x0000_0200;
    /// Transaction status in OK packets.
    pub const TRANSACTIONS: u32 = 0x0000_2000;
    /// 4.1 authentication (length-prefixed auth response).
    pub const SECURE_CONNECTION: u32 = 0x0000_8000;
    /// Pluggable authentication.
    pub const PLUGIN_AUTH: u32 = 0x0008_0000;
}

/// `mysql_native_password`.
pub const NATIVE: &str = "mysql_native_password";
/// `caching_sha2_password`.
pub const CACHING_SHA2: &str = "caching_sha2_password";

/// Largest packet this client accepts during login (the server's greeting and answers
/// are a few hundred bytes).
const MAX_PACKET: usize = 1 << 20;

/// Why a login did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// The connection broke or timed out.
    Io(String),
    /// The server answered something this client does not understand.
    Protocol(String),
    /// The server refused: its error code and message (`Access denied for user ...`).
    Server {
        /// MySQL error number (1045: access denied, 1049: unknown database).
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The server needs something this client does not implement.
    Unsupported(String),
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(m) => write!(f, "connection failed: {m}"),
            Self::Protocol(m) => write!(f, "protocol error: {m}"),
            Self::Server { code, message } => write!(f, "server error {code}: {message}"),
            Self::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

fn io_err(what: &str, e: &io::Error) -> LoginError {
    let kind = match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out",
        io::ErrorKind::UnexpectedEof => "connection closed by the server",
        _ => "",
    };
    if kind.is_empty() {
        LoginError::Io(format!("{what}: {e}"))
    } else {
        LoginError::Io(format!("{what}: {kind}"))
    }
}

/// The server's initial handshake (protocol v10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Server version string (`10.11.6-MariaDB-0+deb12u1`).
    pub server_version: String,
    /// Connection id.
    pub connection_id: u32,
    /// Server capability flags.
    pub capabilities: u32,
    /// The 20-byte nonce the scrambles mix in.
    pub nonce: Vec<u8>,
    /// The server's default authentication plugin (empty if it names none).
    pub auth_plugin: String,
}

/// A little reader over a packet payload.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], LoginError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(LoginError::Protocol(format!(
                "greeting ends before its {what}"
            ))),
        }
    }
    fn u8(&mut self, what: &str) -> Result<u8, LoginError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, LoginError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, LoginError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Bytes up to a NUL (consumed) or the end.
    fn cstr(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        match rest.iter().position(|&b| b == 0) {
            Some(i) => {
                self.pos += i + 1;
                &rest[..i]
            }
            None => {
                self.pos = self.buf.len();
                rest
            }
        }
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// Parse the server's first packet.
pub fn parse_greeting(payload: &[u8]) -> Result<Greeting, LoginError> {
    match payload.first() {
        Some(0xff) => return Err(parse_err_packet(payload)),
        Some(10) => {}
        Some(v) => {
            return Err(LoginError::Unsupported(format!(
                "handshake protocol version {v} (only 10 is spoken)"
            )));
        }
        None => return Err(LoginError::Protocol("empty greeting".into())),
    }
    let mut c = Cursor::new(&payload[1..]);
    let server_version = String::from_utf8_lossy(c.cstr()).into_owned();
    let connection_id = c.u32("connection id")?;
    let mut nonce = c.take(8, "nonce")?.to_vec();
    c.u8("filler")?;
    let mut capabilities = u32::from(c.u16("capability flags")?);
    let mut auth_plugin = String::new();
    if c.remaining() > 0 {
        c.u8("character set")?;
        c.u16("status flags")?;
        capabilities |= u32::from(c.u16("upper capability flags")?) << 16;
        let data_len = usize::from(c.u8("auth data length")?);
        c.take(10, "reserved bytes")?;
        if capabilities & caps::SECURE_CONNECTION != 0 {
            let len = data_len.saturating_sub(8).max(13);
            let part2 = c.take(len.min(c.remaining()), "second nonce part")?;
            // The nonce is 20 bytes; the part ends with a NUL terminator.
            let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
            nonce.extend_from_slice(part2);
        }
        if capabilities & caps::PLUGIN_AUTH != 0 {
            auth_plugin = String::from_utf8_lossy(c.cstr()).into_owned();
        }
    }
    Ok(Greeting {
        server_version,
        connection_id,
        capabilities,
        nonce,
        auth_plugin,
    })
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// `mysql_native_password`: `SHA1(pw) XOR SHA1(nonce ++ SHA1(SHA1(pw)))`; empty for an
/// empty password.
pub fn scramble_native(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(stage2);
    xor(&stage1, &h.finalize())
}

/// `caching_sha2_password`: `SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) ++ nonce)`; empty
/// for an empty password.
pub fn scramble_caching_sha2(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let m1 = Sha256::digest(password);
    let m2 = Sha256::digest(m1);
    let mut h = Sha256::new();
    h.update(m2);
    h.update(nonce);
    xor(&m1, &h.finalize())
}

/// The scramble for `plugin`, or why it cannot be answered.
fn auth_response(plugin: &str, password: &str, nonce: &[u8]) -> Result<Vec<u8>, LoginError> {
    // The nonce may arrive with a trailing NUL (auth-switch data); scrambles use 20 bytes.
    let nonce = nonce.strip_suffix(&[0]).unwrap_or(nonce);
    match plugin {
        NATIVE => Ok(scramble_native(password.as_bytes(), nonce)),
        CACHING_SHA2 => Ok(scramble_caching_sha2(password.as_bytes(), nonce)),
        "mysql_clear_password" => Err(LoginError::Unsupported(
            "the server asks for the password in cleartext (mysql_clear_password); \
             refusing to send it over an unencrypted connection"
                .into(),
        )),
        other => Err(LoginError::Unsupported(format!(
            "authentication plugin `{other}` (supported: {NATIVE}, {CACHING_SHA2})"
        ))),
    }
}

/// The client's handshake response (`HandshakeResponse41`) for `greeting`, and the
/// plugin it answers with.
pub fn handshake_response(
    greeting: &Greeting,
    user: &str,
    password: &str,
    database: &str,
) -> Result<(Vec<u8>, &'static str), LoginError> {
    let server = greeting.capabilities;
    for (flag, name) in [
        (caps::PROTOCOL_41, "the 4.1 protocol"),
        (caps::SECURE_CONNECTION, "4.1 authentication"),
    ] {
        if server & flag == 0 {
            return Err(LoginError::Unsupported(format!(
                "server {} does not speak {name}",
                greeting.server_version
            )));
        }
    }
    // Answer the server's default plugin if it is one we know; otherwise answer as
    // mysql_native_password and let the server switch us.
    let plugin = if greeting.auth_plugin == CACHING_SHA2 {
        CACHING_SHA2
    } else {
        NATIVE
    };
    let auth = auth_response(plugin, password, &greeting.nonce)?;
    let mut flags = caps::LONG_PASSWORD
        | caps::PROTOCOL_41
        | caps::SECURE_CONNECTION
        | caps::TRANSACTIONS
        | (server & caps::PLUGIN_AUTH);
    if !database.is_empty() {
        if server & caps::CONNECT_WITH_DB == 0 {
            return Err(LoginError::Unsupported(
                "the server cannot select a database at login".into(),
            ));
        }
        flags |= caps::CONNECT_WITH_DB;
    }
    let mut out = Vec::with_capacity(64 + user.len() + database.len());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(16u32 << 20).to_le_bytes()); // max packet size: 16 MiB
    out.push(33); // utf8_general_ci
    out.extend_from_slice(&[0; 23]);
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    // At most 32 bytes (a SHA-256 scramble): fits the one-byte length.
    out.push(auth.len() as u8);
    out.extend_from_slice(&auth);
    if !database.is_empty() {
        out.extend_from_slice(database.as_bytes());
        out.push(0);
    }
    if flags & caps::PLUGIN_AUTH != 0 {
        out.extend_from_slice(plugin.as_bytes());
        out.push(0);
    }
    Ok((out, plugin))
}

/// A server answer during authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Logged in.
    Ok,
    /// Refused.
    Err {
        /// Error number.
        code: u16,
        /// Message.
        message: String,
    },
    /// Switch to another plugin with a fresh nonce.
    AuthSwitch {
        /// Plugin name (empty: the pre-4.1 password scheme).
        plugin: String,
        /// Plugin data (the nonce).
        data: Vec<u8>,
    },
    /// Extra plugin data (`caching_sha2_password` status).
    MoreData(Vec<u8>),
}

fn parse_err_packet(payload: &[u8]) -> LoginError {
    let code = match payload.get(1..3) {
        Some(b) => u16::from_le_bytes([b[0], b[1]]),
        None => 0,
    };
    let mut msg = payload.get(3..).unwrap_or_default();
    // `#` + five-character SQL state, with the 4.1 protocol.
    if msg.first() == Some(&b'#') && msg.len() >= 6 {
        msg = &msg[6..];
    }
    LoginError::Server {
        code,
        message: String::from_utf8_lossy(msg).into_owned(),
    }
}

/// Classify a server packet during authentication.
pub fn parse_reply(payload: &[u8]) -> Result<Reply, LoginError> {
    match payload.first() {
        Some(0x00) => Ok(Reply::Ok),
        Some(0xff) => match parse_err_packet(payload) {
            LoginError::Server { code, message } => Ok(Reply::Err { code, message }),
            other => Err(other),
        },
        Some(0xfe) => {
            let mut c = Cursor::new(&payload[1..]);
            let plugin = String::from_utf8_lossy(c.cstr()).into_owned();
            let data = payload[1 + c.pos..].to_vec();
            Ok(Reply::AuthSwitch { plugin, data })
        }
        Some(0x01) => Ok(Reply::MoreData(payload[1..].to_vec())),
        Some(b) => Err(LoginError::Protocol(format!(
            "unexpected packet 0x{b:02x} during authentication"
        ))),
        None => Err(LoginError::Protocol("empty packet".into())),
    }
}

/// Packet framing: 3-byte little-endian length, 1-byte sequence number, payload.
pub struct Packets<S> {
    stream: S,
    seq: u8,
}

impl<S: Read + Write> Packets<S> {
    /// Frame packets over `stream`, starting a new command (sequence 0).
    pub fn new(stream: S) -> Self {
        Self { stream, seq: 0 }
    }
    /// Read one packet; the next write continues its sequence.
    pub fn read(&mut self) -> Result<Vec<u8>, LoginError> {
        let mut header = [0u8; 4];
        self.stream
            .read_exact(&mut header)
            .map_err(|e| io_err("reading from the server", &e))?;
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        if len > MAX_PACKET {
            return Err(LoginError::Protocol(format!(
                "packet of {len} bytes during login; is this a MySQL server?"
            )));
        }
        let mut payload = vec![0u8; len];
        self.stream
            .read_exact(&mut payload)
            .map_err(|e| io_err("reading from the server", &e))?;
        self.seq = header[3].wrapping_add(1);
        Ok(payload)
    }
    /// Write one packet with the current sequence number.
    pub fn write(&mut self, payload: &[u8]) -> Result<(), LoginError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l < 0x00ff_ffff)
            .ok_or_else(|| LoginError::Protocol("packet too large".into()))?;
        let l = len.to_le_bytes();
        let mut frame = Vec::with_capacity(4 + payload.len());
        frame.extend_from_slice(&[l[0], l[1], l[2], self.seq]);
        frame.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.stream
            .write_all(&frame)
            .and_then(|()| self.stream.flush())
            .map_err(|e| io_err("writing to the server", &e))
    }
    /// Start a new command (sequence 0).
    pub fn reset(&mut self) {
        self.seq = 0;
    }
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    /// The server's version string.
    pub server_version: String,
    /// The plugin that authenticated the user.
    pub plugin: String,
}

/// Log in as `user` to `database`, then send `COM_QUIT`. Every read and write is bounded
/// by the stream's own timeouts.
pub fn login<S: Read + Write>(
    stream: S,
    user: &str,
    password: &str,
    database: &str,
) -> Result<LoggedIn, LoginError> {
    let mut io = Packets::new(stream);
    let greeting = parse_greeting(&io.read()?)?;
    let (response, mut plugin) = handshake_response(&greeting, user, password, database)?;
    io.write(&response)?;
    let mut plugin_name = plugin.to_string();
    // A well-behaved server needs at most: switch, more-data, OK.
    for _ in 0..4 {
        match parse_reply(&io.read()?)? {
            Reply::Ok => {
                io.reset();
                // COM_QUIT; the server closes the connection, so errors do not matter.
                let _ = io.write(&[0x01]);
                return Ok(LoggedIn {
                    server_version: greeting.server_version,
                    plugin: plugin_name,
                });
            }
            Reply::Err { code, message } => return Err(LoginError::Server { code, message }),
            Reply::AuthSwitch { plugin: p, data } => {
                if p.is_empty() {
                    return Err(LoginError::Unsupported(
                        "the server asks for a pre-4.1 password hash (mysql_old_password)".into(),
                    ));
                }
                let auth = auth_response(&p, password, &data)?;
                plugin = if p == CACHING_SHA2 {
                    CACHING_SHA2
                } else {
                    NATIVE
                };
                plugin_name = p;
                io.write(&auth)?;
            }
            Reply::MoreData(data) if plugin == CACHING_SHA2 => match data.first() {
                // Fast authentication succeeded; the OK packet follows.
                Some(0x03) => {}
                Some(0x04) => {
                    return Err(LoginError::Unsupported(
                        "caching_sha2_password needs full authentication (the server has not \
                         cached this user's password), which requires TLS or RSA; log in once \
                         with a regular client, or use mysql_native_password for this user"
                            .into(),
                    ));
                }
                _ => {
                    return Err(LoginError::Protocol(
                        "unexpected caching_sha2_password status".into(),
                    ));
                }
            },
            Reply::MoreData(_) => {
                return Err(LoginError::Protocol(format!(
                    "unexpected extra authentication data for {plugin}"
                )));
            }
        }
    }
    Err(LoginError::Protocol(
        "authentication did not finish after 4 exchanges".into(),
    ))
}

#[cfg(test)]
#[path = "mysql_tests.rs"]
mod tests;

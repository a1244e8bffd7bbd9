//! A TCP connection with a timeout on every step, for the MySQL check. Uses
//! `std::net`, which inside the plugin host is WASI sockets behind the host's address
//! check (a health checker may reach the node it checks); natively it is the OS.

use crate::mysql::LoginError;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connect to `host:port` within `timeout_ms`, with the same timeout on every later read
/// and write.
pub fn connect(host: &str, port: u16, timeout_ms: u64) -> Result<TcpStream, LoginError> {
    let timeout = Duration::from_millis(timeout_ms.max(1));
    let addr = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| LoginError::Io(format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| LoginError::Io(format!("{host} has no address")))?,
    };
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
        LoginError::Io(match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                format!("connecting to {addr}: timed out")
            }
            _ => format!("connecting to {addr}: {e}"),
        })
    })?;
    for result in [
        stream.set_read_timeout(Some(timeout)),
        stream.set_write_timeout(Some(timeout)),
    ] {
        match result {
            Ok(()) => {}
            // Without socket timeouts the call's time budget still bounds the check.
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {}
            Err(e) => return Err(LoginError::Io(format!("setting a timeout on {addr}: {e}"))),
        }
    }
    Ok(stream)
}

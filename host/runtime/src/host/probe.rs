//! `occopus:plugin/probe`: ICMP echo and TCP connect, for health checks.
//!
//! Ping, in order of preference: an unprivileged ICMP datagram socket (Linux, when
//! `net.ipv4.ping_group_range` includes our group), a raw ICMP socket (root or
//! `CAP_NET_RAW`), else the system `ping` program (`ping -c 1 -W <s>`). IPv4 is done
//! natively and waits on the runtime's reactor (a refused datagram socket is remembered, so
//! later pings open a raw one at once); IPv6 targets use the `ping` program.
//!
//! Must not: probe anything the call's policy does not allow.

use super::ProbeResult;
use crate::bindings::host_api::occopus::plugin::probe::{Host, ProbeResult as WitProbe};
use crate::bindings::host_api::occopus::plugin::types::PluginError as WitError;
use crate::convert::error_to_wit;
use crate::state::PluginState;
use occopus_model::plugin::PluginError;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Longest probe timeout accepted (also capped by the call's budget).
const MAX_PROBE: Duration = Duration::from_secs(60);

impl Host for PluginState {
    async fn ping(
        &mut self,
        host: String,
        timeout_ms: u64,
    ) -> wasmtime::Result<Result<WitProbe, WitError>> {
        if let Err(msg) = self.call.policy.check_ping(&host) {
            tracing::warn!(target: "occopus::plugin", plugin = %self.plugin(), operation = self.call.operation, "{msg}");
            return Ok(Err(WitError::Denied(msg)));
        }
        let t = self.probe_timeout(timeout_ms);
        let services = self.services();
        self.call.in_host_call = Some("probe.ping");
        let r = services.ping(&host, t).await;
        self.call.in_host_call = None;
        Ok(r.map(to_wit).map_err(error_to_wit))
    }

    async fn tcp_connect(
        &mut self,
        host: String,
        port: u16,
        timeout_ms: u64,
    ) -> wasmtime::Result<Result<WitProbe, WitError>> {
        if let Err(msg) = self.call.policy.check_tcp(&host, port) {
            tracing::warn!(target: "occopus::plugin", plugin = %self.plugin(), operation = self.call.operation, "{msg}");
            return Ok(Err(WitError::Denied(msg)));
        }
        let t = self.probe_timeout(timeout_ms);
        let services = self.services();
        self.call.in_host_call = Some("probe.tcp-connect");
        let r = services.tcp_connect(&host, port, t).await;
        self.call.in_host_call = None;
        Ok(r.map(to_wit).map_err(error_to_wit))
    }
}

impl PluginState {
    fn probe_timeout(&self, ms: u64) -> Duration {
        Duration::from_millis(ms)
            .min(MAX_PROBE)
            .min(self.call.remaining())
    }
}

fn to_wit(p: ProbeResult) -> WitProbe {
    WitProbe {
        ok: p.ok,
        latency_ms: p.latency_ms,
        error: p.error,
    }
}

fn failed(start: Instant, why: String) -> ProbeResult {
    ProbeResult {
        ok: false,
        latency_ms: start.elapsed().as_millis() as u64,
        error: Some(why),
    }
}

/// Connect to `host:port` and close.
pub(crate) async fn tcp_connect(host: &str, port: u16, timeout: Duration) -> ProbeResult {
    let start = Instant::now();
    let h = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((h, port))).await {
        Ok(Ok(_)) => ProbeResult {
            ok: true,
            latency_ms: start.elapsed().as_millis() as u64,
            error: None,
        },
        Ok(Err(e)) => failed(start, e.to_string()),
        Err(_) => failed(start, format!("timed out after {} ms", timeout.as_millis())),
    }
}

/// One ICMP echo to `host`.
pub(crate) async fn ping(host: &str, timeout: Duration) -> Result<ProbeResult, PluginError> {
    let start = Instant::now();
    let h = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match h.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match tokio::net::lookup_host((h, 0)).await {
            Ok(mut addrs) => match addrs.find(|a| a.is_ipv4()) {
                Some(a) => a.ip(),
                None => return Ok(failed(start, format!("`{h}` has no IPv4 address"))),
            },
            Err(e) => return Ok(failed(start, format!("cannot resolve `{h}`: {e}"))),
        },
    };
    if let IpAddr::V4(v4) = ip {
        match icmp_echo_v4(v4, timeout).await {
            Ok(Some(rtt)) => {
                return Ok(ProbeResult {
                    ok: true,
                    latency_ms: rtt.as_millis() as u64,
                    error: None,
                });
            }
            Ok(None) => {
                return Ok(failed(
                    start,
                    format!("no echo reply within {} ms", timeout.as_millis()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
            Err(e) => return Ok(failed(start, e.to_string())),
        }
    }
    ping_program(ip, timeout, start).await
}

async fn ping_program(
    ip: IpAddr,
    timeout: Duration,
    start: Instant,
) -> Result<ProbeResult, PluginError> {
    let secs = timeout.as_secs().max(1).to_string();
    let mut cmd = tokio::process::Command::new("ping");
    if ip.is_ipv6() {
        cmd.arg("-6");
    }
    cmd.args(["-n", "-q", "-c", "1", "-W", &secs])
        .arg(ip.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(timeout + Duration::from_secs(1), cmd.status()).await {
        Ok(Ok(s)) if s.success() => Ok(ProbeResult {
            ok: true,
            latency_ms: start.elapsed().as_millis() as u64,
            error: None,
        }),
        Ok(Ok(_)) => Ok(failed(start, "no echo reply".into())),
        Ok(Err(e)) => Err(PluginError::Internal(format!(
            "cannot ping: no ICMP socket is permitted and the `ping` program failed to start: {e}"
        ))),
        Err(_) => Ok(failed(
            start,
            format!("no echo reply within {} ms", timeout.as_millis()),
        )),
    }
}

/// Owned file descriptor closed on drop.
struct Fd(libc::c_int);
impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}
impl std::os::fd::AsRawFd for Fd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from(chunk[0]) << 8
        };
        sum = sum.wrapping_add(u32::from(word));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether ICMP datagram sockets were refused once (then raw ones are tried first).
static DGRAM_REFUSED: AtomicBool = AtomicBool::new(false);

/// Sequence numbers of echo requests, so that concurrent pings on raw sockets (which
/// all see every reply) never take each other's replies.
static NEXT_SEQ: AtomicU16 = AtomicU16::new(1);

/// A non-blocking ICMP socket: a datagram one, else a raw one (`true`).
/// `PermissionDenied`: neither kind is permitted. Only a refusal (not a shortage of
/// descriptors or buffers) makes later pings skip the datagram kind.
fn icmp_socket() -> std::io::Result<(Fd, bool)> {
    let open = |kind: libc::c_int| {
        // SAFETY: a plain socket(2) call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                kind | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::IPPROTO_ICMP,
            )
        };
        if fd >= 0 {
            Ok(Fd(fd))
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    let refused = |e: &std::io::Error| {
        matches!(
            e.raw_os_error(),
            Some(libc::EACCES | libc::EPERM | libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT)
        )
    };
    if !DGRAM_REFUSED.load(Ordering::Relaxed) {
        match open(libc::SOCK_DGRAM) {
            Ok(fd) => return Ok((fd, false)),
            Err(e) if refused(&e) => DGRAM_REFUSED.store(true, Ordering::Relaxed),
            Err(e) => return Err(e),
        }
    }
    match open(libc::SOCK_RAW) {
        Ok(fd) => Ok((fd, true)),
        Err(e) if refused(&e) => Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        Err(e) => Err(e),
    }
}

/// ICMP echo over a datagram socket, else a raw one, waiting on the runtime's reactor.
/// `Ok(None)`: no reply in time. `PermissionDenied`: neither socket kind is permitted.
async fn icmp_echo_v4(dst: Ipv4Addr, timeout: Duration) -> std::io::Result<Option<Duration>> {
    let (fd, raw) = icmp_socket()?;
    let ident = (std::process::id() & 0xffff) as u16;
    let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
    let mut pkt = [0u8; 24];
    pkt[0] = 8; // echo request
    pkt[4..6].copy_from_slice(&ident.to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8..24].copy_from_slice(b"occopus-ping-v1!");
    let c = checksum(&pkt);
    pkt[2..4].copy_from_slice(&c.to_be_bytes());
    // SAFETY: sockaddr_in is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_addr = libc::in_addr {
        s_addr: u32::from(dst).to_be(),
    };
    let start = Instant::now();
    // SAFETY: pkt and addr outlive the call; lengths match.
    let sent = unsafe {
        libc::sendto(
            fd.0,
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `Fd` owns the open descriptor until it is dropped with the `AsyncFd`, and
    // `as_raw_fd` always returns that same descriptor.
    let fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    }?;
    let deadline = tokio::time::Instant::from_std(start + timeout);
    let mut buf = [0u8; 1500];
    loop {
        let Ok(ready) = tokio::time::timeout_at(deadline, fd.readable()).await else {
            return Ok(None);
        };
        let mut guard = ready?;
        let got = guard.try_io(|fd| {
            // SAFETY: buf is writable for its length.
            let len = unsafe { libc::recv(fd.get_ref().0, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if len < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(len as usize)
            }
        });
        let len = match got {
            Ok(Ok(len)) => len,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => return Err(e),
            // Spurious readiness: wait again.
            Err(_would_block) => continue,
        };
        if is_our_reply(&buf[..len], raw, dst, ident, seq) {
            return Ok(Some(start.elapsed()));
        }
    }
}

/// Whether `data` (from a raw socket: with its IP header) is the echo reply to our
/// request.
fn is_our_reply(data: &[u8], raw: bool, dst: Ipv4Addr, ident: u16, seq: u16) -> bool {
    let icmp = if raw {
        let ihl = usize::from(data.first().copied().unwrap_or(0) & 0x0f) * 4;
        if data.len() < ihl + 8 || ihl < 20 || data[12..16] != dst.octets() {
            return false;
        }
        &data[ihl..]
    } else {
        data
    };
    if icmp.len() < 8 || icmp[0] != 0 {
        return false;
    }
    // Datagram sockets rewrite the identifier; match on the sequence number there.
    let id_ok = !raw || icmp[4..6] == ident.to_be_bytes();
    id_ok && icmp[6..8] == seq.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_checksum() {
        // Header with a zero checksum field sums to a value whose complement checks out.
        let mut pkt = [8u8, 0, 0, 0, 0, 1, 0, 1];
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&pkt), 0);
    }

    #[test]
    fn only_our_echo_reply_matches() {
        let dst = Ipv4Addr::new(127, 0, 0, 7);
        // An echo reply (type 0) with identifier 0x1234, sequence 5.
        let icmp = [0u8, 0, 0, 0, 0x12, 0x34, 0, 5];
        assert!(
            is_our_reply(&icmp, false, dst, 0x9999, 5),
            "datagram: id rewritten"
        );
        assert!(
            !is_our_reply(&icmp, false, dst, 0x1234, 6),
            "another sequence"
        );
        let mut echo_request = icmp;
        echo_request[0] = 8;
        assert!(!is_our_reply(&echo_request, false, dst, 0x1234, 5));
        // Raw sockets: a 20-byte IP header first, whose source must be the target.
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[12..16].copy_from_slice(&dst.octets());
        let raw: Vec<u8> = ip.iter().chain(icmp.iter()).copied().collect();
        assert!(is_our_reply(&raw, true, dst, 0x1234, 5));
        assert!(!is_our_reply(&raw, true, dst, 0x4321, 5), "another process");
        assert!(!is_our_reply(
            &raw,
            true,
            Ipv4Addr::new(127, 0, 0, 8),
            0x1234,
            5
        ));
        assert!(!is_our_reply(&raw[..24], true, dst, 0x1234, 5), "truncated");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_pings_each_get_their_own_reply() {
        let mut pings = tokio::task::JoinSet::new();
        for i in 1..=20u8 {
            let host = format!("127.0.0.{i}");
            pings.spawn(async move { (host.clone(), ping(&host, Duration::from_secs(2)).await) });
        }
        for (host, r) in pings.join_all().await {
            let r = r.unwrap();
            assert!(r.ok, "{host}: {r:?}");
        }
    }

    #[tokio::test]
    async fn ping_and_connect_loopback() {
        let r = ping("127.0.0.1", Duration::from_secs(2)).await.unwrap();
        assert!(r.ok, "{r:?}");
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(
            tcp_connect("127.0.0.1", port, Duration::from_secs(2))
                .await
                .ok
        );
        drop(l);
        let r = tcp_connect("127.0.0.1", port, Duration::from_secs(2)).await;
        assert!(!r.ok && r.error.is_some(), "{r:?}");
    }
}

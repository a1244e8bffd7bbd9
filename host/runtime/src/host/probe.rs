//! `occopus:plugin/probe`: ICMP echo and TCP connect, for health checks.
//!
//! Ping, in order of preference: an unprivileged ICMP datagram socket (Linux, when
//! `net.ipv4.ping_group_range` includes our group), a raw ICMP socket (root or
//! `CAP_NET_RAW`), else the system `ping` program (`ping -c 1 -W <s>`). IPv4 is done
//! natively; IPv6 targets use the `ping` program.
//!
//! Must not: probe anything the call's policy does not allow.

use super::ProbeResult;
use crate::bindings::host_api::occopus::plugin::probe::{Host, ProbeResult as WitProbe};
use crate::bindings::host_api::occopus::plugin::types::PluginError as WitError;
use crate::convert::error_to_wit;
use crate::state::PluginState;
use occopus_model::plugin::PluginError;
use std::net::{IpAddr, Ipv4Addr};
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
        let native = tokio::task::spawn_blocking(move || icmp_echo_v4(v4, timeout))
            .await
            .map_err(|e| PluginError::Internal(format!("ping task failed: {e}")))?;
        match native {
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

/// Blocking ICMP echo over a datagram socket, else a raw one. `Ok(None)`: no reply in
/// time. `PermissionDenied`: neither socket kind is permitted.
fn icmp_echo_v4(dst: Ipv4Addr, timeout: Duration) -> std::io::Result<Option<Duration>> {
    // SAFETY: plain socket(2) calls; the result is checked.
    let (fd, raw) = unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        );
        if fd >= 0 {
            (fd, false)
        } else {
            let fd = libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            );
            if fd < 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
            }
            (fd, true)
        }
    };
    let fd = Fd(fd);
    let ident = (std::process::id() & 0xffff) as u16;
    let seq: u16 = 1;
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
    let mut buf = [0u8; 1500];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(None);
        }
        let mut pfd = libc::pollfd {
            fd: fd.0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe {
            libc::poll(
                &mut pfd,
                1,
                left.as_millis().clamp(1, i32::MAX as u128) as i32,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(None);
        }
        // SAFETY: buf is writable for its length.
        let len = unsafe { libc::recv(fd.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if len < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let data = &buf[..len as usize];
        // Raw sockets deliver the IP header first.
        let icmp = if raw {
            let ihl = usize::from(data.first().copied().unwrap_or(0) & 0x0f) * 4;
            if data.len() < ihl + 8 || data[12..16] != dst.octets() {
                continue;
            }
            &data[ihl..]
        } else {
            data
        };
        if icmp.len() < 8 || icmp[0] != 0 {
            continue;
        }
        // Datagram sockets rewrite the identifier; match on the sequence number there.
        let id_ok = !raw || icmp[4..6] == ident.to_be_bytes();
        if id_ok && icmp[6..8] == seq.to_be_bytes() {
            return Ok(Some(start.elapsed()));
        }
    }
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

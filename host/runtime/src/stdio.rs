//! The guest's stdout and stderr: forwarded line by line to the log, with a bounded tail
//! kept per call so a crash (a Rust panic prints its message to stderr before trapping)
//! can be explained.
//!
//! Must not: grow without bound, or block the guest.

use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line forwarded to the log; longer ones are cut.
const MAX_LINE: usize = 4096;

#[derive(Debug)]
struct Inner {
    plugin: String,
    stream: &'static str,
    tail: VecDeque<u8>,
    tail_cap: usize,
    line: Vec<u8>,
}

impl Inner {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.tail.len() == self.tail_cap {
                self.tail.pop_front();
            }
            if self.tail_cap > 0 {
                self.tail.push_back(b);
            }
            if b == b'\n' {
                self.emit();
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            }
        }
    }
    fn emit(&mut self) {
        let line = String::from_utf8_lossy(&self.line);
        tracing::info!(target: "occopus::plugin", plugin = %self.plugin, stream = self.stream, "{line}");
        self.line.clear();
    }
}

/// A captured guest output stream. Clones share the buffer.
#[derive(Debug, Clone)]
pub struct OutputCapture(Arc<Mutex<Inner>>);

impl OutputCapture {
    pub fn new(plugin: &str, stream: &'static str, tail_cap: usize) -> Self {
        Self(Arc::new(Mutex::new(Inner {
            plugin: plugin.to_string(),
            stream,
            tail: VecDeque::with_capacity(tail_cap.min(1 << 16)),
            tail_cap,
            line: Vec::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget what earlier calls wrote.
    pub fn clear(&self) {
        let mut g = self.lock();
        g.tail.clear();
    }

    /// What was written since the last [`clear`](Self::clear), at most the tail capacity,
    /// as text (lossy), trimmed.
    pub fn tail(&self) -> String {
        let mut g = self.lock();
        if !g.line.is_empty() {
            g.emit();
        }
        let (a, b) = g.tail.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

impl IsTerminal for OutputCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputCapture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputCapture {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for OutputCapture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.lock().push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for OutputCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.lock().push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_tail() {
        let c = OutputCapture::new("p", "stderr", 8);
        c.lock().push(b"0123456789\nabc");
        assert_eq!(c.tail(), "6789\nabc");
        c.clear();
        assert_eq!(c.tail(), "");
    }
}

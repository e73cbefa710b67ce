//! Guest stdout and stderr: one buffer, in the order written, keeping the first N bytes and
//! counting the rest. Writing never fails, so a flood of output cannot trap the guest.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Debug, Default)]
struct Inner {
    kept: Vec<u8>,
    dropped: u64,
}

/// A capped output buffer shared by the guest's stdout and stderr.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    capacity: usize,
    inner: Arc<Mutex<Inner>>,
}

impl CappedOutput {
    /// A buffer that keeps at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        CappedOutput {
            capacity,
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        let room = self.capacity.saturating_sub(inner.kept.len());
        let take = bytes.len().min(room);
        inner.kept.extend_from_slice(&bytes[..take]);
        inner.dropped += (bytes.len() - take) as u64;
    }

    /// Takes what was written since the last call: the kept text and how many bytes were
    /// dropped.
    pub fn take(&self) -> (String, u64) {
        let mut inner = self.lock();
        let kept = std::mem::take(&mut inner.kept);
        let dropped = std::mem::take(&mut inner.dropped);
        (String::from_utf8_lossy(&kept).into_owned(), dropped)
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let out = CappedOutput::new(5);
        out.push(b"abc");
        out.push(b"defgh");
        assert_eq!(out.take(), ("abcde".to_owned(), 3));
        assert_eq!(out.take(), (String::new(), 0));
    }
}

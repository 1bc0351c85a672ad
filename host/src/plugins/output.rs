//! Where a plugin's words go: log lines (from `log`, stdout and stderr) kept up to a per-call budget, and
//! the size of values crossing the boundary.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Longest single log line kept; longer lines are cut.
pub const MAX_LINE: usize = 2048;

/// One kept log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `debug`, `info`, `warn`, `error`, `stdout` or `stderr`.
    pub level: &'static str,
    /// The text.
    pub message: String,
}

#[derive(Debug, Default)]
struct Buffer {
    lines: Vec<LogLine>,
    bytes: usize,
    dropped: usize,
    partial_out: Vec<u8>,
    partial_err: Vec<u8>,
}

/// The log of one call, shared by the `log` interface and the WASI stdout and stderr streams.
#[derive(Debug, Clone)]
pub struct LogSink {
    inner: Arc<Mutex<Buffer>>,
    cap: usize,
}

impl LogSink {
    /// A sink that keeps at most `cap` bytes of text.
    pub fn new(cap: usize) -> LogSink {
        LogSink {
            inner: Arc::new(Mutex::new(Buffer::default())),
            cap,
        }
    }

    /// Keep one line (cut to [`MAX_LINE`]) if the budget allows; count it as dropped otherwise.
    pub fn line(&self, level: &'static str, message: &str) {
        let mut buffer = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        push(&mut buffer, self.cap, level, message);
    }

    fn write(&self, level: &'static str, bytes: &[u8]) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let buffer = &mut *guard;
        let partial = if level == "stdout" {
            &mut buffer.partial_out
        } else {
            &mut buffer.partial_err
        };
        // Only hold on to what could still be kept.
        if partial.len() < MAX_LINE * 2 {
            partial.extend_from_slice(&bytes[..bytes.len().min(MAX_LINE * 2)]);
        }
        let mut lines = Vec::new();
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        if partial.len() >= MAX_LINE {
            lines.push(String::from_utf8_lossy(partial).into_owned());
            partial.clear();
        }
        for line in lines {
            push(buffer, self.cap, level, &line);
        }
    }

    /// The kept lines (with any unfinished stdout/stderr line) and how many were dropped.
    pub fn take(&self) -> (Vec<LogLine>, usize) {
        let mut buffer = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for level in ["stdout", "stderr"] {
            let partial = if level == "stdout" {
                std::mem::take(&mut buffer.partial_out)
            } else {
                std::mem::take(&mut buffer.partial_err)
            };
            if !partial.is_empty() {
                let text = String::from_utf8_lossy(&partial).into_owned();
                push(&mut buffer, self.cap, level, &text);
            }
        }
        (std::mem::take(&mut buffer.lines), std::mem::take(&mut buffer.dropped))
    }

    /// A WASI stdout or stderr stream writing into this sink.
    pub fn stream(&self, level: &'static str) -> SinkStream {
        SinkStream {
            sink: self.clone(),
            level,
        }
    }
}

fn push(buffer: &mut Buffer, cap: usize, level: &'static str, message: &str) {
    let mut end = message.len().min(MAX_LINE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let message = &message[..end];
    if buffer.bytes + message.len() > cap {
        buffer.dropped += 1;
        return;
    }
    buffer.bytes += message.len();
    buffer.lines.push(LogLine {
        level,
        message: message.to_owned(),
    });
}

/// stdout or stderr of a plugin: never blocks, never fails, keeps what the budget allows.
#[derive(Clone)]
pub struct SinkStream {
    sink: LogSink,
    level: &'static str,
}

impl IsTerminal for SinkStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for SinkStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for SinkStream {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.sink.write(self.level, &bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for SinkStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for SinkStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.sink.write(self.level, buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The size of a value as JSON, counted without building the text.
pub fn encoded_size<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_within_the_budget_and_counts_the_rest() {
        let sink = LogSink::new(10);
        sink.line("info", "12345");
        sink.line("info", "67890");
        sink.line("info", "x");
        let (lines, dropped) = sink.take();
        assert_eq!(lines.len(), 2);
        assert_eq!(dropped, 1);
    }

    #[test]
    fn stdout_is_split_into_lines() {
        let sink = LogSink::new(1000);
        sink.write("stdout", b"hello\nwor");
        sink.write("stdout", b"ld\n");
        sink.write("stderr", b"tail");
        let (lines, _) = sink.take();
        let texts: Vec<_> = lines.iter().map(|l| (l.level, l.message.as_str())).collect();
        assert_eq!(texts, [("stdout", "hello"), ("stdout", "world"), ("stderr", "tail")]);
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let sink = LogSink::new(100_000);
        sink.line("info", &"é".repeat(MAX_LINE));
        let (lines, _) = sink.take();
        assert!(lines[0].message.len() <= MAX_LINE);
    }
}

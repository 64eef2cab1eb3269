//! The log output: lines go through a bounded queue to a writer thread, so
//! a slow or blocked stdout (a pipe nobody reads) never holds up a request.
//! When the queue is full the line is dropped and counted in
//! `workspace_gate_log_lines_dropped_total`; [`Flush`] writes out what is
//! queued when the process ends, for a bounded time.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines queued for the writer thread; beyond them lines are dropped.
pub const QUEUED_LINES: usize = 1024;
/// How long the end of the process waits for the queue to be written.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

enum Msg {
    Line(Vec<u8>),
    /// Write out what is buffered, then answer.
    Flush(SyncSender<()>),
}

/// Hands each formatted log line to the writer thread without waiting.
#[derive(Clone)]
pub struct LogOutput {
    tx: SyncSender<Msg>,
}

/// Writes out the queued lines when dropped (at most [`FLUSH_WAIT`]: a
/// blocked output must not keep the process from exiting).
pub struct Flush {
    tx: SyncSender<Msg>,
}

/// One log line, as `tracing_subscriber` writes it (one `write_all` per
/// event).
pub struct Line<'a>(&'a SyncSender<Msg>);

/// Starts the writer thread for `out` with room for `queued` lines.
pub fn spawn(out: impl Write + Send + 'static, queued: usize) -> io::Result<(LogOutput, Flush)> {
    let (tx, rx) = mpsc::sync_channel(queued);
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_lines(rx, io::BufWriter::new(out)))?;
    Ok((LogOutput { tx: tx.clone() }, Flush { tx }))
}

fn write_lines(rx: Receiver<Msg>, mut out: impl Write) {
    // Write errors are dropped, as the standard output's would be.
    let mut next = rx.recv();
    while let Ok(msg) = next {
        match msg {
            Msg::Line(line) => {
                let _ = out.write_all(&line);
            }
            Msg::Flush(done) => {
                let _ = out.flush();
                let _ = done.send(());
            }
        }
        next = match rx.try_recv() {
            Ok(m) => Ok(m),
            Err(TryRecvError::Empty) => {
                // Nothing more queued: let the buffered lines out.
                let _ = out.flush();
                rx.recv()
            }
            Err(TryRecvError::Disconnected) => break,
        };
    }
    let _ = out.flush();
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.try_send(Msg::Line(buf.to_vec())) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                crate::metrics::log_lines_dropped().inc();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = Line<'a>;
    fn make_writer(&'a self) -> Line<'a> {
        Line(&self.tx)
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        let deadline = Instant::now() + FLUSH_WAIT;
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let mut msg = Msg::Flush(done_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        // Written out, or out of time: the process ends either way.
        let _ = done_rx.recv_timeout(left);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::spawn;

    /// An output that takes nothing until it is opened, then keeps all.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        seen: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (lock, cv) = &*self.open;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            self.seen.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_blocked_output_drops_and_counts_lines_and_never_blocks_the_caller() {
        use tracing_subscriber::fmt::MakeWriter;
        let out = Gate::default();
        let (log, flush) = spawn(out.clone(), 4).unwrap();
        let before = crate::metrics::log_lines_dropped().get();
        let pad = "x".repeat(1000);
        for i in 0..100 {
            // Returns at once although the output takes nothing.
            log.make_writer()
                .write_all(format!("line {i} {pad}\n").as_bytes())
                .unwrap();
        }
        // 4 queued, a few in the writer's buffer, the rest dropped.
        assert!(crate::metrics::log_lines_dropped().get() - before >= 50);
        {
            let (lock, cv) = &*out.open;
            *lock.lock().unwrap() = true;
            cv.notify_all();
        }
        drop(flush);
        let seen = String::from_utf8(out.seen.lock().unwrap().clone()).unwrap();
        assert!(seen.starts_with("line 0 "), "{seen}");
        assert!(seen.lines().count() < 50, "{seen}");
    }
}

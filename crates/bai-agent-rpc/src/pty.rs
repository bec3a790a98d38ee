//! The terminal of a kernel as the manager's `stream_pty` reaches it: a PUB socket connected to
//! the kernel's `stdin_port` (keystrokes out) and a SUB socket, subscribed to everything,
//! connected to its `stdout_port` (terminal output in), both with a 100 ms linger as the
//! reference sets them. No handshake: ZeroMQ connects in the background, and what is published
//! before a peer is there is lost, as with the reference.
//!
//! The sockets live on a thread of their own (the `zmq` crate blocks); [`PtyStreams`] hands it
//! input over a channel and takes each output message's first frame from another, bounded one, so
//! that a slow reader slows the kernel's output down instead of piling it up. Dropping the
//! streams ends the thread within one poll interval.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use tokio::sync::mpsc as async_mpsc;

/// How long the thread waits for output before it looks at its input and stop flag again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Output messages waiting for the reader.
const OUTPUT_QUEUE: usize = 64;
/// The sockets' linger (the reference's `zmq.LINGER` of 100 ms).
const LINGER_MS: i32 = 100;

/// What can go wrong opening a kernel's terminal streams.
#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    #[error("cannot open a ZeroMQ socket to the kernel's {what} at {addr}: {source}")]
    Socket {
        what: &'static str,
        addr: String,
        source: zmq::Error,
    },
    #[error("cannot start the terminal streams' thread: {0}")]
    Thread(std::io::Error),
    /// The streams' thread ended (a socket failed).
    #[error("the kernel's terminal streams are closed")]
    Closed,
}

/// A kernel's stdin and stdout streams.
#[derive(Debug)]
pub struct PtyStreams {
    input: mpsc::Sender<Vec<u8>>,
    output: async_mpsc::Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
}

impl PtyStreams {
    /// Connects to the kernel on `host` (a name or address) at its `stdin_port` and
    /// `stdout_port`.
    pub fn connect(host: &str, stdin_port: u16, stdout_port: u16) -> Result<PtyStreams, PtyError> {
        let context = zmq::Context::new();
        let stdin_addr = format!("tcp://{host}:{stdin_port}");
        let stdout_addr = format!("tcp://{host}:{stdout_port}");
        let stdin = socket(&context, zmq::PUB, "stdin", &stdin_addr)?;
        let stdout = socket(&context, zmq::SUB, "stdout", &stdout_addr)?;
        stdout
            .set_subscribe(b"")
            .map_err(|source| PtyError::Socket {
                what: "stdout",
                addr: stdout_addr,
                source,
            })?;
        let (input, inputs) = mpsc::channel();
        let (outputs, output) = async_mpsc::channel(OUTPUT_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("kernel-pty".to_owned())
            .spawn(move || {
                relay(&stdin, &stdout, &inputs, &outputs, &stopped);
                // The sockets close (lingering) before their context ends.
                drop((stdin, stdout));
                drop(context);
            })
            .map_err(PtyError::Thread)?;
        Ok(PtyStreams {
            input,
            output,
            stop,
        })
    }

    /// Publishes `bytes` to the kernel's stdin.
    pub fn send(&self, bytes: Vec<u8>) -> Result<(), PtyError> {
        self.input.send(bytes).map_err(|_| PtyError::Closed)
    }

    /// The first frame of the kernel's next output message; `None` once the streams closed.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.output.recv().await
    }
}

impl Drop for PtyStreams {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn socket(
    context: &zmq::Context,
    kind: zmq::SocketType,
    what: &'static str,
    addr: &str,
) -> Result<zmq::Socket, PtyError> {
    let failed = |source| PtyError::Socket {
        what,
        addr: addr.to_owned(),
        source,
    };
    let socket = context.socket(kind).map_err(failed)?;
    socket.set_linger(LINGER_MS).map_err(failed)?;
    socket.connect(addr).map_err(failed)?;
    Ok(socket)
}

/// The thread: output to the reader, input to the kernel, until stopped or a socket fails.
fn relay(
    stdin: &zmq::Socket,
    stdout: &zmq::Socket,
    inputs: &mpsc::Receiver<Vec<u8>>,
    outputs: &async_mpsc::Sender<Vec<u8>>,
    stop: &AtomicBool,
) {
    let poll_ms = i64::try_from(POLL_INTERVAL.as_millis()).unwrap_or(20);
    while !stop.load(Ordering::Acquire) {
        let mut items = [stdout.as_poll_item(zmq::POLLIN)];
        if zmq::poll(&mut items, poll_ms).is_err() {
            return;
        }
        if items[0].is_readable() {
            match stdout.recv_multipart(0) {
                Ok(frames) => {
                    let first = frames.into_iter().next().unwrap_or_default();
                    if outputs.blocking_send(first).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        loop {
            match inputs.try_recv() {
                Ok(bytes) => {
                    if stdin.send(bytes, 0).is_err() {
                        return;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::PtyStreams;

    /// A kernel's terminal side: SUB bound on the stdin port, PUB bound on the stdout port.
    #[tokio::test]
    async fn keystrokes_reach_the_kernel_and_its_output_comes_back() {
        let context = zmq::Context::new();
        let kernel_stdin = context.socket(zmq::SUB).expect("SUB");
        kernel_stdin.set_subscribe(b"").expect("subscribe");
        kernel_stdin.bind("tcp://127.0.0.1:*").expect("bind");
        let kernel_stdout = context.socket(zmq::PUB).expect("PUB");
        kernel_stdout.bind("tcp://127.0.0.1:*").expect("bind");
        let port = |socket: &zmq::Socket| -> u16 {
            let endpoint = socket
                .get_last_endpoint()
                .expect("endpoint")
                .expect("UTF-8");
            endpoint
                .rsplit(':')
                .next()
                .and_then(|port| port.parse().ok())
                .expect("a port")
        };
        let mut streams =
            PtyStreams::connect("127.0.0.1", port(&kernel_stdin), port(&kernel_stdout))
                .expect("connect");

        // PUB/SUB drop what is sent before the subscription arrives: repeat until it does.
        kernel_stdin.set_rcvtimeo(100).expect("timeout");
        let mut received = None;
        for _ in 0..100 {
            streams.send(b"ls\r".to_vec()).expect("send");
            if let Ok(bytes) = kernel_stdin.recv_bytes(0) {
                received = Some(bytes);
                break;
            }
        }
        assert_eq!(received.as_deref(), Some(&b"ls\r"[..]));

        let mut output = None;
        for _ in 0..100 {
            kernel_stdout
                .send_multipart([&b"file.txt\r\n"[..], b"ignored"], 0)
                .expect("publish");
            if let Ok(Some(bytes)) =
                tokio::time::timeout(Duration::from_millis(100), streams.recv()).await
            {
                output = Some(bytes);
                break;
            }
        }
        assert_eq!(output.as_deref(), Some(&b"file.txt\r\n"[..]));
    }
}

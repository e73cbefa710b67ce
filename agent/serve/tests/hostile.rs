//! Hostile clients against the real server loop on 127.0.0.1: heads sent a byte at a time,
//! connections opened and left idle, a shutdown asked for while a request is half sent.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{Script, server};

/// Starts the loop; returns its address, the trigger that stops it, and its task.
async fn start(
    tune: impl FnOnce(&mut glm_serve::Options),
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let s = server(Script::Answer("ok<|user|>".into()), tune);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(glm_serve::serve(listener, s, async {
        let _ = stopped.await;
    }));
    (address, stop, task)
}

/// `GET /health` on a fresh connection; the time it took, or `None` when no answer came within
/// `within`.
fn health(address: SocketAddr, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(within)).ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.ends_with("ok").then(|| started.elapsed())
}

/// Whether the server closed `stream` within `within` (a read returns end of file or a reset).
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_a_byte_at_a_time_is_cut_off() {
    let (address, _stop, _task) =
        start(|o| o.limits.header_timeout = Duration::from_millis(500)).await;
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        let started = Instant::now();
        // A byte every 100 ms: each arrives well within any per-read timeout.
        for byte in b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter() {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            if started.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        (
            closed_within(&mut stream, Duration::from_secs(2)),
            started.elapsed(),
        )
    })
    .await
    .unwrap();
    assert!(
        closed.0,
        "the slow head was still open after {:?}",
        closed.1
    );
    assert!(closed.1 < Duration::from_secs(4), "{:?}", closed.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_cap_wait_and_are_closed_in_time() {
    let (address, _stop, _task) = start(|o| {
        o.limits.header_timeout = Duration::from_millis(500);
        o.limits.max_connections = 32;
    })
    .await;
    let answered = tokio::task::spawn_blocking(move || {
        // Twice the cap, each a half-sent head.
        let idle: Vec<TcpStream> = (0..64)
            .filter_map(|_| {
                let mut s = TcpStream::connect(address).ok()?;
                s.write_all(b"GET /health HTTP/1.1\r\n").ok()?;
                Some(s)
            })
            .collect();
        assert_eq!(idle.len(), 64);
        let answered = health(address, Duration::from_secs(5));
        drop(idle);
        answered
    })
    .await
    .unwrap();
    let took = answered.expect("/health was not answered while idle connections were held");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_even_with_a_request_half_sent() {
    let (address, stop, task) =
        start(|o| o.limits.shutdown_grace = Duration::from_millis(500)).await;
    let mut half = TcpStream::connect(address).unwrap();
    half.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"model\"",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    stop.send(()).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), task).await;
    assert!(ended.is_ok(), "serve did not return");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(half);
}

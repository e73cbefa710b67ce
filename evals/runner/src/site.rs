//! The tool-use suite's web site, served on 127.0.0.1 while a suite runs.

/// The fixture site's pages, served by [`FixtureSite`].
const SITE: &[(&str, &str)] = &[
    ("/", include_str!("../sites/index.html")),
    ("/index.html", include_str!("../sites/index.html")),
    ("/cities.html", include_str!("../sites/cities.html")),
    ("/prices.html", include_str!("../sites/prices.html")),
    ("/history.html", include_str!("../sites/history.html")),
];

/// The tool-use suite's web site, served on 127.0.0.1 while a suite runs; `{site}` in a case's
/// task and reference outputs is its address.
pub struct FixtureSite {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FixtureSite {
    /// Starts serving.
    pub fn start() -> std::io::Result<FixtureSite> {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        listener.set_nonblocking(true)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut reader = BufReader::new(&stream);
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = match SITE.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => ("200 OK", *body),
                    None => ("404 Not Found", "<html><body>Not found</body></html>"),
                };
                let mut out = &stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Ok(FixtureSite { base, stop })
    }

    /// `text` with `{site}` replaced by the address.
    pub fn fill(&self, text: &str) -> String {
        text.replace("{site}", &self.base)
    }
}

impl Drop for FixtureSite {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

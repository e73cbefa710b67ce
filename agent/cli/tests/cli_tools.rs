//! `glm-agent tools list|call` against a page served on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::Value;

use glm_test_support::glm_agent;

/// Serves one fixed HTML page to every request, on a background thread.
fn serve_page(html: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    format!("http://{addr}")
}

const PAGE: &str = "<html><head><title>Local page</title></head><body><nav>menu</nav>\
<h1>Hello</h1><p>A <a href=\"/next\">next page</a>.</p></body></html>";

#[test]
fn list_shows_every_tool_with_its_schema() {
    let out = glm_agent(&["tools", "list"], "");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("python\n  Run Python in a stateful notebook"),
        "{text}"
    );
    assert!(
        text.contains("\n\nsimple_browser\n  Search the web"),
        "{text}"
    );
    let out = glm_agent(&["tools", "list", "--json"], "");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["name"], "python");
    assert_eq!(
        json[0]["parameters"]["required"],
        serde_json::json!(["code"])
    );
    assert_eq!(json[1]["name"], "simple_browser");
    assert_eq!(
        json[1]["parameters"]["oneOf"].as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn call_prints_the_page_as_the_model_sees_it() {
    let base = serve_page(PAGE);
    let args = format!("open_url(\"{base}/x\")");
    let out = glm_agent(
        &[
            "tools",
            "call",
            "simple_browser",
            &args,
            "--allow-host",
            "127.0.0.1",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // The page's own link, to the same site, goes without its host.
    let host = "127.0.0.1";
    assert_eq!(
        text,
        format!(
            "【0†Local page†{host}】\nURL: {base}/x\n\n# Hello\n\nA 【1†next page】.\n\nVisible: 0% - 100%\n"
        )
    );
}

#[test]
fn call_without_allow_host_refuses_with_a_reason() {
    let base = serve_page(PAGE);
    let args = format!("open_url(\"{base}/x\")");
    let out = glm_agent(&["tools", "call", "simple_browser", &args], "");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("Error: `simple_browser` failed: refused to connect to 127.0.0.1: it is a loopback address"),
        "{text}"
    );
    assert!(text.contains("--allow-host 127.0.0.1"));
    assert!(out.stderr.is_empty());
}

#[test]
fn bad_calls() {
    let out = glm_agent(&["tools", "call", "no_such_tool", "{}"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("unknown tool `no_such_tool`; available: python, simple_browser")
    );

    let out = glm_agent(&["tools", "call", "simple_browser", "-"], "fetch(1)");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("Error: the simple_browser call does not parse: unknown function `fetch`"),
        "{text}"
    );

    let out = glm_agent(&["tools", "list", "--search", "bing"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown search backend `bing`"));
}

#[test]
fn python_call_prints_the_notebook_output() {
    let out = glm_agent(&["tools", "call", "python", "print(1+1)"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "2\n");
    let out = glm_agent(
        &["tools", "call", "python", "-"],
        "import sys\nsys.version_info[:2]",
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "(3, 15)\n");
}

/// The guest prints the names of the figures it saved, and it can print anything: a fake
/// `matplotlib.pyplot` naming host files (`/etc/passwd`, `..`) gets none of them taken as
/// figures, named to the model or reported as files.
#[test]
fn forged_figure_paths_name_no_host_file() {
    let cell = "import sys, types\n\
class F:\n    def savefig(self, path):\n        pass\n\
names = ['1.png\\n/mnt/data//etc/passwd\\n/mnt/data/../../../etc/hostname\\n/mnt/data/figure_1_2']\n\
sys.modules['matplotlib.pyplot'] = types.SimpleNamespace(get_fignums=lambda: names, \
figure=lambda n: F(), close=lambda which: None)\nprint('ok')";
    let out = glm_agent(&["tools", "call", "python", "-"], cell);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
    for leaked in ["passwd", "hostname", "[Image]", "figure_"] {
        assert!(!stdout.contains(leaked), "{leaked}: {stdout}");
        assert!(!stderr.contains(leaked), "{leaked}: {stderr}");
    }
}

/// The compiled interpreter is native code loaded with wasmtime's `unsafe` deserialisation: a
/// module in a folder others can write is refused with a clear error, not loaded.
#[cfg(unix)]
#[test]
fn a_compiled_module_others_could_write_is_not_loaded() {
    use std::os::unix::fs::PermissionsExt;
    let real = glm_test_support::cache_dir();
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cache.path().join("python")).unwrap();
    for entry in std::fs::read_dir(real.join("python")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "compiled" {
            std::os::unix::fs::symlink(
                entry.path(),
                cache.path().join("python").join(entry.file_name()),
            )
            .unwrap();
        }
    }
    let module = glm_sandbox::compiled_module_path(cache.path()).unwrap();
    let dir = module.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    // A planted module whose sidecar matches, in a folder anyone can write.
    let planted = b"not a module";
    std::fs::write(&module, planted).unwrap();
    let sum = glm_sandbox::sha256_file(&module).unwrap();
    std::fs::write(module.with_extension("cwasm.sha256"), sum).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = glm_test_support::glm_agent_command()
        .args(["tools", "call", "python", "print(1)", "--offline"])
        .env("GLM_AGENT_CACHE", cache.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("is not yours alone"), "{text}");
}

/// The disk quota holds whatever the names: a hidden file, and a file under a path that is
/// short enough for the guest but past the host's PATH_MAX once the data folder is in front.
/// The cell is stopped and what it wrote is gone; nothing is left on disk.
#[test]
fn the_disk_quota_cannot_be_bypassed_by_dotfiles_or_long_paths() {
    let cells = [
        (
            "dotfile",
            "f = open('/mnt/data/.big', 'wb')\nfor _ in range(300):\n    f.write(b'x' * (1 << 20))"
                .to_owned(),
        ),
        (
            "long path",
            format!(
                "import os\np = '/mnt/data/' + '/'.join(['{}'] * 40)\nos.makedirs(p)\n\
                 f = open(p + '/big', 'wb')\nfor _ in range(300):\n    f.write(b'x' * (1 << 20))",
                "d".repeat(95)
            ),
        ),
    ];
    for (what, cell) in cells {
        let work = tempfile::tempdir().unwrap();
        let measured =
            glm_test_support::run_measured(glm_test_support::glm_agent_command().args([
                "tools",
                "call",
                "python",
                &cell,
                "--work-dir",
                work.path().to_str().unwrap(),
            ]));
        let out = String::from_utf8_lossy(&measured.output.stdout);
        assert!(out.contains("quota"), "{what}: {out}");
        // What the cell made at the top of the data folder is gone (the long path's first
        // folder too: below it, the host could not even look).
        let left: Vec<String> = std::fs::read_dir(work.path().join("data"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n == ".big" || n.starts_with("ddd"))
            .collect();
        println!(
            "{what}: {:.1} s, peak {:.0} MB, left: {left:?}",
            measured.elapsed.as_secs_f64(),
            measured.peak_rss as f64 / 1e6
        );
        assert!(left.is_empty(), "{what}: {left:?} {out}");
    }
}

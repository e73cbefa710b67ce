//! Hostile cells: each must be contained, give a clear result, and leave the session working.

use std::time::{Duration, Instant};

use glm_sandbox::Outcome;

use crate::{ok, session, still_works};

/// Runs `code` in a fresh session (after setting `marker`), checks the output with `check`,
/// then checks the session still works.
fn contained(code: &str, check: impl Fn(&str)) {
    let (mut s, _dir) = session();
    ok(&mut s, "marker = 'kept'");
    let r = s.run_cell(code).unwrap();
    check(&r.output);
    still_works(&mut s);
}

fn has(output: &str, parts: &[&str]) {
    for part in parts {
        assert!(output.contains(part), "expected {part:?} in:\n{output}");
    }
}

#[test]
fn reading_etc_passwd_fails() {
    contained("open('/etc/passwd').read()", |out| {
        has(out, &["Error"]);
        assert!(!out.contains("root:"), "{out}");
    });
}

#[test]
fn dotdot_traversal_stays_inside() {
    contained("open('/mnt/data/../../../etc/passwd').read()", |out| {
        has(out, &["Error"]);
        assert!(!out.contains("root:"));
    });
}

#[test]
fn the_root_is_not_listable() {
    contained("import os\nsorted(os.listdir('/'))", |out| {
        has(out, &["FileNotFoundError"]);
        for host_dir in ["'etc'", "'proc'", "'home'", "'root'", "'var'"] {
            assert!(!out.contains(host_dir), "{host_dir} visible: {out}");
        }
    });
}

#[test]
fn absolute_host_paths_are_invisible() {
    contained(
        "import os\n[os.path.exists(p) for p in ['/etc/hostname', '/proc/self/environ', '/root', '/home', '/usr/bin/python3']]",
        |out| assert_eq!(out, "[False, False, False, False, False]\n"),
    );
}

#[test]
fn symlinks_made_inside_mnt_data_do_not_lead_out() {
    contained(
        "import os\nos.symlink('/etc/passwd', '/mnt/data/abs')\nos.symlink('../../../../etc/passwd', '/mnt/data/rel')\n\
         out = []\nfor p in ['/mnt/data/abs', '/mnt/data/rel']:\n    try:\n        out.append(open(p).read()[:4])\n    except OSError as e:\n        out.append(type(e).__name__)\nout",
        |out| {
            assert!(!out.contains("root"), "{out}");
            has(out, &["Error"]);
        },
    );
}

#[test]
fn the_stdlib_is_read_only() {
    contained("open('/usr/local/lib/evil.py', 'w').write('x')", |out| {
        has(out, &["Error"])
    });
}

#[test]
fn nothing_outside_mnt_data_is_writable() {
    contained(
        "import os\nres = []\nfor p in ['/tmp/x', '/x', '/usr/x', '/mnt/x']:\n    try:\n        open(p, 'w').write('x'); res.append('wrote ' + p)\n    except OSError as e:\n        res.append('refused')\nres",
        |out| assert_eq!(out, "['refused', 'refused', 'refused', 'refused']\n"),
    );
}

#[test]
fn sockets_do_not_connect() {
    contained(
        "import socket\ntry:\n    s = socket.create_connection(('93.184.216.34', 80), timeout=2)\n    print('connected')\nexcept Exception as e:\n    print('refused', type(e).__name__)",
        |out| {
            has(out, &["refused"]);
            assert!(!out.contains("connected"));
        },
    );
}

#[test]
fn urllib_has_no_network() {
    contained(
        "import urllib.request\ntry:\n    urllib.request.urlopen('http://127.0.0.1:1/', timeout=2)\nexcept Exception as e:\n    print('failed', type(e).__name__)",
        |out| has(out, &["failed"]),
    );
}

#[test]
fn subprocess_is_unavailable() {
    contained(
        "import subprocess\ntry:\n    subprocess.run(['ls', '/'])\n    print('ran')\nexcept Exception as e:\n    print('no', type(e).__name__)",
        |out| {
            has(out, &["no"]);
            assert!(!out.contains("ran"));
        },
    );
}

#[test]
fn os_system_fork_exec_and_popen_fail() {
    for (code, want) in [
        ("import os\nos.system('id')", "has no attribute 'system'"),
        ("import os\nos.fork()", "has no attribute 'fork'"),
        (
            "import os\nos.execv('/bin/sh', ['sh'])",
            "has no attribute 'execv'",
        ),
        (
            "import os\nos.popen('id').read()",
            "wasi does not support processes",
        ),
    ] {
        contained(code, |out| has(out, &[want]));
    }
}

#[test]
fn ctypes_cannot_reach_native_code() {
    contained(
        "try:\n    import ctypes\n    ctypes.CDLL('libc.so.6').getpid()\n    print('native')\nexcept Exception as e:\n    print('no', type(e).__name__)",
        |out| {
            has(out, &["no OSError"]);
            assert!(!out.contains("native"));
        },
    );
}

#[test]
fn host_environment_variables_are_invisible() {
    contained(
        "import os\n[k for k in ('PATH', 'USER', 'CARGO', 'RUSTUP_HOME', 'CARGO_MANIFEST_DIR') if k in os.environ]",
        |out| assert_eq!(out, "[]\n"),
    );
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    let (mut s, _dir) = session();
    ok(&mut s, "marker = 'kept'");
    let started = Instant::now();
    let r = s.run_cell("while True:\n    pass").unwrap();
    assert_eq!(r.outcome, Outcome::Timeout(Duration::from_secs(3)));
    assert!(started.elapsed() < Duration::from_secs(8));
    still_works(&mut s);
}

#[test]
fn a_memory_bomb_is_a_memory_error() {
    contained("b = bytearray(1 << 30)", |out| has(out, &["MemoryError"]));
    contained("x = [0] * (1 << 28)", |out| has(out, &["MemoryError"]));
}

#[test]
fn deep_recursion_is_a_recursion_error() {
    contained("def f(n):\n    return f(n + 1)\nf(0)", |out| {
        has(out, &["RecursionError"])
    });
    contained(
        "import json\njson.loads('[' * 100000 + ']' * 100000)",
        |out| has(out, &["RecursionError"]),
    );
}

#[test]
fn an_output_flood_is_capped() {
    let (mut s, _dir) = session();
    ok(&mut s, "marker = 'kept'");
    let r = s.run_cell("print('x' * 10_000_000)").unwrap();
    assert_eq!(r.outcome, Outcome::Completed);
    assert_eq!(r.output.len(), 64 << 10);
    assert!(r.dropped_bytes > 9_000_000);
    still_works(&mut s);
}

#[test]
fn a_huge_file_write_hits_the_disk_quota() {
    let (mut s, _dir) = session();
    ok(
        &mut s,
        "marker = 'kept'\nopen('/mnt/data/small.txt', 'w').write('ok')",
    );
    let r = s
        .run_cell("with open('/mnt/data/big.bin', 'wb') as f:\n    while True:\n        f.write(b'0' * (1 << 20))")
        .unwrap();
    assert_eq!(r.outcome, Outcome::DiskQuota(32 << 20));
    assert!(
        !s.data_dir().join("big.bin").exists(),
        "the cell's file is removed"
    );
    assert!(
        s.data_dir().join("small.txt").exists(),
        "earlier files stay"
    );
    still_works(&mut s);
}

#[test]
fn a_thread_bomb_starts_no_threads() {
    contained(
        "import threading\ntry:\n    for _ in range(1000):\n        threading.Thread(target=lambda: None).start()\n    print('started')\nexcept Exception as e:\n    print('no threads', type(e).__name__)",
        |out| {
            has(out, &["no threads"]);
            assert!(!out.contains("started"));
        },
    );
}

#[test]
fn a_long_sleep_is_cut_at_the_deadline() {
    let (mut s, _dir) = session();
    ok(&mut s, "marker = 'kept'");
    let started = Instant::now();
    let r = s.run_cell("import time\ntime.sleep(3600)").unwrap();
    assert_eq!(r.outcome, Outcome::Timeout(Duration::from_secs(3)));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    still_works(&mut s);
}

#[test]
fn clock_tricks_do_not_extend_the_deadline() {
    let (mut s, _dir) = session();
    ok(&mut s, "marker = 'kept'");
    let r = s
        .run_cell("import time\nend = time.monotonic() + 3600\nwhile time.monotonic() < end:\n    time.sleep(0.001)")
        .unwrap();
    assert_eq!(r.outcome, Outcome::Timeout(Duration::from_secs(3)));
    still_works(&mut s);
}

#[test]
fn exiting_the_interpreter_rolls_back() {
    let (mut s, _dir) = session();
    ok(&mut s, "marker = 'kept'");
    let r = s.run_cell("import os\nos._exit(7)").unwrap();
    assert_eq!(r.outcome, Outcome::Exited(7));
    still_works(&mut s);
    let r = s.run_cell("import sys\nsys.exit(3)").unwrap();
    assert!(
        matches!(r.outcome, Outcome::Exited(3) | Outcome::Completed),
        "{r:?}"
    );
    still_works(&mut s);
}

#[test]
fn another_sessions_files_are_out_of_reach() {
    let (mut a, _da) = session();
    ok(
        &mut a,
        "open('/mnt/data/secret.txt', 'w').write('top secret')",
    );
    let a_path = a.data_dir().join("secret.txt");
    contained(
        &format!(
            "import os\n[os.path.exists(p) for p in ['/mnt/data/secret.txt', {:?}]]",
            a_path.display().to_string()
        ),
        |out| assert_eq!(out, "[False, False]\n"),
    );
}

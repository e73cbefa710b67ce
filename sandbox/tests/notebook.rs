//! Notebook behaviour: state, echo, tracebacks, rollback, packages, plots, isolation, defaults.

use std::time::Duration;

use glm_sandbox::{Limits, Outcome, Python};
use pretty_assertions::assert_eq;

use crate::{ok, python, session, test_limits};

/// A session with a deadline long enough for heavy imports on a loaded machine.
fn roomy_session() -> (glm_sandbox::Session, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        deadline: Duration::from_secs(60),
        ..test_limits()
    };
    let session = python().session(&dir.path().join("data"), limits).unwrap();
    (session, dir)
}

#[test]
fn state_lives_across_cells_and_the_last_expression_is_echoed() {
    let (mut s, _dir) = session();
    assert_eq!(ok(&mut s, "x = 40").output, "");
    assert_eq!(ok(&mut s, "print('two'); x + 2").output, "two\n42\n");
    assert_eq!(
        ok(&mut s, "def f(a):\n    return a * x\nf(2)").output,
        "80\n"
    );
}

#[test]
fn exceptions_print_a_plain_traceback_and_the_session_goes_on() {
    let (mut s, _dir) = session();
    let out = ok(&mut s, "y = 1\n1 / 0").output;
    assert!(out.contains("Traceback (most recent call last)"), "{out}");
    assert!(out.contains("ZeroDivisionError: division by zero"), "{out}");
    assert!(!out.contains('\u{1b}'), "ANSI codes in {out:?}");
    assert_eq!(ok(&mut s, "y").output, "1\n");
}

#[test]
fn a_timeout_rolls_back_to_the_last_good_cell() {
    let (mut s, _dir) = session();
    ok(
        &mut s,
        "import numpy as np\nkeep = np.arange(5)\ncounter = 1",
    );
    let r = s.run_cell("counter = 99\nwhile True:\n    pass").unwrap();
    assert_eq!(r.outcome, Outcome::Timeout(Duration::from_secs(3)));
    // wasm32: numpy's default integer is 32 bits wide.
    assert_eq!(
        ok(&mut s, "counter, keep.sum()").output,
        "(1, np.int32(10))\n"
    );
}

/// An interrupt (Ctrl-C) stops a busy cell and a sleeping one within a second, long before the
/// deadline, and the notebook is as it was before the cell.
#[test]
fn an_interrupt_stops_busy_and_sleeping_cells_and_rolls_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (mut s, _dir) = roomy_session();
    ok(&mut s, "import time\ncounter = 1");
    for cell in [
        "counter = 99\nwhile True:\n    pass",
        "counter = 98\ntime.sleep(45)",
    ] {
        let interrupt = Arc::new(AtomicBool::new(false));
        let flag = interrupt.clone();
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            flag.store(true, Ordering::Relaxed);
            std::time::Instant::now()
        });
        let r = s.run_cell_until(cell, &interrupt).unwrap();
        let stopped = std::time::Instant::now();
        let asked = setter.join().unwrap();
        assert_eq!(r.outcome, Outcome::Interrupted, "{cell}");
        let took = stopped.duration_since(asked);
        println!("interrupt to stop ({cell:?}): {took:?}");
        assert!(took < Duration::from_secs(1), "{cell}: {took:?}");
        assert_eq!(ok(&mut s, "counter").output, "1\n", "{cell}");
    }
}

/// A guest blocked in a host call (a sleep, absolute as CPython's `time.sleep` is, or relative
/// as `select` is) ends at the deadline like a busy loop, and the notebook goes on.
#[test]
fn long_sleeps_end_at_the_deadline() {
    let (mut s, _dir) = session();
    ok(&mut s, "import time, select\nkept = 7");
    for cell in ["time.sleep(10**6)", "select.select([], [], [], 10**6)"] {
        let started = std::time::Instant::now();
        let r = s.run_cell(cell).unwrap();
        let took = started.elapsed();
        assert_eq!(
            r.outcome,
            Outcome::Timeout(Duration::from_secs(3)),
            "{cell}"
        );
        assert!(took < Duration::from_secs(5), "{cell}: {took:?}");
        assert_eq!(ok(&mut s, "kept").output, "7\n");
    }
    // Short sleeps are untouched.
    let started = std::time::Instant::now();
    ok(&mut s, "time.sleep(0.2)");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn numpy_and_pandas_work() {
    let (mut s, _dir) = roomy_session();
    let out = ok(
        &mut s,
        "import numpy as np, pandas as pd\n\
        df = pd.DataFrame({'a': np.arange(4), 'b': list('wxyz')})\n\
        print(df['a'].sum(), df.shape)\n\
        df.to_csv('/mnt/data/out.csv', index=False)",
    )
    .output;
    assert_eq!(out, "6 (4, 2)\n");
    let csv = std::fs::read_to_string(s.data_dir().join("out.csv")).unwrap();
    assert_eq!(csv, "a,b\n0,w\n1,x\n2,y\n3,z\n");
    // wasm32: numpy's default integer is 32 bits wide.
    assert_eq!(ok(&mut s, "np.arange(5).sum()").output, "np.int32(10)\n");
}

#[test]
fn a_plot_becomes_a_file_named_in_the_result() {
    // Importing matplotlib takes seconds on a loaded machine: a roomier deadline.
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        deadline: Duration::from_secs(60),
        ..test_limits()
    };
    let mut s = python().session(&dir.path().join("data"), limits).unwrap();
    let r = ok(
        &mut s,
        "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nNone",
    );
    assert_eq!(r.figures.len(), 1, "{r:?}");
    let png = std::fs::read(&r.figures[0]).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    assert!(r.files.contains(&r.figures[0]));
    // Figures are closed after saving, so the next cell does not save them again.
    assert!(ok(&mut s, "2").figures.is_empty());
}

#[test]
fn relative_paths_land_in_mnt_data() {
    let (mut s, _dir) = session();
    let r = ok(
        &mut s,
        "open('notes.txt', 'w').write('hi')\nimport os\nos.getcwd()",
    );
    assert_eq!(r.output, "'/mnt/data'\n");
    assert_eq!(r.files, vec![s.data_dir().join("notes.txt")]);
}

#[test]
fn sessions_do_not_see_each_other() {
    let handles: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let (mut s, _dir) = session();
                ok(
                    &mut s,
                    &format!("secret = {i}\nopen('/mnt/data/s.txt', 'w').write(str({i}))"),
                );
                for _ in 0..3 {
                    ok(&mut s, "sum(range(100000))");
                }
                let out = ok(
                    &mut s,
                    "import os\nsecret, os.listdir('/mnt/data'), open('/mnt/data/s.txt').read()",
                )
                .output;
                assert_eq!(out, format!("({i}, ['s.txt'], '{i}')\n"));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn defaults_are_pinned() {
    assert_eq!(
        Limits::default(),
        Limits {
            deadline: Duration::from_secs(60),
            memory_bytes: 1 << 30,
            output_bytes: 1 << 20,
            disk_bytes: 256 << 20,
            disk_entries: 10_000,
            table_elements: 100_000,
        }
    );
    assert_eq!(glm_sandbox::WASM_STACK_BYTES, 8 << 20);
    let (mut s, _dir) = session();
    // The whole environment, exactly: nothing of the host's.
    let env = ok(&mut s, "import os\nsorted(os.environ.items())").output;
    assert_eq!(
        env,
        "[('HOME', '/mnt/data'), ('MPLBACKEND', 'Agg'), ('MPLCONFIGDIR', '/mnt/data/.matplotlib'), \
('PYTHONDONTWRITEBYTECODE', '1'), ('PYTHONTZPATH', ''), ('TMPDIR', '/mnt/data/.tmp')]\n"
    );
    let _ = python();
    let _ = test_limits();
}

/// Loading the cached interpreter from several threads at once (an eval running cases
/// concurrently): every load passes its ownership check and works.
#[test]
fn concurrent_loads_all_succeed() {
    let loads: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let python = Python::load(&crate::cache_dir(), &mut || {}).unwrap();
                let dir = tempfile::tempdir().unwrap();
                let mut s = python
                    .session(&dir.path().join("data"), crate::test_limits())
                    .unwrap();
                ok(&mut s, "1 + 1").output
            })
        })
        .collect();
    for load in loads {
        assert_eq!(load.join().unwrap(), "2\n");
    }
}

#[cfg(unix)]
#[test]
fn the_data_folder_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_session, dir) = roomy_session();
    let mode = std::fs::metadata(dir.path().join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
}

//! Notebook sessions: one live interpreter per run, a cell per `turn`, rollback after a trap.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wasmtime::{
    Engine, InstancePre, Linker, Memory, Module, Store, StoreLimits, StoreLimitsBuilder, Trap,
    TypedFunc, UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::disk;
use crate::error::{Error, Result};
use crate::module::{NATIVE_STACK_BYTES, engine, load_or_compile};
use crate::output::CappedOutput;
use crate::runtime::{MANIFEST, Runtime};
use crate::sleep::{CellClock, GuestMonotonic, clamp_waits};

/// How often the deadline clock ticks.
const TICK: Duration = Duration::from_millis(10);

/// Limits of one session. Every field has a safe default ([`Limits::default`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one cell may run (GLM-4's prompt promises 60 s).
    pub deadline: Duration,
    /// The most linear memory the interpreter may grow to.
    pub memory_bytes: usize,
    /// Bytes of output kept per cell; the rest is counted and dropped.
    pub output_bytes: usize,
    /// The most bytes `/mnt/data` may hold.
    pub disk_bytes: u64,
    /// The most entries (files, folders, links) `/mnt/data` may hold.
    pub disk_entries: u64,
    /// Table elements (this build needs at least 47,157).
    pub table_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(60),
            memory_bytes: 1 << 30,
            output_bytes: 1 << 20,
            disk_bytes: 256 << 20,
            disk_entries: 10_000,
            table_elements: 100_000,
        }
    }
}

/// How a cell ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The cell ran (a Python exception is printed in the output and still counts as run).
    Completed,
    /// It ran past the deadline and was stopped; the session went back to the last good cell.
    Timeout(Duration),
    /// `/mnt/data` went over its quota; the files the cell wrote were removed.
    DiskQuota(u64),
    /// The interpreter exited (`sys.exit`, `os._exit`); the session went back to the last good
    /// cell.
    Exited(i32),
    /// The interpreter trapped (the message says why); the session went back to the last good
    /// cell.
    Trapped(String),
    /// The caller stopped it (Ctrl-C); the session went back to the last good cell.
    Interrupted,
}

/// What one cell produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellResult {
    /// stdout and stderr in the order written, at most `output_bytes`.
    pub output: String,
    /// Output bytes dropped past the cap.
    pub dropped_bytes: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Files in `/mnt/data` the cell created or changed (host paths), figures included.
    pub files: Vec<PathBuf>,
    /// Figures saved from open matplotlib figures (host paths).
    pub figures: Vec<PathBuf>,
}

struct Inner {
    engine: Engine,
    pre: InstancePre<State>,
    runtime: Runtime,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// The loaded interpreter; cheap to clone, shared by any number of sessions.
#[derive(Clone)]
pub struct Python {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Python {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Python")
            .field("runtime", &self.inner.runtime.dir)
            .finish_non_exhaustive()
    }
}

struct State {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
    clock: CellClock,
}

impl Python {
    /// Loads the installed runtime from `cache`, compiling it once if needed (`on_compile` is
    /// told first: it takes about a minute).
    pub fn load(cache: &Path, on_compile: &mut dyn FnMut()) -> Result<Python> {
        let runtime = Runtime::locate(cache)?;
        let engine = engine()?;
        let module = load_or_compile(&engine, &runtime, cache, on_compile)?;
        let pre = link(&engine, &module)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(&engine, &ticker_stop);
        Ok(Python {
            inner: Arc::new(Inner {
                engine,
                pre,
                runtime,
                ticker_stop,
            }),
        })
    }

    /// Starts a session whose `/mnt/data` is `data_dir` on the host (created if missing, 0700:
    /// the notebook's files are the user's alone).
    pub fn session(&self, data_dir: &Path, limits: Limits) -> Result<Session> {
        let mut folder = std::fs::DirBuilder::new();
        folder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
        folder.create(data_dir).map_err(Error::io(data_dir))?;
        let output = CappedOutput::new(limits.output_bytes);
        let mut live = self.instantiate(data_dir, &limits, &output)?;
        live.call_initialize()?;
        let mut session = Session {
            python: self.clone(),
            data_dir: data_dir.to_path_buf(),
            limits,
            output,
            live: Some(live),
            snapshot: Vec::new(),
            cells: 0,
        };
        session.setup()?;
        Ok(session)
    }

    fn instantiate(&self, data_dir: &Path, limits: &Limits, output: &CappedOutput) -> Result<Live> {
        let runtime = &self.inner.runtime;
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .env("HOME", "/mnt/data")
            .env("TMPDIR", "/mnt/data/.tmp")
            .env("MPLCONFIGDIR", "/mnt/data/.matplotlib")
            .env("MPLBACKEND", "Agg")
            .env("PYTHONTZPATH", "")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .monotonic_clock(GuestMonotonic);
        let lib = runtime.lib_dir();
        wasi.preopened_dir(&lib, "/usr/local/lib", FsPerms::ReadOnly)
            .map_err(Error::wasm("opening the stdlib folder"))?;
        let mpl_guest = format!(
            "/usr/local/lib/{}/matplotlib/mpl-data",
            MANIFEST.stdlib_guest_name
        );
        wasi.preopened_dir(runtime.mpl_data_dir(), mpl_guest, FsPerms::ReadOnly)
            .map_err(Error::wasm("opening matplotlib's data"))?;
        wasi.preopened_dir(data_dir, "/mnt/data", FsPerms::ReadWrite)
            .map_err(Error::wasm("opening /mnt/data"))?;
        let state = State {
            wasi: wasi.build_p1(),
            clock: CellClock::default(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .table_elements(limits.table_elements)
                .instances(1)
                .build(),
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limits);
        let instance = self
            .inner
            .pre
            .instantiate(&mut store)
            .map_err(Error::wasm("starting the Python runtime"))?;
        let func = |name: &'static str| Error::Wasm {
            context: "the Python runtime lacks an export",
            message: name.to_owned(),
        };
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| func("memory"))?;
        let turn = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, "turn")
            .map_err(|_| func("turn"))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "host_alloc")
            .map_err(|_| func("host_alloc"))?;
        let initialize = instance
            .get_typed_func::<(), ()>(&mut store, "_initialize")
            .ok();
        Ok(Live {
            store,
            memory,
            turn,
            alloc,
            initialize,
        })
    }
}

fn link(engine: &Engine, module: &Module) -> Result<InstancePre<State>> {
    let mut linker: Linker<State> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi)
        .map_err(Error::wasm("linking WASI"))?;
    // Waits in host calls end with the cell: `poll_oneoff` watches the deadline.
    clamp_waits(&mut linker, |s: &mut State| &mut s.clock)
        .map_err(Error::wasm("linking the guest's waits"))?;
    // The runtime's one custom import, for calls from Python to the host: none are offered.
    linker
        .func_wrap("host", "call", |_: i32, _: i32, _: i32, _: i32| -> i32 {
            -1
        })
        .map_err(Error::wasm("linking host::call"))?;
    linker
        .instantiate_pre(module)
        .map_err(Error::wasm("linking the Python runtime"))
}

/// One thread per loaded interpreter advances the epoch clock every [`TICK`].
fn spawn_ticker(engine: &Engine, stop: &Arc<AtomicBool>) {
    let engine = engine.clone();
    let stop = stop.clone();
    let _ = std::thread::Builder::new()
        .name("glm-sandbox-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        });
}

/// A live instance.
struct Live {
    store: Store<State>,
    memory: Memory,
    turn: TypedFunc<(i32, i32), i32>,
    alloc: TypedFunc<i32, i32>,
    initialize: Option<TypedFunc<(), ()>>,
}

impl Live {
    fn call_initialize(&mut self) -> Result<()> {
        self.store.set_epoch_deadline(1 << 40);
        if let Some(init) = &self.initialize {
            init.call(&mut self.store, ())
                .map_err(Error::wasm("initialising the interpreter"))?;
        }
        Ok(())
    }

    /// Runs one cell on this thread. `stop` ends it at the next tick.
    fn run(
        &mut self,
        code: &str,
        deadline: Instant,
        stop: Arc<AtomicBool>,
    ) -> wasmtime::Result<i32> {
        self.store.data_mut().clock.until = Some(deadline);
        self.store.data_mut().clock.stop = Some(stop.clone());
        self.store.set_epoch_deadline(1);
        self.store.epoch_deadline_callback(move |_| {
            if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        let data = code.as_bytes();
        let len = i32::try_from(data.len())?;
        let ptr = self.alloc.call(&mut self.store, len)?;
        let start = usize::try_from(ptr as u32)?;
        self.memory.write(&mut self.store, start, data)?;
        self.turn.call(&mut self.store, (ptr, len))
    }
}

/// Bytes compared and copied as one piece when the rollback point is refreshed.
const SNAPSHOT_CHUNK: usize = 64 << 10;

/// Makes `snapshot` equal to `data`, the linear memory after a cell: the buffer is reused (a
/// fresh 40+ MiB allocation per cell costs page faults), only the chunks that differ are
/// written (a cell changes little of the interpreter's memory, and reading both is cheaper than
/// rewriting all), and the work is split over the machine's cores.
fn refresh_snapshot(snapshot: &mut Vec<u8>, data: &[u8]) {
    if snapshot.len() > data.len() {
        snapshot.clear();
    }
    let old = snapshot.len();
    // Memory only grows: what is new is copied whole.
    snapshot.extend_from_slice(&data[old..]);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let per = old
        .div_ceil(threads)
        .next_multiple_of(SNAPSHOT_CHUNK)
        .max(SNAPSHOT_CHUNK);
    let sync = |dst: &mut [u8], src: &[u8]| {
        for (d, s) in dst
            .chunks_mut(SNAPSHOT_CHUNK)
            .zip(src.chunks(SNAPSHOT_CHUNK))
        {
            if d != s {
                d.copy_from_slice(s);
            }
        }
    };
    std::thread::scope(|scope| {
        let mut parts = snapshot[..old].chunks_mut(per).zip(data[..old].chunks(per));
        let first = parts.next();
        let mut here = Vec::new();
        for (dst, src) in parts {
            // A part whose thread cannot start is done on this one.
            let (tx, rx) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                let (dst, src): (&mut [u8], &[u8]) = rx.recv().unwrap_or_default();
                sync(dst, src);
            });
            match spawned {
                Ok(_) => {
                    let _ = tx.send((dst, src));
                }
                Err(_) => here.push((dst, src)),
            }
        }
        for (dst, src) in first.into_iter().chain(here) {
            sync(dst, src);
        }
    });
}

/// A stateful notebook: variables live from cell to cell.
pub struct Session {
    python: Python,
    data_dir: PathBuf,
    limits: Limits,
    output: CappedOutput,
    live: Option<Live>,
    /// Linear memory after the last good cell.
    snapshot: Vec<u8>,
    cells: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("data_dir", &self.data_dir)
            .field("cells", &self.cells)
            .finish_non_exhaustive()
    }
}

/// What a worker thread hands back.
type Ran = (Live, wasmtime::Result<i32>);

impl Session {
    /// The session's `/mnt/data` on the host.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes of linear memory the interpreter holds now.
    pub fn memory_bytes(&self) -> usize {
        self.snapshot.len()
    }

    fn setup(&mut self) -> Result<()> {
        let setup = "__import__('os').chdir('/mnt/data')";
        let result = self.run_raw(setup, true, &AtomicBool::new(false))?;
        match result.outcome {
            Outcome::Completed => Ok(()),
            other => Err(Error::Wasm {
                context: "starting the notebook",
                message: format!("{other:?}: {}", result.output),
            }),
        }
    }

    /// Runs one cell. Traps, deadlines and exits are outcomes, not errors; an error means
    /// the sandbox itself is broken.
    ///
    /// The cell and the turn that saves its open figures are one step of the notebook: linear
    /// memory is copied once, after both, and a failure of either restores the notebook to the
    /// last good cell (a cell whose figures cannot be saved in time is rolled back with them).
    pub fn run_cell(&mut self, code: &str) -> Result<CellResult> {
        self.run_cell_until(code, &AtomicBool::new(false))
    }

    /// [`Session::run_cell`], stopped within a tenth of a second once `interrupt` is set (a
    /// busy cell at the next clock tick, a sleeping one by being left behind): the outcome is
    /// [`Outcome::Interrupted`] and the notebook is as it was before the cell.
    pub fn run_cell_until(&mut self, code: &str, interrupt: &AtomicBool) -> Result<CellResult> {
        self.cells += 1;
        let mut result = self.run_raw(code, false, interrupt)?;
        if result.outcome == Outcome::Completed {
            let saver = format!(
                "def __glm_save_figures(k):\n    import sys\n    plt = sys.modules.get('matplotlib.pyplot')\n    if plt is None:\n        return\n    for n in plt.get_fignums():\n        path = f'/mnt/data/figure_{{k}}_{{n}}.png'\n        plt.figure(n).savefig(path)\n        print(path)\n    plt.close('all')\n__glm_save_figures({}); del __glm_save_figures\n",
                self.cells
            );
            let saved = self.run_raw(&saver, true, interrupt)?;
            if saved.outcome != Outcome::Completed {
                // Restored to the last good cell, which was before this one.
                result.outcome = saved.outcome;
                return Ok(result);
            }
            // The guest prints what it saved and can print anything: only names of this
            // cell's figures are taken, as regular files directly in the data folder.
            let prefix = format!("/mnt/data/figure_{}_", self.cells);
            result.figures = saved
                .output
                .lines()
                .filter(|l| {
                    l.strip_prefix(&prefix)
                        .and_then(|rest| rest.strip_suffix(".png"))
                        .is_some_and(|n| {
                            !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit())
                        })
                })
                .filter_map(|l| l.strip_prefix("/mnt/data/"))
                .map(|name| self.data_dir.join(name))
                .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file()))
                .collect();
            result.figures.dedup();
            for figure in &result.figures {
                if !result.files.contains(figure) {
                    result.files.push(figure.clone());
                }
            }
        }
        Ok(result)
    }

    /// Runs `code` in one guest turn; when it completes and `keep`, its memory becomes the
    /// rollback point. A turn that does not complete restores the last rollback point.
    fn run_raw(&mut self, code: &str, keep: bool, interrupt: &AtomicBool) -> Result<CellResult> {
        let before = disk::scan(&self.data_dir, self.limits.disk_entries, true);
        let deadline = Instant::now() + self.limits.deadline;
        let stop = Arc::new(AtomicBool::new(false));
        let mut live = self.live.take().ok_or(Error::Wasm {
            context: "running a cell",
            message: "the session has no live interpreter".into(),
        })?;
        let (tx, rx) = mpsc::channel::<Ran>();
        let (code_owned, stop_worker) = (code.to_owned(), stop.clone());
        std::thread::Builder::new()
            .name("glm-sandbox-cell".into())
            .stack_size(NATIVE_STACK_BYTES)
            .spawn(move || {
                let result = live.run(&code_owned, deadline, stop_worker);
                let _ = tx.send((live, result));
            })
            .map_err(Error::io(&self.data_dir))?;
        let (ran, over_quota) = self.wait(&rx, deadline, &stop, interrupt);
        let interrupted = ran.is_none() && interrupt.load(Ordering::Relaxed);
        let (output, dropped_bytes) = self.output.take();
        // Checked again at the end: a cell can write and finish between two looks.
        let after = disk::scan(&self.data_dir, self.limits.disk_entries, true);
        let over_quota = over_quota || self.over_limits(&after);
        let mut files: Vec<PathBuf> = disk::changed(&before, &after)
            .into_iter()
            .filter(|rel| !disk::hidden(rel))
            .map(|rel| self.data_dir.join(rel))
            .collect();
        let outcome = match ran {
            Some((live, Ok(_status))) if !over_quota => {
                if keep {
                    refresh_snapshot(&mut self.snapshot, live.memory.data(&live.store));
                }
                self.live = Some(live);
                Outcome::Completed
            }
            _ if interrupted => Outcome::Interrupted,
            Some((_, Err(e))) if interrupt.load(Ordering::Relaxed) && is_interrupt(&e) => {
                Outcome::Interrupted
            }
            Some((_, Err(e))) if !over_quota => classify(&e, self.limits.deadline),
            Some(_) | None if over_quota => Outcome::DiskQuota(self.limits.disk_bytes),
            Some(_) | None => Outcome::Timeout(self.limits.deadline),
        };
        if outcome != Outcome::Completed {
            if let Outcome::DiskQuota(_) = outcome {
                disk::undo(&self.data_dir, &before, &after);
                files.clear();
            }
            self.restore()?;
        }
        Ok(CellResult {
            output,
            dropped_bytes,
            outcome,
            files,
            figures: Vec::new(),
        })
    }

    /// Waits for the worker, watching the disk quota and `interrupt`; gives up a little after
    /// the deadline (a guest blocked in a host call, such as a long sleep, never reaches the
    /// next tick), and at once when interrupted (the worker is told to stop and left behind).
    fn wait(
        &self,
        rx: &mpsc::Receiver<Ran>,
        deadline: Instant,
        stop: &AtomicBool,
        interrupt: &AtomicBool,
    ) -> (Option<Ran>, bool) {
        let give_up = deadline + Duration::from_secs(2);
        let mut over_quota = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(ran) => return (Some(ran), over_quota),
                Err(mpsc::RecvTimeoutError::Disconnected) => return (None, over_quota),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if !over_quota
                && self.over_limits(&disk::scan(&self.data_dir, self.limits.disk_entries, false))
            {
                over_quota = true;
                stop.store(true, Ordering::Relaxed);
            }
            if interrupt.load(Ordering::Relaxed) {
                stop.store(true, Ordering::Relaxed);
                // A busy guest traps at the next tick; a sleeping one is left behind.
                return (rx.recv_timeout(TICK * 2).ok(), over_quota);
            }
            if Instant::now() >= give_up {
                stop.store(true, Ordering::Relaxed);
                return (None, over_quota);
            }
        }
    }

    /// Whether the data folder is over its byte or entry limit (or too deep to walk).
    fn over_limits(&self, scan: &disk::Scan) -> bool {
        scan.bytes > self.limits.disk_bytes || scan.entries > self.limits.disk_entries || scan.cut
    }

    /// A fresh instance with the memory of the last good cell written back.
    fn restore(&mut self) -> Result<()> {
        let mut live = self
            .python
            .instantiate(&self.data_dir, &self.limits, &self.output)?;
        let have = live.memory.data_size(&live.store);
        let want = self.snapshot.len();
        if want > have {
            let pages = ((want - have) as u64).div_ceil(64 * 1024);
            live.memory
                .grow(&mut live.store, pages)
                .map_err(Error::wasm("restoring memory"))?;
        }
        live.memory
            .write(&mut live.store, 0, &self.snapshot)
            .map_err(|e| Error::Wasm {
                context: "restoring memory",
                message: e.to_string(),
            })?;
        self.live = Some(live);
        Ok(())
    }
}

/// Whether the guest was stopped by the clock (the deadline or a stop request).
fn is_interrupt(error: &wasmtime::Error) -> bool {
    matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt))
}

fn classify(error: &wasmtime::Error, deadline: Duration) -> Outcome {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return Outcome::Exited(exit.0);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Outcome::Timeout(deadline),
        Some(Trap::StackOverflow) => Outcome::Trapped("the wasm stack overflowed".into()),
        Some(trap) => Outcome::Trapped(trap.to_string()),
        None => Outcome::Trapped(format!("{error:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::{SNAPSHOT_CHUNK, refresh_snapshot};

    fn memory(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn a_refreshed_snapshot_equals_the_memory_whatever_changed() {
        let odd = 5 * SNAPSHOT_CHUNK + 123;
        let mut snapshot = Vec::new();
        // First copy.
        let mut mem = memory(odd, 1);
        refresh_snapshot(&mut snapshot, &mem);
        assert_eq!(snapshot, mem);
        // Single bytes changed in the first, a middle and the last (partial) chunk.
        for at in [0, 2 * SNAPSHOT_CHUNK + 7, odd - 1] {
            mem[at] ^= 0xff;
            refresh_snapshot(&mut snapshot, &mem);
            assert_eq!(snapshot, mem, "after a change at {at}");
        }
        // Everything changed.
        let mem = memory(odd, 9);
        refresh_snapshot(&mut snapshot, &mem);
        assert_eq!(snapshot, mem);
        // Memory grew (and its old part changed too).
        let mut grown = memory(odd + 3 * SNAPSHOT_CHUNK + 1, 4);
        grown[10] = 0;
        refresh_snapshot(&mut snapshot, &grown);
        assert_eq!(snapshot, grown);
        // A smaller memory (a new instance) replaces it.
        let small = memory(1000, 2);
        refresh_snapshot(&mut snapshot, &small);
        assert_eq!(snapshot, small);
        // Nothing to copy.
        refresh_snapshot(&mut snapshot, &[]);
        assert!(snapshot.is_empty());
    }
}

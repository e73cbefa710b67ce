//! Waits inside the guest end by the cell's deadline. The interpreter is stopped at its
//! deadline by epoch interruption, which only fires while guest code runs: a guest blocked in
//! a host call (`time.sleep(10**6)`, `select` with a long timeout) would sleep on. Every wait
//! of WASI preview 1 goes through `poll_oneoff`, so this module provides that import itself:
//! clocks are waited on here, in slices that watch the cell's deadline and stop flag, and file
//! descriptors are reported ready at once (the guest has only regular files, its output
//! streams and an empty stdin, which WASI also reports ready).
//!
//! Layouts (preview 1): a subscription is 48 bytes: userdata (u64) at 0, tag (u8: 0 clock,
//! 1 fd_read, 2 fd_write) at 8; for a clock its id (u32) at 16, timeout in nanoseconds (u64) at
//! 24, precision at 32, flags (u16, bit 0: absolute) at 40; for a descriptor its number (u32)
//! at 16. An event is 32 bytes: userdata at 0, error (u16) at 8, type (u8) at 10, and for a
//! descriptor the bytes ready (u64) at 16 and flags (u16) at 24.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use wasmtime::{Caller, Extern, Linker};

/// Where the guests' monotonic clock counts from: one origin for the process, so that a
/// notebook restored into a fresh instance never sees its clock go back.
pub(crate) fn origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// What the wait needs to know of the running cell.
#[derive(Default)]
pub(crate) struct CellClock {
    /// When the cell must end.
    pub until: Option<Instant>,
    /// Set when the cell is to stop early (over its disk limits).
    pub stop: Option<Arc<AtomicBool>>,
}

impl CellClock {
    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// The guest's monotonic clock: nanoseconds since [`origin`], so that an absolute monotonic
/// time the guest asks to wait for can be turned back into an instant here.
pub(crate) struct GuestMonotonic;

impl wasmtime_wasi::HostMonotonicClock for GuestMonotonic {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from(origin().elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

const SUBSCRIPTION: usize = 48;
const EVENT: usize = 32;
const EINVAL: u16 = 28;
const EFAULT: i32 = 21;

/// Defines `poll_oneoff` in `linker` (shadowing WASI's own). `clock` finds the cell's clock in
/// the store's data.
pub(crate) fn clamp_waits<T: 'static>(
    linker: &mut Linker<T>,
    clock: fn(&mut T) -> &mut CellClock,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "poll_oneoff",
        move |mut caller: Caller<'_, T>,
              subs: i32,
              events: i32,
              n: i32,
              nevents: i32|
              -> wasmtime::Result<i32> {
            Ok(poll(&mut caller, clock, subs, events, n, nevents))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// One subscription, read.
enum Sub {
    Clock { userdata: u64, at: Option<Instant> },
    Descriptor { userdata: u64, kind: u8 },
}

fn read_subs(bytes: &[u8]) -> Vec<Sub> {
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    bytes
        .chunks_exact(SUBSCRIPTION)
        .map(|s| {
            let userdata = u64_at(s, 0);
            match s[8] {
                0 => {
                    let id = u32::from_le_bytes(s[16..20].try_into().unwrap_or([0; 4]));
                    let timeout = Duration::from_nanos(u64_at(s, 24));
                    let absolute = s[40] & 1 == 1;
                    let now = Instant::now();
                    let at = match (id, absolute) {
                        (0 | 1, false) => now.checked_add(timeout),
                        (1, true) => origin().checked_add(timeout),
                        (0, true) => {
                            let since_epoch = SystemTime::now()
                                .duration_since(SystemTime::UNIX_EPOCH)
                                .unwrap_or_default();
                            now.checked_add(timeout.saturating_sub(since_epoch))
                        }
                        // CPU-time clocks cannot be waited on.
                        _ => Some(now),
                    };
                    Sub::Clock { userdata, at }
                }
                kind => Sub::Descriptor { userdata, kind },
            }
        })
        .collect()
}

fn event(userdata: u64, error: u16, kind: u8) -> [u8; EVENT] {
    let mut e = [0u8; EVENT];
    e[0..8].copy_from_slice(&userdata.to_le_bytes());
    e[8..10].copy_from_slice(&error.to_le_bytes());
    e[10] = kind;
    e
}

fn poll<T: 'static>(
    caller: &mut Caller<'_, T>,
    clock: fn(&mut T) -> &mut CellClock,
    subs: i32,
    events: i32,
    n: i32,
    nevents: i32,
) -> i32 {
    let Some(memory) = caller.get_export("memory").and_then(Extern::into_memory) else {
        return EFAULT;
    };
    let (subs, events, n, nevents) = (
        subs as u32 as usize,
        events as u32 as usize,
        n as u32 as usize,
        nevents as u32 as usize,
    );
    if n == 0 {
        return EINVAL.into();
    }
    let mut bytes = vec![0u8; n.saturating_mul(SUBSCRIPTION)];
    if memory.read(&mut *caller, subs, &mut bytes).is_err() {
        return EFAULT;
    }
    let subs = read_subs(&bytes);
    let mut out: Vec<[u8; EVENT]> = subs
        .iter()
        .filter_map(|s| match s {
            Sub::Descriptor { userdata, kind } if *kind == 1 || *kind == 2 => {
                Some(event(*userdata, 0, *kind))
            }
            Sub::Descriptor { userdata, kind } => Some(event(*userdata, EINVAL, *kind)),
            Sub::Clock { .. } => None,
        })
        .collect();
    if out.is_empty() {
        // Only clocks: wait for the first, or for the end of the cell, whichever comes first.
        // `None`: a time too far to represent, never reached.
        let first: Option<Instant> = subs
            .iter()
            .filter_map(|s| match s {
                Sub::Clock { at, .. } => *at,
                Sub::Descriptor { .. } => None,
            })
            .min();
        loop {
            let cell = clock(caller.data_mut());
            let now = Instant::now();
            if first.is_some_and(|f| now >= f)
                || cell.stopped()
                || cell.until.is_some_and(|u| now >= u)
            {
                break;
            }
            let mut slice = Duration::from_millis(50);
            if let Some(f) = first {
                slice = slice.min(f - now);
            }
            if let Some(until) = cell.until {
                slice = slice.min(until.saturating_duration_since(now));
            }
            std::thread::sleep(slice);
        }
        let now = Instant::now();
        for s in &subs {
            if let Sub::Clock { userdata, at } = s
                && (at.is_some_and(|a| a <= now) || out.is_empty())
            {
                out.push(event(*userdata, 0, 0));
            }
        }
    }
    let written: Vec<u8> = out.iter().flatten().copied().collect();
    if memory.write(&mut *caller, events, &written).is_err()
        || memory
            .write(&mut *caller, nevents, &(out.len() as u32).to_le_bytes())
            .is_err()
    {
        return EFAULT;
    }
    0
}

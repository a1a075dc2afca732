//! Watching the running script from other threads.
//!
//! A script runs on its client's thread while the other clients' threads
//! go on reading commands. [`Watch`] is what they share: when the running
//! script started (so that, past `busy-reply-threshold`, other clients
//! get `-BUSY`), whether it is a function, whether it has written, and
//! whether SCRIPT KILL or FUNCTION KILL asked it to stop. The Lua side is
//! an instruction-count hook ([`install`]) that raises Redis's error once
//! a kill is asked for, or once FUNCTION LOAD's deadline has passed.

use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::{Lua, ffi};

/// How many Lua instructions run between two looks at the watch (Redis
/// looks every 100000 too).
const EVERY: c_int = 100_000;

/// How long a script runs on its connection's worker before the worker's
/// other connections move to another thread (`handoff`).
const HANDOFF_AFTER: Duration = Duration::from_millis(5);

/// Where the watch's address is in the Lua registry.
const KEY: &std::ffi::CStr = c"ember.watch";

/// Redis's errors for commands refused while a script is busy.
pub(crate) const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// The same while a function runs.
pub(crate) const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// What the running script's thread and the others share.
#[derive(Debug)]
pub(crate) struct Watch {
    epoch: Instant,
    /// Microseconds from `epoch` to the running script's start, plus one;
    /// zero when none runs.
    started: AtomicU64,
    /// The running script is a function (FCALL), not EVAL's.
    function: AtomicBool,
    /// It has run a write command: it can no longer be killed.
    wrote: AtomicBool,
    /// SCRIPT KILL or FUNCTION KILL asked it to stop.
    kill: AtomicBool,
    /// FUNCTION LOAD's deadline, microseconds from `epoch` plus one; zero
    /// when no library loads.
    load_deadline: AtomicU64,
    /// The running function's name and command, for FUNCTION STATS.
    current: Mutex<Option<(String, Vec<Bytes>)>>,
    /// The hook looks at every line (it stopped a script): the engine
    /// puts it back to counting after the run.
    line_mode: AtomicBool,
    /// `busy-reply-threshold` in milliseconds.
    slow_ms: AtomicU64,
    /// The running script was logged as slow.
    slow_logged: AtomicBool,
}

thread_local! {
    /// The SHA1 of the EVAL script running on this thread, for the log.
    static EVAL_SHA: std::cell::Cell<[u8; 40]> = const { std::cell::Cell::new([0; 40]) };
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            epoch: Instant::now(),
            started: AtomicU64::new(0),
            function: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            kill: AtomicBool::new(false),
            load_deadline: AtomicU64::new(0),
            current: Mutex::new(None),
            line_mode: AtomicBool::new(false),
            slow_ms: AtomicU64::new(5000),
            slow_logged: AtomicBool::new(false),
        }
    }
}

/// Why SCRIPT KILL or FUNCTION KILL did not stop the script.
pub(crate) type KillRefusal = &'static str;

impl Watch {
    fn micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX - 1) + 1
    }

    /// A script starts (EVAL's if not `function`); `name` and `command`
    /// are what FUNCTION STATS shows of it.
    pub(crate) fn begin(&self, function: bool, name: &str, command: Vec<Bytes>) {
        self.function.store(function, Ordering::Relaxed);
        self.slow_logged.store(false, Ordering::Relaxed);
        self.wrote.store(false, Ordering::Relaxed);
        self.kill.store(false, Ordering::Relaxed);
        if function {
            *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((name.to_string(), command));
        }
        self.started.store(self.micros(), Ordering::Release);
    }

    /// The script ended.
    pub(crate) fn end(&self) {
        self.started.store(0, Ordering::Release);
        self.kill.store(false, Ordering::Relaxed);
        // Only a function sets it.
        if self.function.load(Ordering::Relaxed) {
            *self.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// An EVAL script starts: its SHA1, named by the slow-script log line
    /// should it run long (a copy on this thread, no allocation).
    pub(crate) fn begin_eval(&self, sha: &str) {
        let mut b = [0u8; 40];
        let n = sha.len().min(40);
        b[..n].copy_from_slice(&sha.as_bytes()[..n]);
        EVAL_SHA.set(b);
        self.begin(false, "", Vec::new());
    }

    /// `busy-reply-threshold`, for the slow-script log line.
    pub(crate) fn set_threshold(&self, ms: i64) {
        self.slow_ms
            .store(u64::try_from(ms).unwrap_or(0), Ordering::Relaxed);
    }

    /// Redis's warning, once per script, when it has run past
    /// `busy-reply-threshold` (from then on other clients get `-BUSY`).
    fn log_if_slow(&self, running: Duration) {
        let ms = self.slow_ms.load(Ordering::Relaxed);
        if running < Duration::from_millis(ms) || self.slow_logged.swap(true, Ordering::Relaxed) {
            return;
        }
        let (command, name) = if self.is_function() {
            let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
            let name = current.as_ref().map(|(n, _)| n.clone()).unwrap_or_default();
            ("FUNCTION KILL", name)
        } else {
            let sha = EVAL_SHA.get();
            ("SCRIPT KILL", String::from_utf8_lossy(&sha).into_owned())
        };
        tracing::warn!(
            "Slow script detected: still in execution after {} milliseconds. You can try killing the script using the {command} command. Script name is: {name}.",
            running.as_millis()
        );
    }

    /// The running script wrote.
    pub(crate) fn wrote(&self) {
        self.wrote.store(true, Ordering::Relaxed);
    }

    /// How long the running script has run, if one runs.
    pub(crate) fn running_for(&self) -> Option<Duration> {
        let started = self.started.load(Ordering::Acquire);
        (started != 0).then(|| Duration::from_micros(self.micros().saturating_sub(started)))
    }

    /// Whether the running script is a function.
    pub(crate) fn is_function(&self) -> bool {
        self.function.load(Ordering::Relaxed)
    }

    /// The error other clients get while the script is busy.
    pub(crate) fn busy_error(&self) -> &'static str {
        if self.is_function() {
            BUSY_FUNCTION
        } else {
            BUSY_EVAL
        }
    }

    /// The running function's name and command, and how long it has run.
    pub(crate) fn current(&self) -> Option<(String, Vec<Bytes>, Duration)> {
        let running = self.running_for()?;
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current
            .as_ref()
            .map(|(name, cmd)| (name.clone(), cmd.clone(), running))
    }

    /// SCRIPT KILL (`function` false) or FUNCTION KILL: asks the running
    /// script to stop, or says why not, in Redis's words.
    pub(crate) fn kill(&self, function: bool) -> Result<(), KillRefusal> {
        if self.running_for().is_none() {
            return Err("NOTBUSY No scripts in execution right now.");
        }
        if self.wrote.load(Ordering::Relaxed) {
            return Err(
                "UNKILLABLE Sorry the script already executed write commands against \
                 the dataset. You can either wait the script termination or kill the server \
                 in a hard way using the SHUTDOWN NOSAVE command.",
            );
        }
        let running_function = self.is_function();
        if !function && running_function {
            return Err(BUSY_FUNCTION);
        }
        if function && !running_function {
            return Err(BUSY_EVAL);
        }
        self.kill.store(true, Ordering::Release);
        Ok(())
    }

    /// SHUTDOWN NOSAVE: the running script stops at its next look at the
    /// watch, written or not (nothing is saved after it).
    pub(crate) fn force_kill(&self) {
        if self.running_for().is_some() {
            self.kill.store(true, Ordering::Release);
        }
    }

    /// Redis's `-BUSY` error for other clients' commands, once the running
    /// script has run `threshold` or longer.
    pub(crate) fn busy(&self, threshold: Duration) -> Option<&'static str> {
        let running = self.running_for()?;
        (running >= threshold).then(|| self.busy_error())
    }

    /// A library starts loading: it must be done within `timeout`.
    pub(crate) fn begin_load(&self, timeout: Option<Duration>) {
        let deadline = timeout.map_or(0, |t| {
            self.micros()
                .saturating_add(u64::try_from(t.as_micros()).unwrap_or(u64::MAX))
        });
        self.load_deadline.store(deadline, Ordering::Relaxed);
    }

    /// The library is loaded.
    pub(crate) fn end_load(&self) {
        self.load_deadline.store(0, Ordering::Relaxed);
    }

    /// Whether the hook was set to look at every line since last asked.
    pub(crate) fn take_line_mode(&self) -> bool {
        self.line_mode.swap(false, Ordering::Relaxed)
    }

    /// The error the hook raises now, if any.
    fn interrupt(&self) -> Option<&'static str> {
        if self.kill.load(Ordering::Acquire) && self.started.load(Ordering::Relaxed) != 0 {
            tracing::warn!("Lua script killed by user with SCRIPT KILL.");
            return Some("ERR Script killed by user with SCRIPT KILL...");
        }
        let deadline = self.load_deadline.load(Ordering::Relaxed);
        if deadline != 0 && self.micros() > deadline {
            return Some("ERR FUNCTION LOAD timeout");
        }
        None
    }
}

/// Sets the hook of `lua`'s main state to look at `watch` every
/// [`EVERY`] instructions. `watch` must outlive the state (the engine
/// keeps it).
pub(super) fn install(lua: &Lua, watch: &Arc<Watch>) -> mlua::Result<()> {
    let ptr = Arc::as_ptr(watch).cast_mut().cast::<std::ffi::c_void>();
    // SAFETY: stores a light userdata in the registry and sets the hook;
    // the pointer stays valid while the engine (which owns an `Arc` of
    // it) lives, and the hook only runs while the state does.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            ffi::lua_pushlightuserdata(state, ptr);
            ffi::lua_setfield(state, ffi::LUA_REGISTRYINDEX, KEY.as_ptr());
            ffi::lua_sethook(state, Some(hook), ffi::LUA_MASKCOUNT, EVERY);
        })
    }
}

/// The instruction hook: raises Redis's error table when the watch says
/// to stop, and from then on looks at every line, so that a script that
/// catches the error with `pcall` is stopped again at once (Redis does
/// the same).
unsafe extern "C-unwind" fn hook(state: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) {
    // SAFETY: called by Lua on a live state with its debug record; the
    // registry entry is the watch `install` stored, alive while the state
    // is.
    unsafe {
        // Ember's own Lua (the error handler, the pcall wrapper) runs on:
        // raising there again would fail the handler itself.
        if ffi::lua_getinfo(state, c"S".as_ptr(), ar) != 0 {
            let source = std::ffi::CStr::from_ptr((*ar).source);
            if source.to_bytes().starts_with(b"=ember") {
                return;
            }
        }
        ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, KEY.as_ptr());
        let ptr = ffi::lua_touserdata(state, -1).cast::<Watch>().cast_const();
        ffi::lua_settop(state, -2);
        let Some(watch) = ptr.as_ref() else {
            return;
        };
        let Some(text) = watch.interrupt() else {
            if let Some(running) = watch.running_for() {
                watch.log_if_slow(running);
                if running >= HANDOFF_AFTER {
                    handoff();
                }
            }
            return;
        };
        watch.line_mode.store(true, Ordering::Relaxed);
        ffi::lua_sethook(
            state,
            Some(hook),
            ffi::LUA_MASKLINE | ffi::LUA_MASKCOUNT,
            EVERY,
        );
        ffi::lua_createtable(state, 0, 1);
        ffi::lua_pushlstring(state, text.as_ptr().cast::<c_char>(), text.len());
        ffi::lua_setfield(state, -2, c"err".as_ptr());
        ffi::lua_error(state);
    }
}

/// Lets the other connections of this worker run on another thread while
/// the script goes on here, so that they are served (with `-BUSY`, SCRIPT
/// KILL, SHUTDOWN NOSAVE) meanwhile. The worker's runtime is a
/// multi-threaded one (of one thread): `block_in_place` gives its core to a
/// fresh thread; the short sleep lets that thread take it before this one
/// would take it back. Once handed off, further calls return at once. On
/// a single-threaded runtime nothing can move, and nothing is done.
fn handoff() {
    if crate::server::can_hand_off() {
        tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(1)));
    }
}

/// Puts the hook back to counting instructions (after a stop made it
/// look at every line).
pub(super) fn rearm(lua: &Lua) {
    // SAFETY: only sets the hook of the main state.
    let _ = unsafe {
        lua.exec_raw::<()>((), |state| {
            ffi::lua_sethook(state, Some(hook), ffi::LUA_MASKCOUNT, EVERY);
        })
    };
}

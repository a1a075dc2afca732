//! Lua scripting: the engine behind EVAL, EVALSHA and SCRIPT.
//!
//! One Lua 5.1 state serves the whole server, as in Redis. Ember runs
//! commands on many threads, so the state sits behind a mutex
//! ([`Scripts::engine`]): one script runs at a time, and a script waits
//! for the one before it. The command side (`cmd/scripting.rs`) holds
//! every shard while a script runs, so a script is atomic across shards;
//! it takes the shards before this mutex, which is the one lock order
//! that cannot deadlock with EXEC (whose queue may hold an EVAL).
//!
//! The state is sandboxed as Redis 7.0 sets it up (see `prelude.lua`):
//! the base, table, string and math libraries, plus `cjson`, `cmsgpack`,
//! `struct` and `bit` written in Rust; no `dofile`, `loadfile`, `print`
//! or `debug`; globals read-only (writing any is an error, reading a
//! missing one too); the library tables and `redis` read-only.
//!
//! The engine knows nothing of the keyspace: a script's `redis.call`
//! reaches the server through the [`Host`] the caller passes to
//! [`Engine::run`]. This module refuses to run commands itself.

mod convert;
pub(crate) mod functions;
mod libs;
mod msgpack;
mod structs;
pub(crate) mod watch;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use mlua::{Function, Lua, LuaOptions, StdLib, Table, Value};
use resp::{Frame, Request};

pub(crate) use convert::format_g17;
pub(crate) use functions::Functions;
pub(crate) use watch::Watch;

/// The version scripts see in `redis.REDIS_VERSION`.
const VERSION: &str = "7.0.15";
/// The same, as `0x00MMmmpp`.
const VERSION_NUM: u32 = 0x0007_000f;

/// The flags a script declares on its shebang line
/// (`#!lua flags=no-writes,...`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    /// The script has a shebang: its flags count (without one, Redis runs
    /// it in the compatible mode, which checks each command instead).
    pub(crate) shebang: bool,
    pub(crate) no_writes: bool,
    pub(crate) allow_oom: bool,
    pub(crate) allow_stale: bool,
    pub(crate) no_cluster: bool,
    pub(crate) allow_cross_slot: bool,
}

impl Flags {
    /// The flags of a function registered with `bits` (the prelude's
    /// `FLAG_BITS`): a function's flags always count, as a shebang's do.
    pub(crate) fn from_bits(bits: u32) -> Flags {
        Flags {
            shebang: true,
            no_writes: bits & 1 != 0,
            allow_oom: bits & 2 != 0,
            allow_stale: bits & 4 != 0,
            no_cluster: bits & 8 != 0,
            allow_cross_slot: bits & 16 != 0,
        }
    }

    /// The flags' names, in Redis's order, for FUNCTION LIST.
    pub(crate) fn names(self) -> Vec<&'static str> {
        [
            (self.no_writes, "no-writes"),
            (self.allow_oom, "allow-oom"),
            (self.allow_stale, "allow-stale"),
            (self.no_cluster, "no-cluster"),
            (self.allow_cross_slot, "allow-cross-slot-keys"),
        ]
        .into_iter()
        .filter(|&(on, _)| on)
        .map(|(_, name)| name)
        .collect()
    }
}

/// Parses the shebang line of `body`, if any: the flags, and where the
/// code starts (the line's newline, which keeps line numbers right).
pub(crate) fn shebang(body: &[u8]) -> Result<(Flags, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((Flags::default(), 0));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split_ascii_whitespace();
    let engine = parts.next().unwrap_or("");
    if engine != "#!lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = Flags {
        shebang: true,
        ..Flags::default()
    };
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {part}"));
        };
        for flag in list.split(',').filter(|_| !list.is_empty()) {
            match flag {
                "no-writes" => flags.no_writes = true,
                "allow-oom" => flags.allow_oom = true,
                "allow-stale" => flags.allow_stale = true,
                "no-cluster" => flags.no_cluster = true,
                "allow-cross-slot-keys" => flags.allow_cross_slot = true,
                _ => return Err(format!("ERR Unexpected flag in script shebang: {flag}")),
            }
        }
    }
    Ok((flags, end))
}

/// The SHA1 of `body` in lowercase hex: a script's name in the cache.
pub(crate) fn sha1hex(body: &[u8]) -> String {
    // By hand: the digest's `Display` goes through the formatter five
    // times, on the path of every EVAL.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha1_smol::Sha1::from(body).digest().bytes();
    let mut hex = String::with_capacity(40);
    for b in digest {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 15)]));
    }
    hex
}

/// What a script's `redis.*` functions need from the server.
pub(crate) trait Host {
    /// Runs a command for `redis.call`/`redis.pcall` and returns its
    /// reply, in RESP3 if `resp3`; `Err` is a refusal before the command
    /// ran ("Unknown Redis command called from script", or `-CODE text`).
    fn call(&mut self, req: &Request, resp3: bool) -> Result<Frame, String>;
    /// `redis.log`: level 0 (debug) to 3 (warning).
    fn log(&mut self, level: u8, message: &str);
    /// `redis.set_repl`: where the script's effects go from now on.
    fn set_repl(&mut self, flags: u8);
}

/// A cached script.
#[derive(Debug)]
pub(crate) struct Script {
    flags: Flags,
    func: Function,
}

impl Script {
    /// Its shebang's flags.
    pub(crate) fn flags(&self) -> Flags {
        self.flags
    }
}

/// The Lua state and the scripts compiled in it.
#[derive(Debug)]
pub(crate) struct Engine {
    lua: Lua,
    /// The table of raw functions `prelude.lua` builds on.
    raw: Table,
    /// The real globals, behind the read-only view scripts see.
    globals: Table,
    scripts: HashMap<String, Script>,
    /// The scripts' bodies' lengths, for INFO.
    bodies: usize,
    /// What the instruction hook reads (its address is in the registry);
    /// dropped after `lua`, whose hook may read it until then.
    watch: Arc<Watch>,
    /// The running script's host, for `raw.call` and the others.
    slot: Arc<Slot>,
    /// The prelude's `raw.run`.
    run: Function,
    /// The registry slot of the [`entry`] closure.
    entry: std::ffi::c_int,
}

/// The host of the running script, for the `raw.*` functions made once
/// with the state: set for the length of a run ([`Slot::enter`]), empty
/// otherwise.
#[derive(Debug, Default)]
struct Slot {
    host: Cell<Option<std::ptr::NonNull<dyn Host>>>,
    /// The script chose RESP3 with `redis.setresp(3)`.
    resp3: Cell<bool>,
    /// A reply `fast_call` leaves for the mlua side to convert.
    pending: RefCell<Option<Result<Frame, String>>>,
    /// A bulk reply `fast_call` is pushing (kept here, not in its frame,
    /// should pushing it raise a memory error).
    bulk: RefCell<Option<Bytes>>,
}

// SAFETY: the slot is only read by the engine's Lua functions, which run
// on the thread that runs the script, inside `Engine::run_func`, while the
// host it points to is borrowed there; mlua's `send` feature asks callbacks
// to be `Send`, and the engine (with its slot) moves between threads only
// between runs, when the slot is empty.
unsafe impl Send for Slot {}
// SAFETY: as above: the engine is used by one thread at a time (its
// mutex), and the slot is empty outside a run.
unsafe impl Sync for Slot {}

/// Clears the slot when the run ends, however it ends.
struct Entered<'s>(&'s Slot);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.host.set(None);
    }
}

impl Slot {
    /// Runs a command for the running script, if a script runs.
    fn call(&self, req: &Request) -> Result<Frame, String> {
        let resp3 = self.resp3.get();
        self.with_host(|host| host.call(req, resp3))
            .unwrap_or_else(|| Err("This Redis command is not allowed from script".into()))
    }

    /// Points the slot at `host` until the guard drops.
    fn enter<'s>(&'s self, host: &mut dyn Host) -> Entered<'s> {
        let ptr = std::ptr::NonNull::from(host);
        // SAFETY: only the lifetime of the trait object changes; the
        // pointer is cleared by `Entered` before the borrow of `host`
        // ends (`run_func` holds both for the whole run).
        let ptr: std::ptr::NonNull<dyn Host> = unsafe { std::mem::transmute(ptr) };
        self.host.set(Some(ptr));
        self.resp3.set(false);
        Entered(self)
    }

    /// Runs `f` on the running script's host, if a script runs.
    fn with_host<T>(&self, f: impl FnOnce(&mut dyn Host) -> T) -> Option<T> {
        let mut ptr = self.host.get()?;
        // SAFETY: set by `enter` from a live `&mut dyn Host` that
        // `run_func` keeps borrowed until the slot is cleared; the Lua
        // functions calling this run inside that window, on that thread,
        // and never reenter it (a script cannot run a script).
        Some(f(unsafe { ptr.as_mut() }))
    }
}

/// A function a library registered while it loaded.
#[derive(Debug)]
pub(crate) struct Registered {
    /// Its name as registered.
    pub(crate) name: String,
    pub(crate) desc: Option<Bytes>,
    pub(crate) flags: Flags,
    pub(crate) func: Function,
}

/// How a script receives its keys and arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Calling {
    /// EVAL: the globals `KEYS` and `ARGV`.
    Globals,
    /// FCALL: two arguments, the keys and the arguments.
    Arguments,
}

/// What a raw function returns first when it fails (then the error): a
/// light userdata at this static's address, which no script can forge.
static FAIL_MARK: u8 = 0;

fn fail_mark() -> Value {
    Value::LightUserData(mlua::LightUserData(
        std::ptr::from_ref(&FAIL_MARK).cast_mut().cast(),
    ))
}

/// The C function scripts call for each `redis.*` and library function:
/// it calls its upvalue with its arguments and returns what that
/// returned, unless that begins with the fail mark, in which case it
/// raises the error that follows (a string gets the caller's position,
/// as `luaL_error` gives it). Being a C function, it keeps the script's
/// frame on a tail call (`return redis.call(...)`), so errors point at
/// the script's line as in Redis, and it raises tables, which a Rust
/// callback cannot.
unsafe extern "C-unwind" fn trampoline(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    use mlua::ffi;
    // SAFETY: a C function called by Lua with its upvalue set by
    // `wrap`; no Rust value with a destructor lives in this frame when
    // `lua_call` or `lua_error` unwinds it.
    unsafe {
        let n = ffi::lua_gettop(state);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_insert(state, 1);
        ffi::lua_call(state, n, ffi::LUA_MULTRET);
        let results = ffi::lua_gettop(state);
        let mark = std::ptr::from_ref(&FAIL_MARK).cast_mut().cast();
        if results >= 1
            && ffi::lua_type(state, 1) == ffi::LUA_TLIGHTUSERDATA
            && ffi::lua_touserdata(state, 1) == mark
        {
            ffi::lua_settop(state, 2);
            if ffi::lua_type(state, 2) == ffi::LUA_TSTRING {
                ffi::luaL_where(state, 1);
                ffi::lua_insert(state, 2);
                ffi::lua_concat(state, 2);
            }
            ffi::lua_error(state);
        }
        results
    }
}

/// What `redis.call` and `redis.pcall` return for a command's `reply`:
/// its Lua value (and nil), or, for an error when `raise`, the fail mark
/// and the error table.
fn reply_to_lua(
    lua: &Lua,
    raise: bool,
    reply: Result<Frame, String>,
) -> mlua::Result<(Value, Value)> {
    match reply {
        Err(text) => {
            let t = convert::error_table(lua, text.as_bytes())?;
            t.raw_set("ignore_error_stats_update", true)?;
            Ok(if raise {
                (fail_mark(), Value::Table(t))
            } else {
                (Value::Table(t), Value::Nil)
            })
        }
        Ok(frame) => {
            let is_error = matches!(frame, Frame::Error(_) | Frame::BulkError(_));
            let value = convert::frame_to_lua(lua, &frame)?;
            Ok(if raise && is_error {
                (fail_mark(), value)
            } else {
                (value, Value::Nil)
            })
        }
    }
}

/// What [`fast_call`] pushes, holding nothing that needs dropping.
enum Push {
    Number(f64),
    /// The bulk in the slot's `bulk`, at this address and length.
    Bulk(*const u8, usize),
    False,
    /// The reply is in the slot's `pending`, for its mlua side.
    Pending,
}

/// `redis.call(...)` (`raw.call`): [`fast_call`], raising a failure as
/// the trampoline does. A C function the script calls directly, so an
/// error names the script's line, even on a tail call.
unsafe extern "C-unwind" fn redis_call(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    use mlua::ffi;
    // SAFETY: a C function Lua calls with `fast_call`'s upvalues; nothing
    // with a destructor lives in this frame when `lua_error` unwinds it.
    unsafe {
        ffi::lua_pushboolean(state, 1);
        ffi::lua_insert(state, 1);
        let results = fast_call(state);
        let first = ffi::lua_gettop(state) - results + 1;
        let mark = std::ptr::from_ref(&FAIL_MARK).cast_mut().cast();
        if results >= 2
            && ffi::lua_type(state, first) == ffi::LUA_TLIGHTUSERDATA
            && ffi::lua_touserdata(state, first) == mark
        {
            if ffi::lua_type(state, -1) == ffi::LUA_TSTRING {
                ffi::luaL_where(state, 1);
                ffi::lua_insert(state, -2);
                ffi::lua_concat(state, 2);
            }
            ffi::lua_error(state);
        }
        results
    }
}

/// `redis.pcall(...)` (`raw.pcall`): [`fast_call`]'s first result, an
/// error table for a failure.
unsafe extern "C-unwind" fn redis_pcall(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    use mlua::ffi;
    // SAFETY: as `redis_call`.
    unsafe {
        ffi::lua_pushboolean(state, 0);
        ffi::lua_insert(state, 1);
        let results = fast_call(state);
        if results > 1 {
            ffi::lua_settop(state, ffi::lua_gettop(state) - (results - 1));
        }
        1
    }
}

/// `call(raise, ...)`: runs a command for `redis.call`/`redis.pcall`
/// straight from the Lua stack, and pushes the commonest replies (numbers,
/// bulk strings, nil) itself; other arguments and replies go through its
/// mlua upvalues (3: the call from a table of arguments, 2: the
/// conversion of a pending reply), which say what Redis says. Upvalue 1
/// is the engine's slot. Its results are the top values of the stack, as
/// many as it returns: the value and nil, or the fail mark and the error.
///
/// # Safety
/// Called by [`redis_call`] and [`redis_pcall`], on their Lua stack.
unsafe fn fast_call(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    use mlua::ffi;
    // SAFETY: a C function Lua calls with the upvalues `host_functions`
    // set; every Rust value with a destructor is dropped inside
    // `fast_reply` before anything here may raise a Lua error.
    unsafe {
        let top = ffi::lua_gettop(state);
        let simple = top >= 2
            && (2..=top)
                .all(|i| matches!(ffi::lua_type(state, i), ffi::LUA_TSTRING | ffi::LUA_TNUMBER));
        if !simple {
            // The arguments as a table, to the mlua side.
            ffi::lua_pushvalue(state, ffi::lua_upvalueindex(3));
            ffi::lua_pushvalue(state, 1);
            ffi::lua_pushinteger(state, (top - 1).max(0) as ffi::lua_Integer);
            ffi::lua_createtable(state, (top - 1).max(0), 0);
            for i in 2..=top {
                ffi::lua_pushvalue(state, i);
                ffi::lua_rawseti(state, -2, (i - 1) as ffi::lua_Integer);
            }
            ffi::lua_call(state, 3, 2);
            return 2;
        }
        let slot = &*ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)).cast::<Slot>();
        match fast_reply(state, slot, top) {
            Push::Number(n) => ffi::lua_pushnumber(state, n),
            Push::Bulk(ptr, len) => {
                ffi::lua_pushlstring(state, ptr.cast(), len);
                slot.bulk.borrow_mut().take();
            }
            Push::False => ffi::lua_pushboolean(state, 0),
            Push::Pending => {
                ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
                ffi::lua_pushvalue(state, 1);
                ffi::lua_call(state, 1, 2);
                return 2;
            }
        }
        ffi::lua_pushnil(state);
        2
    }
}

/// A command's arguments written one after the other in `buf`, each
/// ending at its entry of `ends`, as slices.
fn split_args<'a>(buf: &'a [u8], ends: &[usize]) -> smallvec::SmallVec<[&'a [u8]; 8]> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let arg = &buf[start..end];
            start = end;
            arg
        })
        .collect()
}

/// The Rust half of [`fast_call`]: the arguments at 2..=`top` (strings
/// and numbers) as a request, run; the reply, as what to push.
///
/// # Safety
/// `state` is the running Lua state, with those arguments on its stack.
unsafe fn fast_reply(state: *mut mlua::ffi::lua_State, slot: &Slot, top: std::ffi::c_int) -> Push {
    use mlua::ffi;
    let mut buf = Vec::with_capacity(64);
    let mut ends: smallvec::SmallVec<[usize; 8]> = smallvec::SmallVec::new();
    for i in 2..=top {
        // SAFETY: index `i` holds a string or a number (checked by the
        // caller); a string's bytes live while it is on the stack.
        unsafe {
            if ffi::lua_type(state, i) == ffi::LUA_TSTRING {
                let mut len = 0;
                let ptr = ffi::lua_tolstring(state, i, &mut len);
                buf.extend_from_slice(std::slice::from_raw_parts(ptr.cast::<u8>(), len));
            } else {
                buf.extend_from_slice(format_g17(ffi::lua_tonumber(state, i)).as_bytes());
            }
        }
        ends.push(buf.len());
    }
    let argv = split_args(&buf, &ends);
    let req = Request::from_args(&argv);
    let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slot.call(&req)))
        .unwrap_or_else(|_| Err("-ERR the command failed".into()));
    match reply {
        Ok(Frame::Integer(i)) => Push::Number(i as f64),
        Ok(Frame::NullBulk | Frame::NullArray) => Push::False,
        Ok(Frame::Bulk(b)) => {
            let at = (b.as_ptr(), b.len());
            *slot.bulk.borrow_mut() = Some(b);
            Push::Bulk(at.0, at.1)
        }
        other => {
            *slot.pending.borrow_mut() = Some(other);
            Push::Pending
        }
    }
}

/// What [`entry`] runs: how the script takes its keys and arguments.
struct Job<'a> {
    calling: Calling,
    keys: &'a [Bytes],
    argv: &'a [Bytes],
}

/// Runs a script: called (protected) with the prelude's `run`, the
/// script's function, the real globals and a [`Job`] as light userdata;
/// sets `KEYS` and `ARGV` (its upvalues name them) in the globals, or
/// passes the two tables to a function, and returns `run`'s two results.
unsafe extern "C-unwind" fn entry(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    use mlua::ffi;
    // SAFETY: called by `Engine::run_func`'s `lua_pcall` with a `Job` that
    // outlives the call; nothing with a destructor lives in this frame
    // when an error unwinds it.
    unsafe {
        let job = &*ffi::lua_touserdata(state, 4).cast::<Job<'_>>();
        let push_array = |items: &[Bytes]| {
            ffi::lua_createtable(state, items.len() as std::ffi::c_int, 0);
            for (i, item) in items.iter().enumerate() {
                ffi::lua_pushlstring(state, item.as_ptr().cast(), item.len());
                ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
            }
        };
        ffi::lua_settop(state, 3);
        match job.calling {
            Calling::Globals => {
                ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
                push_array(job.keys);
                ffi::lua_rawset(state, 3);
                ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
                push_array(job.argv);
                ffi::lua_rawset(state, 3);
                ffi::lua_settop(state, 2);
                ffi::lua_call(state, 1, 2);
            }
            Calling::Arguments => {
                ffi::lua_settop(state, 2);
                push_array(job.keys);
                push_array(job.argv);
                ffi::lua_call(state, 3, 2);
            }
        }
        2
    }
}

/// `f` behind the trampoline.
fn wrap(lua: &Lua, f: Function) -> mlua::Result<Function> {
    // SAFETY: pushes a C closure over the one argument on the stack.
    unsafe {
        lua.exec_raw(f, |state| {
            mlua::ffi::lua_pushcclosure(state, trampoline, 1);
        })
    }
}

impl Engine {
    /// A fresh, sandboxed state with no scripts, watched by nobody.
    #[cfg(test)]
    pub(crate) fn new() -> mlua::Result<Engine> {
        Engine::watched(Arc::new(Watch::default()))
    }

    /// A fresh, sandboxed state with no scripts, whose scripts stop when
    /// `watch` says so.
    pub(crate) fn watched(watch: Arc<Watch>) -> mlua::Result<Engine> {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG;
        // SAFETY: the debug library is only reachable by the prelude, which
        // keeps it in a local and removes it from the globals.
        let lua = unsafe { Lua::unsafe_new_with(libs, LuaOptions::new()) };
        let raw = lua.create_table()?;
        raw.set("version", VERSION)?;
        raw.set("version_num", VERSION_NUM)?;
        raw.set(
            "sha1hex",
            lua.create_function(|_, v: Value| {
                let bytes = match &v {
                    Value::String(s) => s.as_bytes().to_vec(),
                    Value::Number(n) => lua_number_text(*n).into_bytes(),
                    Value::Integer(i) => lua_number_text(*i as f64).into_bytes(),
                    _ => Vec::new(),
                };
                Ok(sha1hex(&bytes))
            })?,
        )?;
        libs::register(&lua, &raw, fail_mark)?;
        raw.set(
            "wrap",
            lua.create_function(|lua, f: Function| wrap(lua, f))?,
        )?;
        let slot = Arc::new(Slot::default());
        host_functions(&lua, &raw, &slot)?;
        let globals = lua.globals();
        let prelude = lua
            .load(include_str!("prelude.lua"))
            .set_name("=ember")
            .into_function()?;
        let (view, _real): (Table, Table) = prelude.call((raw.clone(), fail_mark()))?;
        lua.set_globals(view)?;
        watch::install(&lua, &watch)?;
        let run: Function = raw.raw_get("run")?;
        // SAFETY: makes the entry closure over the two names it sets, and
        // keeps it in the registry for the engine's life.
        let entry = unsafe {
            lua.exec_raw::<i64>((), |state| {
                use mlua::ffi;
                ffi::lua_pushstring(state, c"KEYS".as_ptr());
                ffi::lua_pushstring(state, c"ARGV".as_ptr());
                ffi::lua_pushcclosure(state, entry, 2);
                let at = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                ffi::lua_pushinteger(state, at as ffi::lua_Integer);
            })?
        };
        Ok(Engine {
            lua,
            raw,
            globals,
            scripts: HashMap::new(),
            bodies: 0,
            watch,
            slot,
            run,
            entry: entry as std::ffi::c_int,
        })
    }

    /// Runs a library's code (after its shebang line) as FUNCTION LOAD
    /// does: compiled as `user_function`, run with the load-time globals
    /// (`redis.register_function`, `redis.log` and nothing else), and
    /// stopped by the watch's load deadline. The functions it registered,
    /// or Redis's error.
    pub(crate) fn load_library(&mut self, code: &[u8]) -> Result<Vec<Registered>, String> {
        let func = self
            .lua
            .load(code)
            .set_name("@user_function")
            .into_function()
            .map_err(|e| {
                let text = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                format!("ERR Error compiling function: {text}")
            })?;
        let registered: RefCell<Vec<Registered>> = RefCell::new(Vec::new());
        let load_mode: Function = self.raw.raw_get("load_mode").map_err(lua_err)?;
        load_mode.call::<()>(true).map_err(lua_err)?;
        let result = self.lua.scope(|scope| {
            let register = scope.create_function(
                |_, (name, f, desc, bits): (mlua::String, Function, Option<mlua::String>, u32)| {
                    let name = name.to_str()?.to_string();
                    if !functions::valid_name(name.as_bytes()) {
                        return Ok(Some(functions::BAD_NAME));
                    }
                    let mut list = registered.borrow_mut();
                    if list.iter().any(|r| r.name.eq_ignore_ascii_case(&name)) {
                        return Ok(Some("Function already exists in the library"));
                    }
                    list.push(Registered {
                        name,
                        desc: desc.map(|d| Bytes::copy_from_slice(&d.as_bytes())),
                        flags: Flags::from_bits(bits),
                        func: f,
                    });
                    Ok(None)
                },
            )?;
            self.raw.raw_set("register", register)?;
            let run: Function = self.raw.raw_get("run")?;
            let (ok, value): (bool, Value) = run.call(func)?;
            Ok((ok, value))
        });
        let _ = self.raw.raw_set("register", Value::Nil);
        let _ = load_mode.call::<()>(false);
        let (ok, value) = result.map_err(lua_err)?;
        if !ok {
            let msg = match &value {
                Value::Table(t) => t.raw_get::<Option<String>>("err").ok().flatten(),
                _ => None,
            }
            .unwrap_or_else(|| "ERR execution failure".into());
            return Err(format!("ERR Error registering functions: {msg}"));
        }
        let list = registered.into_inner();
        if list.is_empty() {
            return Err("ERR No functions registered".into());
        }
        Ok(list)
    }

    /// Runs the function `func` (registered as `name`) with `keys` and
    /// `argv` as its two arguments: its reply, or an error frame (and
    /// whether a command the function called raised that error, counted
    /// then).
    pub(crate) fn call_function(
        &self,
        name: &str,
        func: &Function,
        keys: &[Bytes],
        argv: &[Bytes],
        host: &mut dyn Host,
    ) -> (Frame, bool) {
        self.run_func(name, func, Calling::Arguments, keys, argv, host)
            .unwrap_or_else(|e| (Frame::Error(format!("ERR {e}").into()), false))
    }

    /// Compiles `body` and caches it under its SHA1, which it returns (a
    /// script already cached is not compiled again).
    pub(crate) fn load(&mut self, body: &[u8]) -> Result<String, String> {
        let sha = sha1hex(body);
        if self.scripts.contains_key(&sha) {
            return Ok(sha);
        }
        let (flags, start) = shebang(body)?;
        let func = self
            .lua
            .load(&body[start..])
            .set_name("@user_script")
            .into_function()
            .map_err(|e| {
                let text = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                format!("ERR Error compiling script (new function): {text}")
            })?;
        self.bodies += body.len();
        self.scripts.insert(sha.clone(), Script { flags, func });
        Ok(sha)
    }

    /// Whether `sha` is cached.
    pub(crate) fn exists(&self, sha: &str) -> bool {
        self.scripts.contains_key(sha)
    }

    /// How many scripts are cached.
    pub(crate) fn len(&self) -> usize {
        self.scripts.len()
    }

    /// Memory the Lua state uses.
    pub(crate) fn used_memory(&self) -> usize {
        self.lua.used_memory()
    }

    /// The cached script `sha`, if it is cached: looked up once per run,
    /// for its flags and then [`Engine::run_script`].
    pub(crate) fn script(&self, sha: &str) -> Option<&Script> {
        self.scripts.get(sha)
    }

    /// Runs `script`, found by [`Engine::script`] under `sha`, with `KEYS`
    /// and `ARGV`; its reply (an error frame if it failed, and whether a
    /// command the script called raised that error, counted then), for a
    /// script that chose RESP3 with `redis.setresp(3)` in RESP3 types.
    pub(crate) fn run_script(
        &self,
        sha: &str,
        script: &Script,
        keys: &[Bytes],
        argv: &[Bytes],
        host: &mut dyn Host,
    ) -> (Frame, bool) {
        self.run_func(sha, &script.func, Calling::Globals, keys, argv, host)
            .unwrap_or_else(|e| (Frame::Error(format!("ERR {e}").into()), false))
    }

    /// Runs the cached script `sha`, as [`Engine::run_script`] does (the
    /// tests' shorthand).
    #[cfg(test)]
    pub(crate) fn run(
        &self,
        sha: &str,
        keys: &[Bytes],
        argv: &[Bytes],
        host: &mut dyn Host,
    ) -> (Frame, bool) {
        let Some(script) = self.scripts.get(sha) else {
            let text = "NOSCRIPT No matching script. Please use EVAL.";
            return (Frame::Error(text.into()), false);
        };
        self.run_script(sha, script, keys, argv, host)
    }

    fn run_func(
        &self,
        sha: &str,
        func: &Function,
        calling: Calling,
        keys: &[Bytes],
        argv: &[Bytes],
        host: &mut dyn Host,
    ) -> mlua::Result<(Frame, bool)> {
        let _running = self.slot.enter(host);
        let job = Job {
            calling,
            keys,
            argv,
        };
        // One protected call of the [`entry`] closure, which builds KEYS
        // and ARGV and runs the prelude's `run` (the script under
        // `xpcall`): mlua's tables, strings and `Function::call` cost
        // twice as much.
        let (ok, value): (bool, Value) = self.lua.exec_raw_lua(|raw| {
            use mlua::ffi;
            let state = raw.state();
            // SAFETY: the stack is checked for room and put back as it
            // was; `entry` reads `job` (alive for the call) at index 4.
            unsafe {
                let top = ffi::lua_gettop(state);
                if ffi::lua_checkstack(state, 8) == 0 {
                    return Err(mlua::Error::runtime("the Lua stack is full"));
                }
                ffi::lua_rawgeti(
                    state,
                    ffi::LUA_REGISTRYINDEX,
                    self.entry as ffi::lua_Integer,
                );
                let pushed = (|| {
                    raw.push(&self.run)?;
                    raw.push(func)?;
                    raw.push(&self.globals)
                })();
                if let Err(e) = pushed {
                    ffi::lua_settop(state, top);
                    return Err(e);
                }
                ffi::lua_pushlightuserdata(state, std::ptr::from_ref(&job).cast_mut().cast());
                let out = if ffi::lua_pcall(state, 4, 2, 0) == 0 {
                    let ok = ffi::lua_toboolean(state, -2) != 0;
                    Ok((ok, raw.pop_value()))
                } else {
                    Err(match raw.pop_value() {
                        Value::String(e) => mlua::Error::runtime(e.to_string_lossy()),
                        other => mlua::Error::runtime(format!("{other:?}")),
                    })
                };
                ffi::lua_settop(state, top);
                out
            }
        })?;
        // An error a command the script called raised was counted then.
        let counted = matches!(&value, Value::Table(t)
            if t.raw_get::<bool>("ignore_error_stats_update").unwrap_or(false));
        let result = if ok {
            Ok((
                convert::lua_to_frame(&value, self.slot.resp3.get()),
                counted,
            ))
        } else {
            Ok((script_error(sha, &value), counted))
        };
        if self.watch.take_line_mode() {
            watch::rearm(&self.lua);
        }
        // No step of the collector every 50 runs, as Redis takes: Lua's
        // incremental collector paces itself by what scripts allocate,
        // and a forced step marks this state's 90 KB (Redis's is 32 KB)
        // whatever the runs left: 1,700 instructions a run of a one-INCR
        // script, measured with callgrind.
        result
    }
}

/// Makes `raw.call`, `raw.setresp`, `raw.log` and `raw.set_repl`, once
/// per state: they reach the running script's host through `slot`.
fn host_functions(lua: &Lua, raw: &Table, slot: &Arc<Slot>) -> mlua::Result<()> {
    let s = slot.clone();
    let call = lua.create_function(move |lua, (raise, n, args): (bool, usize, Table)| {
        let failed = |t: Table| {
            Ok(if raise {
                (fail_mark(), Value::Table(t))
            } else {
                (Value::Table(t), Value::Nil)
            })
        };
        if n == 0 {
            return failed(convert::error_table(
                lua,
                b"Please specify at least one argument for this redis lib call",
            )?);
        }
        // The arguments, one after the other in one buffer.
        let mut buf = Vec::with_capacity(64);
        let mut ends: smallvec::SmallVec<[usize; 8]> = smallvec::SmallVec::with_capacity(n);
        for i in 1..=n {
            match args.raw_get::<Value>(i)? {
                Value::String(s) => buf.extend_from_slice(&s.as_bytes()),
                Value::Number(n) => buf.extend_from_slice(format_g17(n).as_bytes()),
                Value::Integer(i) => buf.extend_from_slice(format_g17(i as f64).as_bytes()),
                _ => {
                    return failed(convert::error_table(
                        lua,
                        b"Lua redis lib command arguments must be strings or integers",
                    )?);
                }
            }
            ends.push(buf.len());
        }
        let argv = split_args(&buf, &ends);
        let req = Request::from_args(&argv);
        let reply = s.call(&req);
        reply_to_lua(lua, raise, reply)
    })?;
    let s = slot.clone();
    let convert = lua.create_function(move |lua, raise: bool| {
        let reply = s.pending.borrow_mut().take();
        let reply = reply.unwrap_or_else(|| Err("-ERR the command gave no reply".into()));
        reply_to_lua(lua, raise, reply)
    })?;
    // SAFETY: C closures over the slot's address (the engine keeps the
    // slot alive longer than its Lua state) and the two functions above.
    let (call, pcall): (Function, Function) = unsafe {
        lua.exec_raw((convert, call), |state| {
            use mlua::ffi;
            let closures: [ffi::lua_CFunction; 2] = [redis_call, redis_pcall];
            for f in closures {
                ffi::lua_pushlightuserdata(state, Arc::as_ptr(slot).cast_mut().cast());
                ffi::lua_pushvalue(state, 1);
                ffi::lua_pushvalue(state, 2);
                ffi::lua_pushcclosure(state, f, 3);
            }
            ffi::lua_remove(state, 1);
            ffi::lua_remove(state, 1);
        })?
    };
    let s = slot.clone();
    let setresp = lua.create_function(move |_, v: u8| {
        s.resp3.set(v == 3);
        Ok(())
    })?;
    // While a library loads there is no host: the message is logged all
    // the same.
    let s = slot.clone();
    let log = lua.create_function(move |_, (level, msg): (u8, mlua::String)| {
        let msg = msg.to_string_lossy();
        if s.with_host(|host| host.log(level, &msg)).is_none() {
            match level {
                0 => tracing::debug!(target: "script", "{msg}"),
                1 | 2 => tracing::info!(target: "script", "{msg}"),
                _ => tracing::warn!(target: "script", "{msg}"),
            }
        }
        Ok(())
    })?;
    let s = slot.clone();
    let set_repl = lua.create_function(move |_, flags: u8| {
        s.with_host(|host| host.set_repl(flags));
        Ok(())
    })?;
    raw.raw_set("call", call)?;
    raw.raw_set("pcall", pcall)?;
    raw.raw_set("setresp", setresp)?;
    raw.raw_set("log", log)?;
    raw.raw_set("set_repl", set_repl)?;
    Ok(())
}

/// The reply for a script that raised `err` (the error handler's table),
/// as Redis words it: the error, then which script and where.
fn script_error(sha: &str, err: &Value) -> Frame {
    let Value::Table(t) = err else {
        return Frame::Error(format!("ERR Error running script {sha}, execution failure").into());
    };
    let text = |name: &str| -> Option<String> {
        match t.raw_get::<Value>(name).ok()? {
            Value::String(s) => Some(s.to_string_lossy()),
            Value::Number(n) => Some(lua_number_text(n)),
            Value::Integer(i) => Some(lua_number_text(i as f64)),
            _ => None,
        }
    };
    let mut msg = text("err").unwrap_or_default();
    if let (Some(source), Some(line)) = (text("source"), text("line")) {
        msg.push_str(&format!(" script: {sha}, on {source}:{line}."));
    }
    let msg: String = msg
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    Frame::Error(msg.into())
}

fn lua_err(e: mlua::Error) -> String {
    format!("ERR {e}")
}

/// A number as Lua's `tostring` writes it (`%.14g`).
fn lua_number_text(n: f64) -> String {
    convert::format_g(n, 14)
}

/// The server's scripting state.
#[derive(Debug, Default)]
pub(crate) struct Scripts {
    /// The Lua state, made on first use and again by SCRIPT FLUSH.
    engine: Mutex<Option<Engine>>,
    /// The running script, as other clients see it.
    pub(crate) watch: Arc<Watch>,
    /// The function libraries, in a Lua state of their own.
    pub(crate) functions: Functions,
    /// Scripts (by SHA1) and functions (`fcall:<name>`, lowercase) seen
    /// to run a command on the whole keyspace: they run holding every
    /// shard from the start (see `cmd/scripting.rs`).
    wide: Mutex<std::collections::HashSet<String>>,
    /// Whether `wide` may hold any name (set with the first).
    any_wide: std::sync::atomic::AtomicBool,
    /// How many scripts are cached, for INFO without the lock.
    cached: AtomicU64,
    /// The Lua state's memory, for INFO without the lock.
    memory: AtomicU64,
    /// The cached scripts' bodies' bytes, for INFO without the lock.
    bodies: AtomicU64,
}

impl Scripts {
    /// The engine, made if there is none yet. A script runs while this
    /// guard lives.
    pub(crate) fn lock(&self) -> Result<EngineGuard<'_>, String> {
        let mut guard = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(Engine::watched(self.watch.clone()).map_err(|e| format!("ERR {e}"))?);
        }
        Ok(EngineGuard {
            guard,
            scripts: self,
        })
    }

    /// Forgets every script and starts a fresh Lua state (SCRIPT FLUSH).
    pub(crate) fn flush(&self) {
        let mut guard = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        *guard = None;
        self.cached.store(0, Relaxed);
        self.memory.store(0, Relaxed);
        self.bodies.store(0, Relaxed);
        // Forgotten scripts are forgotten here too (functions' names stay).
        self.wide
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|name| name.starts_with("fcall:"));
    }

    /// Whether any script or function is wide (see [`Scripts::is_wide`]).
    pub(crate) fn any_wide(&self) -> bool {
        self.any_wide.load(Relaxed)
    }

    /// Whether the script or function `name` holds every shard from the
    /// start: it ran a command on the whole keyspace before (KEYS,
    /// FLUSHALL, SCAN...), and would take them all one by one again.
    pub(crate) fn is_wide(&self, name: &str) -> bool {
        self.wide
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(name)
    }

    /// The script or function `name` ran a command on the whole keyspace.
    pub(crate) fn mark_wide(&self, name: &str) {
        self.wide
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string());
        self.any_wide.store(true, Relaxed);
    }

    /// How many scripts are cached.
    pub(crate) fn cached(&self) -> u64 {
        self.cached.load(Relaxed)
    }

    /// The Lua state's memory, as last seen.
    pub(crate) fn memory(&self) -> u64 {
        self.memory.load(Relaxed)
    }

    /// The cached scripts' bodies' bytes.
    pub(crate) fn bodies(&self) -> u64 {
        self.bodies.load(Relaxed)
    }
}

/// The locked engine; it updates the figures INFO reads when dropped.
#[derive(Debug)]
pub(crate) struct EngineGuard<'a> {
    guard: MutexGuard<'a, Option<Engine>>,
    scripts: &'a Scripts,
}

impl std::ops::Deref for EngineGuard<'_> {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        // Made in `Scripts::lock`, and only `Scripts::flush` (which takes
        // the lock itself) removes it.
        self.guard.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for EngineGuard<'_> {
    fn deref_mut(&mut self) -> &mut Engine {
        self.guard.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for EngineGuard<'_> {
    fn drop(&mut self) {
        if let Some(engine) = self.guard.as_ref() {
            self.scripts.cached.store(engine.len() as u64, Relaxed);
            self.scripts.bodies.store(engine.bodies as u64, Relaxed);
            self.scripts
                .memory
                .store(engine.used_memory() as u64, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1hex_is_lowercase_hex_of_the_digest() {
        // `printf '' | sha1sum`, `printf 'return 1' | sha1sum`.
        assert_eq!(sha1hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            sha1hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
        let body: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        assert_eq!(
            sha1hex(&body),
            sha1_smol::Sha1::from(&body).digest().to_string()
        );
    }

    struct Echo;
    impl Host for Echo {
        fn call(&mut self, req: &Request, _resp3: bool) -> Result<Frame, String> {
            let args = req.to_vec();
            if args[0].as_ref() == b"fail" {
                return Ok(Frame::Error("ERR failed".into()));
            }
            Ok(Frame::Array(
                args.iter().cloned().map(Frame::Bulk).collect(),
            ))
        }
        fn log(&mut self, _level: u8, _message: &str) {}
        fn set_repl(&mut self, _flags: u8) {}
    }

    fn eval(engine: &mut Engine, body: &str) -> Frame {
        match engine.load(body.as_bytes()) {
            Ok(sha) => engine.run(&sha, &[], &[], &mut Echo).0,
            Err(e) => Frame::Error(e.into()),
        }
    }

    #[test]
    fn scripts_run_sandboxed() {
        let mut e = Engine::new().expect("a Lua state");
        assert_eq!(eval(&mut e, "return 1.9"), Frame::Integer(1));
        assert_eq!(
            eval(&mut e, "return redis.call('a', 2)"),
            Frame::Array(vec![Frame::bulk("a"), Frame::bulk("2")])
        );
        let Frame::Error(err) = eval(&mut e, "x = 1") else {
            panic!("a global was created");
        };
        assert!(err.starts_with(b"ERR user_script:1: Attempt to modify a readonly table"));
        let Frame::Error(err) = eval(&mut e, "return redis.call('fail')") else {
            panic!("redis.call did not raise");
        };
        assert!(err.starts_with(b"ERR failed script: "), "{err:?}");
        assert!(err.ends_with(b", on @user_script:1."), "{err:?}");
        assert_eq!(
            eval(&mut e, "return redis.pcall('fail')"),
            Frame::Error("ERR failed".into())
        );
    }

    #[test]
    fn shebang_flags() {
        assert_eq!(shebang(b"return 1"), Ok((Flags::default(), 0)));
        let (flags, at) = shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").expect("valid");
        assert!(flags.shebang && flags.no_writes && flags.allow_oom && !flags.allow_stale);
        assert_eq!(at, 31);
        assert_eq!(
            shebang(b"#!lua name=x\n"),
            Err("ERR Unknown lua shebang option: name=x".into())
        );
        assert_eq!(
            shebang(b"#!lua flags=bad\n"),
            Err("ERR Unexpected flag in script shebang: bad".into())
        );
    }
}

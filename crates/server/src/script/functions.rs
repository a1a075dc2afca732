//! Functions (Redis 7.0): libraries of named Lua functions, loaded with
//! FUNCTION LOAD and called with FCALL.
//!
//! The libraries live in a Lua state of their own, apart from EVAL's (so
//! SCRIPT FLUSH leaves them alone, as in Redis). A library is its code,
//! which starts with `#!lua name=<library>`; running that code registers
//! the library's functions with `redis.register_function`. Function names
//! are unique across libraries and, like the engine's name, compared
//! without case; library names keep their case.
//!
//! FUNCTION DUMP's payload and RDB files hold each library as an
//! `RDB_OPCODE_FUNCTION2` record: the opcode and the code as an RDB
//! string. [`Catalogue::dump`] and [`Catalogue::restore`] read and write
//! Redis's format exactly, so libraries travel between Ember and Redis.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use store::rdb::{RDB_VERSION, Reader, Writer, crc, opcode};

use super::{Engine, Flags, Registered, Watch};

/// Redis's error for a bad library or function name.
pub(crate) const BAD_NAME: &str = "Library names can only contain letters, numbers, or \
                                   underscores(_) and must be at least one character long";

/// How long FUNCTION LOAD may run a library's code (Redis's
/// `LOAD_TIMEOUT_MS`); a master's stream and RDB files have no limit.
pub(crate) const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether `name` is a valid library or function name: letters, digits
/// and underscores, at least one.
pub(crate) fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A function of a library.
#[derive(Debug)]
pub(crate) struct Func {
    /// The name it was registered with.
    pub(crate) name: String,
    pub(crate) desc: Option<Bytes>,
    pub(crate) flags: Flags,
    pub(crate) func: mlua::Function,
}

/// A library: its code and its functions' names (lowercase).
#[derive(Debug)]
pub(crate) struct Library {
    pub(crate) code: Bytes,
    pub(crate) functions: Vec<String>,
}

/// The loaded libraries and their functions.
#[derive(Debug, Default)]
pub(crate) struct Catalogue {
    pub(crate) libraries: BTreeMap<String, Library>,
    /// Functions by lowercase name.
    pub(crate) functions: HashMap<String, Func>,
}

/// FUNCTION RESTORE's policy for libraries that exist already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Drop every library first.
    Flush,
    /// Fail on any collision (the default).
    Append,
    /// Replace libraries of the same name.
    Replace,
}

/// A library's shebang line, parsed.
struct Meta<'c> {
    engine: String,
    name: String,
    /// The code after the shebang line, from its newline on (which keeps
    /// line numbers right).
    body: &'c [u8],
}

/// Splits a shebang line into words as Redis's `sdssplitargs` does for
/// plain and quoted words; `None` on an unbalanced quote.
fn split_words(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let mut word = Vec::new();
        while i < line.len() && !line[i].is_ascii_whitespace() {
            let b = line[i];
            if b == b'"' || b == b'\'' {
                let end = line[i + 1..].iter().position(|&c| c == b)? + i + 1;
                word.extend_from_slice(&line[i + 1..end]);
                i = end + 1;
                // A closing quote must end the word.
                if i < line.len() && !line[i].is_ascii_whitespace() {
                    return None;
                }
            } else {
                word.push(b);
                i += 1;
            }
        }
        words.push(word);
    }
    Some(words)
}

fn metadata(code: &[u8]) -> Result<Meta<'_>, String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid library metadata".into());
    };
    let words = split_words(&code[..end]).filter(|w| !w.is_empty());
    let Some(words) = words else {
        return Err("ERR Invalid library metadata".into());
    };
    let engine = String::from_utf8_lossy(&words[0][2..]).into_owned();
    let mut name = None;
    for word in &words[1..] {
        if word.len() >= 5 && word[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(String::from_utf8_lossy(&word[5..]).into_owned());
            continue;
        }
        return Err(format!(
            "ERR Invalid metadata value given: {}",
            String::from_utf8_lossy(word)
        ));
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    Ok(Meta {
        engine,
        name,
        body: &code[end..],
    })
}

impl Catalogue {
    /// Links a library's registered functions in.
    fn link(&mut self, name: &str, code: Bytes, registered: Vec<Registered>) {
        let mut names = Vec::with_capacity(registered.len());
        for r in registered {
            let key = r.name.to_ascii_lowercase();
            names.push(key.clone());
            self.functions.insert(
                key,
                Func {
                    name: r.name,
                    desc: r.desc,
                    flags: r.flags,
                    func: r.func,
                },
            );
        }
        self.libraries.insert(
            name.to_string(),
            Library {
                code,
                functions: names,
            },
        );
    }

    /// Unlinks the library `name` and its functions, which it returns.
    fn unlink(&mut self, name: &str) -> Option<(Library, Vec<Func>)> {
        let lib = self.libraries.remove(name)?;
        let funcs = lib
            .functions
            .iter()
            .filter_map(|f| self.functions.remove(f))
            .collect();
        Some((lib, funcs))
    }

    /// Puts back what [`Catalogue::unlink`] took.
    fn relink(&mut self, name: &str, (lib, funcs): (Library, Vec<Func>)) {
        for f in funcs {
            self.functions.insert(f.name.to_ascii_lowercase(), f);
        }
        self.libraries.insert(name.to_string(), lib);
    }

    /// Creates a library from `code` (FUNCTION LOAD, or a record of a
    /// payload): its name, or Redis's error. With `replace`, a library of
    /// the same name is replaced; on any error nothing changes.
    pub(crate) fn create(
        &mut self,
        engine: &mut Engine,
        code: &[u8],
        replace: bool,
    ) -> Result<String, String> {
        let meta = metadata(code)?;
        if !valid_name(meta.name.as_bytes()) {
            return Err(format!("ERR {BAD_NAME}"));
        }
        if !meta.engine.eq_ignore_ascii_case("lua") {
            return Err(format!("ERR Engine '{}' not found", meta.engine));
        }
        if self.libraries.contains_key(&meta.name) && !replace {
            return Err(format!("ERR Library '{}' already exists", meta.name));
        }
        let old = self.unlink(&meta.name);
        let result = engine.load_library(meta.body).and_then(|registered| {
            match registered
                .iter()
                .find(|r| self.functions.contains_key(&r.name.to_ascii_lowercase()))
            {
                Some(r) => Err(format!("ERR Function {} already exists", r.name)),
                None => Ok(registered),
            }
        });
        match result {
            Ok(registered) => {
                self.link(&meta.name, Bytes::copy_from_slice(code), registered);
                Ok(meta.name)
            }
            Err(e) => {
                if let Some(old) = old {
                    self.relink(&meta.name, old);
                }
                Err(e)
            }
        }
    }

    /// Moves every library of `other` in (FUNCTION RESTORE APPEND or
    /// REPLACE); on a collision nothing changes.
    fn join(&mut self, other: Catalogue, replace: bool) -> Result<(), String> {
        let mut replaced = Vec::new();
        let mut failed = None;
        for name in other.libraries.keys() {
            if self.libraries.contains_key(name) {
                if !replace {
                    failed = Some(format!("ERR Library {name} already exists"));
                    break;
                }
                if let Some(old) = self.unlink(name) {
                    replaced.push((name.clone(), old));
                }
            }
        }
        if failed.is_none()
            && let Some(f) = other
                .functions
                .iter()
                .find(|(key, _)| self.functions.contains_key(*key))
        {
            failed = Some(format!("ERR Function {} already exists", f.1.name));
        }
        if let Some(e) = failed {
            for (name, old) in replaced {
                self.relink(&name, old);
            }
            return Err(e);
        }
        let Catalogue {
            libraries,
            mut functions,
        } = other;
        for (name, lib) in libraries {
            for f in &lib.functions {
                if let Some(func) = functions.remove(f) {
                    self.functions.insert(f.clone(), func);
                }
            }
            self.libraries.insert(name, lib);
        }
        Ok(())
    }

    /// Deletes the library `name`; false if there is none.
    pub(crate) fn delete(&mut self, name: &str) -> bool {
        self.unlink(name).is_some()
    }

    /// The function named `name` (in any case).
    pub(crate) fn get(&self, name: &[u8]) -> Option<&Func> {
        let key = String::from_utf8_lossy(name).to_ascii_lowercase();
        self.functions.get(&key)
    }

    /// Every library as `RDB_OPCODE_FUNCTION2` records, as FUNCTION DUMP
    /// and RDB files hold them.
    pub(crate) fn write_records<W: std::io::Write>(
        &self,
        w: &mut Writer<'_, W>,
    ) -> std::io::Result<()> {
        for lib in self.libraries.values() {
            w.byte(opcode::FUNCTION2)?;
            w.string(&lib.code)?;
        }
        Ok(())
    }

    /// FUNCTION DUMP's payload: the records, the RDB version and a CRC64.
    pub(crate) fn dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out, store::rdb::PLAIN_THRESHOLD);
        let written = self
            .write_records(&mut w)
            .and_then(|()| w.raw(&(RDB_VERSION as u16).to_le_bytes()))
            .and_then(|()| w.finish());
        // Writing into a Vec does not fail.
        debug_assert!(written.is_ok());
        out
    }
}

/// Reads the library codes out of FUNCTION RESTORE's payload, in Redis's
/// words when it is bad.
fn payload_codes(payload: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let bad = || "ERR DUMP payload version or checksum are wrong".to_string();
    if payload.len() < 10 {
        return Err(bad());
    }
    let footer = &payload[payload.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if u32::from(version) > RDB_VERSION {
        return Err(bad());
    }
    let stored = u64::from_le_bytes(footer[2..].try_into().map_err(|_| bad())?);
    if crc::crc64(&payload[..payload.len() - 8]) != stored {
        return Err(bad());
    }
    let body = &payload[..payload.len() - 10];
    let mut r = Reader::new(body);
    let mut codes = Vec::new();
    while r.pos() < body.len() {
        let ty = r
            .byte()
            .map_err(|_| "ERR can not read data type".to_string())?;
        if ty != opcode::FUNCTION2 && ty != opcode::FUNCTION {
            return Err("ERR given type is not a function".into());
        }
        if ty == opcode::FUNCTION {
            // The format of Redis 7.0's release candidates.
            return Err("ERR Pre-GA function format not supported".into());
        }
        let code = r
            .string()
            .map_err(|_| "ERR Failed loading library payload".to_string())?;
        codes.push(code.into_owned());
    }
    Ok(codes)
}

/// The functions' state: the Lua engine they live in and the catalogue.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) engine: Engine,
    pub(crate) catalogue: Catalogue,
}

impl State {
    /// FUNCTION LOAD: `timeout` limits the library's code (none for a
    /// master's stream).
    pub(crate) fn load(
        &mut self,
        code: &[u8],
        replace: bool,
        timeout: Option<Duration>,
        watch: &Watch,
    ) -> Result<String, String> {
        watch.begin_load(timeout);
        let result = self.catalogue.create(&mut self.engine, code, replace);
        watch.end_load();
        if watch.take_line_mode() {
            super::watch::rearm(&self.engine.lua);
        }
        result
    }

    /// FUNCTION RESTORE.
    pub(crate) fn restore(&mut self, payload: &[u8], policy: Policy) -> Result<(), String> {
        let codes = payload_codes(payload)?;
        let mut fresh = Catalogue::default();
        for code in codes {
            fresh.create(&mut self.engine, &code, false)?;
        }
        if policy == Policy::Flush {
            self.catalogue = fresh;
            return Ok(());
        }
        self.catalogue.join(fresh, policy == Policy::Replace)
    }
}

/// The server's functions, made on first use.
#[derive(Debug, Default)]
pub(crate) struct Functions {
    state: Mutex<Option<State>>,
    /// How many libraries and functions are loaded, for FUNCTION STATS
    /// and INFO without the lock (a function may be running).
    count: std::sync::atomic::AtomicU64,
    libraries: std::sync::atomic::AtomicU64,
    /// The functions' Lua state's memory, for INFO.
    memory: std::sync::atomic::AtomicU64,
}

impl Functions {
    /// The state, made if there is none yet; functions run while the
    /// guard lives.
    pub(crate) fn lock(&self, watch: &Arc<Watch>) -> Result<FunctionsGuard<'_>, String> {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(State {
                engine: Engine::watched(watch.clone()).map_err(|e| format!("ERR {e}"))?,
                catalogue: Catalogue::default(),
            });
        }
        Ok(FunctionsGuard {
            guard,
            functions: self,
        })
    }

    /// Every library's code, for an RDB file (empty if no function was
    /// ever loaded).
    pub(crate) fn codes(&self) -> Vec<Bytes> {
        let guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        guard.as_ref().map_or_else(Vec::new, |s| {
            s.catalogue
                .libraries
                .values()
                .map(|l| l.code.clone())
                .collect()
        })
    }

    /// Replaces every library with those of an RDB file (`codes`), as
    /// Redis does when it loads one; on an error (a library that does not
    /// load), nothing changes.
    pub(crate) fn install(&self, watch: &Arc<Watch>, codes: &[Vec<u8>]) -> Result<(), String> {
        if codes.is_empty() && self.counts() == (0, 0) {
            return Ok(());
        }
        let mut state = self.lock(watch)?;
        let state = &mut *state;
        let mut fresh = Catalogue::default();
        for code in codes {
            fresh
                .create(&mut state.engine, code, false)
                .map_err(|e| format!("cannot load a function library from the RDB file: {e}"))?;
        }
        state.catalogue = fresh;
        Ok(())
    }

    /// The functions' Lua state's memory, as last seen.
    pub(crate) fn memory(&self) -> u64 {
        self.memory.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many libraries and functions are loaded, as last seen.
    pub(crate) fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.libraries.load(Relaxed), self.count.load(Relaxed))
    }
}

/// The locked functions' state.
#[derive(Debug)]
pub(crate) struct FunctionsGuard<'a> {
    guard: MutexGuard<'a, Option<State>>,
    functions: &'a Functions,
}

impl std::ops::Deref for FunctionsGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        // Made in `Functions::lock`; nothing removes it.
        self.guard.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for FunctionsGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for FunctionsGuard<'_> {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(state) = self.guard.as_ref() {
            let catalogue = &state.catalogue;
            let f = self.functions;
            f.count.store(catalogue.functions.len() as u64, Relaxed);
            f.libraries.store(catalogue.libraries.len() as u64, Relaxed);
            f.memory.store(state.engine.used_memory() as u64, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (State, Arc<Watch>) {
        let watch = Arc::new(Watch::default());
        let state = State {
            engine: Engine::watched(watch.clone()).expect("a Lua state"),
            catalogue: Catalogue::default(),
        };
        (state, watch)
    }

    #[test]
    fn metadata_errors_match_redis() {
        let err = |code: &str| metadata(code.as_bytes()).err();
        assert_eq!(err("return 1"), Some("ERR Missing library metadata".into()));
        assert_eq!(
            err("#!lua name=x"),
            Some("ERR Invalid library metadata".into())
        );
        assert_eq!(
            err("#!lua name=a name=b\n"),
            Some("ERR Invalid metadata value, name argument was given multiple times".into())
        );
        assert_eq!(
            err("#!lua  name=lib foo\n"),
            Some("ERR Invalid metadata value given: foo".into())
        );
        assert_eq!(
            err("#!lua\n"),
            Some("ERR Library name was not given".into())
        );
        let meta = metadata(b"#!LUA NAME=lib\nreturn").expect("valid");
        assert_eq!((meta.engine.as_str(), meta.name.as_str()), ("LUA", "lib"));
        assert_eq!(meta.body, b"\nreturn");
    }

    #[test]
    fn load_call_dump_restore() {
        let (mut s, watch) = state();
        let code = b"#!lua name=lib\nredis.register_function('F1', function(k, a) return 1 end)";
        assert_eq!(s.load(code, false, None, &watch), Ok("lib".into()));
        assert!(s.catalogue.get(b"f1").is_some());
        assert_eq!(
            s.load(code, false, None, &watch),
            Err("ERR Library 'lib' already exists".into())
        );
        let other = b"#!lua name=lib2\nredis.register_function('f1', function() end)";
        assert_eq!(
            s.load(other, false, None, &watch),
            Err("ERR Function f1 already exists".into())
        );
        let payload = s.catalogue.dump();
        assert_eq!(
            s.restore(&payload, Policy::Append),
            Err("ERR Library lib already exists".into())
        );
        assert_eq!(s.restore(&payload, Policy::Replace), Ok(()));
        assert_eq!(s.restore(&payload, Policy::Flush), Ok(()));
        assert_eq!(s.catalogue.libraries.len(), 1);
        let mut bad = payload.clone();
        bad[3] ^= 1;
        assert_eq!(
            s.restore(&bad, Policy::Flush),
            Err("ERR DUMP payload version or checksum are wrong".into())
        );
        let looping = b"#!lua name=slow\nlocal a = 1 while true do a = a + 1 end";
        let err = s
            .load(looping, false, Some(Duration::from_millis(20)), &watch)
            .expect_err("stopped");
        assert!(err.contains("FUNCTION LOAD timeout"), "{err}");
    }
}

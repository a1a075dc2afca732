//! The libraries Redis adds to Lua, written against mlua: `bit`
//! (LuaBitOp's functions) and `cjson` (lua-cjson's encode and decode, with
//! its defaults: 14 significant digits, sparse arrays refused past a ratio
//! of 2, nesting up to 1000); `struct` and `cmsgpack` have files of their
//! own.
//!
//! Each function returns its result, or the fail mark and a message,
//! which the trampoline (see `mod.rs`) raises at the script's line.

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::convert::format_g;

/// Puts the raw libraries in `raw` (`raw.bit`, `raw.cjson`, ...), as
/// `{one = {name = function}}` tables the prelude wraps.
pub(super) fn register(lua: &Lua, raw: &Table, fail: fn() -> Value) -> mlua::Result<()> {
    raw.set("bit", bit(lua, fail)?)?;
    raw.set("cjson", cjson(lua, fail)?)?;
    raw.set("struct", super::structs::library(lua, fail)?)?;
    raw.set("cmsgpack", super::msgpack::library(lua, fail)?)?;
    raw.set(
        "cjson_null",
        Value::LightUserData(LightUserData(std::ptr::null_mut())),
    )?;
    Ok(())
}

/// A function of a library: its name (for error texts) and arguments
/// in, its result or an error text out.
pub(super) type LibFn = fn(&Lua, &str, MultiValue) -> Result<Value, String>;
/// The same for functions with several results (returned to the
/// script as a table and a count, which the prelude spreads: thousands
/// of results would not fit mlua's own stack of values).
pub(super) type LibFnMulti = fn(&Lua, &str, MultiValue) -> Result<Vec<Value>, String>;

/// A library table `{one = {...}}` the prelude wraps, from named
/// functions.
pub(super) fn library(
    lua: &Lua,
    fail: fn() -> Value,
    funcs: Vec<(&'static str, LibFn)>,
    multi: Vec<(&'static str, LibFnMulti)>,
) -> mlua::Result<Table> {
    let one = lua.create_table()?;
    let failed = move |lua: &Lua, e: String| -> mlua::Result<MultiValue> {
        Ok(MultiValue::from_vec(vec![
            fail(),
            Value::String(lua.create_string(e)?),
        ]))
    };
    for (name, f) in funcs {
        let func = lua.create_function(move |lua, args: MultiValue| match f(lua, name, args) {
            Ok(v) => Ok(MultiValue::from_vec(vec![v])),
            Err(e) => failed(lua, e),
        })?;
        one.set(name, func)?;
    }
    let many = lua.create_table()?;
    for (name, f) in multi {
        let func = lua.create_function(move |lua, args: MultiValue| match f(lua, name, args) {
            Ok(values) => {
                let n = values.len();
                let t = lua.create_table_with_capacity(n, 0)?;
                for (i, v) in values.into_iter().enumerate() {
                    t.raw_set(i + 1, v)?;
                }
                Ok(MultiValue::from_vec(vec![
                    Value::Table(t),
                    Value::Number(n as f64),
                ]))
            }
            Err(e) => failed(lua, e),
        })?;
        many.set(name, func)?;
    }
    let lib = lua.create_table()?;
    lib.set("one", one)?;
    lib.set("many", many)?;
    Ok(lib)
}

pub(super) fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(v) => v.type_name(),
    }
}

/// `luaL_checknumber`: a number, or a string that reads as one.
pub(super) fn check_number(args: &MultiValue, i: usize, fname: &str) -> Result<f64, String> {
    let v = args.get(i);
    let n = match v {
        Some(Value::Number(n)) => Some(*n),
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(Value::String(s)) => s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()),
        _ => None,
    };
    n.ok_or_else(|| {
        format!(
            "bad argument #{} to '{fname}' (number expected, got {})",
            i + 1,
            type_name(v)
        )
    })
}

// ---------------------------------------------------------------- bit

/// LuaBitOp's conversion: the number rounded to an integer and taken
/// modulo 2^32, by adding 2^52 + 2^51 and keeping the low word.
fn tobit(x: f64) -> i32 {
    (x + 6_755_399_441_055_744.0).to_bits() as u32 as i32
}

fn bit_arg(args: &MultiValue, i: usize, fname: &str) -> Result<i32, String> {
    check_number(args, i, fname).map(tobit)
}

fn num(i: i32) -> Result<Value, String> {
    Ok(Value::Number(f64::from(i)))
}

fn bit(lua: &Lua, fail: fn() -> Value) -> mlua::Result<Table> {
    type F = LibFn;
    fn fold(args: &MultiValue, name: &str, op: fn(i32, i32) -> i32) -> Result<Value, String> {
        let mut acc = bit_arg(args, 0, name)?;
        for i in 1..args.len() {
            acc = op(acc, bit_arg(args, i, name)?);
        }
        num(acc)
    }
    fn shift(args: &MultiValue, name: &str, op: fn(i32, u32) -> i32) -> Result<Value, String> {
        let x = bit_arg(args, 0, name)?;
        let n = bit_arg(args, 1, name)? as u32 & 31;
        num(op(x, n))
    }
    let funcs: Vec<(&'static str, F)> = vec![
        ("tobit", |_, n, a| num(bit_arg(&a, 0, n)?)),
        ("bnot", |_, n, a| num(!bit_arg(&a, 0, n)?)),
        ("band", |_, n, a| fold(&a, n, |x, y| x & y)),
        ("bor", |_, n, a| fold(&a, n, |x, y| x | y)),
        ("bxor", |_, n, a| fold(&a, n, |x, y| x ^ y)),
        ("lshift", |_, n, a| {
            shift(&a, n, |x, s| ((x as u32) << s) as i32)
        }),
        ("rshift", |_, n, a| {
            shift(&a, n, |x, s| ((x as u32) >> s) as i32)
        }),
        ("arshift", |_, n, a| shift(&a, n, |x, s| x >> s)),
        ("rol", |_, n, a| {
            shift(&a, n, |x, s| (x as u32).rotate_left(s) as i32)
        }),
        ("ror", |_, n, a| {
            shift(&a, n, |x, s| (x as u32).rotate_right(s) as i32)
        }),
        ("bswap", |_, n, a| num(bit_arg(&a, 0, n)?.swap_bytes())),
        ("tohex", |lua, n, a| {
            let x = bit_arg(&a, 0, n)? as u32;
            let mut digits = match a.get(1) {
                None | Some(Value::Nil) => 8,
                Some(_) => bit_arg(&a, 1, n)?,
            };
            let upper = digits < 0;
            if upper {
                digits = digits.wrapping_neg();
            }
            let digits = digits.clamp(0, 8) as usize;
            let hex: &[u8; 16] = if upper {
                b"0123456789ABCDEF"
            } else {
                b"0123456789abcdef"
            };
            let mut out = vec![b'0'; digits];
            let mut v = x;
            for slot in out.iter_mut().rev() {
                *slot = hex[(v & 15) as usize];
                v >>= 4;
            }
            lua.create_string(&out)
                .map(Value::String)
                .map_err(|e| e.to_string())
        }),
    ];
    library(lua, fail, funcs, Vec::new())
}

// -------------------------------------------------------------- cjson

/// The deepest nesting encode and decode follow whatever the settings
/// say: they recurse, and the server's threads' stacks are finite.
const STACK_DEPTH: usize = 1000;

/// lua-cjson's settings, changed by its `encode_*`/`decode_*`
/// functions for the whole Lua state (kept in its app data).
#[derive(Debug, Clone, Copy)]
struct Cjson {
    precision: usize,
    encode_depth: usize,
    decode_depth: usize,
    sparse_convert: bool,
    sparse_ratio: usize,
    sparse_safe: usize,
    keep_buffer: bool,
    /// NaN and infinities: refused (`false`), written as lua-cjson
    /// writes them (`true`), or as null (`"null"`).
    invalid: Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invalid {
    Refuse,
    Allow,
    Null,
}

impl Default for Cjson {
    fn default() -> Self {
        Cjson {
            precision: 14,
            encode_depth: 1000,
            decode_depth: 1000,
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            keep_buffer: true,
            invalid: Invalid::Refuse,
        }
    }
}

fn cjson_config(lua: &Lua) -> Cjson {
    lua.app_data_ref::<Cjson>().map(|c| *c).unwrap_or_default()
}

fn set_cjson(lua: &Lua, f: impl FnOnce(&mut Cjson)) -> Cjson {
    let mut c = cjson_config(lua);
    f(&mut c);
    lua.set_app_data(c);
    c
}

/// An optional integer setting in `lo..=hi`, as lua-cjson checks it.
fn setting(
    args: &MultiValue,
    i: usize,
    fname: &str,
    lo: usize,
    hi: usize,
) -> Result<Option<usize>, String> {
    match args.get(i) {
        None | Some(Value::Nil) => Ok(None),
        Some(_) => {
            let n = check_number(args, i, fname)?;
            if n < lo as f64 || n > hi as f64 {
                return Err(format!(
                    "bad argument #{} to '{fname}' (expected integer between {lo} and {hi})",
                    i + 1
                ));
            }
            Ok(Some(n as usize))
        }
    }
}

fn bool_setting(args: &MultiValue, i: usize) -> Option<bool> {
    match args.get(i) {
        None | Some(Value::Nil) => None,
        Some(Value::Boolean(b)) => Some(*b),
        Some(Value::String(s)) => Some(s.as_bytes().as_ref() == b"on"),
        Some(_) => Some(true),
    }
}

fn cjson(lua: &Lua, fail: fn() -> Value) -> mlua::Result<Table> {
    let funcs: Vec<(&'static str, LibFn)> = vec![
        ("encode", |lua, _, a| {
            if a.len() != 1 {
                return Err("bad argument #1 to 'encode' (expected 1 argument)".into());
            }
            let mut out = Vec::new();
            encode(&a[0], &mut out, 0, &cjson_config(lua))?;
            lua.create_string(&out)
                .map(Value::String)
                .map_err(|e| e.to_string())
        }),
        ("decode", |lua, _, a| {
            if a.len() != 1 {
                return Err("bad argument #1 to 'decode' (expected 1 argument)".into());
            }
            let text = match &a[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Number(n) => format_g(*n, 14).into_bytes(),
                Value::Integer(i) => format_g(*i as f64, 14).into_bytes(),
                other => {
                    return Err(format!(
                        "bad argument #1 to 'decode' (string expected, got {})",
                        other.type_name()
                    ));
                }
            };
            let mut d = Decoder {
                max_depth: cjson_config(lua).decode_depth.min(STACK_DEPTH),
                lua,
                text: &text,
                pos: 0,
            };
            let v = d.value(0)?;
            d.skip_ws();
            if d.pos < text.len() {
                return Err(d.unexpected("the end"));
            }
            Ok(v)
        }),
        ("encode_keep_buffer", |lua, _, a| {
            let v = bool_setting(&a, 0);
            let c = set_cjson(lua, |c| c.keep_buffer = v.unwrap_or(c.keep_buffer));
            Ok(Value::Boolean(c.keep_buffer))
        }),
        ("encode_invalid_numbers", |lua, _, a| {
            let v = match a.front() {
                None | Some(Value::Nil) => None,
                Some(Value::String(s)) if s.as_bytes().as_ref() == b"null" => Some(Invalid::Null),
                Some(Value::Boolean(false)) => Some(Invalid::Refuse),
                Some(Value::String(s)) if s.as_bytes().as_ref() == b"off" => Some(Invalid::Refuse),
                Some(_) => Some(Invalid::Allow),
            };
            let c = set_cjson(lua, |c| c.invalid = v.unwrap_or(c.invalid));
            Ok(match c.invalid {
                Invalid::Refuse => Value::Boolean(false),
                Invalid::Allow => Value::Boolean(true),
                Invalid::Null => {
                    Value::String(lua.create_string("null").map_err(|e| e.to_string())?)
                }
            })
        }),
        ("encode_number_precision", |lua, n, a| {
            let v = setting(&a, 0, n, 1, 14)?;
            let c = set_cjson(lua, |c| c.precision = v.unwrap_or(c.precision));
            Ok(Value::Number(c.precision as f64))
        }),
        ("encode_max_depth", |lua, n, a| {
            let v = setting(&a, 0, n, 1, i32::MAX as usize)?;
            let c = set_cjson(lua, |c| c.encode_depth = v.unwrap_or(c.encode_depth));
            Ok(Value::Number(c.encode_depth as f64))
        }),
        ("decode_max_depth", |lua, n, a| {
            let v = setting(&a, 0, n, 1, i32::MAX as usize)?;
            let c = set_cjson(lua, |c| c.decode_depth = v.unwrap_or(c.decode_depth));
            Ok(Value::Number(c.decode_depth as f64))
        }),
    ];
    let multi: Vec<(&'static str, LibFnMulti)> = vec![("encode_sparse_array", |lua, n, a| {
        let convert = bool_setting(&a, 0);
        let ratio = setting(&a, 1, n, 0, i32::MAX as usize)?;
        let safe = setting(&a, 2, n, 0, i32::MAX as usize)?;
        let c = set_cjson(lua, |c| {
            c.sparse_convert = convert.unwrap_or(c.sparse_convert);
            c.sparse_ratio = ratio.unwrap_or(c.sparse_ratio);
            c.sparse_safe = safe.unwrap_or(c.sparse_safe);
        });
        Ok(vec![
            Value::Boolean(c.sparse_convert),
            Value::Number(c.sparse_ratio as f64),
            Value::Number(c.sparse_safe as f64),
        ])
    })];
    library(lua, fail, funcs, multi)
}

fn encode(v: &Value, out: &mut Vec<u8>, depth: usize, c: &Cjson) -> Result<(), String> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => out.extend_from_slice(format_g(*i as f64, c.precision).as_bytes()),
        Value::Number(n) => {
            if !n.is_finite() {
                match c.invalid {
                    Invalid::Refuse => {
                        return Err("Cannot serialise number: must not be NaN or Inf".into());
                    }
                    Invalid::Null => {
                        out.extend_from_slice(b"null");
                        return Ok(());
                    }
                    Invalid::Allow if n.is_nan() => {
                        out.extend_from_slice(b"nan");
                        return Ok(());
                    }
                    Invalid::Allow => {}
                }
            }
            out.extend_from_slice(format_g(*n, c.precision).as_bytes());
        }
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Table(t) => encode_table(t, out, depth + 1, c)?,
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            ));
        }
    }
    Ok(())
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            0..=31 | 127 => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

fn encode_table(t: &Table, out: &mut Vec<u8>, depth: usize, c: &Cjson) -> Result<(), String> {
    if depth > c.encode_depth.min(STACK_DEPTH) {
        return Err(format!("Cannot serialise, excessive nesting ({depth})"));
    }
    // An array: only positive integer keys, not too sparse (lua-cjson's
    // default ratio 2, safe below 11). Pairs are visited twice rather
    // than kept: a big table would not fit mlua's stack of references.
    let (mut count, mut max) = (0usize, 0usize);
    let mut is_array = true;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        count += 1;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => {
                is_array = false;
                continue;
            }
        };
        if n < 1.0 || n.fract() != 0.0 {
            is_array = false;
        } else {
            max = max.max(n as usize);
        }
    }
    is_array = is_array && count > 0;
    if is_array && c.sparse_ratio > 0 && max > count * c.sparse_ratio && max > c.sparse_safe {
        if !c.sparse_convert {
            return Err("Cannot serialise table: excessively sparse array".into());
        }
        is_array = false;
    }
    if is_array {
        out.push(b'[');
        for i in 1..=max {
            if i > 1 {
                out.push(b',');
            }
            let v: Value = t.raw_get(i).map_err(|e| e.to_string())?;
            encode(&v, out, depth, c)?;
        }
        out.push(b']');
        return Ok(());
    }
    out.push(b'{');
    for (i, pair) in t.pairs::<Value, Value>().enumerate() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        if i > 0 {
            out.push(b',');
        }
        match &k {
            Value::String(s) => encode_string(&s.as_bytes(), out),
            Value::Number(n) => encode_string(format_g(*n, c.precision).as_bytes(), out),
            Value::Integer(n) => encode_string(format_g(*n as f64, c.precision).as_bytes(), out),
            _ => return Err("Cannot serialise table: table key must be a number or string".into()),
        }
        out.push(b':');
        encode(&v, out, depth, c)?;
    }
    out.push(b'}');
    Ok(())
}

struct Decoder<'a> {
    max_depth: usize,
    lua: &'a Lua,
    text: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn skip_ws(&mut self) {
        while self
            .text
            .get(self.pos)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    /// The next token as lua-cjson names it in errors.
    fn token(&self) -> &'static str {
        let rest = &self.text[self.pos.min(self.text.len())..];
        match rest.first() {
            None => "T_END",
            Some(b'{') => "T_OBJ_BEGIN",
            Some(b'}') => "T_OBJ_END",
            Some(b'[') => "T_ARR_BEGIN",
            Some(b']') => "T_ARR_END",
            Some(b',') => "T_COMMA",
            Some(b':') => "T_COLON",
            Some(b'"') => "T_STRING",
            Some(b'-' | b'0'..=b'9') => "T_NUMBER",
            _ if rest.starts_with(b"true") || rest.starts_with(b"false") => "T_BOOLEAN",
            _ if rest.starts_with(b"null") => "T_NULL",
            Some(_) => "invalid token",
        }
    }

    fn unexpected(&self, expected: &str) -> String {
        format!(
            "Expected {expected} but found {} at character {}",
            self.token(),
            self.pos + 1
        )
    }

    fn lua_err(e: mlua::Error) -> String {
        e.to_string()
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        self.skip_ws();
        if depth >= self.max_depth {
            return Err(format!(
                "Found too many nested data structures ({}) at character {}",
                depth + 1,
                self.pos + 1
            ));
        }
        let rest = &self.text[self.pos..];
        match rest.first() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let s = self.string()?;
                self.lua
                    .create_string(&s)
                    .map(Value::String)
                    .map_err(Self::lua_err)
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ if rest.starts_with(b"true") => {
                self.pos += 4;
                Ok(Value::Boolean(true))
            }
            _ if rest.starts_with(b"false") => {
                self.pos += 5;
                Ok(Value::Boolean(false))
            }
            _ if rest.starts_with(b"null") => {
                self.pos += 4;
                Ok(Value::LightUserData(LightUserData(std::ptr::null_mut())))
            }
            _ => Err(self.unexpected("value")),
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        while self
            .text
            .get(self.pos)
            .is_some_and(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
        {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.text[start..self.pos]).unwrap_or("");
        match text.parse::<f64>() {
            Ok(n) => Ok(Value::Number(n)),
            Err(_) => {
                self.pos = start;
                Err(self.unexpected("value"))
            }
        }
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.text.get(self.pos) else {
                self.pos = start;
                return Err(format!(
                    "Expected value but found invalid token at character {}",
                    start + 1
                ));
            };
            self.pos += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.text.get(self.pos) else {
                        continue;
                    };
                    self.pos += 1;
                    match e {
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let cp = self.hex4().ok_or_else(|| {
                                format!(
                                    "Expected value but found invalid unicode escape code at character {}",
                                    start + 1
                                )
                            })?;
                            let cp = if (0xD800..0xDC00).contains(&cp)
                                && self.text.get(self.pos..self.pos + 2) == Some(b"\\u")
                            {
                                self.pos += 2;
                                let low = self.hex4().unwrap_or(0);
                                0x10000 + ((cp - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF)
                            } else {
                                cp
                            };
                            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                _ => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        let s = std::str::from_utf8(digits).ok()?;
        let v = u32::from_str_radix(s, 16).ok()?;
        self.pos += 4;
        Some(v)
    }

    fn array(&mut self, depth: usize) -> Result<Value, String> {
        self.pos += 1;
        let t = self.lua.create_table().map_err(Self::lua_err)?;
        self.skip_ws();
        if self.text.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::Table(t));
        }
        let mut i = 1;
        loop {
            let v = self.value(depth + 1)?;
            t.raw_set(i, v).map_err(Self::lua_err)?;
            i += 1;
            self.skip_ws();
            match self.text.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Table(t));
                }
                _ => return Err(self.unexpected("comma or array end")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        self.pos += 1;
        let t = self.lua.create_table().map_err(Self::lua_err)?;
        self.skip_ws();
        if self.text.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Table(t));
        }
        loop {
            self.skip_ws();
            if self.text.get(self.pos) != Some(&b'"') {
                return Err(self.unexpected("object key string"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.text.get(self.pos) != Some(&b':') {
                return Err(self.unexpected("colon"));
            }
            self.pos += 1;
            let v = self.value(depth + 1)?;
            let key = self.lua.create_string(&key).map_err(Self::lua_err)?;
            t.raw_set(key, v).map_err(Self::lua_err)?;
            self.skip_ws();
            match self.text.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Table(t));
                }
                _ => return Err(self.unexpected("comma or object end")),
            }
        }
    }
}

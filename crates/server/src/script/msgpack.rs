//! The `cmsgpack` library Redis loads (lua-cmsgpack): `pack` of any
//! number of values into one MessagePack stream, `unpack` of a whole
//! stream, `unpack_one` and `unpack_limit` from an offset.
//!
//! As lua-cmsgpack does on Lua 5.1: a number that is an integer (as an
//! i64) packs as the smallest integer form, any other as a float32 when
//! that loses nothing, else a float64; a table packs as an array when
//! its keys are exactly 1..n, else as a map; tables nested deeper than
//! 16 pack as nil, and so do values of other types.

use mlua::{Lua, MultiValue, Table, Value};

use super::libs::{LibFn, LibFnMulti, check_number, library as make, type_name};

const MAX_NESTING: usize = 16;

pub(super) fn library(lua: &Lua, fail: fn() -> Value) -> mlua::Result<Table> {
    let one: Vec<(&'static str, LibFn)> = vec![("pack", pack)];
    let multi: Vec<(&'static str, LibFnMulti)> = vec![
        ("unpack", |lua, name, args| {
            unpack_full(lua, name, &args, 0, 0)
        }),
        ("unpack_one", |lua, name, args| {
            let offset = optional(&args, 1, name)?;
            unpack_full(lua, name, &args, 1, offset)
        }),
        ("unpack_limit", |lua, name, args| {
            let limit = check_number(&args, 1, name)? as i64;
            let offset = optional(&args, 2, name)?;
            unpack_full(lua, name, &args, limit, offset)
        }),
    ];
    make(lua, fail, one, multi)
}

fn optional(args: &MultiValue, i: usize, name: &str) -> Result<i64, String> {
    match args.get(i) {
        None | Some(Value::Nil) => Ok(0),
        Some(_) => Ok(check_number(args, i, name)? as i64),
    }
}

fn pack(lua: &Lua, name: &str, args: MultiValue) -> Result<Value, String> {
    if args.is_empty() {
        return Err(format!(
            "bad argument #0 to '{name}' (MessagePack pack needs input.)"
        ));
    }
    let mut out = Vec::new();
    for v in args.iter() {
        encode(v, &mut out, 0);
    }
    lua.create_string(&out)
        .map(Value::String)
        .map_err(|e| e.to_string())
}

fn encode(v: &Value, out: &mut Vec<u8>, level: usize) {
    match v {
        Value::String(s) => {
            let b = s.as_bytes();
            let len = b.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else if len <= 0xff {
                out.extend_from_slice(&[0xd9, len as u8]);
            } else if len <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(&b);
        }
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_int(*i, out),
        Value::Number(n) => {
            if n.is_finite() && (*n as i64) as f64 == *n {
                encode_int(*n as i64, out);
            } else if f64::from(*n as f32) == *n {
                out.push(0xca);
                out.extend_from_slice(&(*n as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::Table(t) if level < MAX_NESTING => encode_table(t, out, level),
        _ => out.push(0xc0),
    }
}

fn encode_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn header(out: &mut Vec<u8>, n: usize, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn encode_table(t: &Table, out: &mut Vec<u8>, level: usize) {
    // An array: keys exactly 1..n (lua-cmsgpack requires int-sized
    // keys). Pairs are visited twice rather than kept: a big table would
    // not fit mlua's stack of references.
    let (mut count, mut max) = (0usize, 0f64);
    let mut is_array = true;
    for (k, _) in t.pairs::<Value, Value>().flatten() {
        count += 1;
        let n = match k {
            Value::Number(n) => n,
            Value::Integer(i) => i as f64,
            _ => {
                is_array = false;
                continue;
            }
        };
        if !(n > 0.0 && n <= f64::from(i32::MAX) && n.fract() == 0.0) {
            is_array = false;
        }
        max = max.max(n);
    }
    if is_array && max as usize == count {
        header(out, count, 0x90, 0xdc, 0xdd);
        for i in 1..=count {
            let v: Value = t.raw_get(i).unwrap_or(Value::Nil);
            encode(&v, out, level + 1);
        }
    } else {
        header(out, count, 0x80, 0xde, 0xdf);
        for (k, v) in t.pairs::<Value, Value>().flatten() {
            encode(&k, out, level + 1);
            encode(&v, out, level + 1);
        }
    }
}

/// Why decoding stopped.
enum Stop {
    Eof,
    BadFormat,
    Lua(String),
}

/// How deep decoding follows nested arrays and maps: it recurses
/// (lua-cmsgpack stops at Lua's C stack limit).
const MAX_DECODE_DEPTH: usize = 1000;

struct Cursor<'a> {
    depth: usize,
    lua: &'a Lua,
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn need(&self, n: usize) -> Result<&[u8], Stop> {
        self.data.get(self.pos..self.pos + n).ok_or(Stop::Eof)
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>, Stop> {
        let b = self.need(n)?.to_vec();
        self.pos += n;
        Ok(b)
    }

    fn be(&mut self, n: usize) -> Result<u64, Stop> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn string(&mut self, len: usize) -> Result<Value, Stop> {
        let b = self.take(len)?;
        self.lua
            .create_string(&b)
            .map(Value::String)
            .map_err(|e| Stop::Lua(e.to_string()))
    }

    fn table(&mut self, len: usize, map: bool) -> Result<Value, Stop> {
        if self.depth >= MAX_DECODE_DEPTH {
            return Err(Stop::Lua(
                "stack overflow (in function mp_decode_to_lua_array)".into(),
            ));
        }
        self.depth += 1;
        let t = self.table_items(len, map);
        self.depth -= 1;
        t
    }

    fn table_items(&mut self, len: usize, map: bool) -> Result<Value, Stop> {
        let t = self
            .lua
            .create_table()
            .map_err(|e| Stop::Lua(e.to_string()))?;
        for i in 1..=len {
            let (k, v) = if map {
                (self.value()?, self.value()?)
            } else {
                (Value::Number(i as f64), self.value()?)
            };
            if !k.is_nil() {
                t.raw_set(k, v).map_err(|e| Stop::Lua(e.to_string()))?;
            }
        }
        Ok(Value::Table(t))
    }

    fn value(&mut self) -> Result<Value, Stop> {
        let b = self.take(1)?[0];
        let num = |n: f64| Ok(Value::Number(n));
        match b {
            0xcc => num(self.be(1)? as f64),
            0xcd => num(self.be(2)? as f64),
            0xce => num(self.be(4)? as f64),
            0xcf => num(self.be(8)? as f64),
            0xd0 => num(f64::from(self.be(1)? as u8 as i8)),
            0xd1 => num(f64::from(self.be(2)? as u16 as i16)),
            0xd2 => num(f64::from(self.be(4)? as u32 as i32)),
            0xd3 => num(self.be(8)? as i64 as f64),
            0xc0 => Ok(Value::Nil),
            0xc3 => Ok(Value::Boolean(true)),
            0xc2 => Ok(Value::Boolean(false)),
            0xca => num(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => num(f64::from_bits(self.be(8)?)),
            0xd9 => {
                let n = self.be(1)? as usize;
                self.string(n)
            }
            0xda => {
                let n = self.be(2)? as usize;
                self.string(n)
            }
            0xdb => {
                let n = self.be(4)? as usize;
                self.string(n)
            }
            0xdc => {
                let n = self.be(2)? as usize;
                self.table(n, false)
            }
            0xdd => {
                let n = self.be(4)? as usize;
                self.table(n, false)
            }
            0xde => {
                let n = self.be(2)? as usize;
                self.table(n, true)
            }
            0xdf => {
                let n = self.be(4)? as usize;
                self.table(n, true)
            }
            b if b & 0x80 == 0 => num(f64::from(b)),
            b if b & 0xe0 == 0xe0 => num(f64::from(b as i8)),
            b if b & 0xe0 == 0xa0 => self.string(usize::from(b & 0x1f)),
            b if b & 0xf0 == 0x90 => self.table(usize::from(b & 0x0f), false),
            b if b & 0xf0 == 0x80 => self.table(usize::from(b & 0x0f), true),
            _ => Err(Stop::BadFormat),
        }
    }
}

fn unpack_full(
    lua: &Lua,
    name: &str,
    args: &MultiValue,
    limit: i64,
    offset: i64,
) -> Result<Vec<Value>, String> {
    let data = match args.front() {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(Value::Number(n)) => super::convert::format_g(*n, 14).into_bytes(),
        v => {
            return Err(format!(
                "bad argument #1 to '{name}' (string expected, got {})",
                type_name(v)
            ));
        }
    };
    let len = data.len();
    if offset < 0 || limit < 0 {
        return Err(format!(
            "Invalid request to unpack with offset of {offset} and limit of {len}."
        ));
    }
    if offset as usize > len {
        return Err(format!(
            "Start offset {offset} greater than input length {len}."
        ));
    }
    let all = limit == 0 && offset == 0;
    let limit = if all { i64::from(i32::MAX) } else { limit };
    let mut c = Cursor {
        depth: 0,
        lua,
        data: &data,
        pos: offset as usize,
    };
    let mut out = Vec::new();
    let mut count = 0;
    while c.pos < len && count < limit {
        match c.value() {
            Ok(v) => out.push(v),
            Err(Stop::Eof) => return Err("Missing bytes in input.".into()),
            Err(Stop::BadFormat) => return Err("Bad data format in input.".into()),
            Err(Stop::Lua(e)) => return Err(e),
        }
        count += 1;
    }
    if !all {
        let next = if c.pos == len { -1.0 } else { c.pos as f64 };
        out.insert(0, Value::Number(next));
    }
    Ok(out)
}

//! The `struct` library Redis loads (Roberto Ierusalimschy's): `pack`,
//! `unpack` and `size` of binary records described by a format string,
//! with the sizes of x86-64 Linux (short 2, long and size_t 8, int 4),
//! little-endian and unaligned by default.

use mlua::{Lua, MultiValue, Table, Value};

use super::libs::{LibFn, LibFnMulti, check_number, library as make, type_name};

/// Integers up to this many bytes (`i32`, `I16`...).
const MAX_INT_SIZE: usize = 32;
/// The alignment `!` without a number sets.
const MAX_ALIGN: usize = 8;

pub(super) fn library(lua: &Lua, fail: fn() -> Value) -> mlua::Result<Table> {
    let one: Vec<(&'static str, LibFn)> = vec![("pack", pack), ("size", size)];
    let multi: Vec<(&'static str, LibFnMulti)> = vec![("unpack", unpack)];
    make(lua, fail, one, multi)
}

/// A format string being read, with its byte order and alignment.
struct Format<'a> {
    fmt: &'a [u8],
    at: usize,
    little: bool,
    align: usize,
}

impl<'a> Format<'a> {
    fn new(fmt: &'a [u8]) -> Self {
        Format {
            fmt,
            at: 0,
            little: true,
            align: 1,
        }
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.fmt.get(self.at).copied();
        self.at += 1;
        c
    }

    /// A number after an option, or `default`.
    fn number(&mut self, default: usize) -> Result<usize, String> {
        if !self.fmt.get(self.at).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut n: usize = 0;
        while let Some(d) = self.fmt.get(self.at).filter(|d| d.is_ascii_digit()) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(d - b'0')))
                .filter(|&n| n <= i32::MAX as usize)
                .ok_or("integral size overflow")?;
            self.at += 1;
        }
        Ok(n)
    }

    /// The size of option `opt` (reading its number, if it takes one).
    fn size(&mut self, opt: u8) -> Result<usize, String> {
        Ok(match opt {
            b'b' | b'B' | b'x' => 1,
            b'h' | b'H' => 2,
            b'l' | b'L' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(1)?,
            b'i' | b'I' => {
                let n = self.number(4)?;
                if n > MAX_INT_SIZE {
                    return Err(format!(
                        "integral size {n} is larger than limit of {MAX_INT_SIZE}"
                    ));
                }
                n
            }
            _ => 0,
        })
    }

    /// Padding before an item of `size` at `len`.
    fn padding(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        (size - (len & (size - 1))) & (size - 1)
    }

    /// Byte order, alignment and spaces; anything else is refused.
    fn control(&mut self, opt: u8, fname: &str) -> Result<(), String> {
        match opt {
            b' ' => {}
            b'>' => self.little = false,
            b'<' => self.little = true,
            b'!' => {
                let a = self.number(MAX_ALIGN)?;
                if !a.is_power_of_two() {
                    return Err(format!("alignment {a} is not a power of 2"));
                }
                self.align = a;
            }
            _ => {
                return Err(format!(
                    "bad argument #1 to '{fname}' (invalid format option '{}')",
                    char::from(opt)
                ));
            }
        }
        Ok(())
    }
}

fn check_string(args: &MultiValue, i: usize, fname: &str) -> Result<Vec<u8>, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Number(n)) => Ok(super::convert::format_g(*n, 14).into_bytes()),
        Some(Value::Integer(n)) => Ok(super::convert::format_g(*n as f64, 14).into_bytes()),
        v => Err(format!(
            "bad argument #{} to '{fname}' (string expected, got {})",
            i + 1,
            type_name(v)
        )),
    }
}

fn pack(lua: &Lua, fname: &str, args: MultiValue) -> Result<Value, String> {
    let fmt = check_string(&args, 0, fname)?;
    // Redis's pack pushes a nil after its arguments: a missing value is
    // reported as that nil.
    let mut args = args;
    args.push_back(Value::Nil);
    let mut f = Format::new(&fmt);
    let mut out = Vec::new();
    let mut arg = 1;
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        let pad = f.padding(out.len(), opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(&args, arg, fname)?;
                arg += 1;
                let mut value = if n < 0.0 {
                    super::convert::truncate(n) as u64
                } else {
                    n as u64
                };
                let mut bytes = vec![0u8; size];
                for b in bytes.iter_mut() {
                    *b = (value & 0xff) as u8;
                    value >>= 8;
                }
                if !f.little {
                    bytes.reverse();
                }
                out.extend_from_slice(&bytes);
            }
            b'x' => out.push(0),
            b'f' => {
                let v = check_number(&args, arg, fname)? as f32;
                arg += 1;
                out.extend_from_slice(&if f.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'd' => {
                let v = check_number(&args, arg, fname)?;
                arg += 1;
                out.extend_from_slice(&if f.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = check_string(&args, arg, fname)?;
                arg += 1;
                if size == 0 || opt == b's' {
                    size = s.len();
                }
                if s.len() < size {
                    // Redis's struct names the argument after the string.
                    return Err(format!(
                        "bad argument #{} to '{fname}' (string too short)",
                        arg + 1
                    ));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt, fname)?,
        }
    }
    lua.create_string(&out)
        .map(Value::String)
        .map_err(|e| e.to_string())
}

fn unpack(lua: &Lua, fname: &str, args: MultiValue) -> Result<Vec<Value>, String> {
    let fmt = check_string(&args, 0, fname)?;
    let data = check_string(&args, 1, fname)?;
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1.0,
        Some(_) => check_number(&args, 2, fname)?,
    };
    if start < 1.0 {
        return Err(format!(
            "bad argument #3 to '{fname}' (offset must be 1 or greater)"
        ));
    }
    let mut pos = start as usize - 1;
    let mut f = Format::new(&fmt);
    let mut out = Vec::new();
    let too_short = || format!("bad argument #2 to '{fname}' (data string too short)");
    let ld = data.len();
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        pos += f.padding(pos, opt, size);
        if size > ld || pos > ld - size {
            return Err(too_short());
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let mut bytes = data[pos..pos + size].to_vec();
                if !f.little {
                    bytes.reverse();
                }
                let mut v: u64 = 0;
                for &b in bytes.iter().rev() {
                    v = (v << 8) | u64::from(b);
                }
                let n = if opt.is_ascii_lowercase() && size > 0 {
                    let bits = (size * 8 - 1).min(63);
                    let mask = u64::MAX << bits;
                    if v & mask != 0 {
                        (v | mask) as i64 as f64
                    } else {
                        v as f64
                    }
                } else {
                    v as f64
                };
                out.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let v = if f.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(f64::from(v)));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let v = if f.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(v));
            }
            b'c' => {
                if size == 0 {
                    let Some(Value::Number(n)) = out.pop() else {
                        return Err("format 'c0' needs a previous size".into());
                    };
                    size = n as usize;
                    if size > ld || pos > ld - size {
                        return Err(too_short());
                    }
                }
                let s = lua
                    .create_string(&data[pos..pos + size])
                    .map_err(|e| e.to_string())?;
                out.push(Value::String(s));
            }
            b's' => {
                let Some(len) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err("unfinished string in data".into());
                };
                let s = lua
                    .create_string(&data[pos..pos + len])
                    .map_err(|e| e.to_string())?;
                out.push(Value::String(s));
                size = len + 1;
            }
            _ => f.control(opt, fname)?,
        }
        pos += size;
    }
    out.push(Value::Number((pos + 1) as f64));
    Ok(out)
}

fn size(_lua: &Lua, fname: &str, args: MultiValue) -> Result<Value, String> {
    let fmt = check_string(&args, 0, fname)?;
    let mut f = Format::new(&fmt);
    let mut pos = 0usize;
    while let Some(opt) = f.next() {
        let size = f.size(opt)?;
        pos += f.padding(pos, opt, size);
        if opt == b's' {
            return Err(format!(
                "bad argument #1 to '{fname}' (option 's' has no fixed size)"
            ));
        }
        if opt == b'c' && size == 0 {
            return Err(format!(
                "bad argument #1 to '{fname}' (option 'c0' has no fixed size)"
            ));
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(opt, fname)?;
        }
        pos += size;
    }
    Ok(Value::Number(pos as f64))
}

//! The conversions between RESP and Lua values that Redis documents for
//! scripts, both ways, and the number format Redis gives Lua numbers it
//! turns into command arguments.

use bytes::Bytes;
use mlua::{Lua, Table, Value};
use resp::Frame;

/// How deep a table a script returns may nest before Ember refuses it
/// (Redis stops at its Lua stack limit).
const MAX_DEPTH: usize = 1000;

/// A reply as the script sees it (Redis's `redisProtocolToLuaType`):
/// status and error replies become `{ok=}`/`{err=}` tables, nulls
/// `false` (RESP3's null `nil`), RESP3's types tables keyed by their
/// name.
pub(crate) fn frame_to_lua(lua: &Lua, frame: &Frame) -> mlua::Result<Value> {
    Ok(match frame {
        Frame::Simple(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(s)?)?;
            Value::Table(t)
        }
        Frame::Error(e) | Frame::BulkError(e) => {
            let mut text = b"-".to_vec();
            text.extend_from_slice(e);
            let t = error_table(lua, &text)?;
            t.raw_set("ignore_error_stats_update", true)?;
            Value::Table(t)
        }
        Frame::Integer(i) => Value::Number(*i as f64),
        Frame::Bulk(b) => Value::String(lua.create_string(b)?),
        Frame::NullBulk | Frame::NullArray => Value::Boolean(false),
        Frame::Null => Value::Nil,
        Frame::Array(items) | Frame::Push(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, frame_to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        Frame::Boolean(b) => Value::Boolean(*b),
        Frame::Double(d) => {
            let t = lua.create_table()?;
            t.raw_set("double", *d)?;
            Value::Table(t)
        }
        Frame::BigNumber(n) => {
            let t = lua.create_table()?;
            t.raw_set("big_number", lua.create_string(n)?)?;
            Value::Table(t)
        }
        Frame::Verbatim { format, text } => {
            let inner = lua.create_table()?;
            inner.raw_set("string", lua.create_string(text)?)?;
            inner.raw_set("format", lua.create_string(format)?)?;
            let t = lua.create_table()?;
            t.raw_set("verbatim_string", inner)?;
            Value::Table(t)
        }
        Frame::Map(pairs) => {
            let inner = lua.create_table()?;
            for (k, v) in pairs {
                inner.raw_set(frame_to_lua(lua, k)?, frame_to_lua(lua, v)?)?;
            }
            let t = lua.create_table()?;
            t.raw_set("map", inner)?;
            Value::Table(t)
        }
        Frame::Set(items) => {
            let inner = lua.create_table()?;
            for item in items {
                inner.raw_set(frame_to_lua(lua, item)?, true)?;
            }
            let t = lua.create_table()?;
            t.raw_set("set", inner)?;
            Value::Table(t)
        }
        Frame::Attribute { frame, .. } => frame_to_lua(lua, frame)?,
        _ => Value::Nil,
    })
}

/// Redis's error table from `-CODE message` or `message` (which gets the
/// code `ERR`), newlines trimmed from the message's ends.
pub(crate) fn error_table(lua: &Lua, text: &[u8]) -> mlua::Result<Table> {
    let (code, msg): (&[u8], &[u8]) = match text.strip_prefix(b"-") {
        Some(rest) => match rest.iter().position(|&b| b == b' ') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", text),
    };
    let is_nl = |b: &u8| *b == b'\r' || *b == b'\n';
    let start = msg.iter().position(|b| !is_nl(b)).unwrap_or(msg.len());
    let end = msg.iter().rposition(|b| !is_nl(b)).map_or(start, |e| e + 1);
    let mut full = code.to_vec();
    full.push(b' ');
    full.extend_from_slice(&msg[start..end.max(start)]);
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(&full)?)?;
    Ok(t)
}

/// A script's result as a reply (Redis's `luaReplyToRedisReply`), `resp3`
/// being what the script chose with `redis.setresp`.
pub(crate) fn lua_to_frame(value: &Value, resp3: bool) -> Frame {
    let mut budget = MAX_VALUES;
    to_frame(value, resp3, 0, &mut budget)
}

/// The most values one reply may hold: a table that holds itself many
/// times over would otherwise be followed exponentially.
const MAX_VALUES: usize = 10_000_000;

fn to_frame(value: &Value, resp3: bool, depth: usize, budget: &mut usize) -> Frame {
    if depth > MAX_DEPTH || *budget == 0 {
        return Frame::Error(Bytes::from_static(b"ERR reached lua stack limit"));
    }
    *budget -= 1;
    match value {
        Value::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) if resp3 => Frame::Boolean(*b),
        Value::Boolean(true) => Frame::Integer(1),
        Value::Integer(i) => Frame::Integer(*i),
        Value::Number(n) => Frame::Integer(truncate(*n)),
        Value::Table(t) => table_to_frame(t, resp3, depth, budget),
        _ => Frame::Null,
    }
}

fn table_to_frame(t: &Table, resp3: bool, depth: usize, budget: &mut usize) -> Frame {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(e) = field("err") {
        return Frame::Error(Bytes::from(no_newlines(&e.as_bytes())));
    }
    if let Value::String(s) = field("ok") {
        return Frame::Simple(Bytes::from(no_newlines(&s.as_bytes())));
    }
    if let Some(d) = number(&field("double")) {
        return Frame::Double(d);
    }
    if let Value::String(s) = field("big_number") {
        return Frame::BigNumber(Bytes::from(no_newlines(&s.as_bytes())));
    }
    if let Value::Table(v) = field("verbatim_string")
        && let (Ok(Value::String(format)), Ok(Value::String(text))) =
            (v.raw_get::<Value>("format"), v.raw_get::<Value>("string"))
    {
        let f = format.as_bytes();
        let mut fmt = *b"txt";
        for (d, s) in fmt.iter_mut().zip(f.iter()) {
            *d = *s;
        }
        return Frame::Verbatim {
            format: fmt,
            text: Bytes::copy_from_slice(&text.as_bytes()),
        };
    }
    if let Value::Table(m) = field("map") {
        let mut pairs = Vec::new();
        for (k, v) in m.pairs::<Value, Value>().flatten() {
            pairs.push((
                to_frame(&k, resp3, depth + 1, budget),
                to_frame(&v, resp3, depth + 1, budget),
            ));
        }
        return Frame::Map(pairs);
    }
    if let Value::Table(s) = field("set") {
        let mut items = Vec::new();
        for (k, _) in s.pairs::<Value, Value>().flatten() {
            items.push(to_frame(&k, resp3, depth + 1, budget));
        }
        return Frame::Set(items);
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(to_frame(&v, resp3, depth + 1, budget)),
        }
    }
    Frame::Array(items)
}

/// C's `(long long)` of a double on x86-64: truncation toward zero, and
/// the minimum for NaN and anything out of range.
pub(crate) fn truncate(n: f64) -> i64 {
    let limit = 2f64.powi(63);
    if n.is_nan() || !(-limit..limit).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// Status and error texts cannot hold newlines: Redis turns them into
/// spaces.
fn no_newlines(b: &[u8]) -> Vec<u8> {
    b.iter()
        .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
        .collect()
}

/// A Lua number as a command argument: C's `%.17g`, as Redis formats it.
pub(crate) fn format_g17(x: f64) -> String {
    format_g(x, 17)
}

/// C's `%.<precision>g`.
pub(crate) fn format_g(x: f64, precision: usize) -> String {
    let precision = precision.max(1);
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{x:.prec$e}", prec = precision - 1);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= precision as i32 {
        let m = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_as_c_does() {
        assert_eq!(format_g17(1.0), "1");
        assert_eq!(format_g17(-3.0), "-3");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(1e20), "1e+20");
        assert_eq!(format_g17(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(format_g17(123456789012345678.0), "1.2345678901234568e+17");
        assert_eq!(format_g17(3.25), "3.25");
    }
}

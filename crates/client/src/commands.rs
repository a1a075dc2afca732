//! Typed methods for the common commands, shared by [`Client`](crate::Client)
//! and [`Connection`](crate::Connection), and the conversions of their
//! replies.

use bytes::Bytes;
use resp::Frame;

use crate::Error;

/// The options of `SET`, built up one by one:
///
/// ```
/// use ember_client::SetOptions;
///
/// // SET key value PX 1500 NX
/// let options = SetOptions::new().px(1500).nx();
/// # let _ = options;
/// ```
///
/// An expiry option replaces the one before, and so does a condition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetOptions {
    expiry: Option<(&'static str, Option<u64>)>,
    condition: Option<&'static str>,
    get: bool,
}

impl SetOptions {
    /// No options: a plain `SET`.
    pub fn new() -> SetOptions {
        SetOptions::default()
    }

    /// `EX seconds`: expire after this many seconds.
    pub fn ex(mut self, seconds: u64) -> SetOptions {
        self.expiry = Some(("EX", Some(seconds)));
        self
    }

    /// `PX milliseconds`: expire after this many milliseconds.
    pub fn px(mut self, milliseconds: u64) -> SetOptions {
        self.expiry = Some(("PX", Some(milliseconds)));
        self
    }

    /// `EXAT timestamp`: expire at this Unix time, in seconds.
    pub fn exat(mut self, unix_seconds: u64) -> SetOptions {
        self.expiry = Some(("EXAT", Some(unix_seconds)));
        self
    }

    /// `PXAT timestamp`: expire at this Unix time, in milliseconds.
    pub fn pxat(mut self, unix_milliseconds: u64) -> SetOptions {
        self.expiry = Some(("PXAT", Some(unix_milliseconds)));
        self
    }

    /// `KEEPTTL`: keep the key's time to live.
    pub fn keep_ttl(mut self) -> SetOptions {
        self.expiry = Some(("KEEPTTL", None));
        self
    }

    /// `NX`: only set a key that does not exist.
    pub fn nx(mut self) -> SetOptions {
        self.condition = Some("NX");
        self
    }

    /// `XX`: only set a key that exists.
    pub fn xx(mut self) -> SetOptions {
        self.condition = Some("XX");
        self
    }

    /// `GET`: answer the key's old value.
    pub fn get(mut self) -> SetOptions {
        self.get = true;
        self
    }

    pub(crate) fn push_args(&self, args: &mut Vec<Bytes>) {
        if let Some((name, value)) = self.expiry {
            args.push(Bytes::from_static(name.as_bytes()));
            if let Some(v) = value {
                args.push(int(v));
            }
        }
        if let Some(c) = self.condition {
            args.push(Bytes::from_static(c.as_bytes()));
        }
        if self.get {
            args.push(Bytes::from_static(b"GET"));
        }
    }
}

/// What `SET` with options answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetReply {
    /// The value was stored (`OK`).
    Stored,
    /// `NX` or `XX` kept the value from being stored (nil).
    NotStored,
    /// With [`SetOptions::get`]: the key's old value, `None` if it had none.
    Old(Option<Bytes>),
}

pub(crate) fn arg(a: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(a.as_ref())
}

pub(crate) fn int(n: impl ToString) -> Bytes {
    Bytes::from(n.to_string())
}

pub(crate) fn name(n: &'static str) -> Bytes {
    Bytes::from_static(n.as_bytes())
}

fn unexpected(command: &'static str, reply: &Frame) -> Error {
    let mut text = format!("{reply:?}");
    if text.len() > 100 {
        let mut end = 100;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    Error::UnexpectedReply {
        command,
        reply: text,
    }
}

pub(crate) fn ok(command: &'static str, reply: Frame) -> Result<(), Error> {
    match reply {
        Frame::Simple(_) => Ok(()),
        other => Err(unexpected(command, &other)),
    }
}

pub(crate) fn integer(command: &'static str, reply: Frame) -> Result<i64, Error> {
    match reply {
        Frame::Integer(n) => Ok(n),
        other => Err(unexpected(command, &other)),
    }
}

pub(crate) fn boolean(command: &'static str, reply: Frame) -> Result<bool, Error> {
    match reply {
        Frame::Integer(n) => Ok(n != 0),
        Frame::Boolean(b) => Ok(b),
        other => Err(unexpected(command, &other)),
    }
}

pub(crate) fn opt_bytes(command: &'static str, reply: Frame) -> Result<Option<Bytes>, Error> {
    match reply {
        Frame::Bulk(b) | Frame::Simple(b) => Ok(Some(b)),
        f if f.is_null() => Ok(None),
        other => Err(unexpected(command, &other)),
    }
}

pub(crate) fn list(command: &'static str, reply: Frame) -> Result<Vec<Bytes>, Error> {
    match reply {
        Frame::Array(items) | Frame::Set(items) => items
            .into_iter()
            .map(|f| match f {
                Frame::Bulk(b) | Frame::Simple(b) => Ok(b),
                other => Err(unexpected(command, &other)),
            })
            .collect(),
        f if f.is_null() => Ok(Vec::new()),
        other => Err(unexpected(command, &other)),
    }
}

pub(crate) fn opt_list(command: &'static str, reply: Frame) -> Result<Vec<Option<Bytes>>, Error> {
    match reply {
        Frame::Array(items) => items.into_iter().map(|f| opt_bytes(command, f)).collect(),
        other => Err(unexpected(command, &other)),
    }
}

pub(crate) fn pairs(command: &'static str, reply: Frame) -> Result<Vec<(Bytes, Bytes)>, Error> {
    match reply {
        Frame::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| Ok((bytes(command, k)?, bytes(command, v)?)))
            .collect(),
        Frame::Array(items) if items.len() % 2 == 0 => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((bytes(command, k)?, bytes(command, v)?));
            }
            Ok(out)
        }
        other => Err(unexpected(command, &other)),
    }
}

fn bytes(command: &'static str, reply: Frame) -> Result<Bytes, Error> {
    match reply {
        Frame::Bulk(b) | Frame::Simple(b) => Ok(b),
        other => Err(unexpected(command, &other)),
    }
}

pub(crate) fn set_reply(options: &SetOptions, reply: Frame) -> Result<SetReply, Error> {
    if options.get {
        return opt_bytes("SET", reply).map(SetReply::Old);
    }
    match reply {
        Frame::Simple(_) => Ok(SetReply::Stored),
        f if f.is_null() => Ok(SetReply::NotStored),
        other => Err(unexpected("SET", &other)),
    }
}

/// Defines the typed methods in an `impl` block of a type with
/// `async fn call(&self, Vec<Bytes>) -> Result<Frame, Error>`.
macro_rules! typed_commands {
    () => {
        /// `PING`: checks that a node answers.
        pub async fn ping(&self) -> Result<(), Error> {
            let reply = self.call([name("PING")]).await?;
            ok("PING", reply)
        }

        /// `GET key`: the value, or `None` when the key does not exist.
        pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
            let reply = self.call([name("GET"), arg(key)]).await?;
            opt_bytes("GET", reply)
        }

        /// `SET key value`.
        pub async fn set(
            &self,
            key: impl AsRef<[u8]>,
            value: impl AsRef<[u8]>,
        ) -> Result<(), Error> {
            let reply = self.call([name("SET"), arg(key), arg(value)]).await?;
            ok("SET", reply)
        }

        /// `SET key value` with options: an expiry, a condition, `GET`.
        pub async fn set_with(
            &self,
            key: impl AsRef<[u8]>,
            value: impl AsRef<[u8]>,
            options: &SetOptions,
        ) -> Result<SetReply, Error> {
            let mut args = vec![name("SET"), arg(key), arg(value)];
            options.push_args(&mut args);
            let reply = self.call(args).await?;
            set_reply(options, reply)
        }

        /// `APPEND key value`: the length of the value after.
        pub async fn append(
            &self,
            key: impl AsRef<[u8]>,
            value: impl AsRef<[u8]>,
        ) -> Result<i64, Error> {
            let reply = self.call([name("APPEND"), arg(key), arg(value)]).await?;
            integer("APPEND", reply)
        }

        /// `STRLEN key`: the length of the value, 0 when there is none.
        pub async fn strlen(&self, key: impl AsRef<[u8]>) -> Result<i64, Error> {
            let reply = self.call([name("STRLEN"), arg(key)]).await?;
            integer("STRLEN", reply)
        }

        /// `INCR key`: the value after adding one.
        pub async fn incr(&self, key: impl AsRef<[u8]>) -> Result<i64, Error> {
            let reply = self.call([name("INCR"), arg(key)]).await?;
            integer("INCR", reply)
        }

        /// `INCRBY key by`: the value after adding `by`.
        pub async fn incrby(&self, key: impl AsRef<[u8]>, by: i64) -> Result<i64, Error> {
            let reply = self.call([name("INCRBY"), arg(key), int(by)]).await?;
            integer("INCRBY", reply)
        }

        /// `DECR key`: the value after taking one away.
        pub async fn decr(&self, key: impl AsRef<[u8]>) -> Result<i64, Error> {
            let reply = self.call([name("DECR"), arg(key)]).await?;
            integer("DECR", reply)
        }

        /// `DECRBY key by`: the value after taking `by` away.
        pub async fn decrby(&self, key: impl AsRef<[u8]>, by: i64) -> Result<i64, Error> {
            let reply = self.call([name("DECRBY"), arg(key), int(by)]).await?;
            integer("DECRBY", reply)
        }

        /// `MGET key...`: each key's value, in the order asked, whatever
        /// shards they live on.
        pub async fn mget(
            &self,
            keys: impl IntoIterator<Item = impl AsRef<[u8]>>,
        ) -> Result<Vec<Option<Bytes>>, Error> {
            let mut args = vec![name("MGET")];
            args.extend(keys.into_iter().map(arg));
            let reply = self.call(args).await?;
            opt_list("MGET", reply)
        }

        /// `MSET key value...`. Across shards it is not atomic: each shard
        /// sets its own keys.
        pub async fn mset(
            &self,
            pairs: impl IntoIterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>,
        ) -> Result<(), Error> {
            let mut args = vec![name("MSET")];
            for (k, v) in pairs {
                args.push(arg(k));
                args.push(arg(v));
            }
            let reply = self.call(args).await?;
            ok("MSET", reply)
        }

        /// `DEL key...`: how many of the keys existed.
        pub async fn del(
            &self,
            keys: impl IntoIterator<Item = impl AsRef<[u8]>>,
        ) -> Result<i64, Error> {
            let mut args = vec![name("DEL")];
            args.extend(keys.into_iter().map(arg));
            let reply = self.call(args).await?;
            integer("DEL", reply)
        }

        /// `EXISTS key...`: how many of the keys exist (a key named twice
        /// counts twice).
        pub async fn exists(
            &self,
            keys: impl IntoIterator<Item = impl AsRef<[u8]>>,
        ) -> Result<i64, Error> {
            let mut args = vec![name("EXISTS")];
            args.extend(keys.into_iter().map(arg));
            let reply = self.call(args).await?;
            integer("EXISTS", reply)
        }

        /// `EXPIRE key seconds`: whether the key exists (and now expires).
        pub async fn expire(&self, key: impl AsRef<[u8]>, seconds: i64) -> Result<bool, Error> {
            let reply = self.call([name("EXPIRE"), arg(key), int(seconds)]).await?;
            boolean("EXPIRE", reply)
        }

        /// `PEXPIRE key milliseconds`: whether the key exists (and now
        /// expires).
        pub async fn pexpire(
            &self,
            key: impl AsRef<[u8]>,
            milliseconds: i64,
        ) -> Result<bool, Error> {
            let reply = self
                .call([name("PEXPIRE"), arg(key), int(milliseconds)])
                .await?;
            boolean("PEXPIRE", reply)
        }

        /// `PERSIST key`: whether the key had a time to live, now removed.
        pub async fn persist(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
            let reply = self.call([name("PERSIST"), arg(key)]).await?;
            boolean("PERSIST", reply)
        }

        /// `TTL key`: seconds left to live; -1 for a key that does not
        /// expire, -2 for one that does not exist.
        pub async fn ttl(&self, key: impl AsRef<[u8]>) -> Result<i64, Error> {
            let reply = self.call([name("TTL"), arg(key)]).await?;
            integer("TTL", reply)
        }

        /// `PTTL key`: as [`ttl`](Self::ttl), in milliseconds.
        pub async fn pttl(&self, key: impl AsRef<[u8]>) -> Result<i64, Error> {
            let reply = self.call([name("PTTL"), arg(key)]).await?;
            integer("PTTL", reply)
        }

        /// `LPUSH key value...`: the length of the list after.
        pub async fn lpush(
            &self,
            key: impl AsRef<[u8]>,
            values: impl IntoIterator<Item = impl AsRef<[u8]>>,
        ) -> Result<i64, Error> {
            let mut args = vec![name("LPUSH"), arg(key)];
            args.extend(values.into_iter().map(arg));
            let reply = self.call(args).await?;
            integer("LPUSH", reply)
        }

        /// `RPUSH key value...`: the length of the list after.
        pub async fn rpush(
            &self,
            key: impl AsRef<[u8]>,
            values: impl IntoIterator<Item = impl AsRef<[u8]>>,
        ) -> Result<i64, Error> {
            let mut args = vec![name("RPUSH"), arg(key)];
            args.extend(values.into_iter().map(arg));
            let reply = self.call(args).await?;
            integer("RPUSH", reply)
        }

        /// `LPOP key`: the first element, or `None` for an empty list.
        pub async fn lpop(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
            let reply = self.call([name("LPOP"), arg(key)]).await?;
            opt_bytes("LPOP", reply)
        }

        /// `RPOP key`: the last element, or `None` for an empty list.
        pub async fn rpop(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
            let reply = self.call([name("RPOP"), arg(key)]).await?;
            opt_bytes("RPOP", reply)
        }

        /// `LRANGE key start stop`: the elements from `start` to `stop`,
        /// both included; negative indices count from the end.
        pub async fn lrange(
            &self,
            key: impl AsRef<[u8]>,
            start: i64,
            stop: i64,
        ) -> Result<Vec<Bytes>, Error> {
            let reply = self
                .call([name("LRANGE"), arg(key), int(start), int(stop)])
                .await?;
            list("LRANGE", reply)
        }

        /// `LLEN key`: the length of the list.
        pub async fn llen(&self, key: impl AsRef<[u8]>) -> Result<i64, Error> {
            let reply = self.call([name("LLEN"), arg(key)]).await?;
            integer("LLEN", reply)
        }

        /// `HSET key field value...`: how many fields were new.
        pub async fn hset(
            &self,
            key: impl AsRef<[u8]>,
            pairs: impl IntoIterator<Item = (impl AsRef<[u8]>, impl AsRef<[u8]>)>,
        ) -> Result<i64, Error> {
            let mut args = vec![name("HSET"), arg(key)];
            for (f, v) in pairs {
                args.push(arg(f));
                args.push(arg(v));
            }
            let reply = self.call(args).await?;
            integer("HSET", reply)
        }

        /// `HGET key field`: the field's value, if any.
        pub async fn hget(
            &self,
            key: impl AsRef<[u8]>,
            field: impl AsRef<[u8]>,
        ) -> Result<Option<Bytes>, Error> {
            let reply = self.call([name("HGET"), arg(key), arg(field)]).await?;
            opt_bytes("HGET", reply)
        }

        /// `HGETALL key`: every field and value.
        pub async fn hgetall(&self, key: impl AsRef<[u8]>) -> Result<Vec<(Bytes, Bytes)>, Error> {
            let reply = self.call([name("HGETALL"), arg(key)]).await?;
            pairs("HGETALL", reply)
        }

        /// `HDEL key field...`: how many of the fields existed.
        pub async fn hdel(
            &self,
            key: impl AsRef<[u8]>,
            fields: impl IntoIterator<Item = impl AsRef<[u8]>>,
        ) -> Result<i64, Error> {
            let mut args = vec![name("HDEL"), arg(key)];
            args.extend(fields.into_iter().map(arg));
            let reply = self.call(args).await?;
            integer("HDEL", reply)
        }

        /// `HINCRBY key field by`: the field's value after.
        pub async fn hincrby(
            &self,
            key: impl AsRef<[u8]>,
            field: impl AsRef<[u8]>,
            by: i64,
        ) -> Result<i64, Error> {
            let reply = self
                .call([name("HINCRBY"), arg(key), arg(field), int(by)])
                .await?;
            integer("HINCRBY", reply)
        }

        /// `HLEN key`: how many fields the hash has.
        pub async fn hlen(&self, key: impl AsRef<[u8]>) -> Result<i64, Error> {
            let reply = self.call([name("HLEN"), arg(key)]).await?;
            integer("HLEN", reply)
        }

        /// `HEXISTS key field`: whether the hash has the field.
        pub async fn hexists(
            &self,
            key: impl AsRef<[u8]>,
            field: impl AsRef<[u8]>,
        ) -> Result<bool, Error> {
            let reply = self.call([name("HEXISTS"), arg(key), arg(field)]).await?;
            boolean("HEXISTS", reply)
        }

        /// `SADD key member...`: how many members were new.
        pub async fn sadd(
            &self,
            key: impl AsRef<[u8]>,
            members: impl IntoIterator<Item = impl AsRef<[u8]>>,
        ) -> Result<i64, Error> {
            let mut args = vec![name("SADD"), arg(key)];
            args.extend(members.into_iter().map(arg));
            let reply = self.call(args).await?;
            integer("SADD", reply)
        }

        /// `SREM key member...`: how many of the members were there.
        pub async fn srem(
            &self,
            key: impl AsRef<[u8]>,
            members: impl IntoIterator<Item = impl AsRef<[u8]>>,
        ) -> Result<i64, Error> {
            let mut args = vec![name("SREM"), arg(key)];
            args.extend(members.into_iter().map(arg));
            let reply = self.call(args).await?;
            integer("SREM", reply)
        }

        /// `SMEMBERS key`: every member, in no particular order.
        pub async fn smembers(&self, key: impl AsRef<[u8]>) -> Result<Vec<Bytes>, Error> {
            let reply = self.call([name("SMEMBERS"), arg(key)]).await?;
            list("SMEMBERS", reply)
        }

        /// `SISMEMBER key member`: whether the set has the member.
        pub async fn sismember(
            &self,
            key: impl AsRef<[u8]>,
            member: impl AsRef<[u8]>,
        ) -> Result<bool, Error> {
            let reply = self
                .call([name("SISMEMBER"), arg(key), arg(member)])
                .await?;
            boolean("SISMEMBER", reply)
        }

        /// `SCARD key`: how many members the set has.
        pub async fn scard(&self, key: impl AsRef<[u8]>) -> Result<i64, Error> {
            let reply = self.call([name("SCARD"), arg(key)]).await?;
            integer("SCARD", reply)
        }

        /// `DBSIZE`: the number of keys (summed over the shards by a
        /// [`Client`](crate::Client)).
        pub async fn dbsize(&self) -> Result<i64, Error> {
            let reply = self.call([name("DBSIZE")]).await?;
            integer("DBSIZE", reply)
        }

        /// `FLUSHALL`: deletes every key (on every node, for a
        /// [`Client`](crate::Client)).
        pub async fn flushall(&self) -> Result<(), Error> {
            let reply = self.call([name("FLUSHALL")]).await?;
            ok("FLUSHALL", reply)
        }
    };
}

pub(crate) use typed_commands;

#[cfg(test)]
mod tests {
    use super::*;

    fn args(options: &SetOptions) -> Vec<Bytes> {
        let mut out = Vec::new();
        options.push_args(&mut out);
        out
    }

    #[test]
    fn set_options() {
        assert!(args(&SetOptions::new()).is_empty());
        assert_eq!(args(&SetOptions::new().ex(10).nx()), ["EX", "10", "NX"]);
        assert_eq!(
            args(&SetOptions::new().px(5).ex(7).xx().get()),
            ["EX", "7", "XX", "GET"]
        );
        assert_eq!(args(&SetOptions::new().keep_ttl()), ["KEEPTTL"]);
        assert_eq!(
            args(&SetOptions::new().pxat(1).nx().xx()),
            ["PXAT", "1", "XX"]
        );
        assert_eq!(args(&SetOptions::new().exat(2)), ["EXAT", "2"]);
    }

    #[test]
    fn replies() {
        assert_eq!(integer("INCR", Frame::Integer(3)).unwrap(), 3);
        let err = integer("INCR", Frame::bulk("x")).unwrap_err();
        assert_eq!(err.to_string(), "unexpected reply to INCR: Bulk(b\"x\")");
        assert_eq!(opt_bytes("GET", Frame::NullBulk).unwrap(), None);
        assert_eq!(
            opt_list("MGET", Frame::Array(vec![Frame::bulk("a"), Frame::Null])).unwrap(),
            [Some(Bytes::from("a")), None]
        );
        assert_eq!(
            pairs(
                "HGETALL",
                Frame::Array(vec![Frame::bulk("f"), Frame::bulk("v")])
            )
            .unwrap(),
            [(Bytes::from("f"), Bytes::from("v"))]
        );
        assert!(pairs("HGETALL", Frame::Array(vec![Frame::bulk("f")])).is_err());
        let get = SetOptions::new().get();
        assert_eq!(
            set_reply(&get, Frame::NullBulk).unwrap(),
            SetReply::Old(None)
        );
        let nx = SetOptions::new().nx();
        assert_eq!(
            set_reply(&nx, Frame::NullBulk).unwrap(),
            SetReply::NotStored
        );
        assert_eq!(
            set_reply(&nx, Frame::simple("OK")).unwrap(),
            SetReply::Stored
        );
        assert!(boolean("EXPIRE", Frame::Integer(1)).unwrap());
        assert!(list("LRANGE", Frame::Array(vec![Frame::Integer(1)])).is_err());
    }
}

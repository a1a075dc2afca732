//! Lua scripting against a real redis-server 7.0: EVAL and its family,
//! the script cache, the sandbox, the conversions between Lua and RESP
//! both ways in RESP2 and RESP3, errors from `redis.call` and
//! `redis.pcall` in Redis 7.0's words, the `cjson`, `cmsgpack`, `struct`
//! and `bit` libraries, replies compared byte for byte; what replicas
//! hear of scripts; atomicity across shards; and redis-py's `Lock`.

use std::net::TcpStream;

use bytes::Bytes;
use ember_tests::{EmberServer, RedisServer, call};

/// A redis-server and an Ember server, one connection to each (the
/// functions' tests use it too).
pub(crate) struct Pair {
    _redis: RedisServer,
    _ember: EmberServer,
    redis: TcpStream,
    ember: TcpStream,
}

impl Pair {
    pub(crate) fn start() -> Pair {
        let redis = RedisServer::start(&[]);
        let ember = EmberServer::start(&[]);
        Pair {
            redis: redis.connect(),
            ember: ember.connect(),
            _redis: redis,
            _ember: ember,
        }
    }

    fn both(&mut self, args: &[&str]) -> (Bytes, Bytes) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.both_raw(&args)
    }

    /// One command on both; the replies, Redis's first.
    pub(crate) fn both_raw(&mut self, args: &[&[u8]]) -> (Bytes, Bytes) {
        (call(&mut self.redis, args), call(&mut self.ember, args))
    }

    /// Runs each command on both, from an empty keyspace and no scripts or
    /// functions, in RESP2 and then RESP3, and fails at the first reply
    /// that differs.
    pub(crate) fn check(&mut self, cases: &[&[&str]]) {
        for proto in ["2", "3"] {
            for conn in [&mut self.redis, &mut self.ember] {
                call(conn, &[b"HELLO", proto.as_bytes()]);
                call(conn, &[b"FLUSHALL"]);
                call(conn, &[b"SCRIPT", b"FLUSH"]);
                call(conn, &[b"FUNCTION", b"FLUSH"]);
            }
            for case in cases {
                let (r, e) = self.both(case);
                assert_eq!(
                    String::from_utf8_lossy(&r),
                    String::from_utf8_lossy(&e),
                    "RESP{proto}: {case:?}\n(redis first, ember second)"
                );
            }
        }
    }
}

/// `EVAL script 0`.
macro_rules! eval {
    ($script:expr $(, $arg:expr)*) => {
        &["EVAL", $script, "0" $(, $arg)*][..]
    };
}

#[test]
fn conversions_match_redis() {
    let mut p = Pair::start();
    p.check(&[
        &["SET", "s", "abc"],
        &["HSET", "h", "f", "v"],
        &["SADD", "set", "m"],
        &["ZADD", "z", "1.5", "a"],
        eval!("return 1"),
        eval!("return 3.99"),
        eval!("return -3.99"),
        eval!("return 1e30"),
        eval!("return math.huge"),
        eval!("return 0/0"),
        eval!("return 'hello'"),
        eval!("return true"),
        eval!("return false"),
        eval!("return nil"),
        eval!("return {}"),
        eval!("return {1, 2, 3, 'four', {5, {6}}}"),
        eval!("return {1, 2, nil, 4}"),
        eval!("return {1, true, false, 'x'}"),
        eval!("return {ok = 'fine'}"),
        eval!("return {ok = 'line\\r\\nbreak'}"),
        eval!("return {err = 'My Error'}"),
        eval!("return {err = 'ERR with code'}"),
        eval!("return {1, {err = 'nested'}, {ok = 'inner'}}"),
        eval!("return redis.status_reply('STATUS')"),
        eval!("return redis.error_reply('MYERR text')"),
        eval!("return redis.error_reply('-X y')"),
        eval!("return redis.error_reply(5)"),
        eval!("return {double = 3.5}"),
        eval!("return {double = 1/0}"),
        eval!("return {big_number = '1234567890123456789012345678901234567890'}"),
        eval!("return {map = {a = 1}}"),
        eval!("return {set = {x = true}}"),
        eval!("return {verbatim_string = {format = 'txt', string = 'hi'}}"),
        eval!("redis.setresp(3); return {double = 3.5}"),
        eval!("redis.setresp(3); return true"),
        eval!("redis.setresp(3); return false"),
        eval!("redis.setresp(3); return {map = {a = 'b'}}"),
        eval!("redis.setresp(3); return {set = {a = true}}"),
        eval!("redis.setresp(3); return {big_number = '123'}"),
        // Replies into Lua, and back.
        eval!("return redis.call('get', 's')"),
        eval!("return redis.call('get', 'nokey')"),
        eval!("return type(redis.call('get', 'nokey'))"),
        eval!("return redis.call('incr', 'n')"),
        eval!("return redis.call('set', 'k', 'v')"),
        eval!("return type(redis.call('set', 'k', 'v'))"),
        eval!("return redis.call('set', 'k', 'v')['ok']"),
        eval!("return redis.call('hgetall', 'h')"),
        eval!("return redis.call('smembers', 'set')"),
        eval!("return redis.call('zrange', 'z', 0, -1, 'withscores')"),
        eval!("return redis.call('lrange', 'nolist', 0, -1)"),
        eval!("return redis.pcall('incr', 's')"),
        eval!("return type(redis.pcall('incr', 's'))"),
        eval!("return redis.pcall('incr', 's')['err']"),
        eval!("redis.setresp(3); return redis.call('hgetall', 'h')"),
        eval!("redis.setresp(3); return redis.call('smembers', 'set')"),
        eval!("redis.setresp(3); return redis.call('zscore', 'z', 'a')"),
        eval!("redis.setresp(3); return type(redis.call('zscore', 'z', 'a'))"),
        eval!("redis.setresp(3); return redis.call('zscore', 'z', 'a')['double']"),
        eval!("redis.setresp(3); return type(redis.call('get', 'nokey'))"),
        eval!("redis.setresp(3); return redis.call('get', 'nokey')"),
        // Numbers as arguments: %.17g.
        eval!("redis.call('set', 'f', 0.1); return redis.call('get', 'f')"),
        eval!("redis.call('set', 'f', 1e20); return redis.call('get', 'f')"),
        eval!("redis.call('set', 'f', -3); return redis.call('get', 'f')"),
        eval!("redis.call('set', 'f', 2^53 + 1); return redis.call('get', 'f')"),
        &["EVAL", "return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], #KEYS, #ARGV}", "2", "a", "b", "c", "d"],
        &["EVAL", "return redis.call('get', KEYS[1])", "1", "s"],
        // SELECT stays inside the script.
        eval!("redis.call('select', 3); redis.call('set', 'in3', 'x'); return redis.call('get', 'in3')"),
        &["GET", "in3"],
        &["SELECT", "3"],
        &["GET", "in3"],
        &["SELECT", "0"],
    ]);
}

#[test]
fn errors_match_redis() {
    let mut p = Pair::start();
    p.check(&[
        &["SET", "s", "abc"],
        eval!("return a"),
        eval!("a = 1"),
        eval!("local t = nil; return t.x"),
        eval!("return 1 +"),
        eval!("return redis.call('nosuch')"),
        eval!("return redis.call('incr', 'x', 'y')"),
        eval!("return redis.call('incr', 's')"),
        eval!("redis.call('incr', 's')"),
        eval!("local x = redis.call('incr', 's'); return x"),
        eval!("return redis.call()"),
        eval!("return redis.pcall()"),
        eval!("return redis.call({})"),
        eval!("return redis.call('get', {})"),
        eval!("error('boom')"),
        eval!("error({err = 'boom'})"),
        eval!("error({err = 'CODE boom'})"),
        eval!("error(42)"),
        eval!("error()"),
        eval!("return pcall(redis.call, 'incr', 's')"),
        eval!("local ok, e = pcall(redis.call, 'incr', 's'); return e"),
        eval!("local ok, e = pcall(error, {err = 'x'}); return e"),
        eval!("local ok, e = pcall(function() local a = nil + 1 end); return e"),
        eval!("return redis.call('multi')"),
        eval!("return redis.call('exec')"),
        eval!("return redis.call('watch', 'x')"),
        eval!("return redis.call('blpop', 'q', 0)"),
        eval!("return redis.call('brpop', 'q', 0)"),
        eval!("return redis.call('eval', 'return 1', 0)"),
        eval!("return redis.call('script', 'load', 'return 1')"),
        eval!("return redis.call('client', 'list')"),
        eval!("return redis.call('config', 'get', 'maxmemory')"),
        eval!("return redis.call('lmpop', 1, 'nolist', 'left')"),
        eval!("return redis.sha1hex()"),
        eval!("return redis.log()"),
        eval!("return redis.log('x', 'y')"),
        eval!("return redis.log(9, 'y')"),
        eval!("return redis.setresp()"),
        eval!("return redis.setresp(4)"),
        eval!("return redis.set_repl()"),
        eval!("return redis.set_repl(9)"),
        // The sandbox.
        eval!("print('x')"),
        eval!("dofile('x')"),
        eval!("loadfile('x')"),
        eval!("return getfenv"),
        eval!("return setfenv"),
        eval!("return newproxy"),
        eval!("return type(debug)"),
        eval!("return type(os)"),
        eval!("return type(io)"),
        eval!("return type(require)"),
        eval!("setmetatable(_G, {})"),
        eval!("local g = getmetatable(_G); g.__index = {}"),
        eval!("_G = {}"),
        eval!("rawset(_G, 'x', 1)"),
        eval!("redis = function() return 1 end"),
        eval!("redis.call = function() return 1 end"),
        eval!("redis.x = 1"),
        eval!("cjson.encode = function() return 1 end"),
        eval!("cmsgpack.pack = function() return 1 end"),
        eval!("bit.lshift = function() return 1 end"),
        eval!("struct.pack = 1"),
        eval!("string.x = 1"),
        eval!("math.pi = 3"),
        eval!("return loadstring('x = 1')()"),
        eval!("return loadstring(string.dump(function() return 1 end))()"),
        eval!("return loadstring('return 5')()"),
        eval!("return coroutine.wrap(function() return 7 end)()"),
        eval!("return _VERSION"),
        eval!("return redis.REDIS_VERSION_NUM > 0"),
        eval!("return redis.replicate_commands()"),
        eval!("return redis.breakpoint()"),
        eval!("return redis.debug('x')"),
        eval!("return redis.sha1hex('')"),
        eval!("return redis.sha1hex('Pizza & Mandolino')"),
        eval!("return redis.sha1hex(12)"),
        eval!("return redis.log(redis.LOG_WARNING, 'from a test')"),
        eval!("return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}"),
        eval!("return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_REPLICA, redis.REPL_SLAVE, redis.REPL_ALL}"),
    ]);
}

#[test]
fn commands_and_cache_match_redis() {
    let mut p = Pair::start();
    let sha = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"; // return 1
    p.check(&[
        &["EVAL", "return 1", "-1"],
        &["EVAL", "return 1", "2", "a"],
        &["EVAL", "return 1", "x"],
        &["EVAL", "return 1"],
        &["EVALSHA", sha, "0"],
        &["SCRIPT", "EXISTS", sha, "ffff"],
        &["SCRIPT", "LOAD", "return 1"],
        &["SCRIPT", "EXISTS", sha, "ffff"],
        &["EVALSHA", sha, "0"],
        &["EVALSHA", &sha.to_uppercase(), "0"],
        &["EVALSHA_RO", sha, "0"],
        &["EVALSHA", sha, "-1"],
        &["SCRIPT", "FLUSH"],
        &["EVALSHA", sha, "0"],
        &["EVAL", "return 1", "0"],
        &["EVALSHA", sha, "0"],
        &["SCRIPT", "FLUSH", "ASYNC"],
        &["SCRIPT", "FLUSH", "SYNC"],
        &["SCRIPT", "FLUSH", "bad"],
        &["SCRIPT", "FLUSH", "SYNC", "more"],
        &["SCRIPT", "EXISTS", sha],
        &["SCRIPT", "LOAD", "return 1 +"],
        &["SCRIPT", "LOAD", "#!lua flags=bad\nreturn 1"],
        &["SCRIPT", "KILL"],
        &["SCRIPT", "HELP"],
        &["SCRIPT", "NOPE"],
        &["SCRIPT"],
        &["SCRIPT", "LOAD"],
        &["EVAL_RO", "return redis.call('get', 'k')", "0"],
        &["EVAL_RO", "return redis.call('set', 'k', 'v')", "0"],
        &["EVAL_RO", "return redis.pcall('set', 'k', 'v')", "0"],
        // Shebangs.
        eval!("#!lua\nreturn 1"),
        eval!("#!lua flags=no-writes\nreturn redis.call('set', 'x', 'y')"),
        eval!("#!lua flags=no-writes,allow-oom\nreturn redis.call('get', 'x')"),
        eval!("#!lua flags=allow-stale,no-cluster,allow-cross-slot-keys\nreturn 2"),
        eval!("#!lua name=foo\nreturn 1"),
        eval!("#!lua flags=bad\nreturn 1"),
        eval!("#!lua flags=\nreturn 1"),
        eval!("#!python\nreturn 1"),
        eval!("#!lua"),
        eval!("#!lua\nerror('on line two')"),
        &["EVAL_RO", "#!lua\nreturn 1", "0"],
        &["EVAL_RO", "#!lua flags=no-writes\nreturn 1", "0"],
        // Inside MULTI.
        &["MULTI"],
        eval!("return redis.call('incr', 'm')"),
        eval!("return redis.call('incr', 'm')"),
        &["EXEC"],
        &["GET", "m"],
    ]);
}

#[test]
fn libraries_match_redis() {
    let mut p = Pair::start();
    p.check(&[
        // bit
        eval!("return bit.tohex(65535)"),
        eval!("return bit.tohex(-1, -4)"),
        eval!("return bit.tohex(0x12345678, 3)"),
        eval!(
            "return {bit.band(0xff, 0x0f), bit.bor(1, 2, 4), bit.bxor(5, 3), bit.bnot(0), \
             bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.rol(1, 33), \
             bit.ror(1, 1), bit.bswap(0x12345678), bit.tobit(2^32 + 5), bit.tobit(-1.5), bit.tobit('7')}"
        ),
        eval!("return bit.band()"),
        eval!("return bit.band('x')"),
        eval!("return bit.tobit({})"),
        // cjson
        eval!("return cjson.encode({1, 2, 3, 'a', {b = 1}})"),
        eval!("return cjson.encode({a = 'x/y\"z\\n\\1'})"),
        eval!("return cjson.encode({})"),
        eval!("return cjson.encode(1/3)"),
        eval!("return cjson.encode(12345678901234567)"),
        eval!("return cjson.encode({[1] = 1, [20] = 2})"),
        eval!("return cjson.encode({[1] = 1, [2] = 2, [4] = 4})"),
        eval!("return cjson.encode({[1] = 1, a = 2})"),
        eval!("return cjson.encode(cjson.null)"),
        eval!("return cjson.encode(function() end)"),
        eval!("return cjson.encode(0/0)"),
        eval!("return cjson.encode()"),
        eval!("return cjson.decode('[1,2,{\"a\":[true,false,null]}]')[3].a[1]"),
        eval!("return cjson.decode('{\"a\":1.5}').a"),
        eval!("return cjson.decode('\"\\\\u00e9\\\\n\"')"),
        eval!("local t = cjson.decode('[1,null,3]'); return {t[1], t[2] == cjson.null, t[3]}"),
        eval!("return cjson.decode('xyz')"),
        eval!("return cjson.decode('[1,2')"),
        eval!("return cjson.decode('[1,]')"),
        eval!("return cjson.decode('{\"a\" 1}')"),
        eval!("return cjson.decode('{1:2}')"),
        eval!("return cjson.decode('  ')"),
        eval!("return cjson.decode('[1] x')"),
        eval!("return cjson.decode(123)"),
        eval!("return cjson.encode_keep_buffer(false)"),
        eval!("return cjson.encode_number_precision(3)"),
        eval!("return cjson.encode(1/3)"),
        eval!("return cjson.encode_number_precision(0)"),
        eval!("return {cjson.encode_sparse_array()}"),
        eval!("return cjson.encode_invalid_numbers()"),
        eval!(
            "cjson.encode_invalid_numbers(true); local s = cjson.encode({0/0, 1/0, -1/0}); \
             cjson.encode_invalid_numbers(false); return s"
        ),
        eval!(
            "cjson.encode_invalid_numbers('null'); local s = cjson.encode({0/0, 1/0}); \
             cjson.encode_invalid_numbers(false); return s"
        ),
        // cmsgpack
        eval!(
            "return cmsgpack.pack(1, -1, 200, -200, 70000, -70000, 5000000000, -5000000000, \
             1.5, 0.1, 'x', true, false, nil)"
        ),
        eval!("return cmsgpack.pack({1, 2, 3}, {a = 1}, {}, string.rep('x', 40), string.rep('y', 300))"),
        eval!("return {cmsgpack.unpack(cmsgpack.pack(1, -1, 200, -200, 70000, 'str', {1, 2, {3}}))}"),
        eval!("return cmsgpack.unpack(cmsgpack.pack({a = 1, b = 2})).b"),
        eval!("return cmsgpack.unpack(cmsgpack.pack(3.25))"),
        eval!("local t = {}; t[1] = t; return cmsgpack.pack(t)"),
        eval!("return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))}"),
        eval!("return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 2)}"),
        eval!("return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}"),
        eval!("return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2, 1)}"),
        eval!("return cmsgpack.pack()"),
        eval!("return cmsgpack.unpack('\\193')"),
        eval!("return cmsgpack.unpack('\\205\\1')"),
        // struct
        eval!("return struct.pack('>I2', 258)"),
        eval!("return {struct.unpack('>I2', struct.pack('>I2', 258))}"),
        eval!("return {struct.unpack('<i4d s c3', struct.pack('<i4d s c3', -5, 1.5, 'hi', 'abc'))}"),
        eval!("return {struct.unpack('b B h H l L', struct.pack('b B h H l L', -1, 255, -2, 65535, -3, 4))}"),
        eval!("return {struct.unpack('>i16', struct.pack('>i16', -3))}"),
        eval!("return {struct.unpack('B c0', struct.pack('B c0', 3, 'xyz'))}"),
        eval!("return {struct.unpack('f', struct.pack('f', 1.1))}"),
        eval!("return struct.pack('!8 b d', 1, 2)"),
        eval!("return struct.size('!4 b i d')"),
        eval!("return struct.size('s')"),
        eval!("return struct.size('c0')"),
        eval!("return struct.pack('z')"),
        eval!("return struct.pack('i')"),
        eval!("return struct.pack('c5', 'ab')"),
        eval!("return {struct.unpack('i4', 'ab')}"),
        eval!("return {struct.unpack('i33', '')}"),
        eval!("return {struct.unpack('b', 'x', 0)}"),
        eval!("return {struct.unpack('!3 i', '')}"),
    ]);
}

/// What replicas hear of scripts, against redis-server's stream: the
/// commands a script ran, by their effects, wrapped in MULTI/EXEC when
/// there are several; nothing for a script that only read or failed
/// before writing.
#[test]
fn scripts_reach_replicas_by_their_effects() {
    use crate::replication::{attach_to_stream, read_stream};
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let mut streams = Vec::new();
    for addr in [redis.addr(), ember.addr()] {
        let (mut s, mut buf) = attach_to_stream(addr);
        let mut c = ember_tests::connect(addr);
        for args in [
            &[
                "EVAL",
                "return redis.call('set', KEYS[1], ARGV[1])",
                "1",
                "a",
                "1",
            ][..],
            &[
                "EVAL",
                "redis.call('incr', 'n'); redis.call('incr', 'n'); return redis.call('get', 'n')",
                "0",
            ],
            &["EVAL", "return redis.call('get', 'a')", "0"],
            &[
                "EVAL",
                "redis.call('set', 'e', 'x', 'ex', '100'); return 1",
                "0",
            ],
            &[
                "EVAL",
                "redis.call('incrbyfloat', 'f', '1.5'); redis.call('rpush', 'l', 'x'); return 1",
                "0",
            ],
            &[
                "EVAL",
                "redis.call('select', 2); redis.call('set', 'in2', 'v'); return 1",
                "0",
            ],
            &["EVAL", "return redis.call('incr', 'a', 'b')", "0"],
            &[
                "EVAL",
                "redis.call('set', 'x', 'y'); return redis.call('incr', 'x')",
                "0",
            ],
            &["SCRIPT", "LOAD", "return redis.call('del', 'a')"],
            &["EVALSHA", "23e9b53a17e0de375fe9ac52973d74a9231496c2", "0"],
            &["MULTI"],
            &["EVAL", "return redis.call('incr', 'm')", "0"],
            &["EVAL", "return redis.call('incr', 'm')", "0"],
            &["EXEC"],
        ] {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            call(&mut c, &args);
        }
        call(&mut c, &[b"SET", b"end", b"1"]);
        streams.push(read_stream(&mut s, &mut buf, "end"));
    }
    assert_eq!(
        streams[0], streams[1],
        "redis sent the first, ember the second"
    );
}

/// A script is atomic across shards: scripts move units between two keys
/// (on different shards, most likely, and either way under one lock
/// each), while another client reads both keys, in one script and with
/// MGET: the sum never changes, and no move is lost.
#[test]
fn scripts_are_atomic_across_shards() {
    let ember = EmberServer::start(&[]);
    let addr = ember.addr();
    let mover = "local a = tonumber(redis.call('get', KEYS[1]) or '0') \
                 local b = tonumber(redis.call('get', KEYS[2]) or '0') \
                 redis.call('set', KEYS[1], a - 1) \
                 redis.call('set', KEYS[2], b + 1) \
                 return 1";
    let keys = ["left-key", "right-key-on-another-shard"];
    let movers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = ember_tests::connect(addr);
                for _ in 0..500 {
                    let r = call(
                        &mut c,
                        &[
                            b"EVAL",
                            mover.as_bytes(),
                            b"2",
                            keys[0].as_bytes(),
                            keys[1].as_bytes(),
                        ],
                    );
                    assert_eq!(&r[..], b":1\r\n");
                }
            })
        })
        .collect();
    let mut reader = ember_tests::connect(addr);
    let sum_script = "local a = tonumber(redis.call('get', KEYS[1]) or '0') \
                      local b = tonumber(redis.call('get', KEYS[2]) or '0') \
                      return a + b";
    for _ in 0..500 {
        let r = call(
            &mut reader,
            &[
                b"EVAL",
                sum_script.as_bytes(),
                b"2",
                keys[0].as_bytes(),
                keys[1].as_bytes(),
            ],
        );
        assert_eq!(&r[..], b":0\r\n", "a script saw half a move");
        let r = call(
            &mut reader,
            &[b"MGET", keys[0].as_bytes(), keys[1].as_bytes()],
        );
        let text = String::from_utf8_lossy(&r).to_string();
        let nums: Vec<i64> = text.split("\r\n").filter_map(|l| l.parse().ok()).collect();
        assert!(
            nums.len() < 2 || nums[0] + nums[1] == 0,
            "MGET saw half a move: {text:?}"
        );
    }
    for m in movers {
        m.join().expect("a mover");
    }
    let r = call(
        &mut reader,
        &[b"MGET", keys[0].as_bytes(), keys[1].as_bytes()],
    );
    assert_eq!(&r[..], b"*2\r\n$5\r\n-2000\r\n$4\r\n2000\r\n");
}

/// redis-py's `Lock` (EVALSHA of its scripts, falling back to SCRIPT
/// LOAD): acquire, extend, reacquire, release, and locks competing across
/// threads, against redis-server first (a failure there is a broken test).
#[test]
fn redis_py_lock_works() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/redis_py_lock.py");
    let run = |port: u16| {
        let out = std::process::Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .output()
            .expect("python3 runs (scripts/test installs redis-py)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let redis = RedisServer::start(&[]);
    let (ok, text) = run(redis.addr().port());
    assert!(ok, "the script fails against redis-server itself:\n{text}");
    let ember = EmberServer::start(&[]);
    let (ok, text) = run(ember.addr().port());
    assert!(
        ok && text.contains("lock: ok"),
        "redis-py's Lock against Ember:\n{text}"
    );
}

/// Scripts that hold only their declared keys' shards stay atomic when
/// they reach keys they did not declare, before or after writing, on
/// shards below and above theirs, against everything else that holds
/// several shards at once: other such scripts and functions, MULTI/EXEC,
/// MGET and MSET. Units move between eight keys; readers (MGET, and a
/// script declaring one key and reading all eight) always see the same
/// total; pairs written together (MSET, and a script writing one then
/// reaching the other) are always seen equal; a counter every move bumps
/// (undeclared) loses no update. A deadlock fails the test through the
/// connections' read timeout rather than hanging it.
#[test]
fn declared_key_scripts_stay_atomic_when_they_reach_out() {
    let ember = EmberServer::start(&[]);
    let addr = ember.addr();
    // A deadlocked server cannot be stopped: it is left behind, so that
    // the test fails instead of hanging in the server's drop.
    if let Err(panic) = std::panic::catch_unwind(|| reach_out_workload(addr)) {
        std::mem::forget(ember);
        std::panic::resume_unwind(panic);
    }
}

fn reach_out_workload(addr: std::net::SocketAddr) {
    const KEYS: [&str; 8] = ["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"];
    const ROUNDS: usize = 800;
    let mut c = ember_tests::connect(addr);
    let mut mset: Vec<&[u8]> = vec![b"MSET"];
    for k in KEYS {
        mset.extend([k.as_bytes(), b"100"]);
    }
    assert_eq!(&call(&mut c, &mset)[..], b"+OK\r\n");
    let lib = "#!lua name=movers\n\
               redis.register_function('move', function(keys, args) \
               redis.call('decrby', keys[1], 1) redis.call('incrby', args[1], 1) \
               redis.call('incr', 'moves') return 1 end)";
    assert_eq!(
        &call(&mut c, &[b"FUNCTION", b"LOAD", lib.as_bytes()])[..],
        b"$6\r\nmovers\r\n"
    );
    // Writes its declared key, then reaches the other and the counter.
    let write_first = "redis.call('decrby', KEYS[1], 1) redis.call('incrby', ARGV[1], 1) \
                       redis.call('incr', 'moves') return 1";
    // Declares nothing: reads both, then writes both.
    let read_first = "local x = tonumber(redis.call('get', ARGV[1])) \
                      local y = tonumber(redis.call('get', ARGV[2])) \
                      redis.call('set', ARGV[1], x - 1) redis.call('set', ARGV[2], y + 1) \
                      redis.call('incr', 'moves') return 1";
    // Declares one key, reads all eight.
    let sum = "local s = 0 for i = 1, #ARGV do s = s + tonumber(redis.call('get', ARGV[i])) end \
               return s";
    // Writes a pair together, declaring one of them.
    let pair = "redis.call('set', KEYS[1], ARGV[1]) redis.call('set', ARGV[2], ARGV[1]) return 1";
    let pair_equal = "return redis.call('get', KEYS[1]) == redis.call('get', ARGV[1]) and 1 or 0";
    let movers: Vec<_> = (0..6u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = ember_tests::connect(addr);
                let mut seed = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                for _ in 0..ROUNDS {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let i = (seed % 8) as usize;
                    let j = (i + 1 + (seed >> 8) as usize % 7) % 8;
                    let (from, to) = (KEYS[i].as_bytes(), KEYS[j].as_bytes());
                    let r = match t % 4 {
                        0 => call(&mut c, &[b"EVAL", write_first.as_bytes(), b"1", from, to]),
                        1 => call(&mut c, &[b"EVAL", read_first.as_bytes(), b"0", from, to]),
                        2 => {
                            call(&mut c, &[b"MULTI"]);
                            call(&mut c, &[b"DECRBY", from, b"1"]);
                            call(&mut c, &[b"INCRBY", to, b"1"]);
                            call(&mut c, &[b"INCR", b"moves"]);
                            let r = call(&mut c, &[b"EXEC"]);
                            assert!(r.starts_with(b"*3\r\n:"), "{r:?}");
                            Bytes::from_static(b":1\r\n")
                        }
                        _ => call(&mut c, &[b"FCALL", b"move", b"1", from, to]),
                    };
                    assert_eq!(&r[..], b":1\r\n", "{}", String::from_utf8_lossy(&r));
                }
            })
        })
        .collect();
    let pairs: Vec<_> = (0..2u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = ember_tests::connect(addr);
                for n in 0..ROUNDS {
                    let v = format!("{t}-{n}");
                    let r = if n % 2 == 0 {
                        call(&mut c, &[b"MSET", b"p", v.as_bytes(), b"q", v.as_bytes()])
                    } else {
                        let (k, other): (&[u8], &[u8]) =
                            if t == 0 { (b"p", b"q") } else { (b"q", b"p") };
                        call(
                            &mut c,
                            &[b"EVAL", pair.as_bytes(), b"1", k, v.as_bytes(), other],
                        )
                    };
                    assert!(r[..] == b"+OK\r\n"[..] || r[..] == b":1\r\n"[..], "{r:?}");
                }
            })
        })
        .collect();
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(KEYS.iter().map(|k| k.as_bytes()));
    let mut summed: Vec<&[u8]> = vec![b"EVAL", sum.as_bytes(), b"1", KEYS[3].as_bytes()];
    summed.extend(KEYS.iter().map(|k| k.as_bytes()));
    for _ in 0..ROUNDS {
        let r = call(&mut c, &mget);
        let text = String::from_utf8_lossy(&r).into_owned();
        let total: i64 = text
            .split("\r\n")
            .filter_map(|l| l.parse::<i64>().ok())
            .sum();
        assert_eq!(total, 800, "MGET saw half a move: {text:?}");
        assert_eq!(
            &call(&mut c, &summed)[..],
            b":800\r\n",
            "a script saw half a move"
        );
        let r = call(&mut c, &[b"MGET", b"p", b"q"]);
        let text = String::from_utf8_lossy(&r).into_owned();
        let parts: Vec<&str> = text.split("\r\n").collect();
        assert!(
            parts.len() < 5 || parts[2] == parts[4],
            "MGET saw half a pair: {text:?}"
        );
        let r = call(&mut c, &[b"EVAL", pair_equal.as_bytes(), b"1", b"q", b"p"]);
        assert_eq!(&r[..], b":1\r\n", "a script saw half a pair");
    }
    for t in movers.into_iter().chain(pairs) {
        t.join().expect("a client");
    }
    assert_eq!(&call(&mut c, &summed)[..], b":800\r\n");
    let moves = (6 * ROUNDS).to_string();
    let want = format!("${}\r\n{moves}\r\n", moves.len());
    assert_eq!(
        &call(&mut c, &[b"GET", b"moves"])[..],
        want.as_bytes(),
        "a lost update"
    );
}

/// The commands of a script that reaches keys it did not declare (before
/// and after writing) count once each in commandstats, as in Redis: no run
/// is abandoned and run again.
#[test]
fn a_script_reaching_out_counts_its_commands_once() {
    let mut p = Pair::start();
    let script = "redis.call('get', KEYS[1]) redis.call('get', ARGV[1]) \
                  redis.call('set', KEYS[1], 1) redis.call('incr', ARGV[2]) \
                  return redis.call('keys', 'none*')";
    // The counts of these commands, from INFO commandstats.
    let calls = |info: &[u8]| -> Vec<String> {
        let text = String::from_utf8_lossy(info);
        ["eval", "get", "set", "incr", "keys"]
            .iter()
            .map(|name| {
                let head = format!("cmdstat_{name}:calls=");
                text.lines()
                    .find_map(|l| l.strip_prefix(&head))
                    .and_then(|rest| rest.split(',').next())
                    .map_or(format!("{name}: none"), |n| format!("{name}: {n}"))
            })
            .collect()
    };
    p.both(&["CONFIG", "RESETSTAT"]);
    for _ in 0..3 {
        let (r, e) = p.both(&["EVAL", script, "1", "declared", "undeclared", "other"]);
        assert_eq!(r, e);
    }
    let (r, e) = p.both(&["INFO", "commandstats"]);
    assert_eq!(calls(&e), calls(&r), "(ember first, redis second)");
    assert_eq!(calls(&e)[0], "eval: 3");
}

/// What errorstats, `total_error_replies` and each command's rejected and
/// failed calls say after a script's command fails or is refused, whether
/// the script lets the error out or catches it: Redis counts such an error
/// once, when the command fails. And SORT BY a constant inside a script
/// sorts a set's members, as Redis does so that scripts are deterministic.
#[test]
fn script_errors_are_counted_as_redis_counts_them() {
    let mut p = Pair::start();
    // The counters of `line`'s command (`cmdstat_set`), without the times.
    let counts = |info: &[u8], command: &str| -> String {
        let text = String::from_utf8_lossy(info).into_owned();
        let mut out: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("errorstat_") || l.starts_with("total_error_replies"))
            .map(str::to_owned)
            .collect();
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{command}:")))
        {
            out.extend(
                line.split(',')
                    .filter(|f| f.starts_with("rejected_calls") || f.starts_with("failed_calls"))
                    .map(str::to_owned),
            );
        }
        out.sort();
        out.join(" ")
    };
    let cases: &[(&[&str], &[&str], &str)] = &[
        // Refused: over maxmemory, raised or caught.
        (
            &["CONFIG", "SET", "maxmemory", "1"],
            &["EVAL", "return redis.call('set','x','y')", "1", "x"],
            "set",
        ),
        (
            &["CONFIG", "SET", "maxmemory", "1"],
            &[
                "EVAL",
                "local t = redis.pcall('set','x','y') return 1",
                "1",
                "x",
            ],
            "set",
        ),
        (
            &["CONFIG", "SET", "maxmemory", "1"],
            &["EVAL", "return redis.pcall('set','x','y')", "1", "x"],
            "set",
        ),
        // Refused: a write from a read-only script.
        (
            &["CONFIG", "SET", "maxmemory", "0"],
            &["EVAL_RO", "return redis.call('set','x','y')", "1", "x"],
            "set",
        ),
        (
            &["CONFIG", "SET", "maxmemory", "0"],
            &[
                "EVAL_RO",
                "local t = redis.pcall('set','x','y') return 1",
                "1",
                "x",
            ],
            "set",
        ),
        // Failed: the command ran and answered an error.
        (
            &["SET", "s", "abc"],
            &["EVAL", "return redis.call('incr','s')", "1", "s"],
            "incr",
        ),
        (
            &["SET", "s", "abc"],
            &[
                "EVAL",
                "local t = redis.pcall('incr','s') return 1",
                "1",
                "s",
            ],
            "incr",
        ),
        // The script's own error.
        (&["PING"], &["EVAL", "error('boom')", "0"], "eval"),
    ];
    for (setup, script, command) in cases {
        let mut seen = Vec::new();
        for conn in [&mut p.redis, &mut p.ember] {
            call(conn, &[b"CONFIG", b"SET", b"maxmemory", b"0"]);
            call(conn, &[b"FLUSHALL"]);
            let args: Vec<&[u8]> = setup.iter().map(|a| a.as_bytes()).collect();
            call(conn, &args);
            call(conn, &[b"CONFIG", b"RESETSTAT"]);
            let args: Vec<&[u8]> = script.iter().map(|a| a.as_bytes()).collect();
            let reply = call(conn, &args);
            call(conn, &[b"CONFIG", b"SET", b"maxmemory", b"0"]);
            let info = call(conn, &[b"INFO", b"all"]);
            seen.push((
                String::from_utf8_lossy(&reply).into_owned(),
                counts(&info, command),
            ));
        }
        assert_eq!(seen[0], seen[1], "{script:?} after {setup:?} (redis first)");
    }
    let mut sadd = vec!["SADD", "myset"];
    let members = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "l", "m", "n", "o", "p", "q", "r", "s", "t",
        "u", "v", "z", "aa", "aaa", "azz",
    ];
    sadd.extend(members);
    p.check(&[
        &sadd,
        &[
            "EVAL",
            "return redis.call('sort',KEYS[1],'by','_')",
            "1",
            "myset",
        ],
        &[
            "EVAL",
            "return redis.call('sort_ro',KEYS[1],'by','_')",
            "1",
            "myset",
        ],
    ]);
}

/// Replies of every size read back by scripts, one script after another
/// on one connection (the buffer a script's commands reply into is kept
/// for the next script): a value shared by reference (over 64 KiB), one
/// that outgrows the kept buffer (over 16 KiB), small ones after both,
/// several calls in one script, and commands naming one key, several
/// keys, keys the script did not declare, and none.
#[test]
fn scripts_read_replies_of_every_size() {
    let mut p = Pair::start();
    let big = "b".repeat(100 * 1024);
    let mid = "m".repeat(20 * 1024);
    p.check(&[
        &["SET", "big", &big],
        &["SET", "mid", &mid],
        &["SET", "small", "s"],
        eval!("return #redis.call('get', 'big')"),
        eval!("return redis.call('get', 'small')"),
        eval!("return redis.call('get', 'big')"),
        eval!("return redis.call('get', 'mid')"),
        eval!("return redis.call('get', 'small')"),
        eval!("local a = redis.call('get', 'big') local b = redis.call('get', 'small') return {#a, b}"),
        eval!("local a = redis.call('get', 'mid') redis.call('incr', 'n') return {#a, redis.call('get', 'n')}"),
        &["EVAL", "return redis.call('mget', KEYS[1], KEYS[2], 'small')", "2", "mid", "nothing"],
        &["EVAL", "return redis.call('incr', KEYS[1])", "1", "counter"],
        &["EVAL", "return redis.call('incr', 'undeclared')", "1", "counter"],
        eval!("return redis.call('ping')"),
        eval!("return redis.call('strlen', 'big')"),
    ]);
}

/// INFO and CONFIG RESETSTAT sent in one pipeline behind other commands
/// (scripts and what they call, alternating, then a third command) see
/// every call before them, as redis-server's do: a connection's counters
/// are gathered per batch and must be flushed before they are read.
#[test]
fn stats_read_in_a_pipeline_count_every_call_before_them() {
    use std::io::Write;
    let mut p = Pair::start();
    let script = "return redis.call('incr', KEYS[1])";
    let pipeline = |conn: &mut TcpStream, commands: &[&[&str]]| -> Vec<Bytes> {
        let mut bytes = Vec::new();
        for args in commands {
            bytes.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in *args {
                bytes.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
            }
        }
        conn.write_all(&bytes).expect("write");
        let (mut decoder, mut buf) = (resp::Decoder::new(), bytes::BytesMut::new());
        let mut replies = Vec::new();
        while replies.len() < commands.len() {
            match decoder.decode_raw(&mut buf).expect("a valid reply") {
                Some(frame) => replies.push(frame.as_bytes().clone()),
                None => {
                    let mut chunk = [0u8; 16 * 1024];
                    let n = std::io::Read::read(conn, &mut chunk).expect("read");
                    assert!(n > 0, "closed");
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
        replies
    };
    let calls = |info: &Bytes| -> Vec<String> {
        let text = String::from_utf8_lossy(info);
        let mut lines: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .map(|l| l.split(",usec=").next().unwrap_or(l).to_owned())
            .collect();
        lines.sort();
        lines
    };
    let commands: &[&[&str]] = &[
        &["CONFIG", "RESETSTAT"],
        &["GET", "a"],
        &["EVAL", script, "1", "n"],
        &["EVAL", script, "1", "n"],
        &["EVAL", script, "1", "n"],
        &["SET", "a", "1"],
        &["EVAL", script, "1", "n"],
        &["INFO", "commandstats"],
        &["GET", "a"],
        &["CONFIG", "RESETSTAT"],
        &["GET", "a"],
        &["INFO", "commandstats"],
    ];
    let redis = pipeline(&mut p.redis, commands);
    let ember = pipeline(&mut p.ember, commands);
    for at in [7, 11] {
        assert_eq!(
            calls(&ember[at]),
            calls(&redis[at]),
            "INFO at {at} (ember first)"
        );
    }
    assert!(calls(&ember[7]).contains(&"eval:calls=4".to_owned()));
    assert!(calls(&ember[7]).contains(&"incr:calls=4".to_owned()));
    assert!(calls(&ember[11]).contains(&"get:calls=1".to_owned()));
}

//! The gRPC API through ember-proxy, called by a gRPC client nobody here
//! wrote: Python's grpcio, with stubs generated from the proto by
//! grpcio-tools as the test runs. Every RPC, every error mapping, the
//! health service and server reflection.

use std::process::Command;

use ::client::Topology;
use ember_tests::{NodeCluster, NodeKind};

use crate::proxy::Proxy;

/// The proxy's gRPC side in front of `groups`.
fn grpc_proxy(groups: Vec<Vec<String>>) -> Proxy {
    Proxy::serve(groups, |listener, client, stop| async move {
        let stopped = async move { stop.triggered().await };
        proxy::serve_grpc(listener, client, None, stopped)
            .await
            .unwrap();
    })
}

/// The Python side: stubs generated from the proto, then every call.
const SCRIPT: &str = r#"
import os, subprocess, sys, tempfile
proto_root, port, far1, far2 = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4].encode()
fleet = sys.argv[5] == 'proxy'
out = tempfile.mkdtemp()
subprocess.run([sys.executable, '-m', 'grpc_tools.protoc', '-I', proto_root,
                '--python_out', out, '--grpc_python_out', out,
                os.path.join(proto_root, 'ember/v1/ember.proto')], check=True)
sys.path.insert(0, out)
import grpc
from ember.v1 import ember_pb2 as pb, ember_pb2_grpc as rpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

channel = grpc.insecure_channel('127.0.0.1:' + port, options=[
    ('grpc.max_receive_message_length', 64 << 20), ('grpc.max_send_message_length', 64 << 20)])
cache = rpc.CacheStub(channel)

cache.Flush(pb.FlushRequest())
assert cache.Get(pb.GetRequest(key=b'k')) == pb.GetReply(found=False)
r = cache.Set(pb.SetRequest(key=b'k', value=b'v', ttl=pb.Ttl(milliseconds=100000)))
assert r.stored, r
assert cache.Get(pb.GetRequest(key=b'k')) == pb.GetReply(found=True, value=b'v')
ttl = cache.Execute(pb.ExecuteRequest(args=[b'PTTL', b'k'])).integer
assert 0 < ttl <= 100000, ttl
r = cache.Set(pb.SetRequest(key=b'k', value=b'w', condition=pb.CONDITION_IF_ABSENT))
assert not r.stored, r
r = cache.Set(pb.SetRequest(key=b'k', value=b'x', ttl=pb.Ttl(keep=True), get_old=True))
assert r.stored and r.had_old and r.old == b'v', r
assert cache.Execute(pb.ExecuteRequest(args=[b'PTTL', b'k'])).integer > 0
r = cache.Set(pb.SetRequest(key=b'fresh', value=b'1', condition=pb.CONDITION_IF_PRESENT))
assert not r.stored, r

cache.MSet(pb.MSetRequest(pairs=[pb.Pair(key=b'a%d' % i, value=b'%d' % i) for i in range(50)]))
got = cache.MGet(pb.MGetRequest(keys=[b'a3', b'none', b'a49']))
assert [(v.found, v.value) for v in got.values] == [(True, b'3'), (False, b''), (True, b'49')], got
assert cache.Delete(pb.DeleteRequest(keys=[b'a1', b'a2', b'none'])).deleted == 2
assert cache.Incr(pb.IncrRequest(key=b'n')).value == 1
assert cache.Incr(pb.IncrRequest(key=b'n', by=41)).value == 42
assert cache.Incr(pb.IncrRequest(key=b'n', by=-2)).value == 40

# Execute: any command, any reply shape.
assert cache.Execute(pb.ExecuteRequest(args=[b'PING'])).simple == 'PONG'
assert cache.Execute(pb.ExecuteRequest(args=[b'RPUSH', b'l', b'x', b'y'])).integer == 2
arr = cache.Execute(pb.ExecuteRequest(args=[b'LRANGE', b'l', b'0', b'-1'])).array
assert [i.bulk for i in arr.items] == [b'x', b'y'], arr
assert cache.Execute(pb.ExecuteRequest(args=[b'GET', b'none'])).HasField('null')
assert cache.Execute(pb.ExecuteRequest(args=[b'DBSIZE'])).integer == 51

# Errors: statuses with Redis's text and the documented code.
def code(call):
    try:
        call()
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError('no error')
c, d = code(lambda: cache.Incr(pb.IncrRequest(key=b'l')))
assert c == grpc.StatusCode.FAILED_PRECONDITION and d.startswith('WRONGTYPE'), (c, d)
c, d = code(lambda: cache.Incr(pb.IncrRequest(key=b'k')))
assert c == grpc.StatusCode.INVALID_ARGUMENT and d == 'ERR value is not an integer or out of range', (c, d)
c, d = code(lambda: cache.Execute(pb.ExecuteRequest(args=[b'SET', b'k'])))
assert c == grpc.StatusCode.INVALID_ARGUMENT, (c, d)
c, d = code(lambda: cache.Execute(pb.ExecuteRequest(args=[b'NOSUCHCMD'])))
assert c == grpc.StatusCode.INVALID_ARGUMENT and 'unknown command' in d, (c, d)
if fleet:
    c, d = code(lambda: cache.Execute(pb.ExecuteRequest(args=[b'RENAME', far1, far2])))
    assert c == grpc.StatusCode.INVALID_ARGUMENT and 'different shards' in d, (c, d)
c, d = code(lambda: cache.Execute(pb.ExecuteRequest(args=[])))
assert c == grpc.StatusCode.INVALID_ARGUMENT, (c, d)

# Large values in chunks: 5 MB, 64 KiB at a time, and back.
big = os.urandom(5 * 1024 * 1024)
def chunks():
    yield pb.SetStreamChunk(key=b'big', data=big[:1000])
    for at in range(1000, len(big), 65536):
        yield pb.SetStreamChunk(data=big[at:at + 65536])
assert cache.SetStream(chunks()).stored
parts = list(cache.GetStream(pb.GetStreamRequest(key=b'big', chunk_size=100000)))
assert parts[0].found and parts[0].total_length == len(big)
assert all(len(p.data) <= 100000 for p in parts)
assert b''.join(p.data for p in parts) == big
assert cache.Get(pb.GetRequest(key=b'big')).value == big
assert cache.Set(pb.SetRequest(key=b'big2', value=big)).stored
assert cache.Get(pb.GetRequest(key=b'big2')).value == big
parts = list(cache.GetStream(pb.GetStreamRequest(key=b'none')))
assert len(parts) == 1 and not parts[0].found

# The standard health service and server reflection.
health = health_pb2_grpc.HealthStub(channel)
status = health.Check(health_pb2.HealthCheckRequest(service='ember.v1.Cache')).status
assert status == health_pb2.HealthCheckResponse.SERVING, status
refl = reflection_pb2_grpc.ServerReflectionStub(channel)
ask = reflection_pb2.ServerReflectionRequest(list_services='')
names = [s.name for s in next(refl.ServerReflectionInfo(iter([ask]))).list_services_response.service]
assert 'ember.v1.Cache' in names and 'grpc.health.v1.Health' in names, names
ask = reflection_pb2.ServerReflectionRequest(file_containing_symbol='ember.v1.Cache')
files = next(refl.ServerReflectionInfo(iter([ask]))).file_descriptor_response.file_descriptor_proto
assert len(files) >= 1, files
print('ok')
"#;

#[test]
fn python_grpcio_calls_every_rpc_through_the_proxy() {
    let fleet = NodeCluster::start(NodeKind::Redis, 2, 2);
    let topology = Topology::new(fleet.groups()).unwrap();
    // Two keys on different shards, for the refusal of RENAME.
    let on = |shard: u32| {
        (0..)
            .map(|i| format!("far{i}"))
            .find(|k| topology.shard_for(k.as_bytes()).0 == shard)
            .unwrap()
    };
    let proxy = grpc_proxy(fleet.groups());
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    let out = Command::new("python3")
        .args([
            "-c",
            SCRIPT,
            proto,
            &proxy.addr.port().to_string(),
            &on(0),
            &on(1),
            "proxy",
        ])
        .output()
        .expect("python3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What only a server's own gRPC side does: `requirepass` from the call's
/// metadata, a blocking command waiting in a call (and withdrawn when the
/// call is cancelled), commands that need a connection refused, and the
/// calls seen by the server's statistics.
const SERVER_SCRIPT: &str = r#"
import os, subprocess, sys, tempfile, threading
proto_root, port = sys.argv[1], sys.argv[2]
out = tempfile.mkdtemp()
subprocess.run([sys.executable, '-m', 'grpc_tools.protoc', '-I', proto_root,
                '--python_out', out, '--grpc_python_out', out,
                os.path.join(proto_root, 'ember/v1/ember.proto')], check=True)
sys.path.insert(0, out)
import grpc
from ember.v1 import ember_pb2 as pb, ember_pb2_grpc as rpc
cache = rpc.CacheStub(grpc.insecure_channel('127.0.0.1:' + port))
def code(call):
    try:
        call()
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError('no error')
auth = [('authorization', 'Bearer s3cret')]
c, d = code(lambda: cache.Get(pb.GetRequest(key=b'k')))
assert c == grpc.StatusCode.UNAUTHENTICATED and d == 'NOAUTH Authentication required.', (c, d)
c, d = code(lambda: cache.Get(pb.GetRequest(key=b'k'), metadata=[('authorization', 'Bearer nope')]))
assert c == grpc.StatusCode.UNAUTHENTICATED and d.startswith('WRONGPASS'), (c, d)
assert cache.Set(pb.SetRequest(key=b'k', value=b'v'), metadata=auth).stored
assert cache.Get(pb.GetRequest(key=b'k'), metadata=auth).value == b'v'

# A BLPOP waits in its call until another call pushes.
got = {}
def pop():
    got['r'] = cache.Execute(pb.ExecuteRequest(args=[b'BLPOP', b'q', b'30']), metadata=auth)
t = threading.Thread(target=pop)
t.start()
def blocked():
    text = cache.Execute(pb.ExecuteRequest(args=[b'INFO', b'clients']), metadata=auth).bulk
    assert b'blocked_clients:' in text, text
    return b'blocked_clients:1' in text
def until(f, want=True):
    # A bound on a hang, not a measure of speed.
    for _ in range(20000):
        if f() == want:
            return
    raise AssertionError('waited too long')
until(blocked)
assert cache.Execute(pb.ExecuteRequest(args=[b'RPUSH', b'q', b'job']), metadata=auth).integer == 1
t.join(30)
assert [i.bulk for i in got['r'].array.items] == [b'q', b'job'], got
# A cancelled call withdraws its wait: the next push stays in the list.
future = cache.Execute.future(pb.ExecuteRequest(args=[b'BLPOP', b'q2', b'0']), metadata=auth)
until(blocked)
future.cancel()
until(blocked, False)
assert cache.Execute(pb.ExecuteRequest(args=[b'RPUSH', b'q2', b'x']), metadata=auth).integer == 1
assert cache.Execute(pb.ExecuteRequest(args=[b'LLEN', b'q2']), metadata=auth).integer == 1

# Commands that need a connection that lives on.
for cmd in [b'MULTI', b'WATCH', b'SELECT', b'SUBSCRIBE']:
    c, d = code(lambda: cache.Execute(pb.ExecuteRequest(args=[cmd, b'x']), metadata=auth))
    assert c == grpc.StatusCode.INVALID_ARGUMENT and 'not served over gRPC' in d, (cmd, c, d)
# RESP3 types arrive as themselves.
r = cache.Execute(pb.ExecuteRequest(args=[b'CONFIG', b'GET', b'maxclients']), metadata=auth)
assert r.HasField('map'), r
stats = cache.Execute(pb.ExecuteRequest(args=[b'INFO', b'commandstats']), metadata=auth).bulk
assert b'cmdstat_blpop:calls=2' in stats and b'cmdstat_rpush:calls=2' in stats, stats
print('ok')
"#;

#[test]
fn python_grpcio_calls_every_rpc_on_ember_server() {
    let port = ember_tests::free_port();
    let server = ember_tests::EmberServer::start(&[&format!("grpc-port {port}")]);
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    let run = |script: &str, args: &[&str]| {
        let out = Command::new("python3")
            .args(["-c", script, proto, &port.to_string()])
            .args(args)
            .output()
            .expect("python3");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ok\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(SCRIPT, &["a", "b", "server"]);
    drop(server);
    let port = ember_tests::free_port();
    let _server =
        ember_tests::EmberServer::start(&[&format!("grpc-port {port}"), "requirepass s3cret"]);
    let out = Command::new("python3")
        .args(["-c", SERVER_SCRIPT, proto, &port.to_string()])
        .output()
        .expect("python3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

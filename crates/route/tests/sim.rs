//! Deterministic simulations: a router, fake nodes and a virtual clock in one
//! thread, stepped until idle (after quinn-proto's `tests/util.rs` `Pair`).
//!
//! The simulator plays a well-behaved driver: one connection per node,
//! opened when a transmit carries a new epoch, replies matched FIFO. Faults
//! are scripted per node: crashed (connections refused and broken),
//! partitioned (commands vanish, so they time out), slow (a latency).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ember_route::{
    Backoff, Config, Doubt, Epoch, Event, Failure, GroupId, Healing, Identity, MARKER, NodeId,
    Outcome, ReadPreference, RequestId, RouteError, Router, ShardId, Token, Topology, Transmit,
    Trust, WritePolicy, hint_key, resync_key,
};
use resp::Frame;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Refuses connections and breaks the one it had.
    Crashed,
    /// Takes commands and never answers.
    Partitioned,
}

#[derive(Debug)]
struct Reply {
    at: Instant,
    epoch: Epoch,
    token: Token,
    frame: Frame,
}

/// A tiny Redis: strings only, enough commands for the router's plans.
#[derive(Debug)]
struct FakeNode {
    store: BTreeMap<Bytes, Bytes>,
    fault: Fault,
    latency: Duration,
    conn: Option<Epoch>,
    /// Replies on their way, in the order they will arrive.
    wire: VecDeque<Reply>,
    multi: Option<Vec<Vec<Bytes>>>,
    /// A new one for every process (restart).
    run_id: u32,
    /// The database the connection selected.
    db: u32,
    /// Database 15, the fleet's own: strings and lists as lists.
    meta: BTreeMap<Bytes, Vec<Bytes>>,
    /// An error every command but `SELECT` gets (`LOADING`...).
    unready: Option<&'static str>,
}

impl FakeNode {
    fn new() -> FakeNode {
        FakeNode {
            store: BTreeMap::new(),
            fault: Fault::None,
            latency: Duration::from_millis(1),
            conn: None,
            wire: VecDeque::new(),
            multi: None,
            run_id: 0,
            db: 0,
            meta: BTreeMap::new(),
            unready: None,
        }
    }

    /// What the driver's handshake learns on a new connection.
    fn identity(&self, me: NodeId, topology: &Topology) -> Identity {
        Identity {
            run_id: Bytes::from(format!("run{}", self.run_id)),
            marker: self
                .meta
                .get(MARKER.as_bytes())
                .and_then(|v| v.first().cloned()),
            hints_for: topology
                .nodes()
                .filter(|&(n, addr)| {
                    n != me
                        && (self.meta.contains_key(hint_key(0, addr).as_bytes())
                            || self.meta.contains_key(resync_key(0, addr).as_bytes()))
                })
                .map(|(n, _)| n)
                .collect(),
        }
    }

    /// The keys the fleet's hints on this node say `addr` missed.
    fn hints(&self, addr: &str) -> Vec<Bytes> {
        self.meta
            .get(hint_key(0, addr).as_bytes())
            .cloned()
            .unwrap_or_default()
    }

    /// Database 15's commands.
    fn execute_meta(&mut self, name: &str, args: &[Bytes]) -> Frame {
        match name {
            "set" => {
                self.meta.insert(args[1].clone(), vec![args[2].clone()]);
                Frame::simple("OK")
            }
            "get" => self
                .meta
                .get(&args[1])
                .and_then(|v| v.first().cloned())
                .map_or(Frame::NullBulk, Frame::Bulk),
            "rpush" => {
                let list = self.meta.entry(args[1].clone()).or_default();
                list.extend(args[2..].iter().cloned());
                Frame::Integer(list.len() as i64)
            }
            "exists" => Frame::Integer(
                args[1..]
                    .iter()
                    .filter(|k| self.meta.contains_key(*k))
                    .count() as i64,
            ),
            _ => Frame::error(format!("ERR no {name} in the meta database")),
        }
    }

    fn get(&self, key: &str) -> Option<&[u8]> {
        self.store.get(key.as_bytes()).map(|v| &v[..])
    }

    /// Runs a command; `Err(wait)` for a blocking pop that answers nil after
    /// `wait`.
    fn execute(&mut self, args: &[Bytes]) -> Result<Frame, Duration> {
        let name = String::from_utf8_lossy(&args[0]).to_lowercase();
        let ok = || Frame::simple("OK");
        if name == "select" {
            self.db = std::str::from_utf8(&args[1]).unwrap().parse().unwrap();
            return Ok(ok());
        }
        if let Some(error) = self.unready {
            return Ok(Frame::error(error));
        }
        if self.db == 15 {
            return Ok(self.execute_meta(&name, args));
        }
        if let Some(queued) = &mut self.multi {
            if name != "exec" {
                queued.push(args.to_vec());
                return Ok(Frame::simple("QUEUED"));
            }
            let queued = self.multi.take().unwrap_or_default();
            let replies = queued
                .iter()
                .map(|c| self.execute(c).unwrap_or(Frame::NullArray));
            return Ok(Frame::Array(replies.collect()));
        }
        let count = |store: &BTreeMap<Bytes, Bytes>| {
            Frame::Integer(args[1..].iter().filter(|k| store.contains_key(*k)).count() as i64)
        };
        Ok(match name.as_str() {
            "ping" => Frame::simple("PONG"),
            "multi" => {
                self.multi = Some(Vec::new());
                ok()
            }
            "get" => self
                .store
                .get(&args[1])
                .cloned()
                .map_or(Frame::NullBulk, Frame::Bulk),
            "set" => {
                self.store.insert(args[1].clone(), args[2].clone());
                ok()
            }
            "mget" => Frame::Array(
                args[1..]
                    .iter()
                    .map(|k| {
                        self.store
                            .get(k)
                            .cloned()
                            .map_or(Frame::NullBulk, Frame::Bulk)
                    })
                    .collect(),
            ),
            "mset" => {
                for kv in args[1..].chunks(2) {
                    self.store.insert(kv[0].clone(), kv[1].clone());
                }
                ok()
            }
            "exists" => count(&self.store),
            "del" | "unlink" => {
                let n = count(&self.store);
                args[1..].iter().for_each(|k| drop(self.store.remove(k)));
                n
            }
            "incr" => {
                let old = self.store.get(&args[1]).map_or(Some(0), |v| {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                });
                match old {
                    Some(n) => {
                        self.store
                            .insert(args[1].clone(), Bytes::from((n + 1).to_string()));
                        Frame::Integer(n + 1)
                    }
                    None => Frame::error("ERR value is not an integer or out of range"),
                }
            }
            "llen" if self.store.contains_key(&args[1]) => {
                Frame::error("WRONGTYPE Operation against a key holding the wrong kind of value")
            }
            "llen" => Frame::Integer(0),
            "blpop" => {
                let secs: f64 = std::str::from_utf8(args.last().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                return Err(Duration::from_secs_f64(secs));
            }
            "rename" => match self.store.remove(&args[1]) {
                Some(v) => {
                    self.store.insert(args[2].clone(), v);
                    ok()
                }
                None => Frame::error("ERR no such key"),
            },
            "dbsize" => Frame::Integer(self.store.len() as i64),
            "keys" => Frame::Array(self.store.keys().cloned().map(Frame::Bulk).collect()),
            "scan" => {
                let cursor: usize = std::str::from_utf8(&args[1]).unwrap().parse().unwrap();
                let count: usize = match args.get(2) {
                    Some(opt) if opt.eq_ignore_ascii_case(b"count") => {
                        std::str::from_utf8(&args[3]).unwrap().parse().unwrap()
                    }
                    _ => 10,
                };
                let keys: Vec<Frame> = self
                    .store
                    .keys()
                    .skip(cursor)
                    .take(count)
                    .cloned()
                    .map(Frame::Bulk)
                    .collect();
                let next = if cursor + count >= self.store.len() {
                    0
                } else {
                    cursor + count
                };
                Frame::Array(vec![Frame::bulk(next.to_string()), Frame::Array(keys)])
            }
            "flushall" => {
                self.store.clear();
                self.meta.clear();
                ok()
            }
            "flushdb" => {
                self.store.clear();
                ok()
            }
            _ => Frame::error(format!("ERR unknown command '{name}'")),
        })
    }
}

/// The router, its nodes and a virtual clock.
struct Sim {
    router: Router,
    start: Instant,
    now: Instant,
    nodes: Vec<FakeNode>,
    /// Whether the driver keeps reading a connection after a reset (a slow
    /// driver): then late replies reach the router, which must ignore them.
    lazy: bool,
    completed: HashMap<RequestId, Result<Frame, RouteError>>,
    /// Events other than completions, with when.
    events: Vec<(Duration, Event)>,
    /// Every command a node received: when, which node, the command name.
    log: Vec<(Duration, NodeId, String)>,
    /// Every command the driver tried to write, received or not.
    attempts: Vec<(Duration, NodeId, String)>,
    /// Replies handed to the router for a connection it had reset.
    late: usize,
}

#[allow(clippy::disallowed_methods)]
fn clock_start() -> Instant {
    // The only clock read: the virtual clock's origin.
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn args(cmd: &str) -> Vec<Bytes> {
    cmd.split(' ')
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}

impl Sim {
    fn new(groups: u32, shards: u32, config: Config) -> Sim {
        Sim::with_topology(topology(groups, shards), config)
    }

    fn with_topology(topology: Topology, config: Config) -> Sim {
        let start = clock_start();
        Sim {
            nodes: (0..topology.len()).map(|_| FakeNode::new()).collect(),
            router: Router::new(topology, config),
            start,
            now: start,
            lazy: false,
            completed: HashMap::new(),
            events: Vec::new(),
            log: Vec::new(),
            attempts: Vec::new(),
            late: 0,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn node(&mut self, group: u32, shard: u32) -> &mut FakeNode {
        let id = self.id(group, shard);
        &mut self.nodes[id.0 as usize]
    }

    fn id(&self, group: u32, shard: u32) -> NodeId {
        self.router
            .topology()
            .node(GroupId(group), ShardId(shard))
            .unwrap()
    }

    fn submit(&mut self, cmd: &str) -> RequestId {
        let id = self.router.submit(self.now, args(cmd)).unwrap();
        self.pump();
        id
    }

    /// Submits, runs until idle, and returns the answer.
    fn call(&mut self, cmd: &str) -> Result<Frame, RouteError> {
        let id = self.submit(cmd);
        self.run();
        self.completed.remove(&id).expect("request completed")
    }

    fn crash(&mut self, node: NodeId) {
        let n = &mut self.nodes[node.0 as usize];
        n.fault = Fault::Crashed;
        n.wire.clear();
        if let Some(epoch) = n.conn.take() {
            self.router
                .handle_failure(self.now, node, epoch, Failure::Closed);
        }
        self.pump();
    }

    fn heal(&mut self, node: NodeId) {
        self.nodes[node.0 as usize].fault = Fault::None;
    }

    /// The driver's first connections, one per node that takes them, each
    /// with its handshake.
    fn connect_all(&mut self) {
        for i in 0..self.nodes.len() {
            let node = NodeId(i as u32);
            let epoch = self.router.epoch(node).unwrap();
            if self.nodes[i].fault == Fault::Crashed || self.nodes[i].conn == Some(epoch) {
                continue;
            }
            self.nodes[i].conn = Some(epoch);
            self.nodes[i].db = 0;
            let identity = self.nodes[i].identity(node, self.router.topology());
            self.router.handle_identity(self.now, node, epoch, identity);
        }
        self.run();
    }

    /// The node's process dies and a new one starts with nothing.
    fn restart_empty(&mut self, node: NodeId) {
        self.crash(node);
        let n = &mut self.nodes[node.0 as usize];
        n.store.clear();
        n.meta.clear();
        n.run_id += 1;
        n.fault = Fault::None;
    }

    /// What the client's repair does, done at once: copy `from`'s data to
    /// `node`, mark it, drop the hints about it, and tell the router.
    fn repair(&mut self, node: NodeId, from: NodeId) {
        let data = self.nodes[from.0 as usize].store.clone();
        let addr = self.router.topology().addr(node).unwrap().to_owned();
        let n = &mut self.nodes[node.0 as usize];
        n.store = data;
        let marker = Bytes::from(format!("run{}", n.run_id));
        n.meta
            .insert(Bytes::from_static(MARKER.as_bytes()), vec![marker]);
        for peer in &mut self.nodes {
            peer.meta.remove(hint_key(0, &addr).as_bytes());
        }
        self.router.set_trust(node, Trust::Verified);
        self.pump();
    }

    /// Another client of the same nodes, which connects to them afresh.
    fn fresh_client(&mut self) -> Sim {
        let mut fresh =
            Sim::with_topology(self.router.topology().clone(), self.router.config().clone());
        fresh.nodes = std::mem::take(&mut self.nodes);
        for n in &mut fresh.nodes {
            n.conn = None;
            n.wire.clear();
        }
        fresh.connect_all();
        fresh
    }

    fn trust_events(&self, node: NodeId) -> Vec<Trust> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Trust { node: n, trust } if *n == node => Some(*trust),
                _ => None,
            })
            .collect()
    }

    /// Carries out the router's output until there is none.
    fn pump(&mut self) {
        loop {
            if let Some(tx) = self.router.poll_transmit() {
                self.transmit(tx);
                continue;
            }
            match self.router.poll_event() {
                Some(Event::Completed { id, result }) => {
                    assert!(self.completed.insert(id, result).is_none(), "{id} twice");
                }
                Some(event) => {
                    if let Event::ResetConnection { node, epoch } = event
                        && !self.lazy
                    {
                        let n = &mut self.nodes[node.0 as usize];
                        n.wire.retain(|r| r.epoch >= epoch);
                        n.conn = None;
                    }
                    self.events.push((self.elapsed(), event));
                }
                None => return,
            }
        }
    }

    fn transmit(&mut self, tx: Transmit) {
        let (now, node, epoch) = (self.now, tx.node, tx.token.epoch());
        if Some(epoch) < self.router.epoch(node) {
            return; // given up on already
        }
        let name = String::from_utf8_lossy(&tx.command[0]).to_lowercase();
        self.attempts.push((now - self.start, node, name.clone()));
        let n = &mut self.nodes[node.0 as usize];
        if n.conn != Some(epoch) {
            if n.fault == Fault::Crashed {
                self.router
                    .handle_failure(now, node, epoch, Failure::Connect);
                return;
            }
            // A new connection; a prompt driver closed the old one.
            n.conn = Some(epoch);
            n.multi = None;
            n.db = 0;
            if !self.lazy {
                n.wire.clear();
            }
            // The handshake, before anything is read on it.
            let identity = n.identity(node, self.router.topology());
            self.router.handle_identity(now, node, epoch, identity);
        }
        self.log.push((now - self.start, node, name));
        if n.fault == Fault::Partitioned {
            return;
        }
        let (frame, latency) = match n.execute(&tx.command) {
            Ok(frame) => (frame, n.latency),
            Err(wait) => (Frame::NullArray, n.latency + wait),
        };
        // Replies on one connection keep their order.
        let after = n
            .wire
            .iter()
            .filter(|r| r.epoch == epoch)
            .map(|r| r.at)
            .max();
        let at = after.map_or(now + latency, |a| a.max(now + latency));
        let token = tx.token;
        let pos = n
            .wire
            .iter()
            .position(|r| r.at > at)
            .unwrap_or(n.wire.len());
        n.wire.insert(
            pos,
            Reply {
                at,
                epoch,
                token,
                frame,
            },
        );
    }

    /// Advances to the next reply or timer and handles it. `false` when there
    /// is nothing before `until`.
    fn step(&mut self, until: Option<Instant>) -> bool {
        self.pump();
        let next_reply = self
            .nodes
            .iter()
            .filter_map(|n| n.wire.front().map(|r| r.at))
            .min();
        let Some(next) = next_reply
            .into_iter()
            .chain(self.router.poll_timeout())
            .min()
        else {
            return false;
        };
        if until.is_some_and(|u| next > u) {
            return false;
        }
        self.now = self.now.max(next);
        for i in 0..self.nodes.len() {
            while self.nodes[i].wire.front().is_some_and(|r| r.at <= self.now) {
                let r = self.nodes[i].wire.pop_front().unwrap();
                if Some(r.epoch) < self.router.epoch(NodeId(i as u32)) {
                    self.late += 1;
                }
                self.router
                    .handle_reply(self.now, NodeId(i as u32), r.token, r.frame);
                self.pump();
            }
        }
        self.router.handle_timeout(self.now);
        self.pump();
        true
    }

    /// Steps until nothing is in flight and no reply is on its way.
    fn run(&mut self) {
        for _ in 0..100_000 {
            let busy = self.router.in_flight() > 0 || self.nodes.iter().any(|n| !n.wire.is_empty());
            if !busy || !self.step(None) {
                return;
            }
        }
        panic!("simulation did not settle");
    }

    /// Steps until `done` holds.
    fn run_until(&mut self, done: impl Fn(&Sim) -> bool) {
        for _ in 0..100_000 {
            if done(self) {
                return;
            }
            assert!(self.step(None), "stuck");
        }
        panic!("condition never held");
    }

    /// Steps through `d` of virtual time.
    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.step(Some(until)) {}
        self.now = until;
    }

    /// Which nodes received command `name`, in order.
    fn received(&self, name: &str) -> Vec<NodeId> {
        self.log
            .iter()
            .filter(|(_, _, c)| c == name)
            .map(|&(_, n, _)| n)
            .collect()
    }

    fn clear_log(&mut self) {
        self.log.clear();
    }
}

fn topology(groups: u32, shards: u32) -> Topology {
    Topology::new((0..groups).map(|g| (0..shards).map(move |s| format!("10.0.{g}.{s}:6379"))))
        .unwrap()
}

/// The first `n` of `key0`, `key1`... that live on `shard`.
fn keys_on(t: &Topology, shard: u32, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("key{i}"))
        .filter(|k| t.shard_for(k.as_bytes()) == ShardId(shard))
        .take(n)
        .collect()
}

fn config() -> Config {
    Config::default()
}

// ---- writes ----

#[test]
fn write_policies_with_failing_groups() {
    for policy in [WritePolicy::One, WritePolicy::Quorum, WritePolicy::All] {
        for partition in [false, true] {
            for failing in 0..=2u32 {
                let mut cfg = config();
                cfg.write_policy = policy;
                let mut sim = Sim::new(3, 2, cfg);
                let shard = sim.router.topology().shard_for(b"k").0;
                for g in 0..failing {
                    let node = sim.id(g, shard);
                    if partition {
                        sim.nodes[node.0 as usize].fault = Fault::Partitioned;
                    } else {
                        sim.crash(node);
                    }
                }
                let result = sim.call("SET k v");
                if let Err(e) = &result {
                    assert!(
                        e.to_string()
                            .contains(&format!("the {policy} policy needs")),
                        "{e}"
                    );
                }
                let acks = (3 - failing) as usize;
                let needed = policy.needed(3);
                let case = format!("{policy} policy, {failing} failing, partition {partition}");
                if acks >= needed {
                    assert_eq!(result, Ok(Frame::simple("OK")), "{case}");
                } else {
                    let Err(RouteError::WriteFailed {
                        policy: p,
                        needed: n,
                        outcomes,
                        ..
                    }) = result
                    else {
                        panic!("{case}: {result:?}");
                    };
                    assert_eq!((p, n), (policy, needed), "{case}");
                    let why = if partition {
                        Failure::Timeout
                    } else {
                        Failure::Connect
                    };
                    assert_eq!(outcomes[0].outcome, Outcome::Failed(why), "{case}");
                    for o in &outcomes {
                        // A failure can decide the write before the next
                        // failing group's failure is known.
                        let fine: &[Outcome] = match (o.group.0 < failing, partition) {
                            (true, _) => &[Outcome::Failed(why), Outcome::Pending],
                            (false, true) => &[Outcome::Replied],
                            (false, false) => &[Outcome::Pending],
                        };
                        assert!(fine.contains(&o.outcome), "{case}: {o}");
                    }
                }
                // Every live group applied the write, whatever the caller heard.
                for g in failing..3 {
                    assert_eq!(sim.node(g, shard).get("k"), Some(&b"v"[..]), "{case}");
                }
            }
        }
    }
}

#[test]
fn mset_partial_failure_names_the_failed_shard() {
    let mut sim = Sim::new(2, 3, config());
    let t = sim.router.topology().clone();
    let (a, b, c) = (
        &keys_on(&t, 0, 1)[0],
        &keys_on(&t, 1, 1)[0],
        &keys_on(&t, 2, 1)[0],
    );
    for g in 0..2 {
        let node = sim.id(g, 1);
        sim.crash(node);
    }
    let result = sim.call(&format!("MSET {a} 1 {b} 2 {c} 3"));
    let Err(RouteError::Partial { succeeded, failed }) = result else {
        panic!("{result:?}");
    };
    assert_eq!(succeeded, [ShardId(0), ShardId(2)]);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, ShardId(1));
    assert!(matches!(
        failed[0].1,
        RouteError::WriteFailed { acks: 0, .. }
    ));
    // Parts are not atomic: the other shards were written.
    assert_eq!(sim.node(0, 0).get(a), Some(&b"1"[..]));
    assert_eq!(sim.node(1, 2).get(c), Some(&b"3"[..]));
    assert_eq!(
        sim.call(&format!("MGET {a} {c}")),
        Ok(Frame::Array(vec![Frame::bulk("1"), Frame::bulk("3")]))
    );
}

#[test]
fn flushall_reaches_every_node() {
    let mut sim = Sim::new(2, 3, config());
    let keys = (0..20)
        .map(|i| format!("k{i} v"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(sim.call(&format!("MSET {keys}")), Ok(Frame::simple("OK")));
    assert_eq!(sim.call("DBSIZE"), Ok(Frame::Integer(20)));
    sim.clear_log();
    assert_eq!(sim.call("FLUSHALL"), Ok(Frame::simple("OK")));
    let reached: BTreeSet<NodeId> = sim.received("flushall").into_iter().collect();
    assert_eq!(reached.len(), 6);
    assert!(sim.nodes.iter().all(|n| n.store.is_empty()));
    assert_eq!(sim.call("DBSIZE"), Ok(Frame::Integer(0)));
}

// ---- reads ----

#[test]
fn fixed_reads_fail_over_on_errors_but_not_on_answers() {
    let mut sim = Sim::new(3, 1, config());
    sim.call("SET k v").unwrap();
    sim.clear_log();
    assert_eq!(sim.call("GET k"), Ok(Frame::bulk("v")));
    assert_eq!(sim.call("GET missing"), Ok(Frame::NullBulk));
    let err = sim.call("LLEN k").unwrap();
    assert!(err.is_error());
    // Nil and WRONGTYPE are answers: group 0 alone was asked.
    assert_eq!(sim.received("get"), [NodeId(0), NodeId(0)]);
    assert_eq!(sim.received("llen"), [NodeId(0)]);

    // A crashed node: fail over to the next group.
    sim.crash(NodeId(0));
    sim.clear_log();
    assert_eq!(sim.call("GET k"), Ok(Frame::bulk("v")));
    assert_eq!(sim.received("get"), [NodeId(1)]);

    // A silent node: fail over after the timeout, resetting its connection.
    // Node 0's connection of epoch 0 broke when it crashed, it refused the
    // one of epoch 1, and now epoch 2 times out.
    sim.heal(NodeId(0));
    sim.nodes[0].fault = Fault::Partitioned;
    sim.clear_log();
    let t0 = sim.elapsed();
    assert_eq!(sim.call("GET k"), Ok(Frame::bulk("v")));
    assert_eq!(sim.received("get"), [NodeId(0), NodeId(1)]);
    assert_eq!(sim.elapsed() - t0, Duration::from_secs(1) + ms(1));
    let reset = Event::ResetConnection {
        node: NodeId(0),
        epoch: Epoch(3),
    };
    assert!(
        sim.events.iter().any(|(_, e)| *e == reset),
        "{:?}",
        sim.events
    );
    assert!(
        sim.router.is_up(NodeId(0)),
        "two failures are below the threshold"
    );
}

#[test]
fn reads_fail_when_no_replica_answers() {
    let mut sim = Sim::new(2, 1, config());
    sim.crash(NodeId(0));
    sim.nodes[1].fault = Fault::Partitioned;
    let result = sim.call("GET k");
    let Err(RouteError::Unavailable { shard, attempts }) = result else {
        panic!("{result:?}");
    };
    assert_eq!(shard, ShardId(0));
    let outcomes: Vec<Outcome> = attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Failed(Failure::Connect),
            Outcome::Failed(Failure::Timeout)
        ]
    );
}

#[test]
fn round_robin_reads_spread_over_groups() {
    let mut cfg = config();
    cfg.read_preference = ReadPreference::RoundRobin;
    let mut sim = Sim::new(3, 1, cfg);
    sim.call("SET k v").unwrap();
    sim.clear_log();
    for _ in 0..6 {
        assert_eq!(sim.call("GET k"), Ok(Frame::bulk("v")));
    }
    let order: Vec<u32> = sim.received("get").iter().map(|n| n.0).collect();
    assert_eq!(order, [0, 1, 2, 0, 1, 2]);
}

#[test]
fn fastest_recently_prefers_the_quick_group() {
    let mut cfg = config();
    cfg.read_preference = ReadPreference::FastestRecently;
    let mut sim = Sim::new(3, 1, cfg);
    sim.nodes[0].latency = ms(50);
    sim.nodes[1].latency = ms(5);
    sim.nodes[2].latency = ms(20);
    for _ in 0..10 {
        let id = sim.submit("GET k");
        sim.run();
        assert_eq!(sim.completed.remove(&id), Some(Ok(Frame::NullBulk)));
    }
    let order: Vec<u32> = sim.received("get").iter().map(|n| n.0).collect();
    // Each unmeasured node is tried once, then the fastest wins.
    assert_eq!(order, [0, 1, 2, 1, 1, 1, 1, 1, 1, 1]);
    assert_eq!(sim.router.latency(NodeId(1)), Some(ms(5)));

    // Node 1 slows down past the timeout: it is timed out, and the next
    // reads go to the next fastest.
    sim.nodes[1].latency = Duration::from_secs(5);
    sim.clear_log();
    for _ in 0..3 {
        assert_eq!(sim.call("GET k"), Ok(Frame::NullBulk));
    }
    let order: Vec<u32> = sim.received("get").iter().map(|n| n.0).collect();
    assert_eq!(order, [1, 2, 2, 2]);
}

#[test]
fn late_reply_after_timeout_is_never_matched() {
    let mut sim = Sim::new(2, 1, config());
    sim.lazy = true;
    sim.call("MSET k1 v1 k2 v2").unwrap();
    // Node 0 answers GET k1 after 1.5 s; the timeout is 1 s.
    sim.nodes[0].latency = ms(1500);
    let first = sim.submit("GET k1");
    sim.run_until(|s| s.completed.contains_key(&first));
    assert_eq!(sim.completed[&first], Ok(Frame::bulk("v1")));
    assert_eq!(
        sim.events[0].1,
        Event::ResetConnection {
            node: NodeId(0),
            epoch: Epoch(1)
        }
    );
    // GET k2 goes to node 0 again, on a new connection, and is answered
    // after the stale `v1` reply, which the lazy driver still hands in.
    sim.nodes[0].latency = ms(1000);
    let second = sim.submit("GET k2");
    sim.run();
    assert_eq!(sim.received("get"), [NodeId(0), NodeId(1), NodeId(0)]);
    assert_eq!(sim.completed[&second], Ok(Frame::bulk("v2")));
    assert_eq!(sim.late, 1, "the stale reply did reach the router");
    assert_eq!(sim.completed.len(), 2);
    assert_eq!(sim.router.in_flight(), 0);
}

#[test]
fn mget_keeps_the_callers_order_across_shards() {
    let mut sim = Sim::new(2, 4, config());
    let pairs: Vec<String> = (0..12).map(|i| format!("key{i} val{i}")).collect();
    sim.call(&format!("MSET {}", pairs.join(" "))).unwrap();
    sim.clear_log();
    let asked = ["key7", "nope", "key0", "key11", "key3", "key7", "key5"];
    let result = sim.call(&format!("MGET {}", asked.join(" "))).unwrap();
    let expected: Vec<Frame> = asked
        .iter()
        .map(|k| match k.strip_prefix("key") {
            Some(i) => Frame::bulk(format!("val{i}")),
            None => Frame::NullBulk,
        })
        .collect();
    assert_eq!(result, Frame::Array(expected));
    assert!(sim.received("mget").len() > 1);
}

#[test]
fn counts_are_summed_over_shards() {
    let mut sim = Sim::new(2, 3, config());
    sim.call("MSET a 1 b 2 c 3 d 4 e 5").unwrap();
    assert_eq!(sim.call("EXISTS a b x c a"), Ok(Frame::Integer(4)));
    assert_eq!(sim.call("DEL a b x c"), Ok(Frame::Integer(3)));
    assert_eq!(sim.call("UNLINK d e a"), Ok(Frame::Integer(2)));
    assert_eq!(sim.call("DBSIZE"), Ok(Frame::Integer(0)));
    assert!(sim.nodes.iter().all(|n| n.store.is_empty()));
}

#[test]
fn cross_shard_commands_are_refused_and_same_shard_ones_run() {
    let mut sim = Sim::with_topology(topology(2, 4).with_hash_tags(true), config());
    let t = sim.router.topology().clone();
    let (a, b) = (&keys_on(&t, 0, 1)[0], &keys_on(&t, 1, 1)[0]);
    sim.call(&format!("SET {a} v")).unwrap();
    let err = sim
        .router
        .submit(sim.now, args(&format!("RENAME {a} {b}")))
        .unwrap_err();
    assert_eq!(
        err,
        RouteError::CrossShard {
            command: "rename".into(),
            first: ShardId(0),
            second: ShardId(1)
        }
    );
    assert!(
        sim.router
            .submit(sim.now, args(&format!("BLPOP {a} {b} 0")))
            .is_err()
    );
    sim.call("SET {user1}.name ann").unwrap();
    assert_eq!(
        sim.call("RENAME {user1}.name {user1}.nick"),
        Ok(Frame::simple("OK"))
    );
    assert_eq!(sim.call("GET {user1}.nick"), Ok(Frame::bulk("ann")));
    assert_eq!(sim.router.pending_requests(), 0);
}

#[test]
fn transactions_run_on_one_shard() {
    let mut sim = Sim::with_topology(topology(2, 4).with_hash_tags(true), config());
    let tx: Vec<Vec<Bytes>> = ["SET {u}.a 1", "INCR {u}.a", "GET {u}.a"]
        .map(args)
        .to_vec();
    let id = sim.router.submit_transaction(sim.now, tx).unwrap();
    sim.run();
    assert_eq!(
        sim.completed[&id],
        Ok(Frame::Array(vec![
            Frame::simple("OK"),
            Frame::Integer(2),
            Frame::bulk("2")
        ]))
    );
    let shard = sim.router.topology().shard_for(b"u").0;
    for g in 0..2 {
        assert_eq!(sim.node(g, shard).get("{u}.a"), Some(&b"2"[..]));
    }
    let spread = vec![args("SET {u}.a 1"), args("SET {v}.a 1")];
    let err = sim.router.submit_transaction(sim.now, spread).unwrap_err();
    assert!(matches!(err, RouteError::CrossShard { .. }));
}

#[test]
fn blocking_commands_get_their_own_wait() {
    let mut sim = Sim::new(2, 1, config());
    let id = sim.submit("BLPOP list 2.5");
    // The default timeout is 1 s; the pop may wait 2.5 s on top.
    assert_eq!(sim.router.poll_timeout(), Some(sim.now + ms(3500)));
    sim.run();
    assert_eq!(sim.completed[&id], Ok(Frame::NullArray));
    assert!(sim.events.is_empty(), "{:?}", sim.events);
    let _ = sim.submit("BLPOP list 0");
    assert_eq!(sim.router.poll_timeout(), None);
}

// ---- SCAN, KEYS ----

#[test]
fn scan_visits_every_key_of_every_shard_once() {
    let mut sim = Sim::new(2, 3, config());
    let all: BTreeSet<String> = (0..50).map(|i| format!("key{i}")).collect();
    let pairs: Vec<String> = all.iter().map(|k| format!("{k} x")).collect();
    sim.call(&format!("MSET {}", pairs.join(" "))).unwrap();
    let mut seen = Vec::new();
    let mut cursor = "0".to_owned();
    let mut calls = 0;
    loop {
        let reply = sim.call(&format!("SCAN {cursor} COUNT 7")).unwrap();
        let Frame::Array(mut parts) = reply else {
            panic!()
        };
        let Frame::Array(keys) = parts.pop().unwrap() else {
            panic!()
        };
        seen.extend(
            keys.iter()
                .map(|k| String::from_utf8(k.as_bytes().unwrap().to_vec()).unwrap()),
        );
        cursor = String::from_utf8(parts[0].as_bytes().unwrap().to_vec()).unwrap();
        calls += 1;
        if cursor == "0" {
            break;
        }
        assert!(calls < 100);
    }
    assert_eq!(seen.len(), 50, "no key twice");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), all);
    assert!(calls >= 3, "every shard was scanned");
    let Ok(Frame::Array(keys)) = sim.call("KEYS *") else {
        panic!()
    };
    assert_eq!(keys.len(), 50);
}

// ---- node health ----

fn backoff_config(seed: u64) -> Config {
    let mut cfg = config();
    cfg.failure_threshold = 2;
    cfg.backoff = Backoff {
        initial: ms(100),
        max: ms(800),
        jitter: 0.5,
    };
    cfg.seed = seed;
    cfg
}

/// Crashes node 0 until it is marked down, runs for `span`, and returns the
/// waits before each probe: the first from the moment it went down.
fn probe_waits(seed: u64, span: Duration) -> (Sim, Vec<Duration>) {
    let mut sim = Sim::new(2, 1, backoff_config(seed));
    sim.crash(NodeId(0));
    sim.run_for(ms(10));
    assert_eq!(sim.call("GET k"), Ok(Frame::NullBulk));
    assert!(
        sim.router.is_up(NodeId(0)),
        "one failure is below the threshold"
    );
    assert_eq!(sim.call("GET k"), Ok(Frame::NullBulk));
    assert!(!sim.router.is_up(NodeId(0)));
    assert_eq!(
        sim.events.last().unwrap().1,
        Event::NodeDown { node: NodeId(0) }
    );
    let down_at = sim.elapsed();
    // Reads skip the node while it is down.
    sim.clear_log();
    assert_eq!(sim.call("GET k"), Ok(Frame::NullBulk));
    assert_eq!(sim.received("get"), [NodeId(1)]);
    sim.run_for(span);
    let mut last = down_at;
    let waits = sim
        .attempts
        .iter()
        .filter(|(_, n, c)| *n == NodeId(0) && c == "ping")
        .map(|&(t, _, _)| {
            let wait = t - last;
            last = t;
            wait
        })
        .collect();
    (sim, waits)
}

#[test]
fn backoff_grows_is_capped_and_its_jitter_follows_the_seed() {
    let (sim, waits) = probe_waits(7, Duration::from_secs(10));
    // 100 + 200 + 400 + 800 + ... ms, each cut by up to half.
    assert!(waits.len() >= 12, "{waits:?}");
    for (i, &wait) in waits.iter().enumerate() {
        let nominal = ms(100 << i.min(3));
        assert!(
            wait <= nominal && wait >= nominal / 2,
            "probe {i}: {wait:?}"
        );
    }
    assert!(waits.windows(2).take(3).all(|w| w[0] <= w[1]), "{waits:?}");
    assert!(!sim.router.is_up(NodeId(0)));
    assert_eq!(probe_waits(7, Duration::from_secs(10)).1, waits);
    assert_ne!(probe_waits(8, Duration::from_secs(10)).1, waits);
}

#[test]
fn a_probe_brings_the_node_back() {
    let (mut sim, _) = probe_waits(1, Duration::from_secs(2));
    sim.heal(NodeId(0));
    sim.run_for(Duration::from_secs(1));
    assert!(sim.router.is_up(NodeId(0)));
    assert_eq!(
        sim.events.last().unwrap().1,
        Event::NodeUp { node: NodeId(0) }
    );
    assert_eq!(sim.received("ping"), [NodeId(0)]);
    sim.clear_log();
    assert_eq!(sim.call("GET k"), Ok(Frame::NullBulk));
    assert_eq!(sim.received("get"), [NodeId(0)]);
}

#[test]
fn a_probe_that_times_out_backs_off_further() {
    let (mut sim, _) = probe_waits(3, Duration::from_secs(1));
    // Reachable now, but silent: the probe times out (1 s).
    sim.heal(NodeId(0));
    sim.nodes[0].fault = Fault::Partitioned;
    sim.run_for(Duration::from_secs(3));
    assert!(!sim.router.is_up(NodeId(0)));
    assert!(sim.received("ping").contains(&NodeId(0)));
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        Event::ResetConnection {
            node: NodeId(0),
            ..
        }
    )));
    sim.nodes[0].fault = Fault::None;
    sim.run_for(Duration::from_secs(2));
    assert!(sim.router.is_up(NodeId(0)));
}

/// `cfg` for a node that flaps: down at the first failure, probed soon.
fn flapping(mut cfg: Config) -> Config {
    cfg.failure_threshold = 1;
    cfg.backoff = Backoff {
        initial: ms(20),
        max: ms(100),
        jitter: 0.5,
    };
    cfg
}

/// Step `i` of the flapping schedule: node 0 crashes every 12 steps and
/// comes back 6 steps later.
fn flap(sim: &mut Sim, i: u32) {
    match i % 12 {
        0 => sim.crash(NodeId(0)),
        6 => sim.heal(NodeId(0)),
        _ => {}
    }
}

#[test]
fn a_flapping_node_never_gets_an_answer_wrong() {
    let mut sim = Sim::new(2, 1, flapping(config()));
    let (mut nils, mut from_node0, mut from_node1) = (0, 0, 0);
    for i in 0..60 {
        flap(&mut sim, i);
        assert_eq!(sim.call(&format!("SET k{i} v{i}")), Ok(Frame::simple("OK")));
        // This key, just written, and the first one written after node 0
        // last crashed, which it missed.
        for key in [i, i / 12 * 12] {
            let key = format!("k{key}");
            sim.clear_log();
            let got = sim.call(&format!("GET {key}")).unwrap();
            // Node 1 never fails; node 0 may have missed writes while it
            // was down. Whichever node answered, the answer is what that
            // node holds: never another key's value, never a nil from a
            // node that had the key.
            let &answered = sim.received("get").last().expect("a GET sent");
            let held = sim.nodes[answered.0 as usize].get(&key);
            assert_eq!(
                got,
                held.map_or(Frame::NullBulk, |v| Frame::Bulk(Bytes::copy_from_slice(v))),
                "{i} {key}: answered by {answered}"
            );
            match (answered, &got) {
                (NodeId(0), Frame::NullBulk) => nils += 1,
                (NodeId(0), _) => from_node0 += 1,
                _ => from_node1 += 1,
            }
        }
        sim.run_for(ms(30));
    }
    // Without healing nothing keeps reads from a node that missed a write:
    // the nil case did happen, as did answers from either node.
    assert!(
        nils > 0 && from_node0 > 0 && from_node1 > 0,
        "nils {nils}, node 0 {from_node0}, node 1 {from_node1}"
    );
    let flips: Vec<bool> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::NodeDown { node: NodeId(0) } => Some(false),
            Event::NodeUp { node: NodeId(0) } => Some(true),
            _ => None,
        })
        .collect();
    assert!(flips.len() >= 8, "{flips:?}");
    assert!(
        flips.iter().enumerate().all(|(i, &up)| up == (i % 2 == 1)),
        "{flips:?}"
    );
    assert!(
        sim.events
            .iter()
            .all(|(_, e)| !matches!(e, Event::NodeDown { node: NodeId(1) }))
    );
}

// ---- self-healing ----

fn healing() -> Config {
    let mut cfg = config();
    cfg.healing = Some(Healing::new(15, 0));
    cfg
}

#[test]
fn a_new_fleet_is_adopted_and_marked() {
    let mut sim = Sim::new(2, 2, healing());
    sim.connect_all();
    for node in 0..4 {
        assert_eq!(sim.router.trust(NodeId(node)), Some(Trust::Verified));
        let marker = sim.nodes[node as usize]
            .meta
            .get(MARKER.as_bytes())
            .cloned();
        assert_eq!(marker, Some(vec![Bytes::from("run0")]), "node {node}");
    }
    // A second client of the same fleet finds them marked: nothing to adopt.
    let other = sim.fresh_client();
    assert!(other.received("set").is_empty());
    assert_eq!(other.router.trust(NodeId(3)), Some(Trust::Verified));
}

#[test]
fn a_node_that_restarts_empty_never_answers_nil_for_its_peers_keys() {
    let mut sim = Sim::new(2, 1, healing());
    sim.connect_all();
    sim.call("SET k1 v1").unwrap();
    sim.crash(NodeId(0));
    // Policy one: group 1 takes it, and keeps a hint for node 0.
    assert_eq!(sim.call("SET k2 v2"), Ok(Frame::simple("OK")));
    assert_eq!(sim.nodes[1].hints("10.0.0.0:6379"), [Bytes::from("k2")]);
    sim.restart_empty(NodeId(0));
    sim.run_for(Duration::from_secs(3));
    sim.clear_log();
    assert_eq!(sim.call("GET k1"), Ok(Frame::bulk("v1")));
    assert_eq!(sim.call("GET k2"), Ok(Frame::bulk("v2")));
    assert_eq!(sim.call("EXISTS k1"), Ok(Frame::Integer(1)));
    assert_eq!(sim.call("GET nothing"), Ok(Frame::NullBulk));
    assert!(sim.received("get").iter().all(|&n| n == NodeId(1)));
    assert!(matches!(
        sim.router.trust(NodeId(0)),
        Some(Trust::Unverified(Doubt::Restarted | Doubt::Missed))
    ));

    // A client that starts now never saw node 0 fail: the missing marker
    // tells it.
    let mut fresh = sim.fresh_client();
    assert_eq!(
        fresh.router.trust(NodeId(0)),
        Some(Trust::Unverified(Doubt::Unmarked))
    );
    assert_eq!(fresh.router.trust(NodeId(1)), Some(Trust::Verified));
    assert_eq!(fresh.call("GET k1"), Ok(Frame::bulk("v1")));

    // Group 1 goes down too: node 0 is the last resort, and its nils fail
    // over to nobody, so they stand; its values are answers.
    fresh.crash(NodeId(1));
    fresh.call("SET k3 v3").unwrap();
    assert_eq!(fresh.call("GET k3"), Ok(Frame::bulk("v3")));
    assert_eq!(fresh.call("GET k1"), Ok(Frame::NullBulk));
    fresh.heal(NodeId(1));
    fresh.run_for(Duration::from_secs(3));

    // Repaired: verified, read first again.
    fresh.repair(NodeId(0), NodeId(1));
    assert_eq!(fresh.router.trust(NodeId(0)), Some(Trust::Verified));
    fresh.clear_log();
    assert_eq!(fresh.call("GET k1"), Ok(Frame::bulk("v1")));
    assert_eq!(fresh.received("get"), [NodeId(0)]);
}

#[test]
fn a_node_that_missed_writes_is_doubted_by_a_client_that_never_saw_it() {
    let mut sim = Sim::new(2, 1, healing());
    sim.connect_all();
    sim.call("SET k v1").unwrap();
    // Partitioned, not restarted: it keeps its run_id and its marker.
    sim.nodes[0].fault = Fault::Partitioned;
    sim.call("SET k v2").unwrap();
    sim.run();
    assert_eq!(sim.nodes[1].hints("10.0.0.0:6379"), [Bytes::from("k")]);
    assert_eq!(sim.nodes[0].get("k"), Some(&b"v1"[..]));
    sim.nodes[0].fault = Fault::None;
    sim.run_for(Duration::from_secs(3));
    // Stale, but doubted: reads go to group 1.
    assert_eq!(sim.call("GET k"), Ok(Frame::bulk("v2")));
    assert_eq!(
        sim.router.trust(NodeId(0)),
        Some(Trust::Unverified(Doubt::Missed))
    );
    let mut fresh = sim.fresh_client();
    assert_eq!(
        fresh.router.trust(NodeId(0)),
        Some(Trust::Unverified(Doubt::Hinted))
    );
    assert_eq!(fresh.call("GET k"), Ok(Frame::bulk("v2")));
    fresh.repair(NodeId(0), NodeId(1));
    assert_eq!(fresh.trust_events(NodeId(0)).last(), Some(&Trust::Verified));
}

#[test]
fn nodes_that_cannot_serve_are_failed_over_and_hinted() {
    let mut sim = Sim::new(2, 1, healing());
    sim.connect_all();
    sim.call("SET k v").unwrap();
    for error in [
        "LOADING Redis is loading the dataset in memory",
        "READONLY You can't write against a read only replica.",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "BUSY Redis is busy running a script.",
    ] {
        sim.nodes[0].unready = Some(error);
        sim.clear_log();
        assert_eq!(sim.call("GET k"), Ok(Frame::bulk("v")), "{error}");
        // A write counts group 0 as failed and leaves a hint on group 1.
        let before = sim.nodes[1].hints("10.0.0.0:6379").len();
        assert_eq!(sim.call("SET k v"), Ok(Frame::simple("OK")));
        assert_eq!(sim.nodes[1].hints("10.0.0.0:6379").len(), before + 1);
        sim.nodes[0].unready = None;
    }
    assert_eq!(
        sim.router.trust(NodeId(0)),
        Some(Trust::Unverified(Doubt::Loading))
    );
    // A command sent to one node as it is gets the error as its answer.
    sim.nodes[0].unready = Some("LOADING Redis is loading the dataset in memory");
    let id = sim
        .router
        .submit_to(sim.now, NodeId(0), args("GET k"))
        .unwrap();
    sim.pump();
    sim.run();
    assert!(sim.completed[&id].as_ref().unwrap().is_error());
}

#[test]
fn writes_while_repairing_skip_the_node_and_leave_hints() {
    let mut cfg = healing();
    cfg.write_policy = WritePolicy::All;
    let mut sim = Sim::new(2, 1, cfg);
    sim.connect_all();
    sim.router.set_trust(NodeId(0), Trust::Repairing);
    sim.clear_log();
    let result = sim.call("SET k v");
    let Err(RouteError::WriteFailed { outcomes, .. }) = result else {
        panic!("{result:?}");
    };
    assert_eq!(outcomes[0].outcome, Outcome::Failed(Failure::Repairing));
    assert!(sim.received("set").iter().all(|&n| n == NodeId(1)));
    assert_eq!(sim.call("GET k"), Ok(Frame::bulk("v")));
    assert!(sim.received("get").iter().all(|&n| n == NodeId(1)));
    // The hint went before the write, on the same connection.
    let order: Vec<&str> = sim
        .log
        .iter()
        .filter(|(_, n, _)| *n == NodeId(1))
        .map(|(_, _, c)| c.as_str())
        .collect();
    assert_eq!(order[..4], ["select", "rpush", "select", "set"]);
    assert_eq!(sim.nodes[1].hints("10.0.0.0:6379"), [Bytes::from("k")]);
}

#[test]
fn a_flapping_node_with_healing_never_answers_wrong_or_nil() {
    let mut sim = Sim::new(2, 1, flapping(healing()));
    sim.connect_all();
    for i in 0..60 {
        flap(&mut sim, i);
        assert_eq!(sim.call(&format!("SET k{i} v{i}")), Ok(Frame::simple("OK")));
        // Unlike without healing, a nil is never fair: the node that
        // missed the write is doubted until repaired.
        assert_eq!(
            sim.call(&format!("GET k{i}")),
            Ok(Frame::bulk(format!("v{i}")))
        );
        sim.run_for(ms(30));
    }
}

/// A seeded schedule of faults (crash, restart empty, partition, slow) on
/// one node per shard at a time, with writes under policy one, reads, and
/// the client's repair whenever a doubted node is up and a peer verified.
/// Every read of a key answers the value of its last acknowledged write.
#[test]
fn random_fault_schedules_never_give_a_wrong_answer() {
    // So that the test cannot pass by checking nothing.
    let (mut repairs, mut checked, mut faults) = (0, 0, 0);
    for seed in 0..150u64 {
        let mut cfg = healing();
        cfg.failure_threshold = 2;
        cfg.seed = seed;
        cfg.backoff = Backoff {
            initial: ms(10),
            max: ms(200),
            jitter: 0.5,
        };
        let mut sim = Sim::new(2, 2, cfg);
        sim.connect_all();
        let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let keys: Vec<String> = (0..8).map(|i| format!("key{i}")).collect();
        let mut model: HashMap<String, String> = HashMap::new();
        // The faulty node of each shard, if any, and the nodes that lost
        // their data and are not repaired yet (which the router learns of
        // only when it next connects to them).
        let mut faulty: [Option<NodeId>; 2] = [None, None];
        let mut lost: BTreeSet<NodeId> = BTreeSet::new();
        for step in 0..120 {
            // The client's automatic repair: a doubted node that is up, with
            // a verified peer, is brought back.
            for n in 0..4 {
                let node = NodeId(n);
                let peer = sim.id(1 - n / 2, n % 2);
                let doubted = matches!(
                    sim.router.trust(node),
                    Some(Trust::Unverified(_) | Trust::Unknown)
                );
                if doubted
                    && sim.router.is_up(node)
                    && sim.router.trust(peer) == Some(Trust::Verified)
                    && !faulty.contains(&Some(node))
                {
                    sim.repair(node, peer);
                    lost.remove(&node);
                    repairs += 1;
                }
            }
            match next(10) {
                0 => {
                    // A fault, on a shard whose nodes are all well.
                    let shard = next(2) as u32;
                    let well = (0..2).all(|g| {
                        let n = sim.id(g, shard);
                        sim.router.is_up(n)
                            && sim.router.trust(n) == Some(Trust::Verified)
                            && !lost.contains(&n)
                    });
                    if faulty[shard as usize].is_none() && well {
                        let node = sim.id(next(2) as u32, shard);
                        match next(4) {
                            0 => sim.crash(node),
                            1 => {
                                sim.restart_empty(node);
                                lost.insert(node);
                            }
                            2 => sim.nodes[node.0 as usize].fault = Fault::Partitioned,
                            _ => sim.nodes[node.0 as usize].latency = ms(1500),
                        }
                        faulty[shard as usize] = Some(node);
                        faults += 1;
                    }
                }
                1 => {
                    let shard = next(2) as usize;
                    if let Some(node) = faulty[shard].take() {
                        sim.heal(node);
                        sim.nodes[node.0 as usize].latency = ms(1);
                    }
                }
                2..=5 => {
                    let key = &keys[next(keys.len() as u64) as usize];
                    let value = format!("v{step}");
                    if let Ok(frame) = sim.call(&format!("SET {key} {value}")) {
                        assert_eq!(frame, Frame::simple("OK"));
                        model.insert(key.clone(), value);
                    } else {
                        // Not acknowledged: either value may stand.
                        model.remove(key);
                    }
                }
                _ => {
                    let key = &keys[next(keys.len() as u64) as usize];
                    let Some(want) = model.get(key) else {
                        continue;
                    };
                    match sim.call(&format!("GET {key}")) {
                        Ok(got) => {
                            assert_eq!(
                                got,
                                Frame::bulk(want.clone()),
                                "seed {seed} step {step} {key}"
                            );
                            checked += 1;
                        }
                        Err(RouteError::Unavailable { .. }) => {}
                        Err(e) => panic!("seed {seed} step {step}: {e}"),
                    }
                }
            }
            sim.run_for(ms(50));
        }
        // Every fault ends: writes reach every node again (so the router
        // meets the restarted ones), and every node ends up verified.
        for node in faulty.iter().flatten() {
            sim.heal(*node);
            sim.nodes[node.0 as usize].latency = ms(1);
        }
        for round in 0..10 {
            for key in &keys {
                let _ = sim.call(&format!("SET {key} end{round}"));
            }
            sim.run_for(Duration::from_secs(1));
            for n in 0..4 {
                let (node, peer) = (NodeId(n), sim.id(1 - n / 2, n % 2));
                let doubted = matches!(sim.router.trust(node), Some(Trust::Unverified(_)));
                if doubted && sim.router.trust(peer) == Some(Trust::Verified) {
                    sim.repair(node, peer);
                }
            }
        }
        for n in 0..4 {
            let trust = sim.router.trust(NodeId(n));
            assert_eq!(
                trust,
                Some(Trust::Verified),
                "seed {seed} node {n} up {} peer {:?} faulty {faulty:?} fault {:?}",
                sim.router.is_up(NodeId(n)),
                sim.router.trust(sim.id(1 - n / 2, n % 2)),
                sim.nodes[n as usize].fault
            );
        }
    }
    assert!(
        faults > 300 && repairs > 200 && checked > 5000,
        "{faults} {repairs} {checked}"
    );
}

#[test]
fn flushall_keeps_markers_and_the_hints_of_a_node_that_missed_it() {
    let mut sim = Sim::new(2, 1, healing());
    sim.connect_all();
    sim.call("SET k v").unwrap();
    sim.crash(NodeId(0));
    assert_eq!(sim.call("FLUSHALL"), Ok(Frame::simple("OK")));
    // Group 1 is empty, still marked, and says node 0 needs a full copy.
    let peer = &sim.nodes[1];
    assert!(peer.store.is_empty());
    assert_eq!(
        peer.meta.get(MARKER.as_bytes()),
        Some(&vec![Bytes::from("run0")])
    );
    assert!(
        peer.meta
            .contains_key(resync_key(0, "10.0.0.0:6379").as_bytes())
    );
    // Node 0 comes back with its old data and its marker: a client that
    // never saw it miss the FLUSHALL still does not believe it.
    sim.heal(NodeId(0));
    let mut fresh = sim.fresh_client();
    assert_eq!(fresh.router.trust(NodeId(1)), Some(Trust::Verified));
    assert_eq!(
        fresh.router.trust(NodeId(0)),
        Some(Trust::Unverified(Doubt::Hinted))
    );
    assert_eq!(fresh.call("GET k"), Ok(Frame::NullBulk));
    assert_eq!(fresh.received("get"), [NodeId(1)]);
}

#[test]
fn a_long_lived_client_learns_what_another_client_saw() {
    let mut sim = Sim::new(2, 1, healing());
    sim.connect_all();
    sim.call("SET k v1").unwrap();
    // Another client, cut off from node 0 alone, wrote k to node 1 and
    // left its hint there; this client saw nothing of it.
    sim.nodes[1]
        .store
        .insert(Bytes::from("k"), Bytes::from("v2"));
    sim.nodes[1].meta.insert(
        Bytes::from(hint_key(0, "10.0.0.0:6379")),
        vec![Bytes::from("k")],
    );
    assert_eq!(sim.call("GET k"), Ok(Frame::bulk("v1")), "stale, for now");
    sim.run_for(Duration::from_secs(6));
    assert_eq!(
        sim.router.trust(NodeId(0)),
        Some(Trust::Unverified(Doubt::Hinted))
    );
    assert_eq!(sim.call("GET k"), Ok(Frame::bulk("v2")));
    // A marker that disappears (the node's database 15 flushed) is seen too.
    sim.repair(NodeId(0), NodeId(1));
    sim.nodes[0].meta.clear();
    sim.run_for(Duration::from_secs(6));
    assert_eq!(
        sim.router.trust(NodeId(0)),
        Some(Trust::Unverified(Doubt::Unmarked))
    );
}

#[test]
fn hints_past_the_limit_become_requests_for_a_full_copy() {
    let mut cfg = healing();
    if let Some(h) = &mut cfg.healing {
        h.hint_limit = 5;
    }
    let mut sim = Sim::new(2, 1, cfg);
    sim.connect_all();
    sim.crash(NodeId(0));
    sim.clear_log();
    for i in 0..20 {
        assert_eq!(sim.call(&format!("SET k{i} v")), Ok(Frame::simple("OK")));
    }
    let peer = &sim.nodes[1];
    assert_eq!(peer.hints("10.0.0.0:6379").len(), 5);
    assert!(
        peer.meta
            .contains_key(resync_key(0, "10.0.0.0:6379").as_bytes())
    );
    // The flag is set again by every write past the limit, each time to a
    // value of its own (the router's nonce, then a count), so a repair can
    // tell the flags its sync covers from later ones.
    let flags = sim
        .log
        .iter()
        .filter(|(_, n, c)| *n == NodeId(1) && c == "set")
        .count();
    assert_eq!(flags, 20 + 15);
    let flag = peer.meta[resync_key(0, "10.0.0.0:6379").as_bytes()][0].clone();
    assert_eq!(flag, Bytes::from("0:f"));
    // Every key is doubted on node 0, not only the hinted ones.
    sim.heal(NodeId(0));
    sim.run_for(Duration::from_secs(3));
    sim.crash(NodeId(1));
    assert!(sim.call("GET k1").is_err());
}

//! Master–replica replication, Redis 7.0's protocol (PSYNC, REPLCONF,
//! WAIT), so Ember can follow a Redis master and a Redis replica can
//! follow Ember.
//!
//! - [`Repl`] (here): the replication id and offset, the stream of changes
//!   (a backlog that also serves as every replica's output buffer), the
//!   replicas served and the master followed, and what INFO and ROLE show.
//! - [`master`]: serving one replica (full or partial resync, then the
//!   stream, reading its acknowledgements); WAIT.
//! - [`replica`]: following a master: the handshake, loading its RDB,
//!   applying its stream, acknowledging.
//!
//! The keyspace is sharded, so the stream's order must come from the
//! locks: a write command appends what it changed while it still holds the
//! shards of its keys, and the backlog's own lock is always taken last.
//! Two commands on one key therefore reach the stream in the order they
//! ran, and commands on different keys, which commute, in some order.
//! Before any replica has asked for the stream, nothing is recorded.

pub(crate) mod master;
pub(crate) mod replica;

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::db::Shards;
use store::keyspace::{Effects, Op};

/// Backlog bytes are kept in chunks of about this size.
const CHUNK: usize = 16 * 1024;

/// What a chunk's `Bytes` allocates besides its bytes once a replica's
/// slice of it shares it (the `bytes` crate's shared header, 24 bytes,
/// in jemalloc's 32-byte class).
const SHARED_HEADER: usize = 32;

/// The server's replication state, shared by every connection.
#[derive(Debug)]
pub(crate) struct Repl {
    state: Mutex<State>,
    /// A replica further behind than this many bytes is disconnected (and
    /// will resync): the hard limit of `client-output-buffer-limit
    /// replica`; 0 for none.
    output_limit: AtomicI64,
    /// The soft limit of `client-output-buffer-limit replica` (bytes, 0
    /// for none) and its seconds: a replica further behind than that for
    /// longer than that is disconnected too.
    output_soft: AtomicI64,
    output_soft_secs: AtomicI64,
    /// `replica-serve-stale-data`.
    serve_stale: AtomicBool,
    /// `min-replicas-to-write` and `min-replicas-max-lag`.
    min_replicas: AtomicI64,
    min_replicas_lag: AtomicI64,
    /// Held by a replica while it applies a batch of its master's stream
    /// and advances its offset, and by a save while it copies the
    /// keyspace, so a saved offset always matches the saved data. Taken
    /// before any shard lock.
    applying: Mutex<()>,
    /// Following a master: writes from clients are refused.
    replica: AtomicBool,
    /// New bytes in the stream.
    pub(crate) data: Notify,
    /// A replica acknowledged an offset.
    pub(crate) acks: Notify,
    pub(crate) sync_full: AtomicU64,
    pub(crate) sync_partial_ok: AtomicU64,
    pub(crate) sync_partial_err: AtomicU64,
    /// The append-only file: fed the same units as the stream, under the
    /// stream's lock.
    pub(crate) aof: crate::aof::Aof,
}

/// What [`Repl`]'s lock guards.
#[derive(Debug)]
pub(crate) struct State {
    /// This dataset's history: the replication id and the offset in it.
    pub(crate) replid: String,
    /// The id this server's history continued from, after a promotion.
    pub(crate) replid2: String,
    /// The first offset not shared with `replid2`'s history, or -1.
    pub(crate) second_offset: i64,
    /// Bytes of stream so far (`master_repl_offset`).
    pub(crate) offset: i64,
    backlog: Option<Backlog>,
    /// The database the stream last selected: a command on another one is
    /// preceded by SELECT.
    stream_db: Option<usize>,
    /// The replicas served, by client id.
    pub(crate) replicas: BTreeMap<u64, Follower>,
    /// The master followed, on a replica.
    pub(crate) master: Option<MasterLink>,
    /// The database the master's stream had selected when this replica's
    /// file was saved, for a link that continues from it.
    pub(crate) resume_db: usize,
}

/// A replica as its master sees it.
#[derive(Debug)]
pub(crate) struct Follower {
    pub(crate) ip: IpAddr,
    /// The port it listens on (REPLCONF listening-port).
    pub(crate) port: u16,
    /// Stream bytes up to here were handed to its connection.
    pub(crate) sent: i64,
    /// The offset it last acknowledged.
    pub(crate) ack: i64,
    pub(crate) last_ack: Instant,
    /// Receiving its RDB (`wait_bgsave`/`send_bulk`) or the stream
    /// (`online`).
    pub(crate) online: bool,
    /// Fell too far behind: its connection closes.
    pub(crate) dropped: bool,
    /// Since when it has been at or over the soft output limit.
    pub(crate) soft_since: Option<Instant>,
    /// Closes its connection (CLIENT KILL's token).
    pub(crate) kill: crate::kill::Kill,
    /// Stream bytes up to here were written to its socket: the backlog
    /// keeps what comes after (the batch being written is the backlog's
    /// chunks, shared), so the replication buffer is all the backlog's.
    pub(crate) written: i64,
    /// Bytes of the backlog's tail copied into the batch its connection
    /// is writing (the rest of a batch is the backlog's own chunks).
    pub(crate) copied: usize,
}

/// What the replication buffer holds, as Redis 7.0 counts it: the
/// backlog and replicas share one buffer (`repl_buffer_mem`), of which
/// `repl-backlog-size` is the backlog's and the rest the replicas'.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReplBuffer {
    /// Bytes the allocator holds for it (`mem_total_replication_buffers`).
    pub(crate) mem: i64,
    /// `repl-backlog-size`.
    pub(crate) size: i64,
    /// Replicas attached.
    pub(crate) replicas: usize,
}

impl ReplBuffer {
    /// `mem_replication_backlog` and `mem_clients_slaves`: with replicas
    /// attached, what is over the backlog's size is theirs.
    pub(crate) fn split(&self) -> (u64, u64) {
        if self.replicas > 0 && self.mem > self.size {
            (self.size as u64, (self.mem - self.size) as u64)
        } else {
            (self.mem as u64, 0)
        }
    }

    /// What `maxmemory` does not count (Redis's `mem_not_counted_for_evict`):
    /// the buffer beyond the backlog's size and its chunks' overhead,
    /// held for replicas (or, once they left, until it is trimmed), not
    /// by the dataset. Counting it would evict keys for a slow replica,
    /// whose buffer grows with every key evicted (each a DEL it is sent).
    pub(crate) fn not_counted(&self) -> u64 {
        if self.mem <= self.size {
            return 0;
        }
        let per_chunk = (SHARED_HEADER + size_of::<Bytes>()) as i64;
        let counted = self.size + (self.size / CHUNK as i64 + 1) * per_chunk;
        (self.mem - counted).max(0) as u64
    }
}

/// The link of a replica to its master.
#[derive(Debug)]
pub(crate) struct MasterLink {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) status: LinkStatus,
    /// When the master last sent anything.
    pub(crate) last_io: Instant,
    /// Stops the link's task (REPLICAOF elsewhere, NO ONE, shutdown).
    pub(crate) cancel: CancellationToken,
    /// The database the master's stream has selected, kept across a
    /// partial resync.
    pub(crate) db: usize,
    /// Whether the dataset came from this master (a partial resync is
    /// possible).
    pub(crate) synced: bool,
    /// Full resync: bytes of RDB expected and received so far.
    pub(crate) transfer: Option<(i64, i64)>,
}

/// Where a replica's link stands, with ROLE's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkStatus {
    Connect,
    Connecting,
    Sync,
    Connected,
}

impl LinkStatus {
    pub(crate) fn name(self) -> &'static str {
        match self {
            LinkStatus::Connect => "connect",
            LinkStatus::Connecting => "connecting",
            LinkStatus::Sync => "sync",
            LinkStatus::Connected => "connected",
        }
    }
}

/// The stream's recent bytes, for partial resyncs, and the bytes replicas
/// have not been handed yet: at least `size` bytes are kept (Redis's
/// `repl-backlog-size`), and more while a replica still needs them.
///
/// Its chunks are [`CHUNK`] bytes each, copied out of the tail, so that
/// each is one allocation of a size class of its own and [`Backlog::mem`]
/// knows what the allocator holds for it: what `maxmemory` does not count
/// (Redis's `mem_not_counted_for_evict`) is derived from it.
#[derive(Debug)]
struct Backlog {
    chunks: VecDeque<Bytes>,
    tail: Vec<u8>,
    /// Stream position of the first byte kept.
    base: i64,
    size: i64,
}

impl Backlog {
    fn new(base: i64, size: i64) -> Self {
        Backlog {
            chunks: VecDeque::new(),
            tail: Vec::new(),
            base,
            size,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        if self.tail.len() < CHUNK {
            return;
        }
        // Whole chunks out of the front, then what is left moved down
        // once (a value of megabytes is cut in one pass).
        let mut at = 0;
        while self.tail.len() - at >= CHUNK {
            self.chunks
                .push_back(Bytes::copy_from_slice(&self.tail[at..at + CHUNK]));
            at += CHUNK;
        }
        self.tail.drain(..at);
        // A big value grew the tail: its room goes back.
        if self.tail.capacity() > 4 * CHUNK {
            self.tail.shrink_to(2 * CHUNK);
        }
    }

    /// The bytes the allocator holds for the backlog: its chunks (each a
    /// size class of its own, and the header a replica's slice of it
    /// adds), the queue of them and the tail's room.
    fn mem(&self) -> i64 {
        let chunks: usize = self
            .chunks
            .iter()
            .map(|c| crate::memory::size_class(c.len()) + SHARED_HEADER)
            .sum();
        (chunks
            + self.chunks.capacity() * size_of::<Bytes>()
            + crate::memory::size_class(self.tail.capacity().max(1))) as i64
    }

    /// The bytes from stream position `from` to `end` (the stream's
    /// offset), or `None` if some were dropped already. The chunks needed
    /// are found from the back, so a replica that keeps up costs only what
    /// it reads; the unsealed tail is copied rather than sealed, so chunks
    /// stay large.
    fn read(&self, from: i64, end: i64) -> Option<Vec<Bytes>> {
        if from < self.base || from > end {
            return None;
        }
        let mut out = Vec::new();
        let tail_start = end - self.tail.len() as i64;
        if from < end {
            let skip = (from.max(tail_start) - tail_start) as usize;
            out.push(Bytes::copy_from_slice(&self.tail[skip..]));
        }
        let mut chunk_end = tail_start;
        for chunk in self.chunks.iter().rev() {
            if chunk_end <= from {
                break;
            }
            let chunk_start = chunk_end - chunk.len() as i64;
            let skip = (from.max(chunk_start) - chunk_start) as usize;
            out.push(chunk.slice(skip..));
            chunk_end = chunk_start;
        }
        out.reverse();
        Some(out)
    }

    /// Drops old chunks beyond `size` that no replica still needs
    /// (`keep_from` is the earliest position one needs).
    fn trim(&mut self, end: i64, keep_from: i64) {
        while let Some(front) = self.chunks.front() {
            let next = self.base + front.len() as i64;
            if end - next < self.size || next > keep_from {
                break;
            }
            self.base = next;
            self.chunks.pop_front();
        }
    }

    fn resize(&mut self, size: i64) {
        self.size = size.max(1);
    }
}

impl Repl {
    pub(crate) fn new() -> Self {
        Repl {
            state: Mutex::new(State {
                replid: new_replid(),
                replid2: "0".repeat(40),
                second_offset: -1,
                offset: 0,
                backlog: None,
                stream_db: None,
                replicas: BTreeMap::new(),
                master: None,
                resume_db: 0,
            }),
            replica: AtomicBool::new(false),
            output_limit: AtomicI64::new(256 * 1024 * 1024),
            output_soft: AtomicI64::new(64 * 1024 * 1024),
            output_soft_secs: AtomicI64::new(60),
            serve_stale: AtomicBool::new(true),
            min_replicas: AtomicI64::new(0),
            min_replicas_lag: AtomicI64::new(10),
            applying: Mutex::new(()),
            data: Notify::new(),
            acks: Notify::new(),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            aof: crate::aof::Aof::default(),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops a replica from applying its master's stream until dropped.
    pub(crate) fn pause_apply(&self) -> MutexGuard<'_, ()> {
        self.applying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The history a saved file records: the replication id and offset,
    /// and the database the stream has selected.
    pub(crate) fn save_info(&self) -> crate::rdb::Aux {
        let st = self.state();
        let db = st.master.as_ref().map_or(0, |m| m.db);
        crate::rdb::Aux {
            repl_id: Some(st.replid.clone()),
            repl_offset: Some(st.offset),
            repl_stream_db: Some(db as i64),
            aof_base: false,
            functions: Vec::new(),
        }
    }

    /// A replica restarted from a saved file: it continues the history
    /// the file records.
    pub(crate) fn resume(&self, replid: String, offset: i64, db: usize) {
        let mut st = self.state();
        Repl::reset_history(&mut st, replid, offset);
        st.resume_db = db;
    }

    /// Whether this server follows a master.
    pub(crate) fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Acquire)
    }

    /// Whether clients' writes are refused (a replica is read-only).
    pub(crate) fn read_only(&self) -> bool {
        self.is_replica()
    }

    pub(crate) fn set_replica(&self, on: bool) {
        self.replica.store(on, Ordering::Release);
    }

    /// A full resync: registers replica `id` to receive the stream from the
    /// current offset, and makes the stream select its database again, as
    /// the replica's starts at database 0. Called under every shard lock,
    /// while the snapshot is taken; returns the history and offset the
    /// snapshot stands at.
    pub(crate) fn begin_full_sync(&self, id: u64, mut follower: Follower) -> (String, i64) {
        let mut st = self.state();
        st.stream_db = None;
        follower.sent = st.offset;
        follower.written = st.offset;
        st.replicas.insert(id, follower);
        (st.replid.clone(), st.offset)
    }

    /// Starts recording changes for replicas, if not yet: from now on every
    /// write appends to the stream under its locks, and expired keys are
    /// deleted only by commands that record the deletion.
    pub(crate) fn start_feeding(&self, shards: &mut Shards<'_>, backlog_size: i64) {
        let ks = shards.keyspace();
        if ks.feeding() && self.state().backlog.is_some() {
            return;
        }
        let mut locked = shards.lock_all();
        for shard in locked.shards() {
            for db in &mut shard.dbs {
                db.hide_expired = true;
            }
        }
        let mut st = self.state();
        if st.backlog.is_none() {
            let offset = st.offset;
            st.backlog = Some(Backlog::new(offset, backlog_size));
        }
        st.stream_db = None;
        ks.set_feeding(true);
    }

    /// Appends commands to the stream. The caller still holds the shards
    /// the commands changed.
    /// These (PING, REPLCONF GETACK, PUBLISH) go to replicas only, never
    /// to the AOF, as in Redis.
    pub(crate) fn append(&self, ops: Vec<Op>) {
        self.append_units(vec![ops], false);
    }

    /// Appends `ops` for replicas and the AOF alike: a write that records
    /// no effects of its own (FUNCTION LOAD and its family).
    pub(crate) fn append_write(&self, ops: Vec<Op>) {
        self.append_units(vec![ops], true);
    }

    /// Whether a backlog exists (replicas have been fed).
    pub(crate) fn has_backlog(&self) -> bool {
        self.state().backlog.is_some()
    }

    /// Appends units of commands, each wrapped in MULTI/EXEC if it holds
    /// more than one.
    /// What reaches replicas reaches the AOF too (`to_aof`), in the same
    /// order: both are fed under this lock.
    fn append_units(&self, units: Vec<Vec<Op>>, to_aof: bool) {
        if units.iter().all(Vec::is_empty) {
            return;
        }
        let mut st = self.state();
        if to_aof {
            self.aof.append_units(&units);
        }
        let st = &mut *st;
        let Some(backlog) = &mut st.backlog else {
            return;
        };
        for ops in &units {
            let wrap = ops.len() > 1;
            if wrap {
                push_op(
                    backlog,
                    &mut st.offset,
                    &mut st.stream_db,
                    &Op::new(ops[0].db, &["MULTI"]),
                );
            }
            for op in ops {
                push_op(backlog, &mut st.offset, &mut st.stream_db, op);
            }
            if wrap {
                push_op(
                    backlog,
                    &mut st.offset,
                    &mut st.stream_db,
                    &Op::new(None, &["EXEC"]),
                );
            }
        }
        let keep_from = limit_lag(&mut st.replicas, st.offset, self.limits());
        backlog.trim(st.offset, keep_from);
        drop(units);
        self.data.notify_waiters();
    }

    /// Appends the deletions of expired keys recorded in `fx` by work that
    /// is not a command of its own (the expiry cycle, SCAN, RANDOMKEY,
    /// which start recording, delete, then call this before releasing the
    /// shards): each reaches replicas as a DEL of its own, as Redis sends
    /// them, never inside a MULTI/EXEC.
    pub(crate) fn append_expired(&self, fx: &mut Effects) {
        let dels = fx.finish().into_iter().flatten();
        self.append_units(dels.map(|op| vec![op]).collect(), true);
    }

    /// Appends what the running command recorded in `fx`, if it records;
    /// returns the stream's offset after it (what WAIT waits for).
    pub(crate) fn append_recorded(&self, fx: &mut Effects) -> Option<i64> {
        if !fx.recording() {
            return None;
        }
        let units = fx.finish();
        if units.is_empty() {
            return None;
        }
        self.append_units(units, true);
        Some(self.state().offset)
    }

    /// The stream from `from` on for replica `id`, marking it handed over,
    /// and the position it ends at (for [`Repl::written`]); `None` if the
    /// replica was dropped or the bytes are gone.
    pub(crate) fn take_for(&self, id: u64) -> Option<(Vec<Bytes>, i64)> {
        let mut st = self.state();
        let st = &mut *st;
        let follower = st.replicas.get_mut(&id)?;
        if follower.dropped {
            return None;
        }
        let backlog = st.backlog.as_ref()?;
        let chunks = backlog.read(follower.sent, st.offset)?;
        follower.copied = backlog.tail.len().min((st.offset - follower.sent) as usize);
        follower.sent = st.offset;
        let end = st.offset;
        let keep_from = limit_lag(&mut st.replicas, st.offset, self.limits());
        if let Some(b) = &mut st.backlog {
            b.trim(st.offset, keep_from);
        }
        Some((chunks, end))
    }

    /// Replica `id`'s connection wrote the stream up to `upto`: the
    /// backlog may let those bytes go.
    pub(crate) fn written(&self, id: u64, upto: i64) {
        let mut st = self.state();
        let st = &mut *st;
        let Some(follower) = st.replicas.get_mut(&id) else {
            return;
        };
        follower.written = follower.written.max(upto);
        follower.copied = 0;
        let keep_from = limit_lag(&mut st.replicas, st.offset, self.limits());
        if let Some(b) = &mut st.backlog {
            b.trim(st.offset, keep_from);
        }
    }

    /// Applies `replica-serve-stale-data`.
    pub(crate) fn set_serve_stale(&self, on: bool) {
        self.serve_stale.store(on, Ordering::Relaxed);
    }

    /// Whether this replica refuses what needs its data: its link is not
    /// up and `replica-serve-stale-data` is `no`.
    pub(crate) fn stale(&self) -> bool {
        self.is_replica()
            && !self.serve_stale.load(Ordering::Relaxed)
            && self
                .state()
                .master
                .as_ref()
                .is_some_and(|m| m.status != LinkStatus::Connected)
    }

    /// Applies `min-replicas-to-write` and `min-replicas-max-lag`.
    pub(crate) fn set_min_replicas(&self, count: i64, lag: i64) {
        self.min_replicas.store(count, Ordering::Relaxed);
        self.min_replicas_lag.store(lag, Ordering::Relaxed);
    }

    /// Whether writes are refused for want of replicas: fewer than
    /// `min-replicas-to-write` replicas acknowledged within
    /// `min-replicas-max-lag` seconds (Redis's `checkGoodReplicasStatus`).
    pub(crate) fn too_few_replicas(&self) -> bool {
        let want = self.min_replicas.load(Ordering::Relaxed);
        let lag = self.min_replicas_lag.load(Ordering::Relaxed);
        if want <= 0 || lag <= 0 || self.is_replica() {
            return false;
        }
        let max = std::time::Duration::from_secs(lag as u64);
        let good = self
            .state()
            .replicas
            .values()
            .filter(|f| f.online && !f.dropped && f.last_ack.elapsed() <= max)
            .count();
        (good as i64) < want
    }

    /// Applies a new replica output limit (bytes, 0 for none).
    pub(crate) fn set_output_limit(&self, limit: i64) {
        self.output_limit.store(limit, Ordering::Relaxed);
    }

    /// Applies a new soft replica output limit: bytes (0 for none) and
    /// seconds.
    pub(crate) fn set_output_soft_limit(&self, (bytes, secs): (i64, i64)) {
        self.output_soft.store(bytes, Ordering::Relaxed);
        self.output_soft_secs.store(secs, Ordering::Relaxed);
    }

    /// The replica class's limits, as [`limit_lag`] takes them.
    fn limits(&self) -> Limits {
        Limits {
            hard: self.output_limit.load(Ordering::Relaxed),
            soft: self.output_soft.load(Ordering::Relaxed),
            soft_secs: self.output_soft_secs.load(Ordering::Relaxed),
        }
    }

    /// Checks the replicas' output limits without new stream bytes, so a
    /// replica stuck over the soft limit is dropped once its seconds pass
    /// even if nothing more is written (Redis checks in `clientsCron`).
    /// The server's tick calls it.
    pub(crate) fn check_output_limits(&self) {
        let limits = self.limits();
        if limits.soft <= 0 {
            return;
        }
        let mut st = self.state();
        let st = &mut *st;
        if st.replicas.is_empty() {
            return;
        }
        let keep_from = limit_lag(&mut st.replicas, st.offset, limits);
        if let Some(b) = &mut st.backlog {
            b.trim(st.offset, keep_from);
        }
    }

    /// Applies a new `repl-backlog-size`.
    pub(crate) fn resize_backlog(&self, size: i64) {
        if let Some(b) = &mut self.state().backlog {
            b.resize(size);
        }
    }

    /// Makes this server a master of a new history that continues the
    /// current one (REPLICAOF NO ONE): replicas of the old master that
    /// reach the same offset can continue with a partial resync.
    pub(crate) fn shift_replid(&self) {
        let mut st = self.state();
        st.replid2 = std::mem::replace(&mut st.replid, new_replid());
        st.second_offset = st.offset + 1;
    }

    /// Whether a replica asking for `replid` from `offset` (the first byte
    /// it lacks, 1-based) can continue from the backlog.
    pub(crate) fn can_continue(st: &State, replid: &str, offset: i64) -> bool {
        let Some(backlog) = &st.backlog else {
            return false;
        };
        let same = replid == st.replid
            || (replid == st.replid2 && st.second_offset > 0 && offset <= st.second_offset);
        let Some(from) = offset.checked_sub(1) else {
            return false;
        };
        same && from >= backlog.base && from <= st.offset
    }

    /// The replication buffer's figures (see [`ReplBuffer`]).
    pub(crate) fn buffer(&self) -> ReplBuffer {
        let st = self.state();
        let Some(b) = &st.backlog else {
            return ReplBuffer::default();
        };
        let copies: usize = st
            .replicas
            .values()
            .filter(|f| f.copied > 0)
            .map(|f| crate::memory::size_class(f.copied))
            .sum();
        ReplBuffer {
            mem: b.mem() + copies as i64,
            size: b.size,
            replicas: st.replicas.len(),
        }
    }

    /// Whether a backlog exists (INFO's `repl_backlog_active`).
    pub(crate) fn backlog_info(st: &State) -> Option<(i64, i64, i64)> {
        st.backlog
            .as_ref()
            .map(|b| (b.size, b.base + 1, st.offset - b.base))
    }

    /// The offsets replicas acknowledged at or past `offset`.
    pub(crate) fn acked(&self, offset: i64) -> usize {
        self.state()
            .replicas
            .values()
            .filter(|f| f.online && f.ack >= offset)
            .count()
    }

    /// A new history on this server's own (a master restarted, a replica
    /// that loaded a master's RDB takes that master's id instead).
    pub(crate) fn reset_history(st: &mut State, replid: String, offset: i64) {
        st.replid = replid;
        st.replid2 = "0".repeat(40);
        st.second_offset = -1;
        st.offset = offset;
        st.backlog = None;
        st.stream_db = None;
    }

    pub(crate) fn stat(&self, counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

fn push_op(backlog: &mut Backlog, offset: &mut i64, stream_db: &mut Option<usize>, op: &Op) {
    if let Some(db) = op.db
        && *stream_db != Some(db)
    {
        let select = Op::new(None, &[&b"SELECT"[..], db.to_string().as_bytes()]);
        backlog.push(&select.bytes);
        *offset += select.bytes.len() as i64;
        *stream_db = Some(db);
    }
    backlog.push(&op.bytes);
    *offset += op.bytes.len() as i64;
}

/// Drops replicas more than `limit` bytes behind (0: no limit) and
/// returns the earliest position a remaining one still needs.
fn limit_lag(replicas: &mut BTreeMap<u64, Follower>, end: i64, limits: Limits) -> i64 {
    let mut keep_from = end;
    for f in replicas.values_mut().filter(|f| !f.dropped) {
        let lag = end - f.written;
        if (limits.hard > 0 && lag > limits.hard) || limits.soft_reached(f, lag) {
            f.dropped = true;
            f.kill.cancel();
            tracing::warn!(
                "Client addr={}:{} (replica) scheduled to be closed ASAP for overcoming of output buffer limits.",
                f.ip,
                f.port
            );
        } else {
            keep_from = keep_from.min(f.written);
        }
    }
    keep_from
}

/// `client-output-buffer-limit replica`: hard and soft bytes (0: none),
/// the soft limit's seconds.
#[derive(Debug, Clone, Copy)]
struct Limits {
    hard: i64,
    soft: i64,
    soft_secs: i64,
}

impl Limits {
    /// Whether `f`, `lag` bytes behind, has been at or over the soft
    /// limit for more than its seconds, as Redis's
    /// `checkClientOutputBufferLimits` decides: the first time over it
    /// starts the clock, and going under stops it.
    fn soft_reached(&self, f: &mut Follower, lag: i64) -> bool {
        if self.soft <= 0 || lag < self.soft {
            f.soft_since = None;
            return false;
        }
        match f.soft_since {
            None => {
                f.soft_since = Some(Instant::now());
                false
            }
            Some(since) => {
                since.elapsed() > std::time::Duration::from_secs(self.soft_secs.max(0) as u64)
            }
        }
    }
}

/// A new 40-character replication id.
pub(crate) fn new_replid() -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let calls = CALLS.fetch_add(1, Ordering::Relaxed);
    let mut rng = crate::db::Rng::new(
        crate::server::now_ms() as u64
            ^ u64::from(std::process::id()).rotate_left(32)
            ^ calls.rotate_left(48)
            ^ crate::db::hash_key(b"replid"),
    );
    rng.next_u64();
    (0..40)
        .map(|_| char::from(b"0123456789abcdef"[(rng.next_u64() % 16) as usize]))
        .collect()
}

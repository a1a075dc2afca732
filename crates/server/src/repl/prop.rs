//! What a command changed, as commands a replica can run: Redis's
//! propagation, recorded per thread while a command runs under its locks.
//!
//! A command runs synchronously on one thread, so what it changes is
//! collected in thread-local state: a count of changes ([`dirty`], bumped
//! by every change made through `Db`), the deletions of expired keys it
//! met ([`expired`]), a replacement for its own arguments when they are not
//! what a replica must run ([`rewrite`]), and the pops it made for blocked
//! clients ([`also`]). [`super::Repl::append`] turns them into the
//! replication stream while the command still holds its shards, so two
//! commands on one key reach the stream in the order they ran.
//!
//! Outside a recording command the only cost is the change counter.

use std::cell::{Cell, RefCell};

/// One command for the replication stream: its database (`None` for
/// commands that do not depend on one, such as PING) and its arguments,
/// encoded as a RESP array of bulk strings.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub(crate) db: Option<usize>,
    pub(crate) bytes: Vec<u8>,
}

impl Op {
    /// A command on database `db`.
    pub(crate) fn new<A: AsRef<[u8]>>(db: Option<usize>, args: &[A]) -> Op {
        Op::from_iter(db, args.iter().map(AsRef::as_ref))
    }

    pub(crate) fn from_iter<'a>(
        db: Option<usize>,
        args: impl ExactSizeIterator<Item = &'a [u8]>,
    ) -> Op {
        let mut bytes = Vec::with_capacity(16 * (args.len() + 1));
        encode_into(&mut bytes, args);
        Op { db, bytes }
    }
}

/// Appends a RESP array of bulk strings.
pub(crate) fn encode_into<'a>(out: &mut Vec<u8>, args: impl ExactSizeIterator<Item = &'a [u8]>) {
    out.push(b'*');
    out.extend_from_slice(itoa(args.len() as i64).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(itoa(arg.len() as i64).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn itoa(n: i64) -> String {
    n.to_string()
}

#[derive(Debug, Default)]
struct Pending {
    /// Ready for the stream, in order.
    ops: Vec<Op>,
    /// Where in `ops` each unit after the first begins: a unit reaches
    /// replicas wrapped in MULTI/EXEC when it holds more than one command.
    /// The command's own effects are one unit, each pop served to a
    /// blocked client another (Redis serves them after the command).
    units: Vec<usize>,
    /// What the running command asked to propagate instead of itself.
    rewrite: Option<Vec<Op>>,
}

thread_local! {
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    static DIRTY: Cell<u64> = const { Cell::new(0) };
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

/// Whether the running command records its changes for replicas.
#[inline]
pub(crate) fn recording() -> bool {
    RECORDING.with(Cell::get)
}

/// Starts recording (the caller holds the locks of everything the command
/// may touch, and will append before releasing them).
pub(crate) fn start() {
    RECORDING.with(|r| r.set(true));
}

/// Stops recording and returns what was recorded, unit by unit.
pub(crate) fn finish() -> Vec<Vec<Op>> {
    RECORDING.with(|r| r.set(false));
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        p.rewrite = None;
        let mut ops = std::mem::take(&mut p.ops);
        let mut units = Vec::with_capacity(p.units.len() + 1);
        for &at in p.units.iter().rev() {
            units.push(ops.split_off(at));
        }
        p.units.clear();
        if !ops.is_empty() {
            units.push(ops);
        }
        units.reverse();
        units.retain(|u| !u.is_empty());
        units
    })
}

/// A change was made (Redis's `server.dirty++`).
#[inline]
pub(crate) fn dirty() {
    DIRTY.with(|d| d.set(d.get().wrapping_add(1)));
}

/// Changes made on this thread so far; a command compares the count
/// before and after.
#[inline]
pub(crate) fn dirty_count() -> u64 {
    DIRTY.with(Cell::get)
}

/// An expired key was deleted: replicas delete it too, before whatever
/// the command does next.
pub(crate) fn expired(db: usize, key: &[u8]) {
    if recording() {
        push(Op::new(Some(db), &[&b"DEL"[..], key]));
    }
}

/// The running command reaches replicas as `ops` instead of as itself.
pub(crate) fn rewrite(ops: Vec<Op>) {
    if recording() {
        PENDING.with(|p| p.borrow_mut().rewrite = Some(ops));
    }
}

/// A further command for replicas, on its own (a pop made for a blocked
/// client).
pub(crate) fn also(op: Op) {
    if recording() {
        begin_unit();
        push(op);
    }
}

/// What is recorded next reaches replicas apart from what came before (in
/// a MULTI/EXEC of its own if it is more than one command).
pub(crate) fn begin_unit() {
    if !recording() {
        return;
    }
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let at = p.ops.len();
        if at > 0 && p.units.last() != Some(&at) {
            p.units.push(at);
        }
    });
}

fn push(op: Op) {
    PENDING.with(|p| p.borrow_mut().ops.push(op));
}

/// What the running command asked to reach replicas as, instead of
/// itself.
pub(crate) fn take_rewrite() -> Option<Vec<Op>> {
    PENDING.with(|p| p.borrow_mut().rewrite.take())
}

/// Appends commands for the stream, after what is already recorded.
pub(crate) fn extend(ops: impl IntoIterator<Item = Op>) {
    PENDING.with(|p| p.borrow_mut().ops.extend(ops));
}

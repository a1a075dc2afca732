//! Lists: a deque of packed nodes, like Redis's quicklist.
//!
//! Short elements are stored inline, several to a node of up to
//! `NODE_MAX` bytes, each as its length, its bytes and its length again
//! (read backwards), so that either end of a node can be read and a node
//! can be walked both ways. A node keeps free room at both ends, so pushing
//! at either end writes in place; a node that runs out of room on one side
//! grows (doubling up to `NODE_MAX`) or moves its contents, and a full
//! node is followed by a new one. Long elements ([`BIG`] bytes and more)
//! get a node of their own and keep the `Bytes` they came in, so a 64 MB
//! element is never copied.
//!
//! Against a `VecDeque<Bytes>`, a pushed short element costs no allocation
//! of its own and a few bytes instead of a 32-byte handle plus a heap block,
//! and a growing list never reallocates and copies all of itself.

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;

/// The largest packed node, in bytes: Redis's `list-max-listpack-size -2`.
const NODE_MAX: usize = 8 * 1024;

/// The smallest buffer a packed node starts with.
const NODE_MIN: usize = 32;

/// Elements this long or longer get a node of their own.
pub const BIG: usize = NODE_MAX / 4;

/// A list of byte strings.
#[derive(Debug, Clone, Default)]
pub struct List {
    nodes: VecDeque<Node>,
    len: usize,
}

#[derive(Debug, Clone)]
enum Node {
    Packed(Packed),
    Big(Bytes),
}

impl Node {
    fn count(&self) -> usize {
        match self {
            Node::Packed(p) => p.count as usize,
            Node::Big(_) => 1,
        }
    }
}

/// Entries in `buf[start..end]`, each `varint(len) bytes rev_varint(len)`.
#[derive(Clone)]
struct Packed {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    count: u32,
}

impl fmt::Debug for Packed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packed")
            .field("cap", &self.buf.len())
            .field("used", &(self.end - self.start))
            .field("count", &self.count)
            .finish()
    }
}

/// Bytes a length takes as a varint (7 bits a byte).
fn varint_len(n: usize) -> usize {
    match n {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        _ => 3,
    }
}

/// Bytes an element of `n` bytes takes in a packed node.
fn entry_size(n: usize) -> usize {
    n + 2 * varint_len(n)
}

/// Writes the entry for `data` at the start of `out`, which is exactly
/// [`entry_size`] long.
fn write_entry(out: &mut [u8], data: &[u8]) {
    let n = data.len();
    let h = varint_len(n);
    // Forward: low 7 bits first, the high bit saying more follow.
    let mut v = n;
    for (i, b) in out[..h].iter_mut().enumerate() {
        *b = (v & 0x7f) as u8 | if i + 1 < h { 0x80 } else { 0 };
        v >>= 7;
    }
    out[h..h + n].copy_from_slice(data);
    // Backward: the same bytes in reverse order, so that reading from the
    // end meets the low bits first.
    let (fwd, rest) = out.split_at_mut(h);
    let back = &mut rest[n..n + h];
    for (b, f) in back.iter_mut().zip(fwd.iter().rev()) {
        *b = *f;
    }
}

/// The element whose entry starts at `pos`: `(data start, data end, entry
/// end)`.
fn read_forward(buf: &[u8], pos: usize) -> (usize, usize, usize) {
    let (mut n, mut shift, mut i) = (0usize, 0, pos);
    loop {
        let b = buf[i];
        n |= usize::from(b & 0x7f) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let h = i - pos;
    (i, i + n, i + n + h)
}

/// The element whose entry ends at `end`: `(entry start, data start, data
/// end)`.
fn read_backward(buf: &[u8], end: usize) -> (usize, usize, usize) {
    let (mut n, mut shift, mut i) = (0usize, 0, end);
    loop {
        i -= 1;
        let b = buf[i];
        n |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let h = end - i;
    let data_end = i;
    let data_start = data_end - n;
    (data_start - h, data_start, data_end)
}

impl Packed {
    /// A node holding `data` alone, with its free room on the side further
    /// pushes at `front` will use.
    fn with(data: &[u8], front: bool) -> Packed {
        let need = entry_size(data.len());
        let cap = need.next_power_of_two().clamp(NODE_MIN, NODE_MAX.max(need));
        let start = if front { cap - need } else { 0 };
        let mut buf = vec![0; cap].into_boxed_slice();
        write_entry(&mut buf[start..start + need], data);
        Packed {
            buf,
            start,
            end: start + need,
            count: 1,
        }
    }

    /// Packs `items` into one node, with no room to spare.
    fn from_items<'a>(items: impl Iterator<Item = &'a [u8]>, size: usize) -> Packed {
        let mut buf = vec![0; size.max(1)].into_boxed_slice();
        let (mut at, mut count) = (0, 0);
        for item in items {
            let need = entry_size(item.len());
            write_entry(&mut buf[at..at + need], item);
            at += need;
            count += 1;
        }
        Packed {
            buf,
            start: 0,
            end: at,
            count,
        }
    }

    fn used(&self) -> usize {
        self.end - self.start
    }

    /// Pushes `data` if this node can take it.
    fn push(&mut self, data: &[u8], front: bool) -> bool {
        let need = entry_size(data.len());
        let room = if front {
            self.start
        } else {
            self.buf.len() - self.end
        };
        if room < need && !self.make_room(need, front) {
            return false;
        }
        if front {
            self.start -= need;
            write_entry(&mut self.buf[self.start..self.start + need], data);
        } else {
            write_entry(&mut self.buf[self.end..self.end + need], data);
            self.end += need;
        }
        self.count += 1;
        true
    }

    /// Makes `need` bytes of room on one side, growing the buffer or moving
    /// the entries; `false` if the node should rather stay as it is.
    fn make_room(&mut self, need: usize, front: bool) -> bool {
        let used = self.used();
        let want = used + need;
        let cap = self.buf.len();
        let new_cap = if want * 2 <= cap {
            cap
        } else if cap < NODE_MAX {
            (cap * 2).max(want.next_power_of_two()).min(NODE_MAX)
        } else if cap - want.min(cap) >= NODE_MAX / 16 {
            // A full-size node moves its entries while that wins room for
            // a few more: nodes end up more than nine tenths full.
            cap
        } else {
            return false;
        };
        if want > new_cap {
            return false;
        }
        // The pushing side gets three quarters of the free room, so pushes
        // alternating between the ends do not move the entries every time.
        let free = new_cap - used;
        let start = if front {
            free - (free / 4).min(free - need)
        } else {
            (free / 4).min(free - need)
        };
        if new_cap == cap {
            self.buf.copy_within(self.start..self.end, start);
        } else {
            let mut buf = vec![0; new_cap].into_boxed_slice();
            buf[start..start + used].copy_from_slice(&self.buf[self.start..self.end]);
            self.buf = buf;
        }
        self.start = start;
        self.end = start + used;
        true
    }

    /// Removes the first (`front`) or last element and returns it.
    fn pop(&mut self, front: bool) -> Bytes {
        self.count -= 1;
        if front {
            let (data, data_end, next) = read_forward(&self.buf, self.start);
            self.start = next;
            Bytes::copy_from_slice(&self.buf[data..data_end])
        } else {
            let (entry, data, data_end) = read_backward(&self.buf, self.end);
            self.end = entry;
            Bytes::copy_from_slice(&self.buf[data..data_end])
        }
    }

    /// The byte offset of entry `k` (`k <= count`; `count` gives the end).
    fn offset(&self, k: usize) -> usize {
        let count = self.count as usize;
        if k <= count / 2 {
            let mut pos = self.start;
            for _ in 0..k {
                pos = read_forward(&self.buf, pos).2;
            }
            pos
        } else {
            let mut pos = self.end;
            for _ in k..count {
                pos = read_backward(&self.buf, pos).0;
            }
            pos
        }
    }

    /// Puts an entry for `data` in place of the bytes `a..b` (an entry, or
    /// nothing to insert one), moving the entries after it, or before it,
    /// or growing the buffer; `false` if the node would outgrow
    /// [`NODE_MAX`].
    fn splice(&mut self, mut a: usize, b: usize, data: &[u8]) -> bool {
        let need = entry_size(data.len());
        let old = b - a;
        if need <= old {
            write_entry(&mut self.buf[a..a + need], data);
            self.buf.copy_within(b..self.end, a + need);
            self.end -= old - need;
            return true;
        }
        let grow = need - old;
        if self.buf.len() - self.end < grow && self.start < grow {
            let want = self.used() + grow;
            if want > NODE_MAX {
                return false;
            }
            let cap = want.next_power_of_two().clamp(NODE_MIN, NODE_MAX);
            let mut buf = vec![0; cap].into_boxed_slice();
            let used = self.used();
            buf[..used].copy_from_slice(&self.buf[self.start..self.end]);
            a -= self.start;
            self.buf = buf;
            self.start = 0;
            self.end = used;
            return self.splice(a, a + old, data);
        }
        if self.buf.len() - self.end >= grow {
            self.buf.copy_within(b..self.end, b + grow);
            self.end += grow;
        } else {
            self.buf.copy_within(self.start..a, self.start - grow);
            self.start -= grow;
            a -= grow;
        }
        write_entry(&mut self.buf[a..a + need], data);
        true
    }

    /// Removes up to `limit` entries equal to `target`, the first ones or
    /// (`!front`) the last ones; returns how many.
    fn remove_matching(&mut self, target: &[u8], limit: usize, front: bool) -> usize {
        let matches = self.iter().filter(|e| *e == target).count();
        let drop = matches.min(limit);
        if drop == 0 {
            return 0;
        }
        // Matches to keep before dropping starts.
        let mut skip = if front { 0 } else { matches - drop };
        let mut left = drop;
        let (mut read, mut write) = (self.start, self.start);
        while read < self.end {
            let (a, b, next) = read_forward(&self.buf, read);
            let hit = left > 0 && self.buf[a..b] == *target && {
                if skip > 0 {
                    skip -= 1;
                    false
                } else {
                    true
                }
            };
            if hit {
                left -= 1;
            } else {
                self.buf.copy_within(read..next, write);
                write += next - read;
            }
            read = next;
        }
        self.end = write;
        self.count -= drop as u32;
        drop
    }

    /// Entry `k`.
    fn get(&self, k: usize) -> &[u8] {
        let (a, b, _) = read_forward(&self.buf, self.offset(k));
        &self.buf[a..b]
    }

    /// Drops the first (`front`) or last `n` entries, `n < count`.
    fn drop_entries(&mut self, n: usize, front: bool) {
        if front {
            self.start = self.offset(n);
        } else {
            self.end = self.offset(self.count as usize - n);
        }
        self.count -= n as u32;
    }

    fn iter(&self) -> PackedIter<'_> {
        PackedIter {
            buf: &self.buf,
            front: self.start,
            back: self.end,
        }
    }
}

/// The elements of a packed node, from either end.
struct PackedIter<'a> {
    buf: &'a [u8],
    front: usize,
    back: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let (a, b, next) = read_forward(self.buf, self.front);
        self.front = next;
        Some(&self.buf[a..b])
    }
}

impl<'a> DoubleEndedIterator for PackedIter<'a> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        if self.front >= self.back {
            return None;
        }
        let (entry, a, b) = read_backward(self.buf, self.back);
        self.back = entry;
        Some(&self.buf[a..b])
    }
}

/// An element while a node is rebuilt: still in the old node's buffer, or
/// new.
enum Elem<'a> {
    Old(&'a [u8]),
    New(Bytes),
}

impl Elem<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Elem::Old(b) => b,
            Elem::New(b) => b,
        }
    }
}

/// Builds nodes from elements in order, packing short ones.
struct Builder<'a> {
    nodes: Vec<Node>,
    pending: Vec<Elem<'a>>,
    size: usize,
    /// The largest node to build.
    limit: usize,
}

impl<'a> Builder<'a> {
    fn new() -> Builder<'a> {
        Builder {
            nodes: Vec::new(),
            pending: Vec::new(),
            size: 0,
            limit: NODE_MAX,
        }
    }

    fn add(&mut self, item: Elem<'a>) {
        let len = item.bytes().len();
        if len >= BIG {
            self.flush();
            self.nodes.push(Node::Big(match item {
                Elem::Old(b) => Bytes::copy_from_slice(b),
                Elem::New(b) => b,
            }));
            return;
        }
        let need = entry_size(len);
        if self.size + need > self.limit {
            self.flush();
        }
        self.size += need;
        self.pending.push(item);
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let node = Packed::from_items(self.pending.iter().map(Elem::bytes), self.size);
            self.nodes.push(Node::Packed(node));
            self.pending.clear();
            self.size = 0;
        }
    }

    fn finish(mut self) -> Vec<Node> {
        self.flush();
        self.nodes
    }
}

impl List {
    /// An empty list.
    pub fn new() -> List {
        List::default()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many nodes (allocations of packed elements or of one big
    /// element) hold the elements: what freeing it costs.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Pushes a copy of `item` at the front or back.
    pub fn push(&mut self, front: bool, item: &[u8]) {
        if item.len() >= BIG {
            self.push_node(front, Node::Big(Bytes::copy_from_slice(item)));
        } else {
            self.push_small(front, item);
        }
    }

    /// Pushes `item`, keeping the handle rather than a copy if it is long.
    pub fn push_bytes(&mut self, front: bool, item: Bytes) {
        if item.len() >= BIG {
            self.push_node(front, Node::Big(item));
        } else {
            self.push_small(front, &item);
        }
    }

    /// Pushes `item` at the back, keeping the handle if it is long.
    pub fn push_back(&mut self, item: Bytes) {
        self.push_bytes(false, item);
    }

    fn push_small(&mut self, front: bool, item: &[u8]) {
        let end = if front {
            self.nodes.front_mut()
        } else {
            self.nodes.back_mut()
        };
        if let Some(Node::Packed(p)) = end
            && p.push(item, front)
        {
            self.len += 1;
            return;
        }
        self.push_node(front, Node::Packed(Packed::with(item, front)));
    }

    fn push_node(&mut self, front: bool, node: Node) {
        self.len += node.count();
        if front {
            self.nodes.push_front(node);
        } else {
            self.nodes.push_back(node);
        }
    }

    /// Removes and returns the first (`front`) or last element.
    pub fn pop(&mut self, front: bool) -> Option<Bytes> {
        let node = if front {
            self.nodes.front_mut()?
        } else {
            self.nodes.back_mut()?
        };
        self.len -= 1;
        let item = match node {
            Node::Packed(p) => {
                let item = p.pop(front);
                if p.count > 0 {
                    return Some(item);
                }
                item
            }
            Node::Big(b) => std::mem::take(b),
        };
        if front {
            self.nodes.pop_front();
        } else {
            self.nodes.pop_back();
        }
        Some(item)
    }

    /// The node holding element `i` and the element's place in it.
    fn locate(&self, i: usize) -> (usize, usize) {
        debug_assert!(i < self.len);
        if i < self.len / 2 {
            let mut k = i;
            for (n, node) in self.nodes.iter().enumerate() {
                if k < node.count() {
                    return (n, k);
                }
                k -= node.count();
            }
        } else {
            let mut k = self.len - 1 - i;
            for (n, node) in self.nodes.iter().enumerate().rev() {
                if k < node.count() {
                    return (n, node.count() - 1 - k);
                }
                k -= node.count();
            }
        }
        unreachable!("index {i} below the length {}", self.len)
    }

    /// Element `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len {
            return None;
        }
        let (n, k) = self.locate(i);
        Some(match &self.nodes[n] {
            Node::Packed(p) => p.get(k),
            Node::Big(b) => b,
        })
    }

    /// The elements from the first, in order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// The elements from element `i` on.
    pub fn iter_from(&self, i: usize) -> Iter<'_> {
        if i >= self.len {
            return Iter {
                nodes: self.nodes.range(0..0),
                current: None,
                forward: true,
            };
        }
        let (n, k) = self.locate(i);
        let current = match &self.nodes[n] {
            Node::Packed(p) => NodeIter::Packed(PackedIter {
                buf: &p.buf,
                front: p.offset(k),
                back: p.end,
            }),
            Node::Big(b) => NodeIter::Big(Some(b)),
        };
        Iter {
            nodes: self.nodes.range(n + 1..),
            current: Some(current),
            forward: true,
        }
    }

    /// The elements from the last, backwards.
    pub fn iter_rev(&self) -> Iter<'_> {
        Iter {
            nodes: self.nodes.iter(),
            current: None,
            forward: false,
        }
    }

    /// Replaces element `i` (which must exist).
    pub fn set(&mut self, i: usize, item: Bytes) {
        let (n, k) = self.locate(i);
        if let Node::Packed(p) = &mut self.nodes[n]
            && item.len() < BIG
        {
            let a = p.offset(k);
            let b = read_forward(&p.buf, a).2;
            if p.splice(a, b, &item) {
                return;
            }
        }
        self.rebuild(n, |items| items[k] = Elem::New(item));
    }

    /// Inserts `item` so that it becomes element `i` (`i <= len`).
    pub fn insert(&mut self, i: usize, item: Bytes) {
        if i == 0 {
            return self.push_bytes(true, item);
        }
        if i == self.len {
            return self.push_bytes(false, item);
        }
        let (n, k) = self.locate(i);
        if let Node::Packed(p) = &mut self.nodes[n]
            && item.len() < BIG
        {
            let a = p.offset(k);
            if p.splice(a, a, &item) {
                p.count += 1;
                self.len += 1;
                return;
            }
        }
        self.rebuild(n, |items| items.insert(k, Elem::New(item)));
    }

    /// Rewrites node `n` through `f`, which edits its elements.
    fn rebuild(&mut self, n: usize, f: impl FnOnce(&mut Vec<Elem<'_>>)) {
        // The node leaves the list while its elements are read from it.
        let old = std::mem::replace(&mut self.nodes[n], Node::Big(Bytes::new()));
        let mut items: Vec<Elem<'_>> = match &old {
            Node::Packed(p) => p.iter().map(Elem::Old).collect(),
            Node::Big(b) => vec![Elem::New(b.clone())],
        };
        let before = items.len();
        f(&mut items);
        self.len = self.len + items.len() - before;
        let mut builder = Builder::new();
        // A node that outgrows the maximum splits in halves, as Redis's
        // quicklist splits, so that each half has room for the next edits:
        // a full node and a scrap would make one more node per edit.
        let sizes = items
            .iter()
            .map(|e| e.bytes().len())
            .filter(|&n| n < BIG)
            .map(entry_size);
        let (packed, largest) = sizes.fold((0, 0), |(sum, max), n| (sum + n, max.max(n)));
        if packed > NODE_MAX {
            // The first half takes at least half, so the rest fits one node.
            builder.limit = (packed.div_ceil(2) + largest).min(NODE_MAX);
        }
        items.into_iter().for_each(|item| builder.add(item));
        let mut new = builder.finish().into_iter();
        match new.next() {
            Some(first) => self.nodes[n] = first,
            None => {
                self.nodes.remove(n);
            }
        }
        for (j, node) in new.enumerate() {
            self.nodes.insert(n + 1 + j, node);
        }
    }

    /// Removes up to `limit` elements equal to `target`, scanning from the
    /// front or from the back; returns how many it removed.
    pub fn remove_matching(&mut self, target: &[u8], limit: usize, front: bool) -> usize {
        let mut removed = 0;
        let count = self.nodes.len();
        // The nodes that lost elements, as a range.
        let (mut lo, mut hi) = (usize::MAX, 0);
        for step in 0..count {
            if removed == limit {
                break;
            }
            let n = if front { step } else { count - 1 - step };
            let gone = match &mut self.nodes[n] {
                Node::Big(b) if b[..] == *target => {
                    *b = Bytes::new();
                    1
                }
                Node::Big(_) => 0,
                Node::Packed(p) => p.remove_matching(target, limit - removed, front),
            };
            if gone > 0 {
                removed += gone;
                (lo, hi) = (lo.min(n), hi.max(n));
            }
        }
        if removed > 0 {
            self.len -= removed;
            self.repack(lo.saturating_sub(1), (hi + 1).min(count - 1));
        }
        removed
    }

    /// Packs the elements of nodes `lo..=hi` into as few nodes as they need,
    /// without spare room: after LREM, so that nodes it thinned out give
    /// their memory back and do not multiply.
    fn repack(&mut self, lo: usize, hi: usize) {
        let old: Vec<Node> = self.nodes.drain(lo..=hi).collect();
        let mut builder = Builder::new();
        for node in &old {
            match node {
                Node::Packed(p) => p.iter().for_each(|e| builder.add(Elem::Old(e))),
                // An emptied big node (no element is both big and empty).
                Node::Big(b) if b.is_empty() => {}
                Node::Big(b) => builder.add(Elem::New(b.clone())),
            }
        }
        for (j, node) in builder.finish().into_iter().enumerate() {
            self.nodes.insert(lo + j, node);
        }
    }

    /// Keeps elements `a..=b` only (both within the list).
    pub fn trim(&mut self, a: usize, b: usize) {
        let tail = self.len - 1 - b;
        self.drop_end(a, true);
        self.drop_end(tail, false);
    }

    /// Removes every element.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.len = 0;
    }

    /// Drops `n` elements from one end.
    fn drop_end(&mut self, mut n: usize, front: bool) {
        while n > 0 {
            let node = if front {
                self.nodes.front_mut()
            } else {
                self.nodes.back_mut()
            };
            let Some(node) = node else { return };
            let count = node.count();
            if count <= n {
                n -= count;
                self.len -= count;
                if front {
                    self.nodes.pop_front();
                } else {
                    self.nodes.pop_back();
                }
            } else {
                if let Node::Packed(p) = node {
                    p.drop_entries(n, front);
                }
                self.len -= n;
                n = 0;
            }
        }
    }

    /// How many nodes the list has (for tests and memory reports).
    #[cfg(test)]
    fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

enum NodeIter<'a> {
    Packed(PackedIter<'a>),
    Big(Option<&'a [u8]>),
}

fn node_iter(node: &Node) -> NodeIter<'_> {
    match node {
        Node::Packed(p) => NodeIter::Packed(p.iter()),
        Node::Big(b) => NodeIter::Big(Some(b)),
    }
}

impl<'a> NodeIter<'a> {
    fn next(&mut self, front: bool) -> Option<&'a [u8]> {
        match self {
            NodeIter::Packed(p) if front => p.next(),
            NodeIter::Packed(p) => p.next_back(),
            NodeIter::Big(b) => b.take(),
        }
    }
}

/// A list's elements, in order or backwards.
pub struct Iter<'a> {
    nodes: std::collections::vec_deque::Iter<'a, Node>,
    current: Option<NodeIter<'a>>,
    forward: bool,
}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("forward", &self.forward)
            .finish_non_exhaustive()
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let forward = self.forward;
            if let Some(item) = self.current.as_mut().and_then(|c| c.next(forward)) {
                return Some(item);
            }
            let node = if forward {
                self.nodes.next()?
            } else {
                self.nodes.next_back()?
            };
            self.current = Some(node_iter(node));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_read_both_ways() {
        for n in [0, 1, 127, 128, 300, 16383, 16384, 70000] {
            let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut buf = vec![0; entry_size(n)];
            write_entry(&mut buf, &data);
            let (a, b, end) = read_forward(&buf, 0);
            assert_eq!((&buf[a..b], end), (&data[..], buf.len()));
            let (start, a, b) = read_backward(&buf, buf.len());
            assert_eq!((start, &buf[a..b]), (0, &data[..]));
        }
    }

    #[test]
    fn pushes_fill_nodes_of_bounded_size() {
        for front in [true, false] {
            let mut list = List::new();
            for i in 0..100_000u32 {
                list.push(front, format!("element-{i}").as_bytes());
            }
            assert_eq!(list.len(), 100_000);
            let (first, last) = (&b"element-0"[..], &b"element-99999"[..]);
            let (head, tail) = if front { (last, first) } else { (first, last) };
            assert_eq!(list.get(0), Some(head));
            assert_eq!(list.get(99_999), Some(tail));
            // Entries of about 15 bytes, in nodes more than nine tenths
            // full, none larger than the maximum.
            let mut used = 0;
            for node in &list.nodes {
                if let Node::Packed(p) = node {
                    assert!(p.buf.len() <= NODE_MAX);
                    used += p.used();
                }
            }
            assert!(used * 10 > list.node_count() * NODE_MAX * 9);
        }
    }

    #[test]
    fn long_elements_keep_their_bytes() {
        let big = Bytes::from(vec![7u8; 1 << 20]);
        let mut list = List::new();
        list.push_bytes(false, big.clone());
        list.push(false, b"x");
        let popped = list.pop(true).unwrap();
        assert_eq!(popped.as_ptr(), big.as_ptr());
        assert_eq!(list.pop(true).as_deref(), Some(&b"x"[..]));
        assert!(list.is_empty());
    }

    /// Bytes of buffer a list holds, in packed nodes.
    fn capacity(list: &List) -> usize {
        list.nodes
            .iter()
            .map(|n| match n {
                Node::Packed(p) => p.buf.len(),
                Node::Big(_) => 0,
            })
            .sum()
    }

    /// Edits that overflow full nodes split them in halves: the node count
    /// stays proportional to the data, not to the number of edits.
    #[test]
    fn growing_edits_keep_nodes_few() {
        let mut list = List::new();
        for _ in 0..20_000 {
            list.push(false, &[b'a'; 10]);
        }
        for i in 0..20_000 {
            list.set(i, Bytes::from_static(&[b'b'; 20]));
        }
        // Nodes split in halves are at least about half full.
        let half_full = |bytes: usize| bytes / (NODE_MAX / 2) * 5 / 4 + 2;
        assert!(
            list.node_count() <= half_full(20_000 * 22),
            "{} nodes",
            list.node_count()
        );
        assert!(list.iter().all(|e| e == [b'b'; 20]));
        let mut list = List::new();
        for _ in 0..2_000 {
            list.push(false, &[b'a'; 10]);
        }
        for _ in 0..20_000 {
            list.insert(5, Bytes::from_static(&[b'y'; 10]));
        }
        assert!(
            list.node_count() <= half_full(22_000 * 12),
            "{} nodes",
            list.node_count()
        );
        assert_eq!(list.len(), 22_000);
    }

    /// LREM gives back the room of the elements it removes.
    #[test]
    fn removals_give_memory_back() {
        let mut list = List::new();
        for i in 0..100_000 {
            let e: &[u8] = if i % 1000 == 0 { b"keep" } else { b"drop" };
            list.push(false, e);
        }
        assert_eq!(list.remove_matching(b"drop", usize::MAX, true), 99_900);
        assert_eq!(list.len(), 100);
        assert!(list.iter().all(|e| e == b"keep"));
        assert_eq!(list.node_count(), 1);
        assert!(capacity(&list) < 1024, "{} bytes", capacity(&list));
        // From the back, with a limit: only the nodes it touched are
        // repacked.
        let mut list = List::new();
        for _ in 0..100_000 {
            list.push(false, b"x");
        }
        assert_eq!(list.remove_matching(b"x", 10, false), 10);
        assert_eq!(list.len(), 99_990);
    }

    /// An operation on a list and on a `VecDeque` model.
    #[derive(Debug, Clone)]
    enum Op {
        Push(bool, Vec<u8>),
        Pop(bool),
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        Remove(Vec<u8>, usize, bool),
        Trim(usize, usize),
    }

    fn element() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => prop::collection::vec(0u8..4, 0..4),
            2 => prop::collection::vec(any::<u8>(), 100..300),
            1 => prop::collection::vec(any::<u8>(), BIG - 2..BIG + 2),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            10 => (any::<bool>(), element()).prop_map(|(f, e)| Op::Push(f, e)),
            4 => any::<bool>().prop_map(Op::Pop),
            2 => (any::<usize>(), element()).prop_map(|(i, e)| Op::Set(i, e)),
            2 => (any::<usize>(), element()).prop_map(|(i, e)| Op::Insert(i, e)),
            1 => (element(), 0usize..4, any::<bool>()).prop_map(|(e, n, f)| Op::Remove(e, n, f)),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Trim(a, b)),
        ]
    }

    fn check(list: &List, model: &VecDeque<Vec<u8>>) {
        assert_eq!(list.len(), model.len());
        let fwd: Vec<&[u8]> = list.iter().collect();
        let want: Vec<&[u8]> = model.iter().map(|e| &e[..]).collect();
        assert_eq!(fwd, want);
        let rev: Vec<&[u8]> = list.iter_rev().collect();
        assert_eq!(rev, want.iter().rev().copied().collect::<Vec<_>>());
        for (i, e) in model.iter().enumerate() {
            assert_eq!(list.get(i), Some(&e[..]));
            assert_eq!(list.iter_from(i).next(), Some(&e[..]));
        }
        assert_eq!(list.get(model.len()), None);
        assert_eq!(list.iter_from(model.len()).next(), None);
        assert_eq!(
            list.nodes.iter().map(Node::count).sum::<usize>(),
            list.len()
        );
        assert!(list.nodes.iter().all(|n| n.count() > 0));
        for node in &list.nodes {
            if let Node::Packed(p) = node {
                assert!(p.buf.len() <= NODE_MAX && p.start <= p.end && p.end <= p.buf.len());
                assert_eq!(p.iter().count(), p.count as usize);
                assert_eq!(p.iter().rev().count(), p.count as usize);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn behaves_like_a_deque(ops in prop::collection::vec(op(), 0..400)) {
            let mut list = List::new();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(front, e) => {
                        list.push(front, &e);
                        if front { model.push_front(e) } else { model.push_back(e) }
                    }
                    Op::Pop(front) => {
                        let want = if front { model.pop_front() } else { model.pop_back() };
                        prop_assert_eq!(list.pop(front).map(|b| b.to_vec()), want);
                    }
                    Op::Set(i, e) if !model.is_empty() => {
                        let i = i % model.len();
                        list.set(i, Bytes::from(e.clone()));
                        model[i] = e;
                    }
                    Op::Insert(i, e) => {
                        let i = i % (model.len() + 1);
                        list.insert(i, Bytes::from(e.clone()));
                        model.insert(i, e);
                    }
                    Op::Remove(e, limit, front) => {
                        let limit = if limit == 0 { usize::MAX } else { limit };
                        let mut removed = 0;
                        let mut kept: VecDeque<Vec<u8>> = VecDeque::new();
                        let items: Vec<Vec<u8>> = if front {
                            model.drain(..).collect()
                        } else {
                            model.drain(..).rev().collect()
                        };
                        for item in items {
                            if removed < limit && item == e {
                                removed += 1;
                            } else if front {
                                kept.push_back(item);
                            } else {
                                kept.push_front(item);
                            }
                        }
                        model = kept;
                        prop_assert_eq!(list.remove_matching(&e, limit, front), removed);
                    }
                    Op::Trim(a, b) if !model.is_empty() => {
                        let a = a % model.len();
                        let b = a + b % (model.len() - a);
                        list.trim(a, b);
                        model.truncate(b + 1);
                        model.drain(..a);
                    }
                    _ => {}
                }
                check(&list, &model);
            }
        }
    }
}

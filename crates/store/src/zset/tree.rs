//! The order of a big sorted set: a B+tree of (score, member id) entries
//! that knows how many entries lie under each child, so that rank and
//! select take one descent (Redis's skiplist keeps `span`s for the same
//! purpose).
//!
//! Leaves hold up to [`LEAF_CAP`] entries as two arrays (scores, then the
//! ids of the members in the sorted set's [`Dict`](crate::dict::Dict)), so
//! a search reads scores from contiguous memory and fetches a member only
//! when scores tie. Inner nodes hold up to [`INNER_CAP`] children, the
//! number of entries under each, and for every child but the first a
//! separator: a copy of a score and member no greater than any entry under
//! that child and greater than every entry under the one before. A
//! separator is a copy rather than an id because ids change (the dict
//! moves its last item into a hole) and because a removal may leave a
//! separator standing for an entry that is gone; it is still a correct
//! bound, so removals never touch separators unless nodes are rebalanced.
//!
//! Nodes stay at least half full: a node that falls below takes entries
//! from a neighbour, or merges with it when the two fit in one. The
//! exception is the tree's two edges: an insertion past the last entry of
//! the whole tree (or before its first) splits a full node unevenly,
//! leaving the full part full, so that sets growing at one end
//! (timestamps, counters, a load from the highest score down) get full
//! nodes; the short node at the edge fills as that growth goes on.
//!
//! Every operation takes `key_of`, which gives the member bytes of an id.

use std::cmp::Ordering;

use smallvec::SmallVec;

use super::packed::cmp_key;

/// The most entries a leaf holds.
pub(super) const LEAF_CAP: usize = 64;
/// The fewest entries a leaf other than the root holds.
const LEAF_MIN: usize = LEAF_CAP / 2;
/// The most children an inner node holds.
pub(super) const INNER_CAP: usize = 32;
/// The fewest children an inner node other than the root holds.
const INNER_MIN: usize = INNER_CAP / 2;

#[derive(Clone)]
struct Leaf {
    len: usize,
    scores: [f64; LEAF_CAP],
    ids: [u32; LEAF_CAP],
}

impl Leaf {
    fn new() -> Box<Leaf> {
        Box::new(Leaf {
            len: 0,
            scores: [0.0; LEAF_CAP],
            ids: [0; LEAF_CAP],
        })
    }

    #[inline]
    fn insert(&mut self, pos: usize, score: f64, id: u32) {
        let len = self.len;
        self.scores.copy_within(pos..len, pos + 1);
        self.ids.copy_within(pos..len, pos + 1);
        self.scores[pos] = score;
        self.ids[pos] = id;
        self.len += 1;
    }

    #[inline]
    fn remove(&mut self, pos: usize) -> (f64, u32) {
        let out = (self.scores[pos], self.ids[pos]);
        let len = self.len;
        self.scores.copy_within(pos + 1..len, pos);
        self.ids.copy_within(pos + 1..len, pos);
        self.len -= 1;
        out
    }

    /// Appends `other[from..to]`.
    fn extend_from(&mut self, other: &Leaf, from: usize, to: usize) {
        let n = to - from;
        let len = self.len;
        self.scores[len..len + n].copy_from_slice(&other.scores[from..to]);
        self.ids[len..len + n].copy_from_slice(&other.ids[from..to]);
        self.len += n;
    }

    /// Moves this leaf's entries from `at` on into a new leaf.
    fn split_off(&mut self, at: usize) -> Box<Leaf> {
        let mut right = Leaf::new();
        right.extend_from(self, at, self.len);
        self.len = at;
        right
    }
}

/// A child's separator: a score and a member.
type Sep = (f64, Box<[u8]>);

#[derive(Clone)]
struct Inner {
    /// The number of children.
    len: usize,
    /// Entries under each child.
    counts: [usize; INNER_CAP + 1],
    /// Separator scores; `scores[0]` is unused.
    scores: [f64; INNER_CAP + 1],
    /// Separator members, beside `scores`; `members[0]` is empty.
    members: Vec<Box<[u8]>>,
    children: Vec<Node>,
}

impl Inner {
    fn new() -> Box<Inner> {
        Box::new(Inner {
            len: 0,
            counts: [0; INNER_CAP + 1],
            scores: [0.0; INNER_CAP + 1],
            members: Vec::with_capacity(INNER_CAP + 1),
            children: Vec::with_capacity(INNER_CAP + 1),
        })
    }

    /// Puts `child` at `i`, with its separator and count.
    fn insert(&mut self, i: usize, sep: Sep, child: Node, count: usize) {
        let len = self.len;
        self.counts.copy_within(i..len, i + 1);
        self.scores.copy_within(i..len, i + 1);
        self.counts[i] = count;
        self.scores[i] = sep.0;
        self.members.insert(i, sep.1);
        self.children.insert(i, child);
        self.len += 1;
    }

    /// Takes the child at `i` out, with its separator and count.
    fn remove(&mut self, i: usize) -> (Sep, Node, usize) {
        let len = self.len;
        let count = self.counts[i];
        let score = self.scores[i];
        self.counts.copy_within(i + 1..len, i);
        self.scores.copy_within(i + 1..len, i);
        self.len -= 1;
        let member = self.members.remove(i);
        let child = self.children.remove(i);
        ((score, member), child, count)
    }

    fn push(&mut self, sep: Sep, child: Node, count: usize) {
        self.insert(self.len, sep, child, count);
    }

    /// The child holding entry `rank` of this subtree, and the rank
    /// within it.
    #[inline]
    fn child_by_rank(&self, mut rank: usize) -> (usize, usize) {
        for i in 0..self.len - 1 {
            if rank < self.counts[i] {
                return (i, rank);
            }
            rank -= self.counts[i];
        }
        (self.len - 1, rank)
    }

    fn total(&self) -> usize {
        self.counts[..self.len].iter().sum()
    }
}

#[derive(Clone)]
enum Node {
    Leaf(Box<Leaf>),
    Inner(Box<Inner>),
}

/// What a search compares with: a separator's member, or an entry's id.
#[derive(Clone, Copy)]
pub(super) enum Probe<'a> {
    /// A separator's copy of a member.
    Sep(&'a [u8]),
    /// An entry's member id.
    Id(u32),
}

impl<'a> Probe<'a> {
    /// The member bytes.
    #[inline]
    pub(super) fn member<'k: 'a>(self, key_of: &impl Fn(u32) -> &'k [u8]) -> &'a [u8] {
        match self {
            Probe::Sep(m) => m,
            Probe::Id(id) => key_of(id),
        }
    }
}

/// A node split in two: the new right part, its separator and its count.
struct Split {
    sep: Sep,
    node: Node,
    count: usize,
}

/// The tree; see the module's notes.
#[derive(Clone)]
pub(super) struct Tree {
    root: Node,
    len: usize,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            root: Node::Leaf(Leaf::new()),
            len: 0,
        }
    }
}

impl Tree {
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// A tree of `entries`, sorted and distinct, with full nodes.
    pub(super) fn from_sorted<'k>(
        entries: impl IntoIterator<Item = (f64, u32)>,
        key_of: &impl Fn(u32) -> &'k [u8],
    ) -> Tree {
        // Nodes of the level being built: node, count, least entry.
        let mut level: Vec<(Node, usize, f64, u32)> = Vec::new();
        let mut leaf = Leaf::new();
        let mut len = 0;
        for (score, id) in entries {
            if leaf.len == LEAF_CAP {
                let first = (leaf.scores[0], leaf.ids[0]);
                let full = std::mem::replace(&mut leaf, Leaf::new());
                level.push((Node::Leaf(full), LEAF_CAP, first.0, first.1));
            }
            let at = leaf.len;
            leaf.scores[at] = score;
            leaf.ids[at] = id;
            leaf.len += 1;
            len += 1;
        }
        if leaf.len > 0 || level.is_empty() {
            // A short last leaf shares with the one before.
            if leaf.len < LEAF_MIN
                && let Some((Node::Leaf(prev), count, _, _)) = level.last_mut()
            {
                let total = prev.len + leaf.len;
                let mut moved = prev.split_off(total / 2);
                moved.extend_from(&leaf, 0, leaf.len);
                leaf = moved;
                *count = prev.len;
            }
            let (s, i) = (leaf.scores[0], leaf.ids[0]);
            let n = leaf.len;
            level.push((Node::Leaf(leaf), n, s, i));
        }
        // Inner levels until one node is left; separators copy the least
        // entry under each child.
        while level.len() > 1 {
            let mut upper: Vec<(Node, usize, f64, u32)> = Vec::new();
            let mut groups: Vec<Vec<(Node, usize, f64, u32)>> = Vec::new();
            let mut current = Vec::new();
            for node in level {
                if current.len() == INNER_CAP {
                    groups.push(std::mem::take(&mut current));
                }
                current.push(node);
            }
            if current.len() < INNER_MIN
                && let Some(prev) = groups.last_mut()
            {
                let total = prev.len() + current.len();
                let mut moved = prev.split_off(total / 2);
                moved.append(&mut current);
                current = moved;
            }
            groups.push(current);
            for group in groups {
                let mut inner = Inner::new();
                let (first_score, first_id) = (group[0].2, group[0].3);
                let mut total = 0;
                for (k, (node, count, score, id)) in group.into_iter().enumerate() {
                    let member: Box<[u8]> = if k == 0 {
                        Box::default()
                    } else {
                        key_of(id).into()
                    };
                    inner.push((score, member), node, count);
                    total += count;
                }
                upper.push((Node::Inner(inner), total, first_score, first_id));
            }
            level = upper;
        }
        let root = level
            .pop()
            .map_or_else(|| Node::Leaf(Leaf::new()), |(node, ..)| node);
        Tree { root, len }
    }

    /// How many entries come first under `before`, which must hold for a
    /// leading run of the entries (in their order) and nowhere after it:
    /// the rank where that run ends.
    pub(super) fn partition(&self, before: impl Fn(f64, Probe<'_>) -> bool) -> usize {
        self.seek(before).0
    }

    /// [`Tree::partition`]'s rank, with a cursor left there by the same
    /// descent, for [`Cursor::forward`] or [`Cursor::backward`].
    pub(super) fn seek(&self, before: impl Fn(f64, Probe<'_>) -> bool) -> (usize, Cursor<'_>) {
        let mut node = &self.root;
        let mut rank = 0;
        let mut stack = SmallVec::new();
        loop {
            match node {
                Node::Inner(inner) => {
                    // The first separator not before the boundary: the
                    // boundary lies in the child just left of it.
                    let seps = 1..inner.len;
                    let (mut lo, mut hi) = (seps.start, seps.end);
                    while lo < hi {
                        let mid = (lo + hi) / 2;
                        if before(inner.scores[mid], Probe::Sep(&inner.members[mid])) {
                            lo = mid + 1;
                        } else {
                            hi = mid;
                        }
                    }
                    let c = lo - 1;
                    rank += inner.counts[..c].iter().sum::<usize>();
                    stack.push((&**inner, c));
                    node = &inner.children[c];
                }
                Node::Leaf(leaf) => {
                    let (mut lo, mut hi) = (0, leaf.len);
                    while lo < hi {
                        let mid = (lo + hi) / 2;
                        if before(leaf.scores[mid], Probe::Id(leaf.ids[mid])) {
                            lo = mid + 1;
                        } else {
                            hi = mid;
                        }
                    }
                    let cursor = Cursor(Iter {
                        stack,
                        leaf,
                        pos: lo,
                        remaining: 0,
                        reverse: false,
                    });
                    return (rank + lo, cursor);
                }
            }
        }
    }

    /// The rank of the first entry not below (`score`, `member`): the
    /// entry's own rank when it is there.
    pub(super) fn rank_of<'k>(
        &self,
        score: f64,
        member: &[u8],
        key_of: &impl Fn(u32) -> &'k [u8],
    ) -> usize {
        self.partition(|s, probe| match s.partial_cmp(&score) {
            Some(Ordering::Less) => true,
            Some(Ordering::Greater) => false,
            _ => probe.member(key_of) < member,
        })
    }

    /// The entry at `rank`.
    pub(super) fn get(&self, rank: usize) -> Option<(f64, u32)> {
        if rank >= self.len {
            return None;
        }
        let mut node = &self.root;
        let mut rank = rank;
        loop {
            match node {
                Node::Inner(inner) => {
                    let (c, r) = inner.child_by_rank(rank);
                    rank = r;
                    node = &inner.children[c];
                }
                Node::Leaf(leaf) => return Some((leaf.scores[rank], leaf.ids[rank])),
            }
        }
    }

    /// Gives the entry at `rank` the id `id` (its member moved in the
    /// dict).
    pub(super) fn set_id(&mut self, rank: usize, id: u32) {
        if rank >= self.len {
            return;
        }
        let mut node = &mut self.root;
        let mut rank = rank;
        loop {
            match node {
                Node::Inner(inner) => {
                    let (c, r) = inner.child_by_rank(rank);
                    rank = r;
                    node = &mut inner.children[c];
                }
                Node::Leaf(leaf) => {
                    leaf.ids[rank] = id;
                    return;
                }
            }
        }
    }

    /// Adds an entry for `id`, whose member (`key_of(id)`) is not in the
    /// tree yet.
    pub(super) fn insert<'k>(&mut self, score: f64, id: u32, key_of: &impl Fn(u32) -> &'k [u8]) {
        let member = key_of(id);
        let spine = Spine {
            left: true,
            right: true,
        };
        if let Some(split) = insert_into(&mut self.root, score, member, id, spine, key_of) {
            let old = std::mem::replace(&mut self.root, Node::Leaf(Leaf::new()));
            let mut inner = Inner::new();
            inner.push((0.0, Box::default()), old, self.len + 1 - split.count);
            inner.push(split.sep, split.node, split.count);
            self.root = Node::Inner(inner);
        }
        self.len += 1;
    }

    /// Removes the entry at `rank` and returns it.
    pub(super) fn remove<'k>(
        &mut self,
        rank: usize,
        key_of: &impl Fn(u32) -> &'k [u8],
    ) -> Option<(f64, u32)> {
        if rank >= self.len {
            return None;
        }
        let out = remove_from(&mut self.root, rank, key_of);
        self.len -= 1;
        // A root with one child gives way to it; one with none (the last
        // entry went) to an empty leaf.
        while let Node::Inner(inner) = &mut self.root {
            match inner.children.pop() {
                Some(child) if inner.children.is_empty() => self.root = child,
                Some(child) => {
                    inner.children.push(child);
                    break;
                }
                None => self.root = Node::Leaf(Leaf::new()),
            }
        }
        Some(out)
    }

    /// The entries from `rank` on, forward, or backward from it when
    /// `reverse`: at most `count` of them.
    pub(super) fn iter_from(&self, rank: usize, count: usize, reverse: bool) -> Iter<'_> {
        let remaining = if rank >= self.len {
            0
        } else if reverse {
            count.min(rank + 1)
        } else {
            count.min(self.len - rank)
        };
        let mut stack = SmallVec::new();
        let mut node = &self.root;
        let mut rank = rank.min(self.len.saturating_sub(1));
        loop {
            match node {
                Node::Inner(inner) => {
                    let (c, r) = inner.child_by_rank(rank);
                    stack.push((&**inner, c));
                    rank = r;
                    node = &inner.children[c];
                }
                Node::Leaf(leaf) => {
                    return Iter {
                        stack,
                        leaf,
                        pos: rank,
                        remaining,
                        reverse,
                    };
                }
            }
        }
    }

    /// Heap bytes the tree owns.
    pub(super) fn bytes(&self) -> usize {
        fn node_bytes(node: &Node) -> usize {
            match node {
                Node::Leaf(_) => size_of::<Leaf>(),
                Node::Inner(inner) => {
                    size_of::<Inner>()
                        + inner.members.capacity() * size_of::<Box<[u8]>>()
                        + inner.members.iter().map(|m| m.len()).sum::<usize>()
                        + inner.children.capacity() * size_of::<Node>()
                        + inner.children.iter().map(node_bytes).sum::<usize>()
                }
            }
        }
        node_bytes(&self.root)
    }

    /// Checks every invariant (tests only): order, counts, separators,
    /// fill, depth.
    #[cfg(test)]
    pub(super) fn check<'k>(&self, key_of: &impl Fn(u32) -> &'k [u8]) {
        fn walk<'k>(
            node: &Node,
            spine: Spine,
            lo: Option<(f64, &[u8])>,
            hi: Option<(f64, &[u8])>,
            key_of: &impl Fn(u32) -> &'k [u8],
            depth: usize,
            leaf_depth: &mut Option<usize>,
        ) -> usize {
            let inside = |s: f64, m: &[u8]| {
                lo.is_none_or(|(ls, lm)| cmp_key(ls, lm, s, m) != Ordering::Greater)
                    && hi.is_none_or(|(hs, hm)| cmp_key(s, m, hs, hm) == Ordering::Less)
            };
            match node {
                Node::Leaf(leaf) => {
                    // Nodes on the edges may be short (uneven splits),
                    // never empty unless the tree is.
                    let edge = spine.left || spine.right;
                    assert!(leaf.len >= LEAF_MIN || (edge && leaf.len > 0) || depth == 0);
                    assert_eq!(*leaf_depth.get_or_insert(depth), depth, "uneven depth");
                    for i in 0..leaf.len {
                        let m = key_of(leaf.ids[i]);
                        assert!(inside(leaf.scores[i], m), "entry outside its bounds");
                        if i > 0 {
                            let p = key_of(leaf.ids[i - 1]);
                            assert_eq!(
                                cmp_key(leaf.scores[i - 1], p, leaf.scores[i], m),
                                Ordering::Less
                            );
                        }
                    }
                    leaf.len
                }
                Node::Inner(inner) => {
                    let edge = spine.left || spine.right;
                    assert!(inner.len >= INNER_MIN || (edge && inner.len > 0));
                    assert!(depth > 0 || inner.len >= 2);
                    assert!(inner.len <= INNER_CAP);
                    assert_eq!(inner.members.len(), inner.len);
                    assert_eq!(inner.children.len(), inner.len);
                    let mut total = 0;
                    for c in 0..inner.len {
                        let clo = if c == 0 {
                            lo
                        } else {
                            Some((inner.scores[c], &inner.members[c][..]))
                        };
                        let chi = if c + 1 < inner.len {
                            Some((inner.scores[c + 1], &inner.members[c + 1][..]))
                        } else {
                            hi
                        };
                        if let (Some(a), Some(b)) = (clo, chi) {
                            assert_eq!(cmp_key(a.0, a.1, b.0, b.1), Ordering::Less);
                        }
                        let below = Spine {
                            left: spine.left && c == 0,
                            right: spine.right && c + 1 == inner.len,
                        };
                        let n = walk(
                            &inner.children[c],
                            below,
                            clo,
                            chi,
                            key_of,
                            depth + 1,
                            leaf_depth,
                        );
                        assert_eq!(n, inner.counts[c], "count of child {c}");
                        total += n;
                    }
                    total
                }
            }
        }
        let spine = Spine {
            left: true,
            right: true,
        };
        let n = walk(&self.root, spine, None, None, key_of, 0, &mut None);
        assert_eq!(n, self.len);
    }
}

/// Whether a node lies on the tree's left edge (it holds the least
/// entries), its right edge, or both.
#[derive(Clone, Copy)]
struct Spine {
    left: bool,
    right: bool,
}

/// Inserts into the subtree at `node`; the right half if it split.
fn insert_into<'k>(
    node: &mut Node,
    score: f64,
    member: &[u8],
    id: u32,
    spine: Spine,
    key_of: &impl Fn(u32) -> &'k [u8],
) -> Option<Split> {
    match node {
        Node::Leaf(leaf) => {
            let pos = {
                let (mut lo, mut hi) = (0, leaf.len);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    let below = cmp_key(leaf.scores[mid], key_of(leaf.ids[mid]), score, member)
                        == Ordering::Less;
                    if below {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            };
            if leaf.len < LEAF_CAP {
                leaf.insert(pos, score, id);
                return None;
            }
            // At either end of the whole tree, growth is likely to go on
            // that way (ascending scores, or a load from the highest
            // down): the full part stays full. Anywhere else the leaf
            // splits in halves, so that no run of insertions can leave a
            // trail of tiny leaves.
            let right = if pos == LEAF_CAP && spine.right {
                let mut right = Leaf::new();
                right.insert(0, score, id);
                right
            } else if pos == 0 && spine.left {
                let right = leaf.split_off(0);
                leaf.insert(0, score, id);
                right
            } else {
                let mut right = leaf.split_off(LEAF_CAP / 2);
                if pos <= LEAF_CAP / 2 {
                    leaf.insert(pos, score, id);
                } else {
                    right.insert(pos - LEAF_CAP / 2, score, id);
                }
                right
            };
            let sep: Sep = (right.scores[0], key_of(right.ids[0]).into());
            let count = right.len;
            Some(Split {
                sep,
                node: Node::Leaf(right),
                count,
            })
        }
        Node::Inner(inner) => {
            // The last child whose separator is not above the new entry.
            let (mut lo, mut hi) = (1, inner.len);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if cmp_key(inner.scores[mid], &inner.members[mid], score, member)
                    != Ordering::Greater
                {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            let c = lo - 1;
            inner.counts[c] += 1;
            let below = Spine {
                left: spine.left && c == 0,
                right: spine.right && c + 1 == inner.len,
            };
            let split = insert_into(&mut inner.children[c], score, member, id, below, key_of)?;
            inner.counts[c] -= split.count;
            inner.insert(c + 1, split.sep, split.node, split.count);
            if inner.len <= INNER_CAP {
                return None;
            }
            // Too many children: the upper part moves to a new node, and
            // the separator of its first child goes up. At the tree's
            // edges the split is uneven, as for leaves.
            let half = if below.right && c + 2 == inner.len {
                INNER_CAP
            } else if below.left && c == 0 {
                1
            } else {
                inner.len / 2
            };
            let mut right = Inner::new();
            let moved_members: Vec<Box<[u8]>> = inner.members.drain(half..).collect();
            let moved_children: Vec<Node> = inner.children.drain(half..).collect();
            let mut sep = None;
            for (k, (m, child)) in moved_members.into_iter().zip(moved_children).enumerate() {
                let (s, count) = (inner.scores[half + k], inner.counts[half + k]);
                if k == 0 {
                    sep = Some((s, m));
                    right.push((0.0, Box::default()), child, count);
                } else {
                    right.push((s, m), child, count);
                }
            }
            inner.len = half;
            let count = right.total();
            Some(Split {
                sep: sep.unwrap_or((0.0, Box::default())),
                node: Node::Inner(right),
                count,
            })
        }
    }
}

/// Removes the entry at `rank` of the subtree at `node`.
fn remove_from<'k>(node: &mut Node, rank: usize, key_of: &impl Fn(u32) -> &'k [u8]) -> (f64, u32) {
    match node {
        Node::Leaf(leaf) => leaf.remove(rank),
        Node::Inner(inner) => {
            let (c, r) = inner.child_by_rank(rank);
            inner.counts[c] -= 1;
            let out = remove_from(&mut inner.children[c], r, key_of);
            let (short, empty) = match &inner.children[c] {
                Node::Leaf(l) => (l.len < LEAF_MIN, l.len == 0),
                Node::Inner(i) => (i.len < INNER_MIN, i.len == 0),
            };
            if short && inner.len > 1 {
                rebalance(inner, c, key_of);
            } else if empty {
                // An only child (at the tree's edge, after an uneven
                // split) that emptied goes, and this node empties with it:
                // the level above merges it away.
                inner.remove(c);
            }
            out
        }
    }
}

/// Refills child `c` of `parent`, which fell below its minimum, from a
/// neighbour: merges the two if they fit in one node, else shares their
/// contents evenly.
fn rebalance<'k>(parent: &mut Inner, c: usize, key_of: &impl Fn(u32) -> &'k [u8]) {
    let (l, r) = if c + 1 < parent.len {
        (c, c + 1)
    } else {
        (c - 1, c)
    };
    let (left_part, right_part) = parent.children.split_at_mut(r);
    match (&mut left_part[l], &mut right_part[0]) {
        (Node::Leaf(left), Node::Leaf(right)) => {
            let total = left.len + right.len;
            if total <= LEAF_CAP {
                left.extend_from(right, 0, right.len);
                parent.counts[l] = total;
                parent.remove(r);
                return;
            }
            let want = total / 2;
            if left.len > want {
                // The tail of the left leaf moves to the front of the right.
                let moved = left.split_off(want);
                let mut joined = moved;
                joined.extend_from(right, 0, right.len);
                *right = joined;
            } else {
                let n = want - left.len;
                left.extend_from(right, 0, n);
                let rest = right.split_off(n);
                *right = rest;
            }
            parent.counts[l] = left.len;
            parent.counts[r] = right.len;
            parent.scores[r] = right.scores[0];
            parent.members[r] = key_of(right.ids[0]).into();
        }
        (Node::Inner(left), Node::Inner(right)) => {
            let total = left.len + right.len;
            if total <= INNER_CAP {
                // The parent's separator comes down before the right
                // node's first child.
                let sep = (parent.scores[r], std::mem::take(&mut parent.members[r]));
                let mut first = true;
                while right.len > 0 {
                    let (s, child, count) = right.remove(0);
                    let s = if first { (sep.0, sep.1.clone()) } else { s };
                    first = false;
                    left.push(s, child, count);
                }
                parent.counts[l] += parent.counts[r];
                parent.remove(r);
                return;
            }
            let want = total / 2;
            if left.len > want {
                // Children move right through the parent's separator.
                while left.len > want {
                    let (s, child, count) = left.remove(left.len - 1);
                    let down = (
                        parent.scores[r],
                        std::mem::replace(&mut parent.members[r], s.1),
                    );
                    parent.scores[r] = s.0;
                    right.scores[0] = down.0;
                    right.members[0] = down.1;
                    right.insert(0, (0.0, Box::default()), child, count);
                }
            } else {
                while left.len < want {
                    let (_, child, count) = right.remove(0);
                    let down = (
                        parent.scores[r],
                        std::mem::replace(
                            &mut parent.members[r],
                            std::mem::take(&mut right.members[0]),
                        ),
                    );
                    parent.scores[r] = right.scores[0];
                    right.scores[0] = 0.0;
                    left.push(down, child, count);
                }
            }
            parent.counts[l] = left.total();
            parent.counts[r] = right.total();
        }
        // Siblings are always at the same depth.
        _ => {}
    }
}

/// A place between two entries, where a [`Tree::seek`] stopped.
pub(super) struct Cursor<'a>(Iter<'a>);

impl<'a> Cursor<'a> {
    /// Up to `count` entries from the one after the place on, going up.
    pub(super) fn forward(self, count: usize) -> Iter<'a> {
        let mut it = self.0;
        it.reverse = false;
        it.remaining = count;
        // The place may be past its leaf's last entry.
        if it.pos >= it.leaf.len && count > 0 {
            it.step_leaf();
        }
        it
    }

    /// Up to `count` entries from the one before the place on, going
    /// down.
    pub(super) fn backward(self, count: usize) -> Iter<'a> {
        let mut it = self.0;
        it.reverse = true;
        it.remaining = count;
        if count > 0 {
            if it.pos == 0 {
                it.step_leaf();
            } else {
                it.pos -= 1;
            }
        }
        it
    }
}

/// Entries of a tree, one way from a starting rank.
pub(super) struct Iter<'a> {
    /// The inner nodes above the current leaf, with the child taken.
    stack: SmallVec<[(&'a Inner, usize); 8]>,
    leaf: &'a Leaf,
    pos: usize,
    remaining: usize,
    reverse: bool,
}

impl Clone for Iter<'_> {
    fn clone(&self) -> Self {
        Iter {
            stack: self.stack.clone(),
            leaf: self.leaf,
            pos: self.pos,
            remaining: self.remaining,
            reverse: self.reverse,
        }
    }
}

impl<'a> Iter<'a> {
    /// Moves to the next leaf in the iteration's direction.
    fn step_leaf(&mut self) {
        while let Some((inner, c)) = self.stack.pop() {
            let next = if self.reverse {
                c.checked_sub(1)
            } else {
                Some(c + 1).filter(|&n| n < inner.len)
            };
            let Some(next) = next else { continue };
            self.stack.push((inner, next));
            let mut node = &inner.children[next];
            loop {
                match node {
                    Node::Inner(i) if i.len == 0 => break,
                    Node::Inner(i) => {
                        let c = if self.reverse { i.len - 1 } else { 0 };
                        self.stack.push((&**i, c));
                        node = &i.children[c];
                    }
                    // Only the root is ever empty; were a leaf empty, the
                    // walk would go on past it.
                    Node::Leaf(leaf) if leaf.len == 0 => break,
                    Node::Leaf(leaf) => {
                        self.leaf = leaf;
                        self.pos = if self.reverse { leaf.len - 1 } else { 0 };
                        return;
                    }
                }
            }
        }
        // Past either end: nothing is left to yield anyway.
        self.remaining = 0;
    }
}

impl Iterator for Iter<'_> {
    type Item = (f64, u32);

    #[inline]
    fn next(&mut self) -> Option<(f64, u32)> {
        if self.remaining == 0 {
            return None;
        }
        let out = (self.leaf.scores[self.pos], self.leaf.ids[self.pos]);
        self.remaining -= 1;
        if self.remaining > 0 {
            if self.reverse {
                if self.pos == 0 {
                    self.step_leaf();
                } else {
                    self.pos -= 1;
                }
            } else if self.pos + 1 == self.leaf.len {
                self.step_leaf();
            } else {
                self.pos += 1;
            }
        }
        Some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Members by id, as the dict would hold them.
    fn members(n: u32) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("m{:05}", i * 7919 % 100_003).into_bytes())
            .collect()
    }

    #[test]
    fn grows_shrinks_and_keeps_every_invariant() {
        let ms = members(5000);
        let key_of = |id: u32| &ms[id as usize][..];
        let mut t = Tree::default();
        // Scores with many ties, so members decide often.
        let score = |id: u32| f64::from(id % 37);
        for id in 0..5000 {
            t.insert(score(id), id, &key_of);
        }
        t.check(&key_of);
        let mut sorted: Vec<u32> = (0..5000).collect();
        sorted.sort_by(|&a, &b| cmp_key(score(a), key_of(a), score(b), key_of(b)));
        let all: Vec<u32> = t.iter_from(0, usize::MAX, false).map(|e| e.1).collect();
        assert_eq!(all, sorted);
        let back: Vec<u32> = t.iter_from(4999, usize::MAX, true).map(|e| e.1).collect();
        assert_eq!(back, sorted.iter().rev().copied().collect::<Vec<_>>());
        for (rank, &id) in sorted.iter().enumerate().step_by(97) {
            assert_eq!(t.rank_of(score(id), key_of(id), &key_of), rank);
            assert_eq!(t.get(rank), Some((score(id), id)));
        }
        // Remove most, from everywhere.
        let mut left = sorted.clone();
        let mut k = 0usize;
        while left.len() > 10 {
            k = (k + 7919) % left.len();
            let id = left.remove(k);
            assert_eq!(t.remove(k, &key_of), Some((score(id), id)));
            if left.len().is_multiple_of(500) {
                t.check(&key_of);
            }
        }
        t.check(&key_of);
        assert_eq!(
            t.iter_from(0, usize::MAX, false)
                .map(|e| e.1)
                .collect::<Vec<_>>(),
            left
        );
        while t.len() > 0 {
            t.remove(0, &key_of);
        }
        t.check(&key_of);
        assert_eq!(t.iter_from(0, 10, false).count(), 0);
    }

    #[test]
    fn sequential_loads_fill_their_leaves() {
        let ms = members(20_000);
        let key_of = |id: u32| &ms[id as usize][..];
        let mut up = Tree::default();
        let mut down = Tree::default();
        for id in 0..20_000u32 {
            up.insert(f64::from(id), id, &key_of);
            down.insert(-f64::from(id), id, &key_of);
        }
        up.check(&key_of);
        down.check(&key_of);
        let built = Tree::from_sorted((0..20_000u32).map(|id| (f64::from(id), id)), &key_of);
        built.check(&key_of);
        // Full leaves: about 12 bytes an entry, and 1 for the inner nodes.
        for t in [&up, &down, &built] {
            assert!(t.bytes() < 20_000 * 14, "{} bytes", t.bytes());
        }
        for n in [0u32, 1, 31, 32, 64, 65, 97, 2048, 2049, 2080] {
            let t = Tree::from_sorted((0..n).map(|id| (f64::from(id), id)), &key_of);
            t.check(&key_of);
            assert_eq!(t.len(), n as usize);
        }
    }

    #[test]
    fn growth_and_shrinking_at_the_edges() {
        // Uneven splits leave short nodes (and inner nodes with one child)
        // along the edges; removals there must clear them away.
        let n = 70_000u32;
        let ms = members(n);
        let key_of = |id: u32| &ms[id as usize][..];
        for (ascending, pop_back) in [(true, true), (true, false), (false, true), (false, false)] {
            let mut t = Tree::default();
            for i in 0..n {
                let s = if ascending {
                    f64::from(i)
                } else {
                    -f64::from(i)
                };
                t.insert(s, i, &key_of);
                if i.is_multiple_of(9_999) {
                    t.check(&key_of);
                }
            }
            t.check(&key_of);
            // Full leaves: 12 bytes an entry and a little.
            assert!(t.bytes() < n as usize * 14, "{} bytes", t.bytes());
            let mut left = n as usize;
            while left > 0 {
                let rank = if pop_back { left - 1 } else { 0 };
                assert!(t.remove(rank, &key_of).is_some());
                left -= 1;
                if left.is_multiple_of(7_777) || left < 70 {
                    t.check(&key_of);
                    assert_eq!(t.iter_from(0, usize::MAX, false).count(), left);
                    assert_eq!(
                        t.iter_from(left.saturating_sub(1), usize::MAX, true)
                            .count(),
                        left
                    );
                }
                // And growth again at the other end, now and then.
                if left % 10_000 == 5_000 {
                    for k in 0..100u32 {
                        let s = if pop_back {
                            -1e9 - f64::from(k)
                        } else {
                            1e9 + f64::from(k)
                        };
                        t.insert(s, n - 1 - k, &key_of);
                    }
                    t.check(&key_of);
                    for _ in 0..100 {
                        let rank = if pop_back { 0 } else { t.len() - 1 };
                        t.remove(rank, &key_of);
                    }
                    t.check(&key_of);
                }
            }
            assert_eq!(t.len(), 0);
            t.check(&key_of);
        }
    }

    #[test]
    fn partitions_by_score() {
        let ms = members(1000);
        let key_of = |id: u32| &ms[id as usize][..];
        let t = Tree::from_sorted((0..1000u32).map(|id| (f64::from(id / 10), id)), &key_of);
        assert_eq!(t.partition(|s, _| s < 5.0), 50);
        assert_eq!(t.partition(|s, _| s <= 5.0), 60);
        assert_eq!(t.partition(|_, _| true), 1000);
        assert_eq!(t.partition(|_, _| false), 0);
        let mid: Vec<_> = t.iter_from(55, 3, true).collect();
        assert_eq!(mid, [(5.0, 55), (5.0, 54), (5.0, 53)]);
        assert_eq!(t.iter_from(998, 10, false).len(), 2);
        assert_eq!(t.iter_from(1, 10, true).len(), 2);
        assert_eq!(t.iter_from(1000, 10, true).len(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random inserts and removals keep the tree equal to a sorted
        /// vector, with its invariants.
        #[test]
        fn behaves_as_a_sorted_vec(ops in prop::collection::vec((any::<bool>(), 0u32..3000, any::<u16>()), 0..3000)) {
            let ms = members(3000);
            let key_of = |id: u32| &ms[id as usize][..];
            let score = |id: u32| f64::from(id % 11);
            let mut t = Tree::default();
            let mut model: Vec<u32> = Vec::new();
            for (insert, id, at) in ops {
                let pos = model.binary_search_by(|&x| cmp_key(score(x), key_of(x), score(id), key_of(id)));
                if insert {
                    if let Err(p) = pos {
                        t.insert(score(id), id, &key_of);
                        model.insert(p, id);
                    }
                } else if !model.is_empty() {
                    let k = usize::from(at) % model.len();
                    let id = model.remove(k);
                    prop_assert_eq!(t.remove(k, &key_of), Some((score(id), id)));
                }
            }
            t.check(&key_of);
            let got: Vec<u32> = t.iter_from(0, usize::MAX, false).map(|e| e.1).collect();
            prop_assert_eq!(got, model);
        }
    }
}

//! S3-FIFO, the `allkeys-s3fifo` policy's queues (Yang et al., "FIFO
//! queues are all you need for cache eviction", SOSP 2023), kept per
//! database of each shard.
//!
//! A new key enters the *small* queue (a tenth of the keys). When the
//! small queue is over its share, its oldest key leaves it: into the
//! *main* queue if it was read since it came in, out of the cache if not,
//! leaving its hash's fingerprint in the *ghost* table. A key that comes
//! back while its fingerprint is there goes straight to main. Main is a
//! FIFO with reinsertion: its oldest key is evicted if it was not read
//! since it last went round, and otherwise goes round again with one read
//! less. Each key counts its reads in two bits of its slot, up to 3.
//!
//! Keys seen once (a scan, the tail of a Zipf distribution) are evicted
//! after a short stay in the small queue instead of pushing out the keys
//! that are read again, which LRU lets them do.
//!
//! The queues hold 32 bits of each key's hash, not keys (4 bytes a key,
//! found again through the table: see [`compact`]), and are lazy: a key deleted by a command is not
//! taken out of them; its hash is skipped when it comes up. A slot's
//! `MAIN` bit tells an up-to-date entry of the main queue from one left
//! by an earlier life of the key. The queues exist only while the policy
//! is in force: a database's are built from its table the first time
//! eviction picks in it, and dropped when the policy changes.

use std::collections::VecDeque;

/// Bits of a hash a queue entry keeps below the tag: the ones that name
/// the key's home group in a table (`table::HOME_BITS`).
const LOW_BITS: u32 = super::table::HOME_BITS;
const LOW_MASK: u64 = (1 << LOW_BITS) - 1;

/// A queue entry for a key hashed `hash`: the 7 bits the table tags a
/// place with (the hash's top bits) and the 25 low bits it finds the home
/// group by. [`expand`] gives a hash the table finds the key by; the key
/// found is the one whose own hash compacts to the same entry. Two keys
/// of one database and shard sharing an entry (one in 2^32 pairs) may
/// stand for each other in the queues, which costs a little precision,
/// never a wrong deletion of a key that is not the victim's entry.
#[inline]
pub(super) fn compact(hash: u64) -> u32 {
    (((hash >> 57) << LOW_BITS) | (hash & LOW_MASK)) as u32
}

/// A hash that [`compact`]s to `entry` and that the table looks up as it
/// would the original: the same tag and the same home group.
#[inline]
pub(super) fn expand(entry: u32) -> u64 {
    (u64::from(entry >> LOW_BITS) << 57) | (u64::from(entry) & LOW_MASK)
}

/// A slot's S3-FIFO state: reads since it entered its queue or last went
/// round (bits 0-1, up to 3) and whether it is in the main queue.
pub(super) const READS: u8 = 0b011;
/// The slot is in the main queue (else the small one).
pub(super) const MAIN: u8 = 0b100;

/// A slot's state after one more read.
#[inline]
pub(super) fn read(s3: u8) -> u8 {
    if s3 & READS == READS { s3 } else { s3 + 1 }
}

/// One database's queues (in one shard).
#[derive(Debug, Default)]
pub(super) struct Fifo {
    /// Keys read at most once since they came in, oldest first
    /// ([`compact`]ed hashes).
    small: VecDeque<u32>,
    /// Keys that earned their place, oldest first.
    main: VecDeque<u32>,
    /// Fingerprints of keys evicted from the small queue.
    ghost: Ghost,
    /// The live keys when [`Fifo::next`] was last asked: what the ghost
    /// is sized by.
    live: usize,
    /// The policy's epoch these queues were built in (see `evict.rs`).
    epoch: u32,
}

/// What [`Fifo::next`] found at the head of a queue, for the table to
/// answer: the caller looks the hash up and calls [`Fifo::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Head {
    /// The small queue's oldest entry ([`compact`]).
    Small(u32),
    /// The main queue's oldest entry.
    Main(u32),
}

/// What happens to the key at the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Evict it.
    Evict,
    /// It stays, with this state (it went round or moved to main).
    Keep(u8),
    /// The entry was stale (no such key, or a key in the other queue).
    Skip,
}

impl Fifo {
    /// Queues for the keys already there, `(hash, in_main)` in the
    /// table's order: each goes where its slot's `MAIN` bit says (a key
    /// that never saw the policy is in small, as a new key would be).
    pub(super) fn build(epoch: u32, keys: impl Iterator<Item = (u64, bool)>) -> Fifo {
        let mut fifo = Fifo {
            epoch,
            ..Fifo::default()
        };
        for (hash, main) in keys {
            match main {
                true => push(&mut fifo.main, compact(hash)),
                false => push(&mut fifo.small, compact(hash)),
            }
        }
        fifo
    }

    /// A new key hashed `hash` comes in; returns its slot's state: in main
    /// if the ghost remembers it, else in small.
    pub(super) fn admit(&mut self, hash: u64) -> u8 {
        let entry = compact(hash);
        if self.ghost.take(entry) {
            push(&mut self.main, entry);
            MAIN
        } else {
            push(&mut self.small, entry);
            0
        }
    }

    /// The epoch these queues were built in.
    pub(super) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Entries in both queues, stale ones included.
    pub(super) fn len(&self) -> usize {
        self.small.len() + self.main.len()
    }

    /// The next entry to look at when `keys` keys are live: the small
    /// queue's while it holds its tenth or more (or main is empty), else
    /// main's. `None` when both are empty.
    pub(super) fn next(&mut self, keys: usize) -> Option<Head> {
        self.live = keys;
        let share = (keys / 10).max(1);
        if !self.small.is_empty() && (self.small.len() >= share || self.main.is_empty()) {
            let head = self.small.pop_front().map(Head::Small);
            trim(&mut self.small);
            return head;
        }
        let head = self.main.pop_front().map(Head::Main);
        trim(&mut self.main);
        head
    }

    /// Decides the fate of the key at `head`, whose slot's state is `s3`
    /// (`None` if no key has that hash any more), and requeues it if it
    /// stays.
    pub(super) fn decide(&mut self, head: Head, s3: Option<u8>) -> Verdict {
        let Some(s3) = s3 else {
            return Verdict::Skip;
        };
        match head {
            Head::Small(hash) => {
                if s3 & MAIN != 0 {
                    return Verdict::Skip;
                }
                if s3 & READS != 0 {
                    push(&mut self.main, hash);
                    return Verdict::Keep(MAIN);
                }
                self.ghost.remember(hash, self.live);
                Verdict::Evict
            }
            Head::Main(hash) => {
                if s3 & MAIN == 0 {
                    return Verdict::Skip;
                }
                if s3 & READS != 0 {
                    push(&mut self.main, hash);
                    return Verdict::Keep(s3 - 1);
                }
                Verdict::Evict
            }
        }
    }

    /// Drops the entries `live` says are stale (`live(entry, in_main)`).
    pub(super) fn sweep(&mut self, mut live: impl FnMut(u32, bool) -> bool) {
        self.small.retain(|&h| live(h, false));
        self.main.retain(|&h| live(h, true));
        self.small.shrink_to_fit();
        self.main.shrink_to_fit();
    }
}

/// Appends `entry`, a full queue growing by a quarter, not doubling as
/// `VecDeque` would: the main queue ends the fill at about nine tenths of
/// the keys and stays there, so its room past that is bytes a key
/// counted against `maxmemory` for nothing (doubling left 40% on
/// average, a quarter 12%). Growing moves every entry, four times as
/// often as doubling: 4-byte entries, at eviction only.
fn push(queue: &mut VecDeque<u32>, entry: u32) {
    if queue.len() == queue.capacity() {
        queue.reserve_exact(queue.len() / 4 + 8);
    }
    queue.push_back(entry);
}

/// Gives back a queue's room once a third of it is empty: a cache fills
/// with every key in the small queue (nothing is evicted until then),
/// which then keeps a tenth, and the room it had would be bytes a key
/// counted against `maxmemory` for nothing. A shrink, which moves the
/// entries, follows pops of at least a sixth of them.
fn trim(queue: &mut VecDeque<u32>) {
    let len = queue.len();
    if queue.capacity() > len + len / 2 + 16 {
        queue.shrink_to(len + len / 4 + 8);
    }
}

/// Fingerprints of recently evicted keys: a direct-mapped table of 8 bits
/// per place, with about as many places as the main queue holds keys when
/// the cache is full (nine tenths of the keys, as the paper sizes its
/// ghost queue, to the next power of two). A newer fingerprint overwrites
/// an older one in its place, so entries age out without a queue of their
/// own; 1 byte a place, looked up in one read. A place is chosen by an
/// entry's low bits and holds its top 8 (the tag and one more), which
/// tables of up to 2^24 places keep apart from the place's bits: a false
/// match is about one lookup in 255 once the table is full. Measured at
/// 10M keys and 64 MB, 8 bits against 16 held 0.8% more keys and moved
/// every trace's hit ratio by 0 to +0.06 points (docs/memory.md): a key
/// let into main by a false match costs less than the room.
#[derive(Debug, Default)]
struct Ghost {
    places: Vec<u8>,
}

impl Ghost {
    /// An entry's fingerprint (never 0, which marks an empty place) and
    /// its place in a table of `len` places (a power of two).
    fn locate(entry: u32, len: usize) -> (u8, usize) {
        let fp = ((entry >> 24) as u8).max(1);
        (fp, entry as usize & (len - 1))
    }

    /// Remembers `entry`, the table sized for a database of `keys` keys.
    fn remember(&mut self, entry: u32, keys: usize) {
        let want = (keys - keys / 10).max(8).next_power_of_two();
        if self.places.len() < want || self.places.len() > want * 4 {
            self.resize(want);
        }
        let (fp, at) = Self::locate(entry, self.places.len());
        self.places[at] = fp;
    }

    /// Whether `entry` is remembered; forgets it if it is.
    fn take(&mut self, entry: u32) -> bool {
        if self.places.is_empty() {
            return false;
        }
        let (fp, at) = Self::locate(entry, self.places.len());
        let hit = self.places[at] == fp;
        if hit {
            self.places[at] = 0;
        }
        hit
    }

    /// Starts a table of `len` places (what was remembered is forgotten:
    /// places hold fingerprints, not hashes, so they cannot be moved).
    fn resize(&mut self, len: usize) {
        self.places = vec![0; len];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A database of keys `0..` with their states, and its queues, as the
    /// keyspace drives them.
    #[derive(Default)]
    struct Model {
        keys: HashMap<u64, u8>,
        fifo: Fifo,
    }

    /// splitmix64's finaliser: well spread, as the keyspace's xxh3 is.
    fn hash(k: u64) -> u64 {
        let mut z = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    impl Model {
        fn get(&mut self, k: u64) -> bool {
            match self.keys.get_mut(&hash(k)) {
                Some(s) => {
                    *s = read(*s);
                    true
                }
                None => false,
            }
        }

        /// The live key whose hash compacts to `e`, as the table finds it.
        fn hash_of(&self, e: u32) -> Option<u64> {
            self.keys.keys().copied().find(|&h| compact(h) == e)
        }

        fn set(&mut self, k: u64) {
            let s = self.fifo.admit(hash(k));
            self.keys.insert(hash(k), s);
        }

        fn evict(&mut self) -> Option<u64> {
            loop {
                let head = self.fifo.next(self.keys.len())?;
                let e = match head {
                    Head::Small(e) | Head::Main(e) => e,
                };
                let h = self.hash_of(e);
                match self
                    .fifo
                    .decide(head, h.and_then(|h| self.keys.get(&h).copied()))
                {
                    Verdict::Evict => {
                        let h = h?;
                        self.keys.remove(&h);
                        return Some(h);
                    }
                    Verdict::Keep(s) => {
                        if let Some(h) = h {
                            self.keys.insert(h, s);
                        }
                    }
                    Verdict::Skip => {}
                }
            }
        }

        /// A cache of `cap` keys: GET, SET on a miss, evict past `cap`.
        fn access(&mut self, k: u64, cap: usize) -> bool {
            if self.get(k) {
                return true;
            }
            self.set(k);
            while self.keys.len() > cap {
                self.evict();
            }
            false
        }
    }

    #[test]
    fn an_entry_finds_its_key_as_the_full_hash_does() {
        for k in 0..10_000 {
            let h = hash(k);
            let x = expand(compact(h));
            // Same tag (top 7 bits), same home group in any table of up
            // to 2^25 groups, same entry.
            assert_eq!(x >> 57, h >> 57);
            assert_eq!(x & LOW_MASK, h & LOW_MASK);
            assert_eq!(compact(x), compact(h));
        }
    }

    /// A cache fills with every key in the small queue; once it evicts,
    /// small keeps a tenth and gives the rest of its room back, and
    /// neither main nor the ghost keeps much more room than it uses.
    #[test]
    fn the_small_queue_gives_back_the_room_of_the_fill() {
        let mut m = Model::default();
        for k in 0..2_000 {
            m.set(k);
        }
        assert!(m.fifo.small.capacity() >= 2_000);
        for k in 0..1_000 {
            m.get(k);
        }
        for k in 2_000..2_400 {
            m.access(k, 1_000);
        }
        let (small, main) = (&m.fifo.small, &m.fifo.main);
        assert!(
            small.len() <= 150 && main.len() >= 850,
            "{} {}",
            small.len(),
            main.len()
        );
        assert!(
            small.capacity() <= small.len() + small.len() / 2 + 16,
            "{}",
            small.capacity()
        );
        // Main grew by quarters, not by doubling.
        assert!(
            main.capacity() <= main.len() + main.len() / 4 + 16,
            "{} {}",
            main.capacity(),
            main.len()
        );
        // The ghost follows the keys down (made again under a quarter
        // full).
        let places = m.fifo.ghost.places.len();
        assert!((900..=4 * 1_024).contains(&places), "{places}");
    }

    /// The ghost has about as many places as main holds keys (nine tenths
    /// of them, to the next power of two); what it remembers it finds.
    #[test]
    fn the_ghost_is_sized_to_the_keys() {
        let mut ghost = Ghost::default();
        ghost.remember(compact(hash(1)), 1_000);
        assert_eq!(ghost.places.len(), 1_024);
        for k in 0..200 {
            ghost.remember(compact(hash(k)), 1_000);
        }
        let found = (0..200).filter(|&k| ghost.take(compact(hash(k)))).count();
        // Direct-mapped: a few collide and are overwritten.
        assert!(found >= 170, "{found}");
        ghost.remember(compact(hash(1)), 3_000);
        assert_eq!(ghost.places.len(), 4_096);
    }

    #[test]
    fn a_read_counter_saturates_at_three_and_keeps_the_main_bit() {
        assert_eq!(read(0), 1);
        assert_eq!(read(3), 3);
        assert_eq!(read(MAIN | 2), MAIN | 3);
        assert_eq!(read(MAIN | 3), MAIN | 3);
    }

    #[test]
    fn keys_read_once_leave_first_and_reads_earn_a_place_in_main() {
        let mut m = Model::default();
        for k in 0..10 {
            m.set(k);
        }
        // 3 and 7 are read again; the others were only written.
        m.get(3);
        m.get(7);
        let mut evicted = vec![];
        for _ in 0..8 {
            evicted.push(m.evict().unwrap());
        }
        let rest: Vec<u64> = [0, 1, 2, 4, 5, 6, 8, 9].iter().map(|&k| hash(k)).collect();
        assert_eq!(evicted, rest);
        // 3 and 7 moved to main with their reads spent: next to go, in order.
        assert_eq!(m.keys.get(&hash(3)), Some(&MAIN));
        assert_eq!(m.evict(), Some(hash(3)));
        assert_eq!(m.evict(), Some(hash(7)));
        assert_eq!(m.evict(), None);
    }

    #[test]
    fn main_keys_go_round_once_per_read() {
        let mut m = Model {
            fifo: Fifo::build(0, [(hash(1), true), (hash(2), true)].into_iter()),
            ..Model::default()
        };
        m.keys.insert(hash(1), MAIN);
        m.keys.insert(hash(2), MAIN);
        m.get(1);
        m.get(1);
        assert_eq!(m.evict(), Some(hash(2)));
        // 1 went round once, spending one of its two reads; it goes
        // round once more, then is evicted.
        assert_eq!(m.keys.get(&hash(1)), Some(&(MAIN | 1)));
        assert_eq!(m.evict(), Some(hash(1)));
        assert_eq!(m.evict(), None);
    }

    #[test]
    fn a_key_back_from_the_ghost_goes_to_main() {
        let mut m = Model::default();
        m.set(1);
        assert_eq!(m.evict(), Some(hash(1)));
        m.set(1);
        assert_eq!(m.keys.get(&hash(1)), Some(&MAIN));
        // The ghost forgets a key once it came back.
        assert!(!m.fifo.ghost.take(compact(hash(1))));
    }

    #[test]
    fn stale_entries_are_skipped_and_compacted_away() {
        let mut m = Model::default();
        for k in 0..4 {
            m.set(k);
        }
        // 0 and 1 deleted by a command: their entries stay until met.
        m.keys.remove(&hash(0));
        m.keys.remove(&hash(1));
        assert_eq!(m.evict(), Some(hash(2)));
        m.keys.remove(&hash(3));
        m.set(5);
        let keys = m.keys.clone();
        m.fifo.sweep(|e, main| {
            keys.iter()
                .any(|(&h, s)| compact(h) == e && (s & MAIN != 0) == main)
        });
        assert_eq!(m.fifo.len(), 1);
        assert_eq!(m.evict(), Some(hash(5)));
    }

    #[test]
    fn a_hot_set_survives_a_scan_that_lru_would_let_through() {
        // 100 hot keys read round robin, and between rounds a scan of 250
        // keys read once: a cache of 300 keys keeps the hot set (LRU would
        // miss every hot key every round: 349 other keys pass between two
        // reads of one).
        let mut m = Model::default();
        let cap = 300;
        let mut fresh = 1_000_000;
        let mut hot_misses = 0;
        for round in 0..60 {
            for k in 0..100 {
                // A hot key evicted from small comes back from the ghost
                // into main the next round, unless a scanned key took its
                // place in the ghost (then it tries again); once in main
                // it stays.
                if !m.access(k, cap) && round >= 10 {
                    hot_misses += 1;
                }
            }
            for _ in 0..250 {
                m.access(fresh, cap);
                fresh += 1;
            }
        }
        assert_eq!(hot_misses, 0);
        assert!(m.keys.len() <= cap);
    }
}

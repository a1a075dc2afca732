//! The cluster's shape: replica groups of shards, and where keys live.

use std::collections::HashSet;

use crate::hash::{hash_tag, jump, key_hash};
use crate::{GroupId, NodeId, RouteError, ShardId};

/// `R` replica groups of `S` shards each.
///
/// Every group holds the whole keyspace split over its `S` nodes, and shard
/// `s` of every group holds the same keys, so a key has one copy per group.
/// Nodes are numbered group by group: [`NodeId`] `g * S + s`.
///
/// ```
/// use ember_route::Topology;
///
/// let topo = Topology::new([
///     ["10.0.0.1:6379", "10.0.0.2:6379"],
///     ["10.0.1.1:6379", "10.0.1.2:6379"],
/// ])
/// .unwrap();
/// let (shard, nodes) = topo.locate(b"foo");
/// assert_eq!(shard, topo.shard_for(b"foo"));
/// assert_eq!(nodes.len(), 2);
/// assert_eq!(topo.position(nodes[1]).unwrap().1, shard);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    addrs: Vec<String>,
    groups: u32,
    shards: u32,
    hash_tags: bool,
}

impl Topology {
    /// A topology from the addresses of each group's shards, in shard order.
    ///
    /// Fails when there is no group, a group has no shard, groups differ in
    /// their number of shards, or an address appears twice.
    pub fn new<G, N, A>(groups: G) -> Result<Topology, RouteError>
    where
        G: IntoIterator<Item = N>,
        N: IntoIterator<Item = A>,
        A: Into<String>,
    {
        let bad = |reason: String| RouteError::Topology(reason);
        let mut addrs = Vec::new();
        let mut shards = None;
        let mut count = 0usize;
        for (g, group) in groups.into_iter().enumerate() {
            let before = addrs.len();
            addrs.extend(group.into_iter().map(Into::into));
            let n = addrs.len() - before;
            match shards {
                None if n == 0 => return Err(bad(format!("group {g} has no shards"))),
                None => shards = Some(n),
                Some(s) if s != n => {
                    return Err(bad(format!(
                        "group {g} has {n} shards but group 0 has {s}; every group needs the same number"
                    )));
                }
                Some(_) => {}
            }
            count = g + 1;
        }
        let shards = shards.ok_or_else(|| bad("no replica groups".into()))?;
        let mut seen = HashSet::new();
        if let Some(dup) = addrs.iter().find(|a| !seen.insert(a.as_str())) {
            return Err(bad(format!("address {dup} appears twice")));
        }
        let too_many = || bad("more than 2^32 nodes".into());
        let _: u32 = addrs.len().try_into().map_err(|_| too_many())?;
        Ok(Topology {
            groups: count.try_into().map_err(|_| too_many())?,
            shards: shards.try_into().map_err(|_| too_many())?,
            addrs,
            hash_tags: false,
        })
    }

    /// Turns Redis Cluster's hash tags on or off (off by default): with them
    /// on, a key holding `{tag}` is placed by `tag` alone. See
    /// [`hash_tag`](crate::hash_tag).
    pub fn with_hash_tags(mut self, on: bool) -> Topology {
        self.hash_tags = on;
        self
    }

    /// Whether hash tags are on.
    pub fn hash_tags(&self) -> bool {
        self.hash_tags
    }

    /// The number of replica groups, `R`.
    pub fn groups(&self) -> u32 {
        self.groups
    }

    /// The number of shards per group, `S`.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The number of nodes, `R * S`.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Whether there are no nodes; never true for a built topology.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Every node with its address, group by group.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &str)> {
        (0u32..)
            .zip(&self.addrs)
            .map(|(i, a)| (NodeId(i), a.as_str()))
    }

    /// The address of `node`, if it is in this topology.
    pub fn addr(&self, node: NodeId) -> Option<&str> {
        self.addrs.get(node.0 as usize).map(String::as_str)
    }

    /// The node that holds shard `shard` for group `group`.
    pub fn node(&self, group: GroupId, shard: ShardId) -> Option<NodeId> {
        (group.0 < self.groups && shard.0 < self.shards)
            .then(|| NodeId(group.0 * self.shards + shard.0))
    }

    /// The group and shard of `node`, if it is in this topology.
    pub fn position(&self, node: NodeId) -> Option<(GroupId, ShardId)> {
        ((node.0 as usize) < self.addrs.len())
            .then(|| (GroupId(node.0 / self.shards), ShardId(node.0 % self.shards)))
    }

    /// The shard that holds `key`.
    pub fn shard_for(&self, key: &[u8]) -> ShardId {
        let hashed = if self.hash_tags { hash_tag(key) } else { key };
        ShardId(jump(key_hash(hashed), self.shards))
    }

    /// The shard that holds `key`, and its node in each group, by group.
    pub fn locate(&self, key: &[u8]) -> (ShardId, Vec<NodeId>) {
        let shard = self.shard_for(key);
        let nodes = (0..self.groups)
            .map(|g| NodeId(g * self.shards + shard.0))
            .collect();
        (shard, nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let t = Topology::new([["a", "b", "c"], ["d", "e", "f"]]).unwrap();
        assert_eq!((t.groups(), t.shards(), t.len()), (2, 3, 6));
        assert_eq!(t.node(GroupId(1), ShardId(2)), Some(NodeId(5)));
        assert_eq!(t.node(GroupId(2), ShardId(0)), None);
        assert_eq!(t.position(NodeId(4)), Some((GroupId(1), ShardId(1))));
        assert_eq!(t.position(NodeId(6)), None);
        assert_eq!(t.addr(NodeId(3)), Some("d"));
        assert_eq!(t.nodes().count(), 6);
    }

    #[test]
    fn bad_shapes() {
        let none: [[&str; 1]; 0] = [];
        assert_eq!(
            Topology::new(none).unwrap_err().to_string(),
            "bad topology: no replica groups"
        );
        let empty: [Vec<&str>; 1] = [vec![]];
        assert!(Topology::new(empty).is_err());
        let err = Topology::new([vec!["a", "b"], vec!["c"]]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad topology: group 1 has 1 shards but group 0 has 2; every group needs the same number"
        );
        assert!(Topology::new([["a", "b"], ["c", "a"]]).is_err());
    }

    #[test]
    fn placement_matches_go() {
        let names = |n: usize| (0..n).map(|i| format!("n{i}")).collect::<Vec<_>>();
        let t = Topology::new([names(5)]).unwrap();
        assert_eq!(t.shard_for(b"foo"), ShardId(3));
        let t = Topology::new([names(10), names(20).split_off(10)]).unwrap();
        assert_eq!(t.locate(b"foo"), (ShardId(8), vec![NodeId(8), NodeId(18)]));
        assert_eq!(t.shard_for(b""), ShardId(7));
    }

    #[test]
    fn hash_tags_are_opt_in() {
        let t = Topology::new([(0..16).map(|i| i.to_string())]).unwrap();
        assert_eq!(
            t.shard_for(b"{foo}.bar"),
            ShardId(jump(key_hash(b"{foo}.bar"), 16))
        );
        let t = t.with_hash_tags(true);
        assert_eq!(t.shard_for(b"{foo}.bar"), ShardId(10));
        assert_eq!(t.shard_for(b"foo"), ShardId(10));
    }
}

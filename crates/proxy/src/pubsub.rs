//! Pub/sub for the proxy's clients, on ember-client's fleet
//! [`Subscription`].
//!
//! A client that subscribes gets a `Subscription` of its own (one
//! connection per shard it listens on, moved to another replica group when
//! its node fails, as docs/client.md describes). The proxy keeps the
//! client's view as Redis keeps it for one connection: which channels,
//! patterns and shard channels it holds, in the order it subscribed, so
//! that the confirmations carry Redis's counts (channels and patterns
//! together; shard channels apart) and RESP2's subscriber mode starts and
//! ends exactly when redis-server's would.
//!
//! A subscribe is answered once every shard it touches has confirmed it,
//! so a message published after the confirmation reaches the client. If
//! some shard has no node that takes the subscription, the client gets an
//! error instead and nothing changes. A message the fleet delivers for a
//! name the client has since dropped is not written.
//!
//! `PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB` ask the nodes
//! and merge their answers (see [`Introspect`]).

use std::collections::{BTreeSet, HashSet};

use bytes::{BufMut, Bytes, BytesMut};
use client::{Client, Error, Frame, Kind, Message, NodeId, ShardId, Subscription};
use route::GroupId;

fn index(kind: Kind) -> usize {
    match kind {
        Kind::Pattern => 1,
        Kind::Shard => 2,
        _ => 0,
    }
}

/// A subscribe or unsubscribe a client asked for.
#[derive(Debug)]
pub(crate) struct Change {
    kind: Kind,
    subscribe: bool,
    names: Vec<Bytes>,
}

impl Change {
    /// The change `args` asks for, if its command (`name`, lowercased) is
    /// one of the six; `None` for any other command.
    pub(crate) fn parse(name: &str, args: Vec<Bytes>) -> Option<Change> {
        let (kind, subscribe) = match name {
            "subscribe" => (Kind::Channel, true),
            "psubscribe" => (Kind::Pattern, true),
            "ssubscribe" => (Kind::Shard, true),
            "unsubscribe" => (Kind::Channel, false),
            "punsubscribe" => (Kind::Pattern, false),
            "sunsubscribe" => (Kind::Shard, false),
            _ => return None,
        };
        let names = args.into_iter().skip(1).collect();
        Some(Change {
            kind,
            subscribe,
            names,
        })
    }

    /// Whether the command is a subscribe without a name (Redis's arity
    /// error).
    pub(crate) fn lacks_names(&self) -> bool {
        self.subscribe && self.names.is_empty()
    }
}

/// Names of one kind, in the order they were subscribed to.
#[derive(Debug, Default)]
struct Names {
    order: Vec<Bytes>,
    set: HashSet<Bytes>,
}

impl Names {
    fn len(&self) -> usize {
        self.order.len()
    }

    fn contains(&self, name: &[u8]) -> bool {
        self.set.contains(name)
    }

    fn insert(&mut self, name: &Bytes) {
        if self.set.insert(name.clone()) {
            self.order.push(name.clone());
        }
    }

    fn remove(&mut self, name: &[u8]) {
        if self.set.remove(name) {
            self.order.retain(|n| n[..] != *name);
        }
    }
}

/// One client's subscriptions.
#[derive(Debug, Default)]
pub(crate) struct PubSub {
    /// Made at the first subscribe; dropped (closing its connections) on
    /// `RESET`.
    sub: Option<Subscription>,
    /// Channels, patterns and shard channels, as the client holds them.
    names: [Names; 3],
}

impl PubSub {
    /// Whether the client holds any subscription: RESP2's subscriber mode.
    pub(crate) fn active(&self) -> bool {
        self.names.iter().any(|n| n.len() > 0)
    }

    /// Whether messages may come (the client subscribed at some point).
    pub(crate) fn listening(&self) -> bool {
        self.sub.is_some()
    }

    /// The count a confirmation of `kind` carries, as Redis counts it:
    /// channels and patterns together, shard channels on their own.
    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.names[2].len(),
            _ => self.names[0].len() + self.names[1].len(),
        }
    }

    /// Forgets every subscription at once (`RESET`): nothing more is
    /// written. The fleet subscription is handed back, for [`close`].
    pub(crate) fn take(&mut self) -> Option<Subscription> {
        std::mem::take(self).sub
    }

    /// Makes `change` on the fleet and writes its confirmations (or, for a
    /// subscribe that some shard could not take, one error) to `out`.
    /// Returns whether it wrote an error.
    pub(crate) async fn apply(
        &mut self,
        client: &Client,
        change: Change,
        resp3: bool,
        out: &mut BytesMut,
    ) -> bool {
        let Change {
            kind,
            subscribe,
            names,
        } = change;
        let slot = index(kind);
        if subscribe {
            let mut seen = HashSet::new();
            let fresh: Vec<Bytes> = names
                .iter()
                .filter(|n| !self.names[slot].contains(n) && seen.insert(*n))
                .cloned()
                .collect();
            if !fresh.is_empty() {
                let sub = self.sub.get_or_insert_with(|| client.subscription());
                if let Err(e) = change_on(sub, kind, true, &fresh).await {
                    // All or nothing: what some shards took is taken back.
                    if let Err(again) = change_on(sub, kind, false, &fresh).await {
                        tracing::debug!("pub/sub: taking back a failed subscribe: {again}");
                    }
                    let text = match e {
                        Error::Redis(text) => text,
                        e => format!("ERR {e}"),
                    };
                    Frame::error(text).encode(out);
                    return true;
                }
            }
            for name in &names {
                self.names[slot].insert(name);
                confirmation(
                    out,
                    resp3,
                    kind.subscribe_command(),
                    Some(name),
                    self.count(kind),
                );
            }
            return false;
        }
        // Unsubscribing: every name of the kind when none is given.
        let names = if names.is_empty() {
            self.names[slot].order.clone()
        } else {
            names
        };
        let held: Vec<Bytes> = {
            let mut seen = HashSet::new();
            names
                .iter()
                .filter(|n| self.names[slot].contains(n) && seen.insert(*n))
                .cloned()
                .collect()
        };
        if !held.is_empty()
            && let Some(sub) = &mut self.sub
            && let Err(e) = change_on(sub, kind, false, &held).await
        {
            // The names are dropped from the subscription all the same;
            // the client no longer hears them.
            tracing::debug!("pub/sub: unsubscribing: {e}");
        }
        let command = kind.unsubscribe_command();
        if names.is_empty() {
            confirmation(out, resp3, command, None, self.count(kind));
        }
        for name in &names {
            self.names[slot].remove(name);
            confirmation(out, resp3, command, Some(name), self.count(kind));
        }
        false
    }

    /// The next message the fleet delivers; never, for a client that has
    /// not subscribed.
    pub(crate) async fn recv(&mut self) -> Message {
        match &mut self.sub {
            Some(sub) => match sub.recv().await {
                Some(message) => message,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    /// A message already waiting, if any.
    pub(crate) fn try_recv(&mut self) -> Option<Message> {
        self.sub.as_mut()?.try_recv()
    }

    /// Writes `message` as redis-server pushes it, if the client still
    /// holds the channel or pattern it came by.
    pub(crate) fn write(&self, message: &Message, resp3: bool, out: &mut BytesMut) {
        let held = match message.kind {
            Kind::Pattern => message
                .pattern
                .as_ref()
                .is_some_and(|p| self.names[1].contains(p)),
            Kind::Shard => self.names[2].contains(&message.channel),
            _ => self.names[0].contains(&message.channel),
        };
        if !held {
            return;
        }
        let parts = 3 + usize::from(message.pattern.is_some());
        header(out, resp3, parts);
        bulk(out, message.kind.message_name().as_bytes());
        if let Some(pattern) = &message.pattern {
            bulk(out, pattern);
        }
        bulk(out, &message.channel);
        bulk(out, &message.payload);
    }
}

/// Takes everything `sub` holds off the nodes, then drops it: once this
/// returns, no node counts the client among its subscribers (what `RESET`
/// promises before it answers).
pub(crate) async fn close(mut sub: Subscription) {
    let none: &[Bytes] = &[];
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        if let Err(e) = change_on(&mut sub, kind, false, none).await {
            tracing::debug!("pub/sub: closing: {e}");
        }
    }
}

/// Subscribes or unsubscribes `names` of `kind` on the fleet.
async fn change_on(
    sub: &mut Subscription,
    kind: Kind,
    subscribe: bool,
    names: &[Bytes],
) -> Result<(), Error> {
    match (kind, subscribe) {
        (Kind::Pattern, true) => sub.psubscribe(names).await,
        (Kind::Pattern, false) => sub.punsubscribe(names).await,
        (Kind::Shard, true) => sub.ssubscribe(names).await,
        (Kind::Shard, false) => sub.sunsubscribe(names).await,
        (_, true) => sub.subscribe(names).await,
        (_, false) => sub.unsubscribe(names).await,
    }
}

/// An array header in RESP2, a push header in RESP3.
fn header(out: &mut BytesMut, resp3: bool, len: usize) {
    out.put_u8(if resp3 { b'>' } else { b'*' });
    out.put_slice(len.to_string().as_bytes());
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, data: &[u8]) {
    out.put_u8(b'$');
    out.put_slice(data.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// `[command, name, count]`; with no name (an unsubscribe from all when
/// nothing was held), a null in its place.
fn confirmation(
    out: &mut BytesMut,
    resp3: bool,
    command: &str,
    name: Option<&Bytes>,
    count: usize,
) {
    header(out, resp3, 3);
    bulk(out, command.as_bytes());
    match name {
        Some(name) => bulk(out, name),
        None if resp3 => out.put_slice(b"_\r\n"),
        None => out.put_slice(b"$-1\r\n"),
    }
    out.put_u8(b':');
    out.put_slice(count.to_string().as_bytes());
    out.put_slice(b"\r\n");
}

/// The `PING` answer in RESP2's subscriber mode: `["pong", arg or ""]`.
pub(crate) fn subscriber_pong(arg: Option<Bytes>) -> Frame {
    Frame::Array(vec![
        Frame::bulk("pong"),
        Frame::Bulk(arg.unwrap_or_default()),
    ])
}

/// The error for a command RESP2's subscriber mode does not allow;
/// `fullname` as Redis names it (`get`, `client|id`).
pub(crate) fn not_in_subscriber_mode(fullname: &str) -> Frame {
    Frame::error(format!(
        "ERR Can't execute '{fullname}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

/// A `PUBSUB` question answered across the fleet. Subscriptions made
/// through ember-client (and so through the proxy) live on one node per
/// shard: a channel's on its shard's node in one replica group, a
/// pattern's on every shard, in one group each. So:
///
/// - `CHANNELS`, `SHARDCHANNELS`: the union of every node's answer,
///   sorted.
/// - `NUMSUB`, `SHARDNUMSUB`: per channel, the sum over the replica groups
///   of its shard's nodes, the same nodes a `PUBLISH` reaches (and so the
///   count `PUBLISH` answers, patterns aside).
/// - `NUMPAT`: per shard, the sum over its groups; then the largest of the
///   shards (each fleet pattern subscription is on every shard).
///
/// Nodes the client believes down are not asked; when no node answers,
/// the first error is the answer.
#[derive(Debug)]
pub(crate) enum Introspect {
    /// `CHANNELS [pattern]` or `SHARDCHANNELS [pattern]`: the command to
    /// send every node as it came.
    Channels(Vec<Bytes>),
    /// `NUMSUB` or `SHARDNUMSUB`: the subcommand and the channels.
    NumSub(Bytes, Vec<Bytes>),
    /// `NUMPAT`.
    NumPat,
    /// Any other form (`HELP`, the errors): the first node up answers it,
    /// as Redis would.
    One(Vec<Bytes>),
}

impl Introspect {
    /// The question `args` (`PUBSUB ...`) asks.
    pub(crate) fn parse(args: Vec<Bytes>) -> Introspect {
        let sub = args
            .get(1)
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_default();
        match (&sub[..], args.len()) {
            (b"channels" | b"shardchannels", 2 | 3) => Introspect::Channels(args),
            (b"numsub" | b"shardnumsub", _) => {
                let sub = args.get(1).cloned().unwrap_or_default();
                Introspect::NumSub(sub, args.into_iter().skip(2).collect())
            }
            (b"numpat", 2) => Introspect::NumPat,
            _ => Introspect::One(args),
        }
    }

    /// Asks the nodes and merges their answers.
    pub(crate) async fn run(self, client: Client) -> Frame {
        let topology = client.topology().clone();
        let mut ask = Asker {
            client,
            answered: false,
            first_error: None,
        };
        let answer = match self {
            Introspect::One(args) => {
                let nodes: Vec<_> = topology.nodes().map(|(n, _)| n).collect();
                let up = nodes.iter().copied().find(|&n| ask.client.is_up(n));
                let Some(node) = up.or(nodes.first().copied()) else {
                    return Frame::error("ERR no node of the fleet is up");
                };
                return crate::session::answer(ask.client.cmd_on(node, args).await);
            }
            Introspect::Channels(args) => {
                let mut all = BTreeSet::new();
                let nodes: Vec<_> = topology.nodes().map(|(n, _)| n).collect();
                for node in nodes {
                    for item in ask.ask(node, args.clone()).await.unwrap_or_default() {
                        if let Frame::Bulk(name) = item {
                            all.insert(name);
                        }
                    }
                }
                Frame::Array(all.into_iter().map(Frame::Bulk).collect())
            }
            Introspect::NumSub(sub, channels) => {
                let mut counts = vec![0i64; channels.len()];
                for s in 0..topology.shards() {
                    let shard = ShardId(s);
                    let here: Vec<usize> = (0..channels.len())
                        .filter(|&i| topology.shard_for(&channels[i]) == shard)
                        .collect();
                    if here.is_empty() {
                        continue;
                    }
                    let mut args = vec![Bytes::from_static(b"PUBSUB"), sub.clone()];
                    args.extend(here.iter().map(|&i| channels[i].clone()));
                    for g in 0..topology.groups() {
                        let Some(node) = topology.node(GroupId(g), shard) else {
                            continue;
                        };
                        let items = ask.ask(node, args.clone()).await.unwrap_or_default();
                        // [channel, count, channel, count...] in the order asked.
                        for (&i, pair) in here.iter().zip(items.chunks(2)) {
                            if let [_, Frame::Integer(n)] = pair {
                                counts[i] = counts[i].saturating_add(*n);
                            }
                        }
                    }
                }
                if channels.is_empty() {
                    ask.answered = true;
                }
                let mut items = Vec::with_capacity(2 * channels.len());
                for (channel, n) in channels.into_iter().zip(counts) {
                    items.push(Frame::Bulk(channel));
                    items.push(Frame::Integer(n));
                }
                Frame::Array(items)
            }
            Introspect::NumPat => {
                let mut most = 0i64;
                for s in 0..topology.shards() {
                    let mut sum = 0i64;
                    for g in 0..topology.groups() {
                        let Some(node) = topology.node(GroupId(g), ShardId(s)) else {
                            continue;
                        };
                        let args =
                            vec![Bytes::from_static(b"PUBSUB"), Bytes::from_static(b"NUMPAT")];
                        if let Some([Frame::Integer(n)]) = ask.ask(node, args).await.as_deref() {
                            sum = sum.saturating_add(*n);
                        }
                    }
                    most = most.max(sum);
                }
                Frame::Integer(most)
            }
        };
        if ask.answered {
            answer
        } else {
            ask.first_error
                .unwrap_or_else(|| Frame::error("ERR no node of the fleet is up"))
        }
    }
}

/// Asks nodes one `PUBSUB` question each, remembering whether any
/// answered and the first failure.
struct Asker {
    client: Client,
    answered: bool,
    first_error: Option<Frame>,
}

impl Asker {
    /// The node's answer as a list (an integer as a list of one); `None`
    /// from a node that is down or failed.
    async fn ask(&mut self, node: NodeId, args: Vec<Bytes>) -> Option<Vec<Frame>> {
        if !self.client.is_up(node) {
            return None;
        }
        match self.client.cmd_on(node, args).await {
            Ok(Frame::Array(items)) => {
                self.answered = true;
                Some(items)
            }
            Ok(Frame::Integer(n)) => {
                self.answered = true;
                Some(vec![Frame::Integer(n)])
            }
            Ok(other) => {
                self.first_error.get_or_insert(other);
                None
            }
            Err(e) => {
                self.first_error
                    .get_or_insert_with(|| crate::session::answer(Err(e)));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn frames_as_redis_writes_them() {
        let mut out = BytesMut::new();
        confirmation(&mut out, false, "subscribe", Some(&b("a")), 1);
        confirmation(&mut out, true, "punsubscribe", None, 0);
        confirmation(&mut out, false, "unsubscribe", None, 2);
        assert_eq!(
            &out[..],
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n\
              >3\r\n$12\r\npunsubscribe\r\n_\r\n:0\r\n\
              *3\r\n$11\r\nunsubscribe\r\n$-1\r\n:2\r\n"
        );
    }

    #[test]
    fn names_keep_their_order() {
        let mut names = Names::default();
        for n in ["b", "a", "b", "c"] {
            names.insert(&b(n));
        }
        names.remove(b"a");
        assert_eq!(names.order, vec![b("b"), b("c")]);
        assert!(names.contains(b"c") && !names.contains(b"a"));
    }

    #[test]
    fn introspection_forms() {
        let args = |s: &[&str]| s.iter().map(|a| b(a)).collect::<Vec<_>>();
        assert!(matches!(
            Introspect::parse(args(&["PUBSUB", "Channels", "a*"])),
            Introspect::Channels(_)
        ));
        assert!(matches!(
            Introspect::parse(args(&["pubsub", "numsub"])),
            Introspect::NumSub(_, c) if c.is_empty()
        ));
        assert!(matches!(
            Introspect::parse(args(&["PUBSUB", "NUMPAT"])),
            Introspect::NumPat
        ));
        for one in [
            &["PUBSUB", "CHANNELS", "a", "b"][..],
            &["PUBSUB", "NUMPAT", "x"],
            &["PUBSUB", "HELP"],
            &["PUBSUB"],
        ] {
            assert!(matches!(Introspect::parse(args(one)), Introspect::One(_)));
        }
    }

    #[test]
    fn changes() {
        let args = |s: &[&str]| s.iter().map(|a| b(a)).collect::<Vec<_>>();
        let c = Change::parse("psubscribe", args(&["PSUBSCRIBE", "a*"])).unwrap();
        assert_eq!(
            (c.kind, c.subscribe, c.names.len()),
            (Kind::Pattern, true, 1)
        );
        assert!(
            Change::parse("subscribe", args(&["SUBSCRIBE"]))
                .unwrap()
                .lacks_names()
        );
        assert!(
            !Change::parse("unsubscribe", args(&["UNSUBSCRIBE"]))
                .unwrap()
                .lacks_names()
        );
        assert!(Change::parse("publish", args(&["PUBLISH", "a", "b"])).is_none());
    }
}

//! `EXEC` of a transaction that subscribes or unsubscribes, as Redis 7.0
//! runs one: `SUBSCRIBE`, `PSUBSCRIBE` and the three unsubscribes queue
//! like any command, and `EXEC`'s array holds their confirmations where
//! their answers would be (one array header per command, but as many
//! confirmations as names: Redis's own reply, byte for byte, arrays in
//! RESP2 and pushes in RESP3). `SSUBSCRIBE` queues too and fails at `EXEC`
//! with Redis's error.
//!
//! The subscriptions are the client's fleet subscription's, made before
//! the other commands run as one transaction on their shard; the answer
//! is written once both are done. What differs from one Redis server: a
//! message the transaction itself publishes to a channel it subscribed
//! comes after `EXEC`'s answer, where Redis writes it inside.

use bytes::{Bytes, BytesMut};
use client::{Client, Frame, Pending};

use crate::pubsub::{Change, PubSub};
use crate::resp3::Shape;

/// One queued command's place in `EXEC`'s answer.
#[derive(Debug)]
enum Part {
    Change(Change),
    Refused(Frame),
    /// The next answer of the transaction; with its RESP3 shape.
    Fleet(Option<Shape>),
}

/// A transaction with subscribes or unsubscribes in it, sent.
#[derive(Debug)]
pub(crate) struct PubSubExec {
    parts: Vec<Part>,
    /// The other commands, as one transaction; none if there are none.
    pending: Option<Pending>,
}

/// Whether a queued command (name first) is one `EXEC` runs here.
pub(crate) fn is_pubsub(args: &[Bytes]) -> bool {
    let name = args
        .first()
        .map(|n| n.to_ascii_lowercase())
        .unwrap_or_default();
    matches!(
        &name[..],
        b"subscribe"
            | b"psubscribe"
            | b"ssubscribe"
            | b"unsubscribe"
            | b"punsubscribe"
            | b"sunsubscribe"
    )
}

impl PubSubExec {
    /// Sends the queued commands that are not pub/sub as one transaction.
    pub(crate) fn start(client: &Client, queued: Vec<Vec<Bytes>>, resp3: bool) -> PubSubExec {
        let mut parts = Vec::with_capacity(queued.len());
        let mut others = Vec::new();
        for args in queued {
            let name = String::from_utf8_lossy(args.first().map_or(&b""[..], |n| &n[..]))
                .to_ascii_lowercase();
            if name == "ssubscribe" {
                parts.push(Part::Refused(Frame::error(
                    "ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client",
                )));
                continue;
            }
            match Change::parse(&name, args.clone()) {
                Some(change) => parts.push(Part::Change(change)),
                None => {
                    parts.push(Part::Fleet(resp3.then(|| Shape::of(&args))));
                    others.push(args);
                }
            }
        }
        let pending = (!others.is_empty()).then(|| client.start_transaction(others));
        PubSubExec { parts, pending }
    }

    /// Makes the changes, waits for the transaction, and writes `EXEC`'s
    /// answer to `out`. Returns how many error replies it holds.
    pub(crate) async fn run(
        self,
        client: &Client,
        pubsub: &mut PubSub,
        resp3: bool,
        out: &mut BytesMut,
    ) -> u64 {
        let mut errors = 0;
        // The changes first, each into its own buffer: messages published
        // after EXEC's answer must reach the client.
        let mut confirmations = Vec::new();
        let mut parts = Vec::with_capacity(self.parts.len());
        for part in self.parts {
            match part {
                Part::Change(change) => {
                    let mut buf = BytesMut::new();
                    errors += u64::from(pubsub.apply(client, change, resp3, &mut buf).await);
                    confirmations.push(buf);
                    parts.push(None);
                }
                other => parts.push(Some(other)),
            }
        }
        let answers = match self.pending {
            Some(pending) => crate::session::answer(pending.await),
            None => Frame::Array(Vec::new()),
        };
        // A transaction that failed as a whole (its shard unreachable)
        // fails each of its commands.
        let (mut items, whole) = match answers {
            Frame::Array(items) => (items.into_iter(), None),
            other => (Vec::new().into_iter(), Some(other)),
        };
        let mut confirmations = confirmations.into_iter();
        out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
        for part in parts {
            let frame = match part {
                None => {
                    if let Some(buf) = confirmations.next() {
                        out.extend_from_slice(&buf);
                    }
                    continue;
                }
                Some(Part::Refused(frame)) => frame,
                Some(Part::Fleet(shape)) => {
                    let frame = items
                        .next()
                        .or_else(|| whole.clone())
                        .unwrap_or(Frame::NullBulk);
                    if frame.is_error() {
                        errors += 1;
                    }
                    match shape {
                        Some(shape) => crate::resp3::write(out, &frame, &shape),
                        None => frame.encode(out),
                    }
                    continue;
                }
                // Made above.
                Some(Part::Change(_)) => continue,
            };
            errors += u64::from(frame.is_error());
            frame.encode(out);
        }
        errors
    }
}

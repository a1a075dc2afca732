//! `ember-cli SUBSCRIBE ch...`, `PSUBSCRIBE pattern...` and `SSUBSCRIBE
//! ch...`: subscribes across the fleet and prints what arrives as
//! `redis-cli` does, until interrupted.
//!
//! `redis-cli` prints a confirmation per name, then every message, each as
//! a three- or four-element array; formatted, it first says
//! `Reading messages... (press Ctrl-C to quit)`. It installs no handler for
//! `SIGINT` in this mode, so Ctrl-C ends it as the signal does (a shell
//! sees status 130); `ember-cli` does the same, and flushes every message
//! as it prints it so that nothing is lost to the signal.

use std::collections::BTreeSet;

use bytes::Bytes;
use resp::Frame;

use super::{Io, print};
use crate::{Client, Kind};

/// The kind of subscription a command asks for, if it is one.
pub(super) fn kind(command: &[u8]) -> Option<Kind> {
    [Kind::Channel, Kind::Pattern, Kind::Shard]
        .into_iter()
        .find(|k| command.eq_ignore_ascii_case(k.subscribe_command().as_bytes()))
}

/// Subscribes to `names` and prints messages until the process is
/// interrupted; returns 1 if the subscription failed.
pub(super) async fn run(
    client: Client,
    kind: Kind,
    names: Vec<Bytes>,
    raw: bool,
    io: Io<'_>,
) -> u8 {
    let mut out = Vec::new();
    if names.is_empty() {
        let text = format!(
            "ERR wrong number of arguments for '{}' command",
            kind.subscribe_command()
        );
        print(&Err(crate::Error::Redis(text)), raw, &mut out);
        let _ = io.stdout.write_all(&out).and_then(|()| io.stdout.flush());
        return 0;
    }
    let mut sub = client.subscription();
    let subscribed = match kind {
        Kind::Pattern => sub.psubscribe(&names).await,
        Kind::Shard => sub.ssubscribe(&names).await,
        _ => sub.subscribe(&names).await,
    };
    if let Err(e) = subscribed {
        print(&Err(e), raw, &mut out);
        let _ = io.stdout.write_all(&out).and_then(|()| io.stdout.flush());
        return 1;
    }
    if !raw {
        out.extend_from_slice(b"Reading messages... (press Ctrl-C to quit)\n");
    }
    // One confirmation per name, counted as the server counts its
    // subscriptions (a name given twice is counted once).
    let mut seen = BTreeSet::new();
    for name in names {
        seen.insert(name.clone());
        let confirmation = Frame::Array(vec![
            Frame::Bulk(Bytes::from_static(kind.subscribe_command().as_bytes())),
            Frame::Bulk(name),
            Frame::Integer(seen.len() as i64),
        ]);
        print(&Ok(confirmation), raw, &mut out);
    }
    if io
        .stdout
        .write_all(&out)
        .and_then(|()| io.stdout.flush())
        .is_err()
    {
        return 1;
    }
    while let Some(message) = sub.recv().await {
        out.clear();
        print(&Ok(message.to_frame()), raw, &mut out);
        // A closed standard output (`| head`) ends it, as for redis-cli.
        if io
            .stdout
            .write_all(&out)
            .and_then(|()| io.stdout.flush())
            .is_err()
        {
            return 0;
        }
    }
    1
}

//! DEBUG DIGEST and DEBUG DIGEST-VALUE: Redis's SHA1 digests of the
//! dataset and of values, computed as Redis computes them, so that two
//! servers with the same data give the same digest. Elements of
//! unordered types are combined by xor, ordered ones (a list, the parts
//! of a key) by mixing (`SHA1(digest xor SHA1(data))`).
//!
//! Keys past their deadline but not yet reclaimed are left out (Redis
//! counts them until they are deleted).

use resp::Request;
use store::value::Value;

use super::{CmdResult, Ctx};
use crate::db::Entry;
use crate::rdb::Snapshot;

type Digest = [u8; 20];

fn sha1(data: &[u8]) -> Digest {
    sha1_smol::Sha1::from(data).digest().bytes()
}

/// `digest ^= SHA1(data)`.
fn xor(digest: &mut Digest, data: &[u8]) {
    for (d, h) in digest.iter_mut().zip(sha1(data)) {
        *d ^= h;
    }
}

/// `digest = SHA1(digest ^ SHA1(data))`.
fn mix(digest: &mut Digest, data: &[u8]) {
    xor(digest, data);
    *digest = sha1(digest);
}

/// Redis's `xorObjectDigest`: the value's type, contents and whether it
/// has a deadline, mixed into `digest`.
fn mix_value(digest: &mut Digest, entry: &Entry) {
    let ty: u32 = match &entry.value {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
    };
    mix(digest, &ty.to_be_bytes());
    match &entry.value {
        Value::Str(s) => mix(digest, s.bytes()),
        Value::List(list) => list.iter().for_each(|e| mix(digest, e)),
        Value::Set(set) => set.iter().for_each(|m| m.with(|b| xor(digest, b))),
        Value::ZSet(zset) => {
            for (member, score) in zset.iter() {
                let mut ele = [0u8; 20];
                mix(&mut ele, member);
                mix(&mut ele, store::zset::format_score(score).as_bytes());
                xor(digest, &ele);
            }
        }
        Value::Hash(hash) => {
            for (field, value) in hash.iter() {
                let mut ele = [0u8; 20];
                mix(&mut ele, field);
                mix(&mut ele, value);
                xor(digest, &ele);
            }
        }
    }
    if entry.expire_at().is_some() {
        xor(digest, b"!!expire!!");
    }
}

fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// DEBUG DIGEST: every database's keys, the database's number mixed in
/// first; 40 zeros for an empty dataset.
pub(super) fn debug_digest(ctx: &mut Ctx<'_>) -> CmdResult {
    let (snapshot, ()) = Snapshot::take(&mut ctx.shards, || ());
    let mut total = [0u8; 20];
    for (db, keys) in snapshot.dbs.iter().enumerate() {
        if keys.is_empty() {
            continue;
        }
        mix(&mut total, &(db as u32).to_be_bytes());
        for (key, entry) in keys {
            let mut d = [0u8; 20];
            mix(&mut d, key);
            mix_value(&mut d, entry);
            xor(&mut total, &d);
        }
    }
    ctx.reply.simple(&hex(&total));
    Ok(())
}

/// DEBUG DIGEST-VALUE key...: each value's digest in the client's
/// database (40 zeros for a missing key).
pub(super) fn debug_digest_value(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let (snapshot, ()) = Snapshot::take(&mut ctx.shards, || ());
    let keys = snapshot.dbs.get(ctx.client.db);
    ctx.reply.array(req.len() - 2);
    for wanted in req.iter().skip(2) {
        let mut d = [0u8; 20];
        if let Some((_, entry)) = keys.and_then(|k| k.iter().find(|(key, _)| &key[..] == wanted)) {
            mix_value(&mut d, entry);
        }
        ctx.reply.simple(&hex(&d));
    }
    Ok(())
}

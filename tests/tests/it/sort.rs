//! SORT and SORT_RO against a real `redis-server` 7.0, reply by reply:
//! lists and sets (intsets, and string sets whose table order differs from
//! Redis's, compared as multisets where no order is asked for), numeric and
//! ALPHA orders, DESC, LIMIT's clamping, BY patterns (strings, hash fields,
//! missing weights, constant patterns), GET patterns (`#`, strings, hash
//! fields, missing keys), STORE (a list, the destination deleted when the
//! result is empty), and the errors.

use crate::diff::{Pair, Setup};

#[test]
fn sort_matches_redis() {
    let mut pair = Pair::start(&Setup::PLAIN);
    pair.check(&[
        "RPUSH nums 3 1 2 10 -1.5 1e2 2",
        "RPUSH words pear apple fig apple \"\"",
        "RPUSH mixed 1 x 2",
        "SADD iset 5 3 9 1",
        "SADD sset b a c d",
        "MSET w_b 3 w_a 1 w_c 2 w_3 30 w_1 10 w_9 0",
        "MSET name_a Ada name_b Bob name_5 five",
        "HSET h_a age 37 city Oslo",
        "HSET h_b age 12",
        "HSET h_c age x",
        "SET str v",
        "RPUSH old stale",
        "ZADD zs 3 c 1 a 2 b 5 e 4 d",
        "EXPIRE old 1000",
        // Replies marked `sorted ` are compared as multisets: no order is
        // asked for, so each set's own table order shows.
        "SORT nums",
        "SORT nums DESC",
        "SORT nums LIMIT 1 3",
        "SORT nums LIMIT -5 2",
        "SORT nums LIMIT 5 -1",
        "SORT nums LIMIT 100 3",
        "SORT nums LIMIT 0 0",
        "SORT nums ALPHA",
        "SORT words",
        "SORT words ALPHA",
        "SORT words ALPHA DESC LIMIT 1 2",
        "SORT mixed",
        "SORT iset",
        "SORT iset DESC",
        "SORT sset ALPHA",
        "SORT sset ALPHA DESC",
        "SORT sset",
        "sorted SORT sset BY nosort",
        "SORT iset BY nosort",
        "SORT nums BY nosort",
        "SORT nums BY nosort DESC LIMIT 1 3",
        "SORT sset BY w_*",
        "SORT sset BY w_* DESC",
        "SORT sset BY w_* ALPHA",
        "SORT iset BY w_*",
        "SORT iset BY w_* GET # GET name_* GET w_*",
        "SORT sset BY h_*->age GET h_*->city GET #",
        "SORT sset BY w_* GET nostar",
        "SORT sset BY w_* LIMIT 1 2 GET name_*",
        // Every weight missing: all equal, so the order is each table's own.
        "sorted SORT sset BY h_*-> ALPHA",
        "SORT zs",
        "SORT zs ALPHA DESC",
        "SORT zs BY nosort",
        "SORT zs BY nosort DESC",
        "SORT zs BY nosort LIMIT 1 2",
        "SORT zs BY nosort DESC LIMIT 1 2",
        "SORT zs BY nosort LIMIT 9 2",
        "SORT zs BY w_* ALPHA STORE zdest",
        "LRANGE zdest 0 -1",
        "SORT missing",
        "SORT missing BY w_* GET #",
        "SORT_RO nums DESC",
        "SORT nums STORE dest",
        "LRANGE dest 0 -1",
        "SORT sset BY nosort STORE dest2",
        "LRANGE dest2 0 -1",
        "SORT iset BY w_* GET name_* STORE dest3",
        "LRANGE dest3 0 -1",
        "SORT missing STORE dest",
        "EXISTS dest",
        "SORT nums STORE old",
        "TTL old",
        // The keys COMMAND GETKEYS (and a transaction) finds.
        "COMMAND GETKEYS SORT abc STORE def",
        "COMMAND GETKEYS SORT abc STORE x store y STORE def",
        "COMMAND GETKEYS SORT abc LIMIT store x BY store GET s",
        "COMMAND GETKEYS SORT abc STORE",
        "COMMAND GETKEYS LMPOP 2 a b LEFT",
        "COMMAND GETKEYS SINTERCARD 2 a b LIMIT 1",
        "COMMAND GETKEYS MSET a 1 b 2",
        "COMMAND GETKEYS GET",
        "COMMAND GETKEYS PING",
        "COMMAND GETKEYS NOSUCH x",
        "COMMAND GETKEYS MIGRATE h 1 \"\" 0 5 KEYS a b",
        // Errors.
        "SORT str",
        "SORT words",
        "SORT sset BY h_*->age",
        "SORT nums LIMIT 1",
        "SORT nums LIMIT x 1",
        "SORT nums BOGUS",
        "SORT nums GET",
        "SORT_RO nums STORE d",
        "SORT",
        "SORT_RO",
    ]);
}

/// SORT inside MULTI with BY and GET patterns on keys of other shards: the
/// transaction holds every shard, and the answers are Redis's.
#[test]
fn sort_with_patterns_inside_a_transaction() {
    Pair::start(&Setup::PLAIN).check(&[
        "SADD ids 1 2 3",
        "MSET rank_1 30 rank_2 10 rank_3 20",
        "MULTI",
        "SORT ids BY rank_* GET rank_*",
        "SORT ids BY rank_* STORE out",
        "LRANGE out 0 -1",
        "EXEC",
    ]);
}

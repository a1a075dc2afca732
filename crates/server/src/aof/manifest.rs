//! The manifest of a multi-part AOF, Redis 7.0's format: one line a file,
//! `file <name> seq <n> type <b|h|i>`, the base first, then history files,
//! then the incremental files in the order they are replayed.
//!
//! File names follow Redis's rules, so either server can take over the
//! other's directory: `<appendfilename>.<seq>.base.rdb` (or `.base.aof`
//! without the RDB preamble), `<appendfilename>.<seq>.incr.aof`, and the
//! manifest itself `<appendfilename>.manifest`.

/// One file the manifest names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileInfo {
    /// Its name inside `appenddirname`: never a path.
    pub(crate) name: String,
    pub(crate) seq: i64,
    pub(crate) kind: Kind,
}

/// What a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The snapshot the incremental files continue (`b`).
    Base,
    /// Superseded by a rewrite, about to be deleted (`h`).
    History,
    /// Commands appended after the base (`i`).
    Incr,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Base => 'b',
            Kind::History => 'h',
            Kind::Incr => 'i',
        }
    }
}

/// The files of an AOF and the sequence numbers the next ones take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) base: Option<FileInfo>,
    pub(crate) history: Vec<FileInfo>,
    pub(crate) incr: Vec<FileInfo>,
    /// The base sequence number last used.
    pub(crate) base_seq: i64,
    /// The incremental sequence number last used.
    pub(crate) incr_seq: i64,
}

impl Manifest {
    /// Parses a manifest; the error is Redis's reason, with the line when
    /// there is one.
    pub(crate) fn parse(text: &[u8]) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        let mut lines = 0;
        for (n, raw) in text.split_inclusive(|&b| b == b'\n').enumerate() {
            lines += 1;
            if raw.first() == Some(&b'#') {
                continue;
            }
            let at = |reason: &str| {
                format!(
                    "{reason} (at line {}: '{}')",
                    n + 1,
                    String::from_utf8_lossy(raw).trim_end()
                )
            };
            if raw.len() > 1024 {
                return Err(at("The AOF manifest file contains too long line"));
            }
            let line = raw.trim_ascii();
            if line.is_empty() {
                return Err(at("Invalid AOF manifest file format"));
            }
            let Some(args) = resp::split_args(line) else {
                return Err(at("Invalid AOF manifest file format"));
            };
            // More than six words is allowed, for newer versions' fields.
            if args.len() < 6 || !args.len().is_multiple_of(2) {
                return Err(at("Invalid AOF manifest file format"));
            }
            let (mut name, mut seq, mut kind) = (None, 0i64, None);
            for pair in args.chunks(2) {
                let (k, v) = (&pair[0], &pair[1]);
                if k.eq_ignore_ascii_case(b"file") {
                    let v = String::from_utf8_lossy(v).into_owned();
                    if v.contains('/') {
                        return Err(at("File can't be a path, just a filename"));
                    }
                    name = Some(v);
                } else if k.eq_ignore_ascii_case(b"seq") {
                    // atoll: leading digits, 0 when there are none.
                    seq = super::load::atoi(v);
                } else if k.eq_ignore_ascii_case(b"type") {
                    kind = v.first().copied();
                }
            }
            let (Some(name), Some(kind)) = (name, kind) else {
                return Err(at("Invalid AOF manifest file format"));
            };
            if seq == 0 || name.is_empty() {
                return Err(at("Invalid AOF manifest file format"));
            }
            match kind {
                b'b' => {
                    if m.base.is_some() {
                        return Err(at("Found duplicate base file information"));
                    }
                    m.base_seq = seq;
                    m.base = Some(FileInfo {
                        name,
                        seq,
                        kind: Kind::Base,
                    });
                }
                b'h' => m.history.push(FileInfo {
                    name,
                    seq,
                    kind: Kind::History,
                }),
                b'i' => {
                    if seq <= m.incr_seq {
                        return Err(at("Found a non-monotonic sequence number"));
                    }
                    m.incr_seq = seq;
                    m.incr.push(FileInfo {
                        name,
                        seq,
                        kind: Kind::Incr,
                    });
                }
                _ => return Err(at("Unknown AOF file type")),
            }
        }
        if lines == 0 {
            return Err("Found an empty AOF manifest".into());
        }
        Ok(m)
    }

    /// The manifest's text, as Redis writes it.
    pub(crate) fn format(&self) -> String {
        let mut out = String::new();
        for f in self.base.iter().chain(&self.history).chain(&self.incr) {
            let name = if needs_repr(&f.name) {
                repr(&f.name)
            } else {
                f.name.clone()
            };
            out.push_str(&format!(
                "file {name} seq {} type {}\n",
                f.seq,
                f.kind.letter()
            ));
        }
        out
    }

    /// A new base's name (the old base becomes history), as a rewrite
    /// names it: `<prefix>.<seq>.base.rdb` or `.base.aof`.
    pub(crate) fn new_base(&mut self, prefix: &str, rdb: bool) -> String {
        if let Some(mut old) = self.base.take() {
            old.kind = Kind::History;
            self.history.insert(0, old);
        }
        self.base_seq += 1;
        let name = format!(
            "{prefix}.{}.base.{}",
            self.base_seq,
            if rdb { "rdb" } else { "aof" }
        );
        self.base = Some(FileInfo {
            name: name.clone(),
            seq: self.base_seq,
            kind: Kind::Base,
        });
        name
    }

    /// A new incremental file's name, added at the end.
    pub(crate) fn new_incr(&mut self, prefix: &str) -> String {
        self.incr_seq += 1;
        let name = format!("{prefix}.{}.incr.aof", self.incr_seq);
        self.incr.push(FileInfo {
            name: name.clone(),
            seq: self.incr_seq,
            kind: Kind::Incr,
        });
        name
    }

    /// After a rewrite: every incremental file but the last (the one being
    /// written) becomes history.
    pub(crate) fn retire_incr_but_last(&mut self) {
        let keep = self.incr.pop();
        for mut f in self.incr.drain(..).rev() {
            f.kind = Kind::History;
            self.history.insert(0, f);
        }
        self.incr.extend(keep);
    }

    /// The files to replay, in order: the base, then the incremental ones.
    pub(crate) fn replay(&self) -> impl Iterator<Item = &FileInfo> {
        self.base.iter().chain(&self.incr)
    }
}

/// Whether Redis would quote a name (`sdsneedsrepr`).
fn needs_repr(name: &str) -> bool {
    name.bytes().any(|b| {
        b == b'\\'
            || b == b'"'
            || b == b'\n'
            || b == b'\r'
            || b == b'\t'
            || b == 0x07
            || b == 0x08
            || !(0x21..0x7f).contains(&b)
    })
}

/// A quoted name as `sdscatrepr` writes it.
fn repr(name: &str) -> String {
    let mut out = String::new();
    crate::reply::repr(&mut out, name.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_manifest_round_trips() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\n\
                    file appendonly.aof.1.incr.aof seq 1 type i\n\
                    file appendonly.aof.2.incr.aof seq 2 type i\n";
        let m = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(m.base_seq, 1);
        assert_eq!(m.incr_seq, 2);
        assert_eq!(m.format(), text);
        let names: Vec<&str> = m.replay().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "appendonly.aof.1.base.rdb",
                "appendonly.aof.1.incr.aof",
                "appendonly.aof.2.incr.aof"
            ]
        );
    }

    #[test]
    fn a_rewrite_moves_files_to_history() {
        let mut m = Manifest::default();
        assert_eq!(m.new_base("a.aof", true), "a.aof.1.base.rdb");
        assert_eq!(m.new_incr("a.aof"), "a.aof.1.incr.aof");
        assert_eq!(m.new_incr("a.aof"), "a.aof.2.incr.aof");
        assert_eq!(m.new_base("a.aof", false), "a.aof.2.base.aof");
        m.retire_incr_but_last();
        assert_eq!(
            m.format(),
            // Redis's order: each file retired goes to the history's head.
            "file a.aof.2.base.aof seq 2 type b\n\
             file a.aof.1.incr.aof seq 1 type h\n\
             file a.aof.1.base.rdb seq 1 type h\n\
             file a.aof.2.incr.aof seq 2 type i\n"
        );
        m.history.clear();
        let again = Manifest::parse(m.format().as_bytes()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn bad_manifests_are_refused_with_redis_reasons() {
        let cases: &[(&str, &str)] = &[
            ("", "Found an empty AOF manifest"),
            ("\n", "Invalid AOF manifest file format"),
            ("file a seq 1\n", "Invalid AOF manifest file format"),
            ("file a seq 1 type x\n", "Unknown AOF file type"),
            ("file a/b seq 1 type i\n", "File can't be a path"),
            (
                "file a seq 1 type b\nfile b seq 2 type b\n",
                "Found duplicate base file information",
            ),
            (
                "file a seq 2 type i\nfile b seq 1 type i\n",
                "Found a non-monotonic sequence number",
            ),
            ("file a seq x type i\n", "Invalid AOF manifest file format"),
        ];
        for (text, want) in cases {
            let err = Manifest::parse(text.as_bytes()).unwrap_err();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
        // Comments and extra fields are allowed.
        let m = Manifest::parse(b"# hi\nfile a seq 1 type i extra 1\n").unwrap();
        assert_eq!(m.incr.len(), 1);
    }

    #[test]
    fn odd_names_are_quoted() {
        let mut m = Manifest::default();
        m.new_incr("my aof");
        assert_eq!(m.format(), "file \"my aof.1.incr.aof\" seq 1 type i\n");
        let again = Manifest::parse(m.format().as_bytes()).unwrap();
        assert_eq!(again.incr[0].name, "my aof.1.incr.aof");
    }
}

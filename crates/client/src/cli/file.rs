//! `--topology FILE`: a topology and its settings in TOML.
//!
//! ```toml
//! # One list per replica group, each in shard order.
//! replicas = [
//!     ["10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"],
//!     ["10.0.1.1:6379", "10.0.1.2:6379", "10.0.1.3:6379"],
//! ]
//! # Optional, with the flags' names and values:
//! write_policy = "quorum"
//! read_preference = "round-robin"
//! timeout = "500ms"
//! hash_tags = true
//! ```

use serde::Deserialize;

/// The file, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopologyFile {
    pub(crate) replicas: Vec<Vec<String>>,
    pub(crate) write_policy: Option<String>,
    pub(crate) read_preference: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) hash_tags: Option<bool>,
}

impl TopologyFile {
    pub(crate) fn parse(text: &str) -> Result<TopologyFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let file = TopologyFile::parse(
            r#"
            # two groups
            replicas = [
                ["a:1", "b:1"],
                ["c:1", "d:1"],
            ]
            write_policy = "all"
            hash_tags = true
            "#,
        )
        .unwrap();
        assert_eq!(file.replicas, [["a:1", "b:1"], ["c:1", "d:1"]]);
        assert_eq!(file.write_policy.as_deref(), Some("all"));
        assert_eq!(file.hash_tags, Some(true));
        assert_eq!(file.timeout, None);
    }

    #[test]
    fn refuses_mistakes() {
        let err = TopologyFile::parse("replica = [[\"a:1\"]]").unwrap_err();
        assert!(err.contains("unknown field `replica`"), "{err}");
        assert!(TopologyFile::parse("replicas = \"a:1\"").is_err());
        assert!(TopologyFile::parse("").is_err());
    }
}

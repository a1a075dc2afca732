//! Inline splitting on arbitrary lines: it never panics, and every argument
//! it returns, written back in double quotes with escapes, splits to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resp::split_args;

fuzz_target!(|line: &[u8]| {
    let Some(args) = split_args(line) else {
        return;
    };
    let mut quoted = Vec::new();
    for arg in &args {
        quoted.push(b'"');
        for &b in arg.iter() {
            quoted.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
        quoted.extend_from_slice(b"\" ");
    }
    let again = split_args(&quoted).expect("quoted arguments split");
    assert_eq!(again, args);
});

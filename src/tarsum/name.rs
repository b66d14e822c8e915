//! Entry-name normalisation, used only to detect duplicate names (never hashed).
//!
//! TarSum keys each per-file sum by `path.Join(".", path.Join("/", name))` in Go: the lexical
//! clean of `"/" + name` with the root removed, `.` when nothing is left (spec §6).

/// The normalised form of a raw entry name.
///
/// ```text
/// ./dup.txt, /dup.txt, dup.txt  -> dup.txt
/// x//y, ./x/./y, z/../x/y, ../x/y -> x/y
/// dir/ -> dir        "" and "/" -> .
/// ```
pub fn normalize(name: &[u8]) -> Vec<u8> {
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in name.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop(); // rooted: ".." cannot climb above the root
            }
            other => segments.push(other),
        }
    }
    if segments.is_empty() {
        return b".".to_vec();
    }
    segments.join(&b'/')
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn spec_examples() {
        for (raw, clean) in [
            (&b"./dup.txt"[..], &b"dup.txt"[..]),
            (b"dup.txt", b"dup.txt"),
            (b"/dup.txt", b"dup.txt"),
            (b"x//y", b"x/y"),
            (b"./x/./y", b"x/y"),
            (b"z/../x/y", b"x/y"),
            (b"../x/y", b"x/y"),
            (b"dir/", b"dir"),
            (b"././@PaxHeader", b"@PaxHeader"),
            (b"", b"."),
            (b"/", b"."),
            (b"a/..", b"."),
        ] {
            assert_eq!(normalize(raw), clean, "{:?}", String::from_utf8_lossy(raw));
        }
    }
}

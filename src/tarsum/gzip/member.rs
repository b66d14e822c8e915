//! Incremental parsing of a gzip member header (RFC 1952) and trailer, with the checks Go's
//! `compress/gzip` reader makes: magic, method 8, the optional FHCRC, and file name and
//! comment of at most 511 bytes (Go reads them into a 512-byte buffer).

/// gzip's two magic bytes.
pub const MAGIC: [u8; 2] = [0x1f, 0x8b];

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
/// Go's limit on a header string, NUL included.
const MAX_STRING: usize = 512;

/// Where the header parser is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Fixed,
    ExtraLen,
    Extra(usize),
    Name(usize),
    Comment(usize),
    HeaderCrc,
    Done,
}

/// An incremental gzip member header parser.
#[derive(Debug, Clone)]
pub struct HeaderParser {
    part: Part,
    flags: u8,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    /// Bytes consumed so far (0 means nothing of this member has arrived).
    pub seen: usize,
}

/// The header is not one Go's reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadHeader;

impl HeaderParser {
    /// A parser at the first byte of a member.
    pub fn new() -> Self {
        HeaderParser {
            part: Part::Fixed,
            flags: 0,
            buf: Vec::with_capacity(10),
            crc: crc32fast::Hasher::new(),
            seen: 0,
        }
    }

    /// True once the whole header was read.
    pub fn is_done(&self) -> bool {
        self.part == Part::Done
    }

    /// Consumes header bytes from `input`; returns how many were used.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, BadHeader> {
        let mut used = 0;
        while used < input.len() && !self.is_done() {
            let byte = input[used];
            used += 1;
            self.seen += 1;
            if self.part != Part::HeaderCrc {
                self.crc.update(&[byte]);
            }
            self.step(byte)?;
        }
        Ok(used)
    }

    fn step(&mut self, byte: u8) -> Result<(), BadHeader> {
        match self.part {
            Part::Fixed => {
                self.buf.push(byte);
                if self.buf.len() == 10 {
                    if self.buf[..2] != MAGIC || self.buf[2] != 8 {
                        return Err(BadHeader);
                    }
                    self.flags = self.buf[3];
                    self.buf.clear();
                    self.part = Part::ExtraLen;
                    self.advance_optional();
                }
            }
            Part::ExtraLen => {
                self.buf.push(byte);
                if self.buf.len() == 2 {
                    let len = usize::from(u16::from_le_bytes([self.buf[0], self.buf[1]]));
                    self.buf.clear();
                    self.part = Part::Extra(len);
                    self.advance_optional();
                }
            }
            Part::Extra(left) => {
                self.part = Part::Extra(left - 1);
                self.advance_optional();
            }
            Part::Name(n) | Part::Comment(n) => {
                if byte != 0 && n + 1 >= MAX_STRING {
                    return Err(BadHeader);
                }
                self.part = match (byte, &self.part) {
                    (0, Part::Name(_)) => Part::Comment(0),
                    (0, _) => Part::HeaderCrc,
                    (_, Part::Name(_)) => Part::Name(n + 1),
                    _ => Part::Comment(n + 1),
                };
                if byte == 0 {
                    self.advance_optional();
                }
            }
            Part::HeaderCrc => {
                self.buf.push(byte);
                if self.buf.len() == 2 {
                    let stored = u16::from_le_bytes([self.buf[0], self.buf[1]]);
                    // Low 16 bits of the CRC-32 of the header bytes before this field.
                    if stored != (self.crc.clone().finalize() & 0xffff) as u16 {
                        return Err(BadHeader);
                    }
                    self.part = Part::Done;
                }
            }
            Part::Done => {}
        }
        Ok(())
    }

    /// Skips the optional parts whose flag is clear (or which are complete).
    fn advance_optional(&mut self) {
        loop {
            self.part = match self.part {
                Part::ExtraLen if self.flags & FEXTRA == 0 => Part::Name(0),
                Part::Extra(0) => Part::Name(0),
                Part::Name(0) if self.flags & FNAME == 0 => Part::Comment(0),
                Part::Comment(0) if self.flags & FCOMMENT == 0 => Part::HeaderCrc,
                Part::HeaderCrc if self.flags & FHCRC == 0 => Part::Done,
                _ => return,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_split_anywhere() {
        let mut header = vec![
            0x1f,
            0x8b,
            8,
            FEXTRA | FNAME | FCOMMENT | FHCRC,
            0,
            0,
            0,
            0,
            0,
            3,
        ];
        header.extend_from_slice(&[3, 0, b'a', b'b', b'c']);
        header.extend_from_slice(b"name\0comment\0");
        let crc = crc32fast::hash(&header) & 0xffff;
        header.extend_from_slice(&(crc as u16).to_le_bytes());
        header.push(0xAA); // first deflate byte, must not be consumed
        for split in 0..header.len() {
            let mut p = HeaderParser::new();
            let a = p.feed(&header[..split]).unwrap();
            let b = p.feed(&header[a..]).unwrap();
            assert!(p.is_done());
            assert_eq!(a + b, header.len() - 1, "split {split}");
        }
        let mut bad = header.clone();
        let n = bad.len();
        bad[n - 2] ^= 1; // corrupt the header CRC
        assert_eq!(HeaderParser::new().feed(&bad), Err(BadHeader));
    }

    #[test]
    fn rejects_wrong_magic_method_and_long_names() {
        assert!(HeaderParser::new()
            .feed(&[0x1f, 0x8c, 8, 0, 0, 0, 0, 0, 0, 0])
            .is_err());
        assert!(HeaderParser::new()
            .feed(&[0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0])
            .is_err());
        let mut long = vec![0x1f, 0x8b, 8, FNAME, 0, 0, 0, 0, 0, 0];
        long.extend(std::iter::repeat_n(b'n', 511));
        let mut ok = long.clone();
        ok.push(0);
        let mut p = HeaderParser::new();
        p.feed(&ok).unwrap();
        assert!(p.is_done());
        long.push(b'n');
        assert!(HeaderParser::new().feed(&long).is_err());
    }
}

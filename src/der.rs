//! A minimal DER reader/writer: just enough to splice names into a TBSCertificate or
//! CertificationRequestInfo that rcgen produced, then re-sign it.
//!
//! Why: rcgen's `DistinguishedName` keeps one value per attribute type, so a subject with two
//! `O=` groups (two RBAC groups) would silently lose one. kubecert copies the old subject's DER
//! verbatim instead (order, repeated attributes, multi-valued RDNs and string types kept).

/// One parsed TLV element, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The identifier octet (only single-octet tags are supported).
    pub tag: u8,
    /// The content octets.
    pub content: &'a [u8],
    /// The whole element: identifier, length and content.
    pub raw: &'a [u8],
}

/// Errors from the DER reader.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DerError {
    /// The input ended inside an element.
    #[error("DER input truncated")]
    Truncated,
    /// A multi-octet tag or an unsupported length form.
    #[error("unsupported DER encoding")]
    Unsupported,
    /// The structure is not what the caller expected.
    #[error("unexpected DER structure: {0}")]
    Unexpected(&'static str),
}

/// Reads one element from the start of `input`; returns it and the rest.
pub fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), DerError> {
    // Kept by hand (issue 14 crate trial, golden `tests::golden`): asn1-rs (x509-parser's DER
    // layer, already a dependency) accepts a multi-octet tag (`1f 01 00`, which `Tlv::tag`, one
    // identifier octet, cannot hold) and a 5-octet length, both refused here
    // (`tests::asn1_rs_does_not_match_the_golden`).
    let tag = *input.first().ok_or(DerError::Truncated)?;
    if tag & 0x1f == 0x1f {
        return Err(DerError::Unsupported);
    }
    let first = *input.get(1).ok_or(DerError::Truncated)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(DerError::Unsupported);
        }
        let bytes = input.get(2..2 + n).ok_or(DerError::Truncated)?;
        let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + n)
    };
    let end = hdr.checked_add(len).ok_or(DerError::Truncated)?;
    let raw = input.get(..end).ok_or(DerError::Truncated)?;
    Ok((
        Tlv {
            tag,
            content: &raw[hdr..],
            raw,
        },
        &input[end..],
    ))
}

/// Splits the content of a constructed element into its children.
pub fn children(content: &[u8]) -> Result<Vec<Tlv<'_>>, DerError> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (t, r) = read(rest)?;
        out.push(t);
        rest = r;
    }
    Ok(out)
}

/// Encodes an element from a tag and content.
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE made of already-encoded elements.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    let content: Vec<u8> = parts.concat();
    encode(0x30, &content)
}

/// A BIT STRING with no unused bits.
pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0);
    content.extend_from_slice(bytes);
    encode(0x03, &content)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`read`] must do, input → `(identifier octet, content length, rest length)` or
    /// the error. The golden test of the crate trial (see [`read`]).
    /// `(identifier octet, content length, rest length)` or the error.
    type Read = Result<(u8, usize, usize), DerError>;

    fn golden() -> Vec<(Vec<u8>, Read)> {
        let long = |hdr: &[u8], n: usize| [hdr, &vec![7u8; n][..]].concat();
        vec![
            (vec![0x04, 0x00], Ok((0x04, 0, 0))),
            (vec![0x02, 0x01, 0x05, 0xff], Ok((0x02, 1, 1))),
            (vec![0xa1, 0x02, 0x03, 0x00], Ok((0xa1, 2, 0))),
            (long(&[0x04, 0x81, 0x80], 128), Ok((0x04, 128, 0))),
            (long(&[0x04, 0x82, 0x01, 0x00], 256), Ok((0x04, 256, 0))),
            // A non-minimal length (BER, not DER): read as given.
            (long(&[0x04, 0x81, 0x05], 5), Ok((0x04, 5, 0))),
            (vec![], Err(DerError::Truncated)),
            (vec![0x30], Err(DerError::Truncated)),
            (vec![0x30, 0x05, 1, 2], Err(DerError::Truncated)),
            (vec![0x30, 0x82, 0xff], Err(DerError::Truncated)),
            (vec![0x1f, 0x01, 0], Err(DerError::Unsupported)),
            (vec![0x30, 0x80, 0, 0], Err(DerError::Unsupported)),
            (
                long(&[0x04, 0x85, 0, 0, 0, 0, 1], 1),
                Err(DerError::Unsupported),
            ),
        ]
    }

    #[test]
    fn read_golden() {
        for (input, want) in golden() {
            let got = read(&input).map(|(t, rest)| (t.tag, t.content.len(), rest.len()));
            assert_eq!(got, want, "{input:02x?}");
        }
    }

    /// The crate trial (issue 14): asn1-rs (x509-parser's DER layer, already a dependency).
    #[test]
    fn asn1_rs_does_not_match_the_golden() {
        use x509_parser::der_parser::asn1_rs::{Any, FromDer};
        let mut misses = Vec::new();
        for (input, want) in golden() {
            let got = match Any::from_der(&input) {
                Ok((rest, any)) => {
                    let h = &any.header;
                    let id = ((h.class() as u8) << 6)
                        | (u8::from(h.is_constructed()) << 5)
                        | u8::try_from(h.tag().0).unwrap_or(0x1f);
                    Ok((id, any.data.len(), rest.len()))
                }
                Err(x509_parser::nom::Err::Incomplete(_)) => Err(DerError::Truncated),
                Err(_) => Err(DerError::Unsupported),
            };
            if got != want {
                misses.push((input, want, got));
            }
        }
        eprintln!("asn1-rs misses: {misses:02x?}");
        assert!(!misses.is_empty(), "asn1-rs matches now: use it");
    }

    #[test]
    fn round_trip_short_and_long_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 70000] {
            let content = vec![7u8; len];
            let enc = encode(0x04, &content);
            let (t, rest) = read(&enc).unwrap();
            assert!(rest.is_empty());
            assert_eq!(t.tag, 0x04);
            assert_eq!(t.content.len(), len);
            assert_eq!(t.raw, &enc[..]);
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert_eq!(read(&[]), Err(DerError::Truncated));
        assert_eq!(read(&[0x30]), Err(DerError::Truncated));
        assert_eq!(read(&[0x30, 0x05, 1, 2]), Err(DerError::Truncated));
        assert_eq!(read(&[0x30, 0x82, 0xff]), Err(DerError::Truncated));
        assert_eq!(read(&[0x1f, 0x01, 0]), Err(DerError::Unsupported));
    }

    #[test]
    fn children_of_sequence() {
        let a = encode(0x02, &[1]);
        let b = encode(0x04, b"xy");
        let s = sequence(&[&a, &b]);
        let (t, _) = read(&s).unwrap();
        let kids = children(t.content).unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[1].content, b"xy");
    }
}

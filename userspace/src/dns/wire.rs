//! DNS messages on the wire: building queries and reading answers, for the agent's own
//! resolver and for the question names the kernel reports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record types the agent asks for.
pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
/// An alias: the answer goes on with its target.
pub const TYPE_CNAME: u16 = 5;

/// A parsed response: its A and AAAA records for the question's name or its CNAME
/// chain (records for any other name are not the answer and are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub id: u16,
    pub rcode: u8,
    pub qname: String,
    /// A and AAAA records with their TTLs (seconds).
    pub answers: Vec<(IpAddr, u32)>,
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed DNS message: {0}")]
pub struct WireError(&'static str);

/// A recursive query for `name` (dotted) of type `qtype`.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out
}

/// Reads a response's question name and A/AAAA answers.
pub fn parse(msg: &[u8]) -> Result<Response, WireError> {
    let be16 = |i: usize| -> Result<u16, WireError> {
        msg.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(WireError("truncated"))
    };
    let id = be16(0)?;
    let flags = be16(2)?;
    if flags & 0x8000 == 0 {
        return Err(WireError("not a response"));
    }
    let qdcount = be16(4)?;
    let ancount = be16(6)?;
    if qdcount != 1 {
        return Err(WireError("expected one question"));
    }
    let (qname, mut pos) = read_name(msg, 12)?;
    pos += 4;
    let mut answers = Vec::new();
    // Only records of the question's name, or of its CNAME chain in this answer.
    let mut target = qname.clone();
    for _ in 0..ancount {
        let (owner, after) = read_name(msg, pos)?;
        pos = after;
        let ty = be16(pos)?;
        let ttl = msg
            .get(pos + 4..pos + 8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(WireError("truncated"))?;
        let len = usize::from(be16(pos + 8)?);
        pos += 10;
        let data = msg.get(pos..pos + len).ok_or(WireError("truncated"))?;
        if owner != target {
            pos += len;
            continue;
        }
        match (ty, len) {
            (TYPE_CNAME, _) => target = read_name(msg, pos)?.0,
            (TYPE_A, 4) => answers.push((
                IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
                ttl,
            )),
            (TYPE_AAAA, 16) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(data);
                answers.push((IpAddr::V6(Ipv6Addr::from(b)), ttl));
            }
            _ => {}
        }
        pos += len;
    }
    Ok(Response {
        id,
        rcode: (flags & 0x000f) as u8,
        qname,
        answers,
    })
}

/// Reads a possibly compressed name at `pos`; returns it dotted and lower-case, and the
/// position after it.
fn read_name(msg: &[u8], mut pos: usize) -> Result<(String, usize), WireError> {
    let mut labels: Vec<String> = Vec::new();
    let mut after = None;
    for _ in 0..128 {
        let len = *msg.get(pos).ok_or(WireError("truncated name"))?;
        if len == 0 {
            return Ok((labels.join("."), after.unwrap_or(pos + 1)));
        }
        if len & 0xc0 == 0xc0 {
            let low = *msg.get(pos + 1).ok_or(WireError("truncated pointer"))?;
            after.get_or_insert(pos + 2);
            pos = (usize::from(len & 0x3f) << 8) | usize::from(low);
            continue;
        }
        let label = msg
            .get(pos + 1..pos + 1 + usize::from(len))
            .ok_or(WireError("truncated label"))?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += 1 + usize::from(len);
    }
    Err(WireError("name loops"))
}

/// A question name in wire format (as the kernel reports it), dotted.
pub fn wire_name_to_string(wire: &[u8]) -> String {
    let mut labels = Vec::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 || len & 0xc0 != 0 {
            break;
        }
        let end = (pos + 1 + usize::from(len)).min(wire.len());
        labels.push(String::from_utf8_lossy(&wire[pos + 1..end]).to_ascii_lowercase());
        pos = end;
    }
    labels.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `query(7, "Api.Example.com", A)` with a compressed A and an AAAA.
    fn response() -> Vec<u8> {
        let mut m = query(7, "Api.Example.com", TYPE_A);
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 2;
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 1, 2, 3]);
        m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 1, 0, 0, 16]);
        m.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        m
    }

    #[test]
    fn reads_answers_and_ttls() {
        let r = parse(&response()).unwrap();
        assert_eq!(r.id, 7);
        assert_eq!(r.qname, "api.example.com");
        assert_eq!(
            r.answers,
            vec![
                ("10.1.2.3".parse().unwrap(), 30),
                ("::1".parse().unwrap(), 256)
            ]
        );
    }

    #[test]
    fn rejects_truncated_and_looping_messages() {
        let m = response();
        assert!(parse(&m[..m.len() - 3]).is_err());
        let mut looping = query(1, "a", TYPE_A);
        looping[2] = 0x80;
        looping[12] = 0xc0;
        looping[13] = 12;
        assert!(parse(&looping).is_err());
        assert!(
            parse(&query(1, "a", TYPE_A)).is_err(),
            "a query is not a response"
        );
    }

    #[test]
    fn wire_names_read_back() {
        assert_eq!(
            wire_name_to_string(b"\x03api\x07example\x03com"),
            "api.example.com"
        );
    }
}

//! CIDR collapsing for learned profiles: addresses seen without a DNS name collapse to
//! one covering network only where the evidence supports it (several addresses close
//! together); everything else stays an exact address.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

/// How many distinct addresses of one bucket it takes to collapse them.
pub const MIN_ADDRESSES: usize = 4;
/// The bucket an IPv4 address is collapsed within: its /24.
pub const V4_BUCKET: u8 = 24;
/// The bucket an IPv6 address is collapsed within: its /64.
pub const V6_BUCKET: u8 = 64;

/// A destination of a learned rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collapsed {
    /// One address, written as it is (a /32 or /128).
    Exact(IpAddr, u64),
    /// The smallest network covering `members` (each with how often it was seen).
    Net(IpNetwork, Vec<(IpAddr, u64)>),
}

impl Collapsed {
    /// The destination as a profile writes it.
    pub fn to_text(&self) -> String {
        match self {
            Self::Exact(addr, _) => addr.to_string(),
            Self::Net(net, _) => net.to_string(),
        }
    }
}

/// Collapses `addrs` (address → times seen; duplicates are summed): each IPv4 /24 or
/// IPv6 /64 holding at least [`MIN_ADDRESSES`] distinct addresses becomes the smallest
/// CIDR that covers them; the rest stay exact. The result is sorted by address.
pub fn collapse(addrs: &[(IpAddr, u64)]) -> Vec<Collapsed> {
    let mut buckets: std::collections::BTreeMap<(bool, u128), Vec<(IpAddr, u64)>> =
        Default::default();
    for (addr, count) in addrs {
        let (v6, bits, bucket) = match addr {
            IpAddr::V4(a) => (false, u128::from(u32::from(*a)), V4_BUCKET),
            IpAddr::V6(a) => (true, u128::from(*a), V6_BUCKET),
        };
        let width = if v6 { 128 } else { 32 };
        let key = (v6, bits >> (width - u32::from(bucket)));
        let members = buckets.entry(key).or_default();
        match members.iter_mut().find(|(a, _)| a == addr) {
            Some((_, c)) => *c += count,
            None => members.push((*addr, *count)),
        }
    }
    let mut out = Vec::new();
    for mut members in buckets.into_values() {
        members.sort();
        if members.len() >= MIN_ADDRESSES {
            out.push(Collapsed::Net(covering(&members), members));
        } else {
            out.extend(members.into_iter().map(|(a, c)| Collapsed::Exact(a, c)));
        }
    }
    out.sort_by_key(|c| match c {
        Collapsed::Exact(a, _) => *a,
        Collapsed::Net(net, _) => net.network(),
    });
    out
}

/// The smallest network holding every address of `members` (all of one family).
fn covering(members: &[(IpAddr, u64)]) -> IpNetwork {
    // An address as a number, with its family's width in bits.
    let number = |ip: IpAddr| match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    let first = members[0].0;
    let (base, width) = number(first);
    let differ = members
        .iter()
        .map(|(m, _)| number(*m))
        .filter(|(_, w)| *w == width)
        .fold(0u128, |acc, (m, _)| acc | (m ^ base));
    // Leading zeros within the family's width.
    let prefix = (differ.leading_zeros() - (128 - width)).min(width) as u8;
    let mask = if prefix == 0 {
        0
    } else {
        (u128::MAX << (128 - u32::from(prefix))) >> (128 - width)
    };
    let network = match first {
        IpAddr::V4(_) => IpAddr::V4(((base & mask) as u32).into()),
        IpAddr::V6(_) => IpAddr::V6((base & mask).into()),
    };
    IpNetwork::new(network, prefix).unwrap_or_else(|_| IpNetwork::from(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Each address seen once.
    fn once(addrs: &[&str]) -> Vec<(IpAddr, u64)> {
        addrs.iter().map(|s| (a(s), 1)).collect()
    }

    fn texts(out: &[Collapsed]) -> Vec<String> {
        out.iter().map(Collapsed::to_text).collect()
    }

    #[test]
    fn four_addresses_of_one_v4_24_collapse_to_the_smallest_cover() {
        let out = collapse(&[
            (a("10.1.2.1"), 3),
            (a("10.1.2.2"), 1),
            (a("10.1.2.3"), 1),
            (a("10.1.2.4"), 2),
        ]);
        assert_eq!(texts(&out), ["10.1.2.0/29"]);
        let Collapsed::Net(_, members) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(members.len(), 4);
        assert_eq!(members[0], (a("10.1.2.1"), 3));
        // Far apart within the /24: the cover is the whole /24, never wider.
        let out = collapse(&once(&[
            "10.1.2.1",
            "10.1.2.77",
            "10.1.2.130",
            "10.1.2.254",
        ]));
        assert_eq!(texts(&out), ["10.1.2.0/24"]);
    }

    #[test]
    fn three_addresses_stay_exact() {
        let out = collapse(&once(&["10.1.2.1", "10.1.2.2", "10.1.2.3"]));
        assert_eq!(texts(&out), ["10.1.2.1", "10.1.2.2", "10.1.2.3"]);
        assert!(out.iter().all(|c| matches!(c, Collapsed::Exact(..))));
    }

    #[test]
    fn repeats_of_one_address_are_not_evidence_of_several() {
        let out = collapse(&[
            (a("10.1.2.1"), 1),
            (a("10.1.2.1"), 5),
            (a("10.1.2.2"), 1),
            (a("10.1.2.3"), 1),
        ]);
        assert_eq!(texts(&out), ["10.1.2.1", "10.1.2.2", "10.1.2.3"]);
        assert_eq!(out[0], Collapsed::Exact(a("10.1.2.1"), 6));
    }

    #[test]
    fn neighbours_across_a_24_boundary_do_not_collapse() {
        let out = collapse(&once(&["10.1.2.254", "10.1.2.255", "10.1.3.0", "10.1.3.1"]));
        assert_eq!(out.len(), 4, "{out:?}");
    }

    #[test]
    fn v6_collapses_within_a_64_and_never_mixes_families() {
        let out = collapse(&once(&[
            "2001:db8::1",
            "2001:db8::2",
            "2001:db8::a",
            "2001:db8::f",
            "2001:db8:0:1::1",
            "10.0.0.1",
        ]));
        assert_eq!(
            texts(&out),
            ["10.0.0.1", "2001:db8::/124", "2001:db8:0:1::1"],
            "{out:?}"
        );
    }

    #[test]
    fn two_buckets_collapse_separately() {
        let mut addrs: Vec<(IpAddr, u64)> =
            (1..=4).map(|i| (a(&format!("192.0.2.{i}")), 1)).collect();
        addrs.extend((16..=20).map(|i| (a(&format!("198.51.100.{i}")), 1)));
        let out = collapse(&addrs);
        assert_eq!(texts(&out), ["192.0.2.0/29", "198.51.100.16/29"]);
        // The profile parser accepts what collapsing writes (no host bits set).
        for t in texts(&out) {
            assert!(
                crate::policy::Destination::try_from(t.clone()).is_ok(),
                "{t}"
            );
        }
    }
}

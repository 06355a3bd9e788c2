//! Whether a list that parsed is believable enough to apply.
//!
//! A provider's answer can be well formed and still wrong: an outage page
//! that happens to be an empty JSON array, a bug that publishes
//! `0.0.0.0/0`, a list cut in half. Applying it would either refuse every
//! real delivery or stop protecting anything, so such a list is refused
//! and the last good one stays. The rules, deliberately simple so that a
//! person can predict them:
//!
//! - **empty**: no entries at all;
//! - **too wide**: an IPv4 network shorter than /8 or an IPv6 network
//!   shorter than /16 (no provider's webhook egress is that big; `/0`
//!   is "the internet");
//! - **too much**: together more than 2^29 IPv4 addresses (one eighth of
//!   the IPv4 internet; all of AWS is well below) or more than 2^112 IPv6
//!   addresses (one /16);
//! - **shrank**: fewer than half the entries of the last good list (a list
//!   of 6 ranges may become 3, not 2). A real, drastic shrink is then not
//!   applied until a person removes the last good list (see
//!   docs/operator.md); refusing a real change is the lesser harm than
//!   applying a broken one.

use ipnet::IpNet;

/// The shortest IPv4 prefix accepted.
pub const MIN_IPV4_PREFIX: u8 = 8;
/// The shortest IPv6 prefix accepted.
pub const MIN_IPV6_PREFIX: u8 = 16;
/// The most IPv4 addresses one list may cover together.
pub const MAX_IPV4_ADDRESSES: u64 = 1 << 29;
/// The most IPv6 addresses one list may cover together.
pub const MAX_IPV6_ADDRESSES: u128 = 1 << 112;

/// Why a list is not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Implausible {
    /// No entries.
    #[error("the list is empty")]
    Empty,
    /// A network wider than the rules allow.
    #[error("{0} is wider than /{MIN_IPV4_PREFIX} (IPv4) or /{MIN_IPV6_PREFIX} (IPv6)")]
    TooWide(IpNet),
    /// The networks together cover too much.
    #[error("the list covers more than {0}")]
    TooMuch(&'static str),
    /// Less than half as long as the last good list.
    #[error("the list shrank from {before} to {after} entries (more than half)")]
    Shrank {
        /// Entries of the last good list.
        before: usize,
        /// Entries of the new one.
        after: usize,
    },
}

/// Checks `list` (canonical: deduplicated) against the rules, and against
/// `previous`, the last good list, when there is one.
pub fn check(list: &[IpNet], previous: Option<&[IpNet]>) -> Result<(), Implausible> {
    if list.is_empty() {
        return Err(Implausible::Empty);
    }
    let mut v4: u64 = 0;
    let mut v6: u128 = 0;
    for net in list {
        match net {
            IpNet::V4(net) => {
                if net.prefix_len() < MIN_IPV4_PREFIX {
                    return Err(Implausible::TooWide(IpNet::V4(*net)));
                }
                v4 = v4.saturating_add(1u64 << (32 - u32::from(net.prefix_len())));
            }
            IpNet::V6(net) => {
                if net.prefix_len() < MIN_IPV6_PREFIX {
                    return Err(Implausible::TooWide(IpNet::V6(*net)));
                }
                v6 = v6.saturating_add(1u128 << (128 - u32::from(net.prefix_len())));
            }
        }
    }
    if v4 > MAX_IPV4_ADDRESSES {
        return Err(Implausible::TooMuch("2^29 IPv4 addresses"));
    }
    if v6 > MAX_IPV6_ADDRESSES {
        return Err(Implausible::TooMuch("2^112 IPv6 addresses (a /16)"));
    }
    if let Some(previous) = previous
        && list.len().saturating_mul(2) < previous.len()
    {
        return Err(Implausible::Shrank {
            before: previous.len(),
            after: list.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    #[test]
    fn plausible_lists_pass() {
        let github = nets(&["192.30.252.0/22", "140.82.112.0/20", "2606:50c0::/32"]);
        assert_eq!(check(&github, None), Ok(()));
        assert_eq!(check(&github, Some(&github)), Ok(()));
        assert_eq!(check(&nets(&["10.0.0.0/8"]), None), Ok(()));
        assert_eq!(check(&nets(&["2600::/16"]), None), Ok(()));
    }

    #[test]
    fn empty_wide_and_huge_lists_are_refused() {
        assert_eq!(check(&[], None), Err(Implausible::Empty));
        for wide in ["0.0.0.0/0", "10.0.0.0/7", "::/0", "2000::/3", "2600::/15"] {
            assert!(
                matches!(check(&nets(&[wide]), None), Err(Implausible::TooWide(_))),
                "{wide}"
            );
        }
        // 33 /8s: each allowed, together over an eighth of the internet.
        let many: Vec<String> = (1..=33).map(|a| format!("{a}.0.0.0/8")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            check(&nets(&many), None),
            Err(Implausible::TooMuch(_))
        ));
        assert_eq!(check(&nets(&many[..32]), None), Ok(()));
        assert!(matches!(
            check(&nets(&["2600::/16", "2601::/16"]), None),
            Err(Implausible::TooMuch(_))
        ));
    }

    #[test]
    fn a_list_that_lost_more_than_half_is_refused() {
        let before = nets(&[
            "1.0.0.0/24",
            "2.0.0.0/24",
            "3.0.0.0/24",
            "4.0.0.0/24",
            "5.0.0.0/24",
            "6.0.0.0/24",
        ]);
        assert_eq!(check(&before[..3], Some(&before)), Ok(()));
        assert_eq!(
            check(&before[..2], Some(&before)),
            Err(Implausible::Shrank {
                before: 6,
                after: 2
            })
        );
        // Growing and replacing are fine.
        assert_eq!(check(&nets(&["9.0.0.0/24"; 1]), Some(&before[..1])), Ok(()));
    }
}

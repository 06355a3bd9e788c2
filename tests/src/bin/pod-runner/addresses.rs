//! The pod IPs of the node's CIDR: which are free, and which comes next.
//! Apart from the rest because it is pure bookkeeping, tested on its own.

use std::net::Ipv4Addr;

/// Pod IPs of the node's CIDR, handed out round robin (a freed address is
/// reused last, so no late packet of an old pod reaches a new one).
#[derive(Debug)]
pub(super) struct Addresses {
    pub(super) base: u32,
    pub(super) size: u32,
    pub(super) next: u32,
    pub(super) used: std::collections::BTreeSet<u32>,
}

impl Addresses {
    pub(super) fn allocate(&mut self) -> Option<Ipv4Addr> {
        // .0 is the network, .1 the node; the last is broadcast.
        for _ in 0..self.size {
            let offset = self.next;
            self.next = if self.next + 1 >= self.size - 1 {
                2
            } else {
                self.next + 1
            };
            if offset >= 2 && !self.used.contains(&offset) {
                self.used.insert(offset);
                return Some(Ipv4Addr::from(self.base + offset));
            }
        }
        None
    }

    pub(super) fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&(u32::from(ip) - self.base));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_network_node_and_broadcast_and_reuse_last() {
        let mut addresses = Addresses {
            base: u32::from(Ipv4Addr::new(127, 1, 0, 0)),
            size: 8,
            next: 2,
            used: Default::default(),
        };
        let all: Vec<Ipv4Addr> = std::iter::from_fn(|| addresses.allocate()).collect();
        assert_eq!(
            all,
            (2..7)
                .map(|n| Ipv4Addr::new(127, 1, 0, n))
                .collect::<Vec<_>>()
        );
        addresses.release(Ipv4Addr::new(127, 1, 0, 3));
        assert_eq!(addresses.allocate(), Some(Ipv4Addr::new(127, 1, 0, 3)));
    }
}

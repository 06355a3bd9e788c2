//! `spec.delivery.orderedPerSubject`: one delivery per subject at a time,
//! in stream order, the next waiting until the previous one was delivered
//! or dead-lettered.
//!
//! A failed head is still retried the JetStream way (a negative
//! acknowledgement with a delay, nothing sleeping in the forwarder), and
//! its subject stays blocked until it comes back: the messages behind it
//! wait here, unacknowledged, their ack wait kept alive with progress
//! acknowledgements. How many can wait is bounded by the consumer's
//! `max_ack_pending` (the server sends no more). A head that does not come
//! back within its deadline (another forwarder took it, the consumer was
//! reset) releases its subject, so a lane cannot stay blocked forever.
//!
//! The gate is plain data, driven by the run loop: messages are offered,
//! starts come out, finishes go in.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// The lanes of the subjects that have something in flight or waiting.
#[derive(Debug)]
pub struct Gate<M> {
    lanes: HashMap<String, Lane<M>>,
}

#[derive(Debug)]
struct Lane<M> {
    /// The sequence being delivered, or awaited back after a retry.
    head: u64,
    /// When an awaited head is given up (`None` while it is in flight).
    awaited_until: Option<Instant>,
    /// Messages behind the head, by sequence.
    waiting: BTreeMap<u64, M>,
}

impl<M> Default for Gate<M> {
    fn default() -> Self {
        Self {
            lanes: HashMap::new(),
        }
    }
}

impl<M> Gate<M> {
    /// Offers message `sequence` of `subject`: returned when it may start
    /// now, kept (or, for a redelivery of a waiting one, replacing the
    /// older copy) otherwise.
    pub fn offer(&mut self, subject: &str, sequence: u64, message: M) -> Option<M> {
        let Some(lane) = self.lanes.get_mut(subject) else {
            self.lanes.insert(
                subject.to_owned(),
                Lane {
                    head: sequence,
                    awaited_until: None,
                    waiting: BTreeMap::new(),
                },
            );
            return Some(message);
        };
        if lane.head == sequence {
            // The head came back (a retry), or was redelivered while in
            // flight (its ack wait passed): deliver this copy.
            lane.awaited_until = None;
            return Some(message);
        }
        lane.waiting.insert(sequence, message);
        None
    }

    /// The head of `subject` (`sequence`) finished. `retrying_until`: it
    /// was sent back for a retry and is awaited until then; `None`: it is
    /// done (delivered or dead-lettered), and the next one, if any, starts.
    pub fn finish(
        &mut self,
        subject: &str,
        sequence: u64,
        retrying_until: Option<Instant>,
    ) -> Option<(u64, M)> {
        let lane = self.lanes.get_mut(subject)?;
        if lane.head != sequence {
            return None;
        }
        if let Some(until) = retrying_until {
            lane.awaited_until = Some(until);
            return None;
        }
        self.advance(subject)
    }

    /// Starts the next waiting message of `subject`, or closes its lane.
    fn advance(&mut self, subject: &str) -> Option<(u64, M)> {
        let lane = self.lanes.get_mut(subject)?;
        match lane.waiting.pop_first() {
            Some((sequence, message)) => {
                lane.head = sequence;
                lane.awaited_until = None;
                Some((sequence, message))
            }
            None => {
                self.lanes.remove(subject);
                None
            }
        }
    }

    /// Gives up heads awaited past their deadline: the next messages of
    /// their subjects start.
    pub fn expire(&mut self, now: Instant) -> Vec<(u64, M)> {
        let expired: Vec<String> = self
            .lanes
            .iter()
            .filter(|(_, lane)| lane.awaited_until.is_some_and(|until| until <= now))
            .map(|(subject, _)| subject.clone())
            .collect();
        expired
            .iter()
            .filter_map(|subject| self.advance(subject))
            .collect()
    }

    /// Every waiting message (to keep its ack wait alive).
    pub fn waiting(&self) -> impl Iterator<Item = &M> {
        self.lanes.values().flat_map(|lane| lane.waiting.values())
    }

    /// Takes every waiting message out (at shutdown).
    pub fn drain_waiting(&mut self) -> Vec<M> {
        self.lanes
            .values_mut()
            .flat_map(|lane| std::mem::take(&mut lane.waiting).into_values())
            .collect()
    }

    /// How many messages wait.
    pub fn waiting_len(&self) -> usize {
        self.lanes.values().map(|lane| lane.waiting.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_per_subject_in_stream_order() {
        let mut gate = Gate::default();
        assert_eq!(gate.offer("a", 1, "a1"), Some("a1"));
        assert_eq!(gate.offer("a", 3, "a3"), None);
        assert_eq!(gate.offer("a", 2, "a2"), None);
        assert_eq!(gate.offer("b", 4, "b4"), Some("b4"), "other subjects go on");
        assert_eq!(gate.waiting_len(), 2);
        assert_eq!(gate.finish("a", 1, None), Some((2, "a2")));
        assert_eq!(gate.finish("a", 2, None), Some((3, "a3")));
        assert_eq!(gate.finish("a", 3, None), None);
        assert_eq!(gate.offer("a", 5, "a5"), Some("a5"), "the lane closed");
    }

    #[test]
    fn a_retried_head_blocks_its_subject_until_it_comes_back() {
        let mut gate = Gate::default();
        let start = Instant::now();
        assert_eq!(gate.offer("a", 1, "a1"), Some("a1"));
        assert_eq!(gate.offer("a", 2, "a2"), None);
        let until = start + Duration::from_secs(60);
        assert_eq!(gate.finish("a", 1, Some(until)), None);
        assert_eq!(gate.offer("a", 3, "a3"), None, "still blocked");
        assert!(gate.expire(start).is_empty());
        assert_eq!(gate.offer("a", 1, "a1 again"), Some("a1 again"));
        assert_eq!(gate.finish("a", 1, None), Some((2, "a2")));
    }

    #[test]
    fn a_head_that_never_comes_back_is_given_up() {
        let mut gate = Gate::default();
        let start = Instant::now();
        gate.offer("a", 1, "a1");
        gate.offer("a", 2, "a2");
        gate.finish("a", 1, Some(start + Duration::from_secs(1)));
        assert_eq!(gate.expire(start + Duration::from_secs(2)), vec![(2, "a2")]);
        // A late finish of the old head changes nothing.
        assert_eq!(gate.finish("a", 1, None), None);
    }

    #[test]
    fn a_redelivered_waiting_message_replaces_its_older_copy() {
        let mut gate = Gate::default();
        gate.offer("a", 1, "a1");
        gate.offer("a", 2, "old");
        gate.offer("a", 2, "new");
        assert_eq!(gate.waiting_len(), 1);
        assert_eq!(gate.waiting().copied().collect::<Vec<_>>(), ["new"]);
        assert_eq!(gate.drain_waiting(), vec!["new"]);
        assert_eq!(gate.waiting_len(), 0);
    }
}

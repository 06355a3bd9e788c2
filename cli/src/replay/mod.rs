//! `hookwarden replay` and `hookwarden dlq`: stored events and dead letters
//! of a `WebhookSubscription`, selected and sent again through the
//! forwarder's own [`Destination`] (its signer, client and classification,
//! with `Hookwarden-Replay: true`).
//!
//! Selection reads headers only, through an ordered consumer (ephemeral,
//! no acknowledgements, deleted at the end and by the server 30 s after
//! anyway), from the start the criteria allow up to the stream's last
//! message when the command began: it never waits for new events and never
//! touches the subscription's durable consumer. Each selected event's body
//! is then fetched by sequence just before it is sent, so no more than one
//! body is held at a time, whatever `--limit`.
//!
//! [`Destination`]: hookwarden_receiver::forward::delivery::Destination

mod dead_letters;
mod events;
mod selection;
mod sending;

pub use self::dead_letters::{
    dead_letter_json, dead_letter_line, dead_letters, dead_letters_by_sequence, redrive,
};
pub use self::events::replay;
pub use self::selection::{
    Candidate, DEFAULT_LIMIT, SCAN_IDLE, Scanned, Selection, parse_time, scan,
};
pub use self::sending::{
    Ended, INTERRUPTED_EXIT_CODE, Sending, Summary, interrupt_on_ctrl_c, listed_line, printable,
};

#[cfg(test)]
mod tests {
    use async_nats::HeaderMap;
    use async_nats::jetstream::consumer::DeliverPolicy;
    use hookwarden_receiver::forward::Plan;
    use jiff::Timestamp;

    use super::*;

    fn plan() -> Plan {
        let sub = hookwarden_crds::subscription_from_yaml(
            "apiVersion: hookwarden.dev/v1alpha1\nkind: WebhookSubscription\n\
             metadata: {name: to-billing, namespace: shop}\nspec:\n\
             \x20 source: {stream: ORDERS, subjectPrefix: shop.orders}\n\
             \x20 eventTypes: [paid, 'refund.*']\n\
             \x20 destination: {url: 'http://billing.shop.svc/hooks'}\n",
        )
        .expect("manifest");
        Plan::resolve(&sub, None).expect("plan")
    }

    fn candidate(sequence: u64, time: &str, subject: &str, id: Option<&str>) -> Candidate {
        let mut headers = HeaderMap::new();
        if let Some(id) = id {
            headers.insert("Nats-Msg-Id", id);
        }
        Candidate {
            sequence,
            time: time.parse().expect("time"),
            subject: subject.to_owned(),
            size: 2,
            headers,
        }
    }

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        let now: Timestamp = "2026-01-02T12:00:00Z".parse().expect("now");
        assert_eq!(
            parse_time("2026-01-01T00:00:00Z", now),
            Ok("2026-01-01T00:00:00Z".parse().expect("t"))
        );
        assert_eq!(
            parse_time("1h", now),
            Ok("2026-01-02T11:00:00Z".parse().expect("t"))
        );
        assert_eq!(
            parse_time("90m", now),
            Ok("2026-01-02T10:30:00Z".parse().expect("t"))
        );
        assert_eq!(
            parse_time("PT2H", now),
            Ok("2026-01-02T10:00:00Z".parse().expect("t"))
        );
        for bad in ["", "yesterday", "-1h", "1h ago", &"1".repeat(100)] {
            assert!(parse_time(bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_criterion_selects_within_the_subscription() {
        let plan = plan();
        let all = Selection {
            limit: DEFAULT_LIMIT,
            ..Selection::default()
        };
        let paid = candidate(5, "2026-01-02T10:00:00Z", "shop.orders.paid", Some("d-5"));
        let refund = candidate(6, "2026-01-02T11:00:00Z", "shop.orders.refund.full", None);
        let other = candidate(
            7,
            "2026-01-02T11:30:00Z",
            "shop.orders.created",
            Some("d-7"),
        );
        assert!(all.matches(&plan, "ORDERS", &paid));
        assert!(all.matches(&plan, "ORDERS", &refund));
        assert!(
            !all.matches(&plan, "ORDERS", &other),
            "not the subscription's"
        );
        assert_eq!(refund.id("ORDERS"), "ORDERS-6");

        let by_seq = Selection {
            from_seq: Some(6),
            to_seq: Some(6),
            ..all.clone()
        };
        assert!(!by_seq.matches(&plan, "ORDERS", &paid));
        assert!(by_seq.matches(&plan, "ORDERS", &refund));
        assert!(by_seq.past_end(&other));
        assert!(matches!(
            by_seq.start(),
            DeliverPolicy::ByStartSequence { start_sequence: 6 }
        ));

        let by_time = Selection {
            since: Some("2026-01-02T10:30:00Z".parse().expect("t")),
            until: Some("2026-01-02T11:00:00Z".parse().expect("t")),
            ..all.clone()
        };
        assert!(!by_time.matches(&plan, "ORDERS", &paid));
        assert!(by_time.matches(&plan, "ORDERS", &refund));
        assert!(by_time.past_end(&other));
        assert!(matches!(by_time.start(), DeliverPolicy::ByStartTime { .. }));

        let by_type = Selection {
            event_types: vec![plan.event_type_filter("refund.*").expect("filter")],
            ..all.clone()
        };
        assert!(!by_type.matches(&plan, "ORDERS", &paid));
        assert!(by_type.matches(&plan, "ORDERS", &refund));
        assert_eq!(by_type.filter_subjects(&plan), ["shop.orders.refund.*"]);
        // An event type the subscription does not read selects nothing.
        let outside = Selection {
            event_types: vec![plan.event_type_filter("created").expect("filter")],
            ..all.clone()
        };
        assert!(!outside.matches(&plan, "ORDERS", &other));

        let by_id = Selection {
            delivery_ids: vec!["d-5".into(), "ORDERS-6".into()],
            ..all
        };
        assert!(by_id.matches(&plan, "ORDERS", &paid));
        assert!(by_id.matches(&plan, "ORDERS", &refund));
    }

    #[test]
    fn lines_are_single_and_printable() {
        let line = listed_line(
            3,
            "2026-01-02T10:00:00Z".parse().expect("t"),
            "shop.orders.paid",
            "evil\u{1b}[2J",
            12,
        );
        assert_eq!(
            line,
            "3 2026-01-02T10:00:00Z shop.orders.paid id=evil\u{fffd}[2J size=12B"
        );
        let summary = Summary {
            selected: 3,
            sent: 2,
            failed: vec![(9, "d-9".into(), "refused after 1 attempt(s)".into())],
            ..Summary::default()
        };
        assert_eq!(
            summary.lines("replay", 1000, false),
            [
                "replay: 3 selected, 2 sent, 1 failed",
                "  failed seq=9 id=d-9: refused after 1 attempt(s)"
            ]
        );
        let listed = Summary {
            selected: 2,
            listed: 1,
            filtered: 1,
            limited: true,
            ..Summary::default()
        };
        assert_eq!(
            listed.lines("replay", 2, true),
            [
                "replay: 2 selected, dry run: nothing sent, 1 not matching spec.filter (stopped at --limit 2: more events match; continue with --from-seq)"
            ]
        );
    }
}

//! The forwarder's run loop: bind, read until shutdown or until the read
//! ends, rebind; and the re-read of its secret files.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::forward::delivery::Destination;
use crate::forward::ordering::Gate;
use crate::forward::plan::Plan;
use crate::metrics::Exposition;
use crate::ops;

use super::bind::bind;
use super::event::{Finished, process};
use super::start::{Forwarder, SecretFiles, Shared, StartError};

/// The longest pause between two attempts to bind the consumer.
const MAX_REBIND_BACKOFF: Duration = Duration::from_secs(30);

/// Messages fetched per pull request, at most (and at most `maxInFlight`).
const MAX_BATCH: usize = 256;

impl Forwarder {
    /// The operations port's address.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_listener.local_addr().ok()
    }

    /// The resolved subscription.
    pub fn plan(&self) -> &Plan {
        &self.shared.plan
    }

    /// Forwards until `shutdown` completes, then lets deliveries in flight
    /// finish (up to the drain timeout).
    pub async fn run<F>(self, shutdown: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Self {
            shared,
            client,
            readiness,
            ops_listener,
            secrets,
            reload_interval,
            drain_timeout,
        } = self;
        let plan = &shared.plan;
        tracing::info!(
            subscription = plan.subscription.as_str(),
            stream = plan.stream.as_str(),
            consumer = plan.durable.as_str(),
            destination = crate::redact::redact_url(&plan.destination.url).as_str(),
            dead_letter_stream = plan.dead_letter.stream.as_str(),
            dead_letter_subject = plan.dead_letter.subject.as_str(),
            ordered_per_subject = plan.ordered_per_subject,
            "hookwarden forwarder starting"
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutdown requested; finishing deliveries in flight");
            let _ = stop_tx.send(true);
        });
        let ops_stop = stop_rx.clone();
        let metrics: Arc<dyn Exposition> = shared.metrics.clone();
        let ops_readiness = readiness.clone();
        let ops = tokio::spawn(async move {
            let served = axum::serve(ops_listener, ops::router(metrics, ops_readiness))
                .with_graceful_shutdown(stopped(ops_stop))
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "operations port failed");
            }
        });
        let reloading = tokio::spawn(reload_secrets(
            Arc::clone(&shared),
            secrets,
            reload_interval,
        ));

        let mut tasks = JoinSet::new();
        let mut gate = Gate::default();
        let mut backoff = Duration::from_millis(500);
        let mut stop = stop_rx.clone();
        loop {
            if *stop.borrow() {
                break;
            }
            match bind(&shared).await {
                Ok(consumer) => {
                    readiness.set_consumer_problem(None);
                    readiness.set_config_loaded(true);
                    backoff = Duration::from_millis(500);
                    let end = consume(&shared, consumer, &mut tasks, &mut gate, &mut stop).await;
                    match end {
                        Ended::Stop => break,
                        Ended::Rebind(reason) => {
                            tracing::warn!(
                                reason = reason.as_str(),
                                "reading the consumer stopped; binding it again"
                            );
                            readiness.set_consumer_problem(Some(reason));
                        }
                    }
                }
                Err(reason) => {
                    tracing::error!(
                        reason = reason.as_str(),
                        "cannot bind the subscription's consumer"
                    );
                    readiness.set_consumer_problem(Some(reason));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stopped(stop.clone()) => break,
            }
            backoff = (backoff * 2).min(MAX_REBIND_BACKOFF);
        }

        readiness.set_config_loaded(false);
        // Events waiting behind another of their subject go back at once,
        // for another forwarder; in-flight ones get the drain timeout.
        for message in gate.drain_waiting() {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
        let drained = tokio::time::timeout(drain_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                unfinished = tasks.len(),
                "deliveries still in flight at the drain timeout; they were not acknowledged and will be redelivered"
            );
            tasks.abort_all();
        }
        reloading.abort();
        ops.abort();
        let _ = client.flush().await;
        tracing::info!("hookwarden forwarder stopped");
    }
}

/// Why reading a consumer ended.
enum Ended {
    Stop,
    Rebind(String),
}

/// Reads `consumer` until shutdown or until the read ends.
async fn consume(
    shared: &Arc<Shared>,
    consumer: jetstream::consumer::PullConsumer,
    tasks: &mut JoinSet<Finished>,
    gate: &mut Gate<jetstream::Message>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let plan = &shared.plan;
    let batch = (plan.max_in_flight as usize).clamp(1, MAX_BATCH);
    let mut messages = match consumer
        .stream()
        .max_messages_per_batch(batch)
        .messages()
        .await
    {
        Ok(messages) => messages,
        Err(err) => return Ended::Rebind(format!("cannot read the consumer: {err}")),
    };
    tracing::info!(consumer = plan.durable.as_str(), "reading the consumer");
    // Waiting (ordered) messages get a progress acknowledgement well within
    // their ack wait.
    let mut tick = tokio::time::interval((plan.ack_wait() / 3).max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Unordered, a slot is taken before a message is pulled, so no more
        // are held than can be delivered. Ordered, messages may wait in the
        // gate without a slot (the consumer's max_ack_pending bounds them)
        // and each delivery takes its own: a pull holding the last slot
        // would otherwise starve the next message of a lane.
        let ordered = plan.ordered_per_subject;
        let slots = Arc::clone(&shared.slots);
        let next = async {
            let slot = if ordered {
                None
            } else {
                slots.acquire_owned().await.ok()
            };
            (slot, messages.next().await)
        };
        tokio::select! {
            biased;
            () = stopped(stop.clone()) => return Ended::Stop,
            Some(joined) = tasks.join_next() => {
                if let Ok(finished) = joined
                    && ordered
                    && let Some((_, message)) = gate.finish(
                        &finished.subject,
                        finished.sequence,
                        finished.retrying_until,
                    )
                {
                    tasks.spawn(process(Arc::clone(shared), message, None));
                }
            }
            _ = tick.tick() => {
                if plan.ordered_per_subject {
                    for (_, message) in gate.expire(Instant::now()) {
                        tasks.spawn(process(Arc::clone(shared), message, None));
                    }
                    for message in gate.waiting() {
                        let _ = message.ack_with(AckKind::Progress).await;
                    }
                    shared.metrics.ordered_waiting.set(i64::try_from(gate.waiting_len()).unwrap_or(i64::MAX));
                }
            }
            (slot, next) = next => {
                match next {
                    None => return Ended::Rebind("the consumer's message stream ended".to_owned()),
                    Some(Err(err)) => {
                        use jetstream::consumer::pull::MessagesErrorKind as Kind;
                        match err.kind() {
                            Kind::MissingHeartbeat | Kind::Pull | Kind::Other => {
                                tracing::warn!(error = %err, "reading the consumer");
                            }
                            _ => return Ended::Rebind(err.to_string()),
                        }
                    }
                    Some(Ok(message)) => {
                        if plan.ordered_per_subject {
                            let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                            let subject = message.subject.to_string();
                            if let Some(message) = gate.offer(&subject, sequence, message) {
                                tasks.spawn(process(Arc::clone(shared), message, None));
                            }
                        } else {
                            tasks.spawn(process(Arc::clone(shared), message, slot));
                        }
                    }
                }
            }
        }
    }
}

/// Re-reads the signing secret and the CA when their files change; a
/// broken new file is logged and the previous keys keep signing.
async fn reload_secrets(shared: Arc<Shared>, files: SecretFiles, interval: Duration) {
    let mut last = files.fingerprint();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = files.fingerprint();
        if now == last {
            continue;
        }
        last = now;
        let reloaded = (|| {
            let keys = Arc::new(files.keys()?);
            let destination = match &files.ca {
                None => shared.destination.load().with_keys(keys),
                Some(_) => Destination::new(
                    &shared.plan.destination.url,
                    shared.plan.destination.timeout,
                    keys,
                    files.ca()?.as_ref(),
                )?,
            };
            Ok::<_, StartError>(destination)
        })();
        match reloaded {
            Ok(destination) => {
                shared.destination.store(Arc::new(destination));
                tracing::info!("signing secret and CA reloaded");
            }
            Err(err) => tracing::error!(
                error = %err,
                "the changed signing secret or CA cannot be used; the previous ones stay in use"
            ),
        }
    }
}

/// Completes once shutdown was requested; never if the signal task is gone
/// without requesting it.
async fn stopped(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

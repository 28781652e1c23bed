//! Reading the stream: an ordered consumer checked message by message, and the answers to
//! fresh reads.
//!
//! The consumer knows what it applied last: the sequence and the identity of the message
//! (its publisher's de-duplication id and its bytes, [`identity`]). Before it feeds the first
//! message of each consumer it reads that sequence back. A consumer is new each time this
//! module creates it (after any error: a NATS node restarted, a reconnect) and each time
//! async-nats's ordered consumer creates itself again after missed heartbeats or a lost
//! consumer, which it does without an error to this module: that one is known by its name,
//! in each message's info.
//! A stream that holds another message there went back under this server (a NATS node that
//! lost acknowledged messages and handed their sequences to new ones, as nats-server 2.9.10
//! did after every node was killed): counting on would make this server's totals differ
//! from every other's in silence, so it stops, saying so. Reading back before the first
//! message, not when the consumer is made, also finds a stream that was behind then and was
//! written past this server's position after. (`watch_stream` reads it back every 2 s too,
//! for a stream written up to this server's position and no further.)

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::{pause, unless_stopped, FreshReply, ACK_TIMEOUT, MAX_EXPIRES, STALL};
use crate::cluster::feed::Feed;
use crate::cluster::state::{bump, ClusterState};
use crate::ingest::{Ingest, PushError};
use crate::record;
use crate::start::{Fatal, StartError};
use crate::sync::Arc;

/// Answers fresh-read questions with a position in the stream that holds everything the
/// stream held when they were asked: the sequence of a marker published through the stream
/// itself. Its acknowledgement comes from the stream's leader once a majority of the stream's
/// nodes hold it, so a node cut off from the others (an old leader that does not know it yet)
/// cannot answer with its stale end: the marker is not acknowledged and the GET gets 504.
/// (A stream-info request, as before, is answered by such a node from its own copy.) One
/// marker serves every question that arrived before it was sent. A marker is an empty
/// message, which every server counts off as a message of no events; its de-duplication id,
/// `{id_prefix}fresh-{n}`, makes it a message of its own ([`identity`]).
pub(super) async fn answer_fresh(
    js: jetstream::Context,
    subject: String,
    id_prefix: String,
    mut questions: mpsc::UnboundedReceiver<FreshReply>,
    state: Arc<ClusterState>,
) {
    let mut sent: u64 = 0;
    while let Some(first) = questions.recv().await {
        sent += 1;
        let id = format!("{id_prefix}fresh-{sent}");
        let mut waiting = vec![first];
        while let Ok(more) = questions.try_recv() {
            waiting.push(more);
        }
        let marker = async {
            js.send_publish(
                subject.clone(),
                jetstream::message::PublishMessage::build().message_id(&id),
            )
            .await
            .ok()?
            .await
            .ok()
        };
        let last = match tokio::time::timeout(ACK_TIMEOUT, marker).await {
            Ok(Some(ack)) => {
                bump(&state.fresh_markers, 1);
                Some(ack.sequence)
            }
            _ => None,
        };
        if let Some(last) = last {
            state.saw_stream_last(last);
        }
        for reply in waiting {
            let _ = reply.send(last);
        }
    }
}

/// Who a stream message is: its bytes, keyed by its `Nats-Msg-Id` (the publisher's
/// `{node}-{boot}-{n}`; none for a fresh read's marker). Two messages with the same identity
/// are the same batch; a message stored again under another sequence keeps it.
pub(super) fn identity(headers: Option<&async_nats::HeaderMap>, payload: &[u8]) -> u64 {
    let id = headers
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map_or(&b""[..], |v| v.as_str().as_bytes());
    xxh3_64_with_seed(payload, xxh3_64(id))
}

/// What the stream holds now at a sequence this server read.
pub(super) enum ReadBack {
    /// The message this server read there.
    Same,
    /// Another message: the stream went back and was written again.
    Other,
    /// No message there (it went back, or the message expired).
    Missing,
    /// The leader did not answer in time: no evidence either way.
    NoAnswer,
}

/// Reads message `seq` back from the stream's leader (`STREAM.MSG.GET` always reaches it)
/// and compares it with `was`, the [`identity`] of the one this server read there.
pub(super) async fn read_back(stream: &stream::Stream, seq: u64, was: u64) -> ReadBack {
    match tokio::time::timeout(ACK_TIMEOUT, stream.get_raw_message(seq)).await {
        Ok(Ok(m)) if identity(Some(&m.headers), &m.payload) == was => ReadBack::Same,
        Ok(Ok(_)) => ReadBack::Other,
        Ok(Err(e)) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => ReadBack::Missing,
        _ => ReadBack::NoAnswer,
    }
}

/// The fatal error of a stream that holds another batch at sequence `seq` than the one this
/// server read there.
pub(super) fn another_batch(name: &str, seq: u64) -> StartError {
    StartError::Cluster(format!(
        "the stream {name} holds another batch at sequence {seq} than the one this server read there: the stream went back (a NATS node lost messages it had acknowledged and gave their sequences to new ones), so this server stops rather than count on and differ from the other servers in silence. Run NATS with sync_interval always (README, \"Which NATS\"); a server started now counts the stream as it is, from the newest snapshot on"
    ))
}

/// What the consumer reads from and feeds.
pub(super) struct Consumer {
    pub stream: stream::Stream,
    /// The stream's name (for messages) and its events' subject.
    pub name: String,
    pub subject: String,
    /// The writer's queue and its message boundaries.
    pub feed_ingest: Arc<Ingest>,
    pub feed: Arc<Feed>,
    pub state: Arc<ClusterState>,
    /// Set to true: stop consuming.
    pub stop: watch::Receiver<bool>,
    /// Where a stream this server cannot follow is reported.
    pub fatal: Fatal,
}

/// Reads the stream from `next` on, in order, into the writer's queue. A message missing
/// from the stream (removed through the JetStream API) is a gap no server can count past: it
/// goes to `fatal`, with the way out. A stop (`stop`) ends it at once, whatever it waits for:
/// the next message, or an answer from NATS (a consumer made, a read-back, the stream's end).
pub(super) async fn consume(c: Consumer, mut next: u64) {
    let Consumer {
        stream,
        name,
        subject,
        feed_ingest,
        feed,
        state,
        mut stop,
        fatal,
    } = c;
    let mut first = true;
    loop {
        if !first {
            bump(&state.consumer_restarts, 1);
            if pause(Duration::from_millis(200), &mut stop).await {
                return;
            }
        }
        first = false;
        // The name of the consumer whose messages were read back before (module doc).
        let mut checked: Option<String> = None;
        let config = consumer::pull::OrderedConfig {
            filter_subject: subject.clone(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: next,
            },
            max_expires: MAX_EXPIRES,
            ..Default::default()
        };
        let Some(made) = unless_stopped(stream.create_consumer(config), &mut stop).await else {
            return;
        };
        let messages = match made {
            Ok(c) => match unless_stopped(c.messages(), &mut stop).await {
                Some(messages) => messages,
                None => return,
            },
            Err(e) => {
                if state.consumer_log_due() {
                    tracing::warn!(error = %e, from = next, "cluster: cannot create the consumer; retrying");
                }
                continue;
            }
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                if state.consumer_log_due() {
                    tracing::warn!(error = %e, from = next, "cluster: cannot read the stream; retrying");
                }
                continue;
            }
        };
        loop {
            let Some(item) =
                unless_stopped(tokio::time::timeout(STALL, messages.next()), &mut stop).await
            else {
                return;
            };
            let message = match item {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => {
                    if state.consumer_log_due() {
                        tracing::warn!(error = %e, at = next, "cluster: consumer error; creating it again");
                    }
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    // Quiet for a while: fine if the stream has nothing more, else recreate.
                    match unless_stopped(stream.get_info(), &mut stop).await {
                        None => return,
                        Some(Ok(info)) if info.state.last_sequence >= next => {
                            if state.consumer_log_due() {
                                tracing::warn!(
                                    at = next,
                                    stream_last = info.state.last_sequence,
                                    "cluster: consumer stalled; creating it again"
                                );
                            }
                            break;
                        }
                        _ => continue,
                    }
                }
            };
            let Ok(info) = message.info() else {
                break;
            };
            let (seq, pending) = (info.stream_sequence, info.pending);
            if seq < next {
                continue;
            }
            if seq > next {
                let asked = tokio::time::timeout(ACK_TIMEOUT, stream.get_raw_message(next));
                let Some(answer) = unless_stopped(asked, &mut stop).await else {
                    return;
                };
                let missing = answer.is_ok_and(|r| {
                    r.is_err_and(|e| e.kind() == stream::RawMessageErrorKind::NoMessageFound)
                });
                if missing {
                    fatal.report(StartError::Cluster(format!(
                        "the stream {name} has no message {next} (it was removed; the next is {seq}): this server applied the stream up to {} and cannot count past the gap. Start it from a snapshot that covers {next}: a server that applied it stores one every --snapshot-interval-s and at a graceful stop, and a starting server loads the newest",
                        next - 1
                    )));
                    return;
                }
                if state.consumer_log_due() {
                    tracing::warn!(
                        expected = next,
                        got = seq,
                        "cluster: gap in the consumer's delivery; creating the consumer again"
                    );
                }
                break;
            }
            if checked.as_deref() != Some(info.consumer) {
                if let Some((fed, was)) = state.last_fed() {
                    // Read back what was fed last (module doc). A message no longer there is
                    // left to the other checks: it expired, or the stream went back
                    // (`watch_stream`).
                    let Some(found) = unless_stopped(read_back(&stream, fed, was), &mut stop).await
                    else {
                        return;
                    };
                    match found {
                        ReadBack::Other => {
                            fatal.report(another_batch(&name, fed));
                            return;
                        }
                        ReadBack::NoAnswer => {
                            if state.consumer_log_due() {
                                tracing::warn!(
                                    at = fed,
                                    "cluster: the stream's leader did not answer the read-back of the last message fed; creating the consumer again"
                                );
                            }
                            break;
                        }
                        ReadBack::Same | ReadBack::Missing => {}
                    }
                }
                checked = Some(info.consumer.to_owned());
            }
            state.saw_stream_last(seq + pending);
            let events = match record::decode_group(&message.payload) {
                Ok(group) if group.len == message.payload.len() => group.events,
                // A fresh read's marker (`answer_fresh`): a message of no events.
                _ if message.payload.is_empty() => Vec::new(),
                _ => {
                    // Every server skips the same message: the rings stay equal.
                    bump(&state.messages_skipped, 1);
                    if state.consumer_log_due() {
                        tracing::error!(
                            seq,
                            skipped_so_far = state.figures().messages_skipped,
                            "cluster: a stream message is not a batch of events; skipped"
                        );
                    }
                    Vec::new()
                }
            };
            state.set_last_fed(seq, identity(message.headers.as_ref(), &message.payload));
            feed.messages.push((seq, events.len() as u32));
            for event in events {
                loop {
                    match feed_ingest.push(event) {
                        Ok(()) => break,
                        Err(PushError::Full) => tokio::time::sleep(Duration::from_millis(1)).await,
                        Err(PushError::Closed) => return,
                    }
                }
            }
            if feed_ingest.queued() == 0 {
                // A message with no events: wake the writer so it counts it off.
                feed_ingest.wake_popper();
            }
            next = seq + 1;
        }
    }
}

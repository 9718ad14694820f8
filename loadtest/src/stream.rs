//! Open-loop driver for the bidirectional `IngestStream` RPC: each stream sends its share of
//! the schedule at the due times and matches the in-order acknowledgements by `batch_id`.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime},
};

use iee_api::pb::ingest::{
    IngestStreamRequest, IngestStreamResponse, touchpoint_service_client::TouchpointServiceClient,
};
use iee_api::tonic::{Code, transport::Channel};
use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinSet,
    time::{Instant, sleep_until, timeout, timeout_at},
};
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::{
    generator::Generator,
    stats::{ACK_MISSING, DRAIN_TIMEOUT, Recorder, STREAM_CLOSED, Schedule, Slot, code_name},
};

/// How long a stream may take to end after its half-close; acks arriving meanwhile still count.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Runs one stream per client; stream `k` of `n` sends requests `k, k + n, k + 2n, …`, so the
/// streams together follow the schedule. The in-flight cap is shared by all streams.
pub async fn run(
    clients: Vec<TouchpointServiceClient<Channel>>,
    generator: Arc<Generator>,
    schedule: Schedule,
    max_in_flight: u32,
    drain: Duration,
    recorder: &Recorder,
) {
    let permits = Arc::new(Semaphore::new(max_in_flight as usize));
    let streams = clients.len() as u64;
    let mut tasks = JoinSet::new();
    for (k, client) in clients.into_iter().enumerate() {
        let stream = OneStream {
            client,
            generator: Arc::clone(&generator),
            schedule,
            first: k as u64,
            step: streams,
            permits: Arc::clone(&permits),
            drain,
            recorder: recorder.clone(),
        };
        tasks.spawn(stream.run());
    }
    while tasks.join_next().await.is_some() {}
}

struct OneStream {
    client: TouchpointServiceClient<Channel>,
    generator: Arc<Generator>,
    schedule: Schedule,
    first: u64,
    step: u64,
    permits: Arc<Semaphore>,
    drain: Duration,
    recorder: Recorder,
}

/// A batch sent and not yet acknowledged; holds its in-flight permit until then.
struct Pending {
    batch_id: u64,
    slot: Slot,
    _permit: OwnedSemaphorePermit,
}

/// State shared by a stream's sender and its acknowledgement reader.
#[derive(Default)]
struct Outstanding {
    queue: VecDeque<Pending>,
    /// Set once the response stream has ended, with the code its open batches failed with.
    closed: Option<&'static str>,
}

struct Shared {
    state: Mutex<Outstanding>,
    /// Signalled when the queue empties or the stream closes.
    idle: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Outstanding> {
        // The counters stay usable after a panic elsewhere; losing the report would be worse.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl OneStream {
    async fn run(self) {
        let shared = Arc::new(Shared {
            state: Mutex::new(Outstanding::default()),
            idle: Notify::new(),
        });
        // Unbounded because the shared in-flight permits already bound what can be queued.
        let (tx, rx) = mpsc::unbounded_channel();
        let mut reader = tokio::spawn(read_acks(
            self.client.clone(),
            rx,
            Arc::clone(&shared),
            self.recorder.clone(),
        ));

        let mut index = self.first;
        while index < self.schedule.count {
            let slot = self.schedule.slot(index);
            let events = self.generator.batch(index, SystemTime::now());
            sleep_until(slot.wake_at().into()).await;
            self.recorder.due(slot);
            let sent = {
                let mut state = shared.lock();
                if let Some(code) = state.closed {
                    // The stream is gone; its remaining share of the schedule fails unsent.
                    self.recorder.error(slot, code, false);
                    None
                } else if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
                    let slot = self.recorder.sent(slot, events.len());
                    // Queued before sending so an ack can never overtake its entry.
                    state.queue.push_back(Pending {
                        batch_id: index,
                        slot,
                        _permit: permit,
                    });
                    Some(events)
                } else {
                    self.recorder.dropped(slot);
                    None
                }
            };
            if let Some(events) = sent {
                // A send error means the call is over; the reader fails the queued entry.
                let _ = tx.send(IngestStreamRequest {
                    batch_id: index,
                    events,
                });
            }
            index += self.step;
        }

        let deadline = Instant::now() + self.drain;
        loop {
            let idle = shared.idle.notified();
            {
                let state = shared.lock();
                if state.queue.is_empty() || state.closed.is_some() {
                    break;
                }
            }
            if timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
        // Half-close: the server answers what it has read and ends the response stream.
        drop(tx);
        if timeout(CLOSE_GRACE, &mut reader).await.is_err() {
            reader.abort();
            // Waited for so that no ack is recorded after the queue is drained below.
            let _ = reader.await;
        }
        for pending in shared.lock().queue.drain(..) {
            self.recorder.error(pending.slot, DRAIN_TIMEOUT, true);
        }
    }
}

async fn read_acks(
    mut client: TouchpointServiceClient<Channel>,
    rx: mpsc::UnboundedReceiver<IngestStreamRequest>,
    shared: Arc<Shared>,
    recorder: Recorder,
) {
    let outcome = match client.ingest_stream(UnboundedReceiverStream::new(rx)).await {
        Err(status) => code_name(status.code()),
        Ok(response) => {
            let mut acks = response.into_inner();
            loop {
                match acks.message().await {
                    Ok(Some(ack)) => on_ack(&shared, &recorder, ack),
                    Ok(None) => break STREAM_CLOSED,
                    Err(status) => break code_name(status.code()),
                }
            }
        }
    };
    let mut state = shared.lock();
    state.closed = Some(outcome);
    for pending in state.queue.drain(..) {
        recorder.error(pending.slot, outcome, true);
    }
    drop(state);
    shared.idle.notify_one();
}

fn on_ack(shared: &Shared, recorder: &Recorder, ack: IngestStreamResponse) {
    let mut state = shared.lock();
    let Some(position) = state.queue.iter().position(|p| p.batch_id == ack.batch_id) else {
        recorder.unmatched_ack();
        return;
    };
    // Acks come in order: batches queued before this one were skipped by the server.
    for skipped in state.queue.drain(..position) {
        recorder.error(skipped.slot, ACK_MISSING, true);
    }
    let pending = state
        .queue
        .pop_front()
        .expect("the acknowledged batch was found in the queue above");
    match ack.error {
        Some(error) => recorder.error(pending.slot, code_name(Code::from_i32(error.code)), true),
        None => recorder.ok(pending.slot, ack.accepted, ack.duplicates, ack.rejected),
    }
    if state.queue.is_empty() {
        drop(state);
        shared.idle.notify_one();
    }
}

//! Open-loop driver for the unary `Ingest` RPC: one request per batch, sent at its scheduled
//! time on its own task, however many earlier requests are still unanswered.

use std::{sync::Arc, time::SystemTime};

use iee_api::pb::ingest::{IngestRequest, touchpoint_service_client::TouchpointServiceClient};
use iee_api::tonic::transport::Channel;
use tokio::{
    sync::Semaphore,
    task::JoinSet,
    time::{Instant, sleep_until, timeout_at},
};

use crate::{
    generator::Generator,
    stats::{DRAIN_TIMEOUT, Recorder, Schedule, code_name},
};

/// Sends the whole schedule, then waits up to `drain` for the answers still outstanding.
pub async fn run(
    client: TouchpointServiceClient<Channel>,
    generator: &Generator,
    schedule: Schedule,
    max_in_flight: u32,
    drain: std::time::Duration,
    recorder: &Recorder,
) {
    let permits = Arc::new(Semaphore::new(max_in_flight as usize));
    let mut tasks = JoinSet::new();
    for index in 0..schedule.count {
        let slot = schedule.slot(index);
        // Built before waiting, so generation eats into the idle gap, not into the latency.
        let events = generator.batch(index, SystemTime::now());
        sleep_until(slot.wake_at().into()).await;
        recorder.due(slot);
        // Reap finished tasks so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            recorder.dropped(slot);
            continue;
        };
        let slot = recorder.sent(slot, events.len());
        let mut client = client.clone();
        let recorder = recorder.clone();
        tasks.spawn(async move {
            let _permit = permit;
            match client.ingest(IngestRequest { events }).await {
                Ok(response) => {
                    let r = response.into_inner();
                    recorder.ok(slot, r.accepted, r.duplicates, r.rejected);
                }
                Err(status) => recorder.error(slot, code_name(status.code()), true),
            }
        });
    }
    let deadline = Instant::now() + drain;
    while let Ok(Some(_)) = timeout_at(deadline, tasks.join_next()).await {}
    // Whatever is still running is abandoned; it is counted by what it did not record.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    recorder.abandon_outstanding(DRAIN_TIMEOUT);
}

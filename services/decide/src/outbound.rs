//! `WatchOutbound`: a tenant's outbound stream, from the store to a delivery system, resuming
//! after the consumer's cursor.

use std::time::Duration;

use iee_api::decide::{DecideError, OutboundAction, OutboundStream, WatchOutboundRequest};
use iee_store::Stores;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::service::require;

/// Entries read from the store at a time.
const PAGE: usize = 256;
/// Longest wait of one store read; the stream notices a gone consumer at least this often.
const BLOCK: Duration = Duration::from_secs(1);

/// Opens the stream; it ends with an error only when the store fails, and cleanly when the
/// process begins to shut down (the consumer reconnects, to another replica, after its cursor).
pub(crate) fn watch(
    stores: Stores,
    request: WatchOutboundRequest,
    shutdown: iee_runtime::Shutdown,
) -> Result<OutboundStream, DecideError> {
    require("tenant_id", &request.tenant_id)?;
    let (tx, rx) = mpsc::channel(PAGE);
    tokio::spawn(async move {
        let mut after = request.start_after;
        loop {
            let page = tokio::select! {
                () = shutdown.wait() => return,
                page = stores.outbound.read_outbound(&request.tenant_id, &after, PAGE, BLOCK) => page,
            };
            let entries = match page {
                Ok(entries) => entries,
                Err(err) => {
                    let _ = tx
                        .send(Err(DecideError::Unavailable(format!(
                            "outbound stream: {err}"
                        ))))
                        .await;
                    return;
                }
            };
            if entries.is_empty() && tx.is_closed() {
                return;
            }
            for entry in entries {
                after = entry.cursor.clone();
                let item = OutboundAction::decode(entry.payload.as_slice())
                    .map(|mut action| {
                        action.cursor = entry.cursor;
                        action
                    })
                    .map_err(|e| DecideError::Internal(format!("bad outbound entry: {e}")));
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

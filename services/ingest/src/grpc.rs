//! The gRPC face of the ingest service: maps the tonic trait onto [`Ingestor`], and runs the
//! stream RPC with a bounded read-ahead so a fast sender is held back by flow control.

use std::{pin::Pin, sync::Arc};

use iee_api::ingest::{
    BatchError, IdentifyRequest, IdentifyResponse, IngestError, IngestRequest, IngestResponse,
    IngestStreamRequest, IngestStreamResponse, ListRejectedRequest, ListRejectedResponse,
    TouchpointApi, touchpoint_service_server::TouchpointService,
};
use iee_api::metadata::retry_after_ms;
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use iee_runtime::Shutdown;

use crate::service::{Admission, Ingestor};

/// Adapter from the generated gRPC trait to the ingest logic.
#[derive(Debug, Clone)]
pub(crate) struct TouchpointGrpc {
    pub(crate) ingestor: Arc<Ingestor>,
    pub(crate) shutdown: Shutdown,
}

impl TouchpointGrpc {
    /// Runs one unary RPC: its span (continuing the caller's trace), its RED metrics, logging
    /// of internal and log failures, and the error-to-status mapping.
    async fn call<Req, T, Fut>(
        &self,
        rpc: &'static str,
        request: Request<Req>,
        work: impl FnOnce(Req) -> Fut,
    ) -> Result<Response<T>, Status>
    where
        Req: iee_api::tenancy::TenantScoped + prost::Message,
        Fut: std::future::Future<Output = Result<T, IngestError>>,
    {
        iee_runtime::serve_unary(&self.ingestor.metrics.rpc, "ingest", rpc, request, work).await
    }
}

type AckStream = Pin<Box<dyn Stream<Item = Result<IngestStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl TouchpointService for TouchpointGrpc {
    async fn ingest(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        self.call("Ingest", request, |r| self.ingestor.ingest(r))
            .await
    }

    type IngestStreamStream = AckStream;

    async fn ingest_stream(
        &self,
        request: Request<Streaming<IngestStreamRequest>>,
    ) -> Result<Response<Self::IngestStreamStream>, Status> {
        let timer = self.ingestor.metrics.rpc.start("IngestStream");
        if let Err(status) = iee_runtime::authenticated(request.extensions()) {
            timer.finish(iee_api::metadata::code_name(status.code()));
            return Err(status);
        }
        let span = iee_telemetry::rpc_span("ingest", "IngestStream", request.metadata());
        // Each batch is admitted on its own: its tenants against the caller's token, and the
        // tenants' rate and size limits.
        let admission = request.extensions().clone();
        let mut inbound = request.into_inner();
        let read_ahead = self.ingestor.config().stream_read_ahead;
        // The reader parks once `read_ahead` batches wait; it then stops polling the HTTP/2
        // stream, whose window fills, and the sender's writes block: end-to-end backpressure.
        let (batch_tx, mut batch_rx) = mpsc::channel::<IngestStreamRequest>(read_ahead);
        let (ack_tx, ack_rx) = mpsc::channel::<Result<IngestStreamResponse, Status>>(read_ahead);
        let in_flight = self.ingestor.metrics.stream_batches_in_flight.clone();

        let reader_acks = ack_tx.clone();
        let reader_gauge = in_flight.clone();
        let stop = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                // On shutdown, stop reading: the batches already read are appended and
                // acknowledged, then the response stream ends cleanly and the client sends the
                // rest to another replica (duplicates are detected).
                let next = tokio::select! {
                    biased;
                    () = stop.wait() => break,
                    next = inbound.message() => next,
                };
                match next {
                    Ok(Some(batch)) => {
                        reader_gauge.inc();
                        if batch_tx.send(batch).await.is_err() {
                            reader_gauge.dec();
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        // The client went away or sent garbage; end the response stream too.
                        let _ = reader_acks.send(Err(status)).await;
                        break;
                    }
                }
            }
        });

        let ingestor = self.ingestor.clone();
        tokio::spawn(async move {
            // One batch at a time per stream keeps per-customer order across batches.
            while let Some(batch) = batch_rx.recv().await {
                let batch_span = tracing::info_span!(
                    parent: &span,
                    "batch",
                    otel.name = "ingest.IngestStream.batch",
                    batch_id = batch.batch_id,
                );
                let ingested = match iee_runtime::admit(&admission, &batch) {
                    Ok(()) => ingestor
                        .ingest_batch(batch.events, Admission::Wait, "IngestStream")
                        .instrument(batch_span)
                        .await
                        .map_err(|err| {
                            if let IngestError::Unavailable(detail) = &err {
                                tracing::warn!(error = %detail, batch_id = batch.batch_id, "stream batch failed: event log unavailable");
                            }
                            Status::from(err)
                        }),
                    // Held back like a unary refusal; the stream's next batch waits too.
                    Err(refused) => Err(iee_runtime::hold_refusal(refused).await),
                };
                let ack = match ingested {
                    Ok(response) => IngestStreamResponse {
                        batch_id: batch.batch_id,
                        results: response.results,
                        accepted: response.accepted,
                        duplicates: response.duplicates,
                        rejected: response.rejected,
                        error: None,
                    },
                    Err(status) => IngestStreamResponse {
                        batch_id: batch.batch_id,
                        error: Some(BatchError {
                            code: status.code() as i32,
                            message: status.message().to_owned(),
                            retry_after_ms: retry_after_ms(&status).unwrap_or(0),
                        }),
                        ..Default::default()
                    },
                };
                in_flight.dec();
                if ack_tx.send(Ok(ack)).await.is_err() {
                    // The client stopped listening; drop what is still queued.
                    while batch_rx.recv().await.is_some() {
                        in_flight.dec();
                    }
                    break;
                }
            }
            timer.finish("OK");
        });

        Ok(Response::new(Box::pin(ReceiverStream::new(ack_rx))))
    }

    async fn identify(
        &self,
        request: Request<IdentifyRequest>,
    ) -> Result<Response<IdentifyResponse>, Status> {
        self.call("Identify", request, |r| self.ingestor.identify(r))
            .await
    }

    async fn list_rejected(
        &self,
        request: Request<ListRejectedRequest>,
    ) -> Result<Response<ListRejectedResponse>, Status> {
        self.call("ListRejected", request, |r| self.ingestor.list_rejected(r))
            .await
    }
}

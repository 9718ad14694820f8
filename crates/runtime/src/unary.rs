//! The envelope of every unary RPC handler: its span, its RED metrics and its error mapping.

use std::future::Future;

use iee_api::metadata::code_name;
use iee_telemetry::{RpcMetrics, rpc_span};
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// Runs one unary RPC: `work` in a `<service>.<rpc>` span that continues the caller's W3C
/// trace, the RPC's request count and latency labelled with its status code, and `to_status`
/// for its error (where a service logs what operators need and hides internal details).
pub async fn serve_unary<Req, T, E, Fut>(
    metrics: &RpcMetrics,
    service: &'static str,
    rpc: &'static str,
    request: Request<Req>,
    work: impl FnOnce(Req) -> Fut,
    to_status: impl FnOnce(E) -> Status,
) -> Result<Response<T>, Status>
where
    Fut: Future<Output = Result<T, E>>,
{
    let timer = metrics.start(rpc);
    let span = rpc_span(service, rpc, request.metadata());
    match work(request.into_inner()).instrument(span).await {
        Ok(response) => {
            timer.finish("OK");
            Ok(Response::new(response))
        }
        Err(err) => {
            let status = to_status(err);
            timer.finish(code_name(status.code()));
            Err(status)
        }
    }
}

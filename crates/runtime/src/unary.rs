//! The envelope of every unary RPC handler: its span, its RED metrics and its error mapping.

use std::future::Future;

use iee_api::{metadata::code_name, tenancy::TenantScoped};
use iee_telemetry::{RpcMetrics, rpc_span};
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

use crate::{admit, hold_refusal};

/// What clients are told instead of an internal error's details, which stay in the log.
pub const INTERNAL_DETAILS_LOGGED: &str = "internal error: details are in the server log";

/// The status an error leaves a service as: an INTERNAL error's details are logged and replaced
/// by [`INTERNAL_DETAILS_LOGGED`], an UNAVAILABLE one is logged as a warning (a dependency is
/// down), anything else passes unchanged.
pub fn outgoing_status(service: &'static str, rpc: &'static str, status: Status) -> Status {
    match status.code() {
        Code::Internal => {
            tracing::error!(service, rpc, error = %status.message(), "internal error");
            Status::internal(INTERNAL_DETAILS_LOGGED)
        }
        Code::Unavailable => {
            tracing::warn!(service, rpc, error = %status.message(), "unavailable");
            status
        }
        _ => status,
    }
}

/// Runs one unary RPC: admission ([`crate::admit`]: the caller's token and the tenant's limits),
/// then `work` in a `<service>.<rpc>` span that continues the caller's W3C trace, the RPC's
/// request count and latency labelled with its status code, and its error as
/// [`outgoing_status`] makes it.
pub async fn serve_unary<Req, T, E, Fut>(
    metrics: &RpcMetrics,
    service: &'static str,
    rpc: &'static str,
    request: Request<Req>,
    work: impl FnOnce(Req) -> Fut,
) -> Result<Response<T>, Status>
where
    Req: TenantScoped + prost::Message,
    Fut: Future<Output = Result<T, E>>,
    E: Into<Status>,
{
    let timer = metrics.start(rpc);
    if let Err(status) = admit(request.extensions(), request.get_ref()) {
        drop(request);
        let status = hold_refusal(status).await;
        timer.finish(code_name(status.code()));
        return Err(status);
    }
    let span = rpc_span(service, rpc, request.metadata());
    match work(request.into_inner()).instrument(span).await {
        Ok(response) => {
            timer.finish("OK");
            Ok(Response::new(response))
        }
        Err(err) => {
            let status = outgoing_status(service, rpc, err.into());
            timer.finish(code_name(status.code()));
            Err(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_stay_in_the_process_and_other_errors_pass_unchanged() {
        let internal = outgoing_status("t", "Rpc", Status::internal("redis NOSCRIPT at key x"));
        assert_eq!(internal.code(), Code::Internal);
        assert_eq!(internal.message(), INTERNAL_DETAILS_LOGGED);
        let mut invalid = Status::invalid_argument("invalid argument `a`: b");
        invalid.metadata_mut().insert(
            "iee-field",
            tonic::metadata::MetadataValue::from_static("a"),
        );
        let passed = outgoing_status("t", "Rpc", invalid.clone());
        assert_eq!(passed.message(), invalid.message());
        assert_eq!(
            passed.metadata().get("iee-field"),
            invalid.metadata().get("iee-field")
        );
        let down = outgoing_status("t", "Rpc", Status::unavailable("redis down"));
        assert_eq!(
            (down.code(), down.message()),
            (Code::Unavailable, "redis down")
        );
    }
}

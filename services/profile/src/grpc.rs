//! The gRPC face of the profile service: maps the generated tonic trait onto [`ProfileApi`], with
//! one span and RED metrics per RPC and the one error-to-status mapping.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use iee_api::metadata::code_name;
use iee_api::profile::{
    CommitContactRequest, CommitContactResponse, EraseCustomerRequest, EraseCustomerResponse,
    GetProfileRequest, GetProfileResponse, ProfileApi, ProfileError, ReleaseContactRequest,
    ReleaseContactResponse, ReserveContactRequest, ReserveContactResponse, SignalStream,
    WatchSignalsRequest, WatchSignalsResponse,
    profile_service_server::{ProfileService, ProfileServiceServer},
};
use iee_telemetry::{RpcMetrics, RpcTimer};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// Adapter from the generated gRPC trait to a [`ProfileApi`] (the profile node).
pub struct ProfileGrpc {
    api: Arc<dyn ProfileApi>,
    metrics: RpcMetrics,
}

impl std::fmt::Debug for ProfileGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileGrpc").finish_non_exhaustive()
    }
}

/// `ProfileService` over `api`, recording RED metrics into `metrics` (registered by the caller
/// as `RpcMetrics::register(registry, "profile")`). Message limits are tonic's defaults; chain
/// `max_decoding_message_size` on the result to change them.
pub fn service(api: Arc<dyn ProfileApi>, metrics: RpcMetrics) -> ProfileServiceServer<ProfileGrpc> {
    ProfileServiceServer::new(ProfileGrpc { api, metrics })
}

/// The status of an error as it leaves the process (internal details stay in the log).
fn to_status(rpc: &'static str, err: ProfileError) -> Status {
    iee_runtime::outgoing_status("profile", rpc, err.into())
}

impl ProfileGrpc {
    async fn call<Req, T, Fut>(
        &self,
        rpc: &'static str,
        request: Request<Req>,
        work: impl FnOnce(Req) -> Fut,
    ) -> Result<Response<T>, Status>
    where
        Req: iee_api::tenancy::TenantScoped + prost::Message,
        Fut: Future<Output = Result<T, ProfileError>>,
    {
        iee_runtime::serve_unary(&self.metrics, "profile", rpc, request, work).await
    }
}

#[tonic::async_trait]
impl ProfileService for ProfileGrpc {
    async fn get_profile(
        &self,
        request: Request<GetProfileRequest>,
    ) -> Result<Response<GetProfileResponse>, Status> {
        self.call("GetProfile", request, |r| self.api.get_profile(r))
            .await
    }

    async fn erase_customer(
        &self,
        request: Request<EraseCustomerRequest>,
    ) -> Result<Response<EraseCustomerResponse>, Status> {
        self.call("EraseCustomer", request, |r| self.api.erase_customer(r))
            .await
    }

    async fn reserve_contact(
        &self,
        request: Request<ReserveContactRequest>,
    ) -> Result<Response<ReserveContactResponse>, Status> {
        self.call("ReserveContact", request, |r| self.api.reserve_contact(r))
            .await
    }

    async fn commit_contact(
        &self,
        request: Request<CommitContactRequest>,
    ) -> Result<Response<CommitContactResponse>, Status> {
        self.call("CommitContact", request, |r| self.api.commit_contact(r))
            .await
    }

    async fn release_contact(
        &self,
        request: Request<ReleaseContactRequest>,
    ) -> Result<Response<ReleaseContactResponse>, Status> {
        self.call("ReleaseContact", request, |r| self.api.release_contact(r))
            .await
    }

    type WatchSignalsStream = SignalResponses;

    async fn watch_signals(
        &self,
        request: Request<WatchSignalsRequest>,
    ) -> Result<Response<Self::WatchSignalsStream>, Status> {
        const RPC: &str = "WatchSignals";
        let timer = self.metrics.start(RPC);
        if let Err(status) = iee_runtime::admit(request.extensions(), request.get_ref()) {
            timer.finish(code_name(status.code()));
            return Err(status);
        }
        let span = iee_telemetry::rpc_span("profile", RPC, request.metadata());
        match self
            .api
            .watch_signals(request.into_inner())
            .instrument(span.clone())
            .await
        {
            Ok(signals) => Ok(Response::new(SignalResponses {
                signals,
                timer: Some(timer),
                span,
            })),
            Err(err) => {
                timer.finish(code_name(err.code()));
                Err(to_status(RPC, err))
            }
        }
    }
}

/// The response stream of `WatchSignals`: each signal in its message, polled in the RPC's span.
/// The call is recorded when the stream ends: `OK` at a clean end, the error's code when an
/// error ends it, `CANCELLED` when the client goes away first (the stream is dropped unfinished).
pub struct SignalResponses {
    signals: SignalStream,
    timer: Option<RpcTimer>,
    span: tracing::Span,
}

impl std::fmt::Debug for SignalResponses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalResponses")
            .field("finished", &self.timer.is_none())
            .finish_non_exhaustive()
    }
}

/// Records the call once, with its final code.
fn finish(timer: &mut Option<RpcTimer>, code: &'static str) {
    if let Some(timer) = timer.take() {
        timer.finish(code);
    }
}

impl Stream for SignalResponses {
    type Item = Result<WatchSignalsResponse, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Self {
            signals,
            timer,
            span,
        } = self.get_mut();
        if timer.is_none() {
            // Finished: an error was the last item.
            return Poll::Ready(None);
        }
        let _entered = span.enter();
        match signals.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                finish(timer, "OK");
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(signal))) => Poll::Ready(Some(Ok(WatchSignalsResponse {
                signal: Some(signal),
            }))),
            Poll::Ready(Some(Err(err))) => {
                finish(timer, code_name(err.code()));
                Poll::Ready(Some(Err(to_status("WatchSignals", err))))
            }
        }
    }
}

impl Drop for SignalResponses {
    fn drop(&mut self) {
        finish(&mut self.timer, "CANCELLED");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use iee_api::profile::Signal;
    use iee_telemetry::MetricsRegistry;
    use tokio_stream::StreamExt;
    use tonic::Code;

    use super::*;

    /// Answers every unary RPC with `result` and streams `signals`.
    struct Fake {
        result: Result<(), ProfileError>,
        signals: Mutex<Option<Vec<Result<Signal, ProfileError>>>>,
    }

    impl Fake {
        fn answer<T: Default>(&self) -> Result<T, ProfileError> {
            self.result.clone().map(|()| T::default())
        }
    }

    #[async_trait::async_trait]
    impl ProfileApi for Fake {
        async fn get_profile(
            &self,
            _: GetProfileRequest,
        ) -> Result<GetProfileResponse, ProfileError> {
            self.answer()
        }
        async fn erase_customer(
            &self,
            _: EraseCustomerRequest,
        ) -> Result<EraseCustomerResponse, ProfileError> {
            self.answer()
        }
        async fn reserve_contact(
            &self,
            _: ReserveContactRequest,
        ) -> Result<ReserveContactResponse, ProfileError> {
            self.answer()
        }
        async fn commit_contact(
            &self,
            _: CommitContactRequest,
        ) -> Result<CommitContactResponse, ProfileError> {
            self.answer()
        }
        async fn release_contact(
            &self,
            _: ReleaseContactRequest,
        ) -> Result<ReleaseContactResponse, ProfileError> {
            self.answer()
        }
        async fn watch_signals(
            &self,
            _: WatchSignalsRequest,
        ) -> Result<SignalStream, ProfileError> {
            self.result.clone()?;
            let signals = self.signals.lock().unwrap().take().unwrap_or_default();
            Ok(Box::pin(tokio_stream::iter(signals)))
        }
    }

    fn grpc(
        result: Result<(), ProfileError>,
        signals: Vec<Result<Signal, ProfileError>>,
    ) -> (ProfileGrpc, MetricsRegistry) {
        let registry = MetricsRegistry::default();
        let grpc = ProfileGrpc {
            api: Arc::new(Fake {
                result,
                signals: Mutex::new(Some(signals)),
            }),
            metrics: RpcMetrics::register(&registry, "profile"),
        };
        (grpc, registry)
    }

    fn counted(registry: &MetricsRegistry, rpc: &str, code: &str) -> bool {
        registry.encode().contains(&format!(
            r#"iee_profile_rpc_requests_total{{rpc="{rpc}",code="{code}"}} 1"#
        ))
    }

    fn signal(id: &str) -> Signal {
        Signal {
            signal_id: id.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn success_is_counted_as_ok() {
        let (grpc, registry) = grpc(Ok(()), vec![]);
        grpc.get_profile(Request::new(GetProfileRequest::default()))
            .await
            .unwrap();
        assert!(
            counted(&registry, "GetProfile", "OK"),
            "{}",
            registry.encode()
        );
    }

    #[tokio::test]
    async fn redirect_reaches_the_client_with_its_owner_and_code_label() {
        let redirect = ProfileError::WrongOwner {
            shard: 3,
            owner: "10.0.0.2:7001".into(),
            epoch: 8,
        };
        let (grpc, registry) = grpc(Err(redirect.clone()), vec![]);
        let status = grpc
            .reserve_contact(Request::new(ReserveContactRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(ProfileError::from_status(status), redirect);
        assert!(counted(&registry, "ReserveContact", "FAILED_PRECONDITION"));
    }

    #[tokio::test]
    async fn internal_details_are_not_sent() {
        let (grpc, registry) = grpc(
            Err(ProfileError::Internal(
                "redis NOSCRIPT at {s3}:profile".into(),
            )),
            vec![],
        );
        let status = grpc
            .commit_contact(Request::new(CommitContactRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("redis"), "{}", status.message());
        assert!(counted(&registry, "CommitContact", "INTERNAL"));
    }

    #[tokio::test]
    async fn signals_are_streamed_and_the_call_counted_at_the_end() {
        let (grpc, registry) = grpc(Ok(()), vec![Ok(signal("s-1")), Ok(signal("s-2"))]);
        let mut stream = grpc
            .watch_signals(Request::new(WatchSignalsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.signal.unwrap().signal_id, "s-1");
        assert!(!registry.encode().contains(r#"rpc="WatchSignals",code"#));
        assert!(stream.next().await.unwrap().is_ok());
        assert!(stream.next().await.is_none());
        assert!(counted(&registry, "WatchSignals", "OK"));
    }

    #[tokio::test]
    async fn stream_error_ends_the_stream_with_its_code() {
        let (grpc, registry) = grpc(
            Ok(()),
            vec![
                Ok(signal("s-1")),
                Err(ProfileError::Aborted("shard 3 moved".into())),
                Ok(signal("never")),
            ],
        );
        let items: Vec<_> = grpc
            .watch_signals(Request::new(WatchSignalsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .collect()
            .await;
        assert_eq!(items.len(), 2);
        let status = items.into_iter().nth(1).unwrap().unwrap_err();
        assert_eq!(
            ProfileError::from_status(status),
            ProfileError::Aborted("shard 3 moved".into())
        );
        assert!(counted(&registry, "WatchSignals", "ABORTED"));
    }

    #[tokio::test]
    async fn abandoned_stream_is_counted_as_cancelled() {
        let (grpc, registry) = grpc(Ok(()), vec![Ok(signal("s-1"))]);
        let stream = grpc
            .watch_signals(Request::new(WatchSignalsRequest::default()))
            .await
            .unwrap()
            .into_inner();
        drop(stream);
        assert!(counted(&registry, "WatchSignals", "CANCELLED"));
    }

    #[tokio::test]
    async fn watch_that_cannot_start_is_counted_with_its_code() {
        let (grpc, registry) = grpc(Err(ProfileError::NoOwner { shard: 1 }), vec![]);
        let status = grpc
            .watch_signals(Request::new(WatchSignalsRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(counted(&registry, "WatchSignals", "UNAVAILABLE"));
    }
}

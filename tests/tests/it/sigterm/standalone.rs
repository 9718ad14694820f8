//! `iee standalone`, terminated.

use std::sync::Arc;

use iee_api::{
    decide::decision_service_server,
    ingest::{
        ListRejectedRequest, touchpoint_service_client::TouchpointServiceClient,
        touchpoint_service_server,
    },
    kpi::{ListMetricsRequest, kpi_service_client::KpiServiceClient, kpi_service_server},
    predict::prediction_service_server,
    profile::profile_service_server,
};
use iee_tests::spawn_standalone;

use super::{
    processes::TENANT,
    watch::{GRACE_MS, Target, boxed, ready, record, sigterm, watch_termination},
};

/// `iee standalone` (every node on one server) stops the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_goes_unready_serves_through_the_grace_then_drains_and_exits_zero() {
    let iee = spawn_standalone(&[("IEE_SERVER__SHUTDOWN_GRACE_MS", GRACE_MS)]);
    let target = Target {
        binary: "iee standalone",
        addr: iee.addr.clone(),
        services: vec![
            touchpoint_service_server::SERVICE_NAME,
            profile_service_server::SERVICE_NAME,
            prediction_service_server::SERVICE_NAME,
            decision_service_server::SERVICE_NAME,
            kpi_service_server::SERVICE_NAME,
        ],
        call: Arc::new(|channel, _| {
            boxed(async move {
                TouchpointServiceClient::new(channel.clone())
                    .list_rejected(ListRejectedRequest {
                        tenant_id: TENANT.into(),
                        ..ListRejectedRequest::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                KpiServiceClient::new(channel)
                    .list_metrics(ListMetricsRequest {
                        tenant_id: TENANT.into(),
                    })
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        }),
    };
    let channel = ready(&target).await;
    let timeline = watch_termination(&target, channel, sigterm(iee)).await;
    record(target.binary, &timeline);
}

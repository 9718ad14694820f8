//! Per-tenant rate and size limits.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_is_held_to_its_rate_and_size_limits_and_others_are_not() {
    let engine = Engine::start(
        "limits",
        &[
            ("IEE_SERVER__LIMITS__TENANT_RATE_PER_SEC", "20"),
            ("IEE_SERVER__LIMITS__TENANT_BURST", "20"),
            ("IEE_SERVER__LIMITS__MAX_REQUEST_BYTES", "4000"),
        ],
    )
    .await;
    let channel = engine.channel().await;
    let mut ingest = TouchpointServiceClient::new(channel.clone());
    let alpha = Token::Bearer(ALPHA_TOKEN);

    // Alpha sends 40 single events at once: about its burst passes, the rest is refused.
    let mut refused = None;
    let mut accepted = 0;
    for i in 0..40 {
        let sent = ingest
            .ingest(req(
                alpha,
                IngestRequest {
                    events: vec![event(ALPHA, &format!("f-{i}"), "c1", "page_view")],
                },
            ))
            .await;
        match sent {
            Ok(_) => accepted += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                refused = Some(status);
            }
        }
    }
    assert!(
        (20..40).contains(&accepted),
        "{accepted} of 40 accepted at 20/s with a burst of 20"
    );
    let refused = refused.expect("the flood went over the limit");
    assert!(
        refused.message().contains("rate limit of 20 per second"),
        "{}",
        refused.message()
    );
    let retry_after: u64 = refused
        .metadata()
        .get(RETRY_AFTER_METADATA_KEY)
        .expect("retry information")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=1_000).contains(&retry_after),
        "retry after {retry_after} ms"
    );

    // Beta is unaffected while alpha is over its limit.
    ingest
        .ingest(req(
            Token::Bearer(BETA_TOKEN),
            IngestRequest {
                events: vec![event(BETA, "b-ok", "c1", "page_view")],
            },
        ))
        .await
        .unwrap();
    // Waiting as told lets alpha in again.
    tokio::time::sleep(Duration::from_millis(retry_after + 20)).await;
    ingest
        .ingest(req(
            alpha,
            IngestRequest {
                events: vec![event(ALPHA, "f-after", "c1", "page_view")],
            },
        ))
        .await
        .unwrap();

    // A batch larger than the burst can never pass: refused without a retry delay.
    let big_batch: Vec<Event> = (0..21)
        .map(|i| event(BETA, &format!("big-{i}"), "c1", "page_view"))
        .collect();
    let refused = ingest
        .ingest(req(
            Token::Bearer(BETA_TOKEN),
            IngestRequest { events: big_batch },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.metadata().get(RETRY_AFTER_METADATA_KEY).is_none());
    assert!(
        refused.message().contains("burst of 20"),
        "{}",
        refused.message()
    );

    // A request over the size limit is refused, naming the limit.
    let mut large = event(BETA, "large", "c1", "page_view");
    large.text = Some("x".repeat(5_000));
    let refused = ingest
        .ingest(req(
            Token::Bearer(BETA_TOKEN),
            IngestRequest {
                events: vec![large],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .contains("server.limits.max_request_bytes"),
        "{}",
        refused.message()
    );
}

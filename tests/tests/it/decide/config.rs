//! Configurations are validated as a whole: a bad one is refused with the path of each error
//! and the previous version keeps serving, whether it came through `PutConfig` or a mounted
//! file.

use std::time::Duration;

use iee_api::decide::{DecideApi, DecideError, GetConfigRequest, PutConfigRequest};
use iee_test_support::wait_until;
use iee_tests::LoopServices;

use super::support::{TENANT, basic, web_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_is_refused_with_its_paths_and_the_old_one_keeps_serving() {
    let services = LoopServices::start(1, &[], &[("IEE_DECIDE__PROACTIVE", "false")]).await;
    let good = services.configure(TENANT, &basic(None)).await;
    let decide = services.decide_client().await;
    let bad = basic(Some(0)).replace(
        "'has(profile.cart.value) && profile.cart.value > 0.0'",
        "'profil.cart.value > 0.0'",
    );
    let put = decide
        .put_config(PutConfigRequest {
            tenant_id: TENANT.into(),
            yaml: bad,
            expected_version: good.clone(),
            validate_only: false,
        })
        .await
        .unwrap();
    assert!(put.version.is_empty());
    let paths: Vec<&str> = put.errors.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"actions[0].applicability"),
        "{:?}",
        put.errors
    );
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("contact_policies[0].cap")),
        "{:?}",
        put.errors
    );
    assert!(put.errors.iter().all(|e| e.line > 0), "{:?}", put.errors);
    let active = decide
        .get_config(GetConfigRequest {
            tenant_id: TENANT.into(),
            version: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(active.version, good);
    let served = decide.decide(web_request("c-1")).await.unwrap();
    assert_eq!(served.config_version, good);

    // A stale base version is refused.
    let stale = decide
        .put_config(PutConfigRequest {
            tenant_id: TENANT.into(),
            yaml: basic(Some(5)),
            expected_version: "0000000000000000".into(),
            validate_only: false,
        })
        .await;
    assert!(matches!(stale, Err(DecideError::Aborted(_))), "{stale:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mounted_configuration_is_reloaded_and_a_bad_edit_keeps_the_last_good_one() {
    let dir = std::env::temp_dir().join(format!("iee-decide-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("acme.yaml");
    std::fs::write(&file, basic(None)).unwrap();
    let path = dir.to_string_lossy().into_owned();
    let services = LoopServices::start(
        1,
        &[],
        &[
            ("IEE_DECIDE__PROACTIVE", "false"),
            ("IEE_DECIDE__CONFIG_PATH", path.as_str()),
        ],
    )
    .await;
    let decide = services.decide_client().await;
    let first = wait_until(
        Duration::from_secs(10),
        "the mounted file is active",
        || {
            let decide = decide.clone();
            async move { decide.decide(web_request("c-1")).await.ok() }
        },
    )
    .await;
    let managed = decide
        .get_config(GetConfigRequest {
            tenant_id: TENANT.into(),
            version: String::new(),
        })
        .await
        .unwrap();
    assert!(managed.file_managed);
    let put = decide
        .put_config(PutConfigRequest {
            tenant_id: TENANT.into(),
            yaml: basic(Some(7)),
            expected_version: managed.version.clone(),
            validate_only: false,
        })
        .await;
    assert!(
        matches!(put, Err(DecideError::FailedPrecondition(_))),
        "{put:?}"
    );

    // A good edit is picked up.
    std::fs::write(&file, basic(Some(40))).unwrap();
    let second = wait_until(Duration::from_secs(10), "the edited file is active", || {
        let decide = decide.clone();
        let old = first.config_version.clone();
        async move {
            let r = decide.decide(web_request("c-1")).await.ok()?;
            (r.config_version != old).then_some(r.config_version)
        }
    })
    .await;
    // A bad edit is refused and the last good version keeps serving.
    std::fs::write(&file, "actions: [ {id: x, channels: [fax]} ]\n").unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..5 {
        let r = decide.decide(web_request("c-1")).await.unwrap();
        assert_eq!(r.config_version, second);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

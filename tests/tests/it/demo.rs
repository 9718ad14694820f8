//! `iee demo`: the whole engine in one process against simulated customers. The run exits 0,
//! writes a complete report, and what it measures shows the loop working: the learned policy
//! beats the holdout on conversion and chooses each customer's best offer more often late in
//! the run than early.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use iee_test_support::bin_path;

/// Longest the demo may take: 20 s of simulation, the KPI catch-up and the report.
const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn demo_learns_beats_the_holdout_and_writes_its_report() {
    let dir = std::env::temp_dir().join(format!("iee-demo-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let mut child = Command::new(bin_path("iee"))
        .args([
            "demo",
            "--customers",
            "300",
            "--duration",
            "20s",
            "--seed",
            "7",
        ])
        .arg("--report")
        .arg(&dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("iee demo took longer than {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(status.success(), "exit {status:?}\n{stdout}\n{stderr}");
    assert!(stdout.contains("customers who bought"), "{stdout}");

    for file in [
        "index.html",
        "learning.svg",
        "kpis.svg",
        "uplift.svg",
        "summary.json",
    ] {
        let len = std::fs::metadata(dir.join(file)).map_or(0, |m| m.len());
        assert!(len > 0, "{file} is missing or empty");
    }
    let html = read(&dir, "index.html");
    for svg in ["learning.svg", "kpis.svg", "uplift.svg"] {
        assert!(
            html.contains(&format!("src=\"{svg}\"")),
            "index.html lacks {svg}"
        );
        assert!(
            read(&dir, svg).starts_with("<svg"),
            "{svg} is not an SVG document"
        );
    }

    let summary: serde_json::Value = serde_json::from_str(&read(&dir, "summary.json")).unwrap();
    let number = |path: &str| {
        summary
            .pointer(path)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("summary.json has no number at {path}"))
    };
    assert!(number("/rounds") >= 10.0, "rounds: {}", number("/rounds"));
    assert_eq!(number("/failed_visits"), 0.0);
    assert_eq!(
        summary.pointer("/kpi_catch_up/complete"),
        Some(&true.into())
    );
    assert_eq!(number("/decisions"), number("/kpi_catch_up/decisions"));
    let treated = number("/metrics/customer_conversion_rate/treatment");
    let holdout = number("/metrics/customer_conversion_rate/holdout");
    assert!(
        treated > holdout,
        "customer conversion: treatment {treated:.3} vs holdout {holdout:.3}"
    );
    let early = number("/learning/early/best_action_share");
    let late = number("/learning/late/best_action_share");
    assert!(
        late > early,
        "best-offer share: early {early:.3}, late {late:.3}"
    );
    for arm in ["treatment", "holdout"] {
        assert!(
            number(&format!("/arms/{arm}/customers")) > 0.0,
            "{arm} is empty"
        );
    }
    println!("demo took {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The text of a report file.
fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("reading {file}: {e}"))
}

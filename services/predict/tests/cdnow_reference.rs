//! Our BG/NBD and Gamma-Gamma fits agree with the reference implementation (`lifetimes` 0.11.3,
//! `BetaGeoFitter` and `GammaGammaFitter` with `penalizer_coef=0`) on the CDNOW sample to three
//! significant digits — in fact to about six. See `tests/data/README.md` and `docs/models.md`.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use iee_predict::{
    model::{ModelArtifact, ModelBody, bgnbd, gamma_gamma},
    train::{ClvOptions, load_summary, train_clv_summary},
};

fn data() -> std::fs::File {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cdnow_summary.csv");
    std::fs::File::open(path).unwrap()
}

/// `x` rounded to three significant digits.
fn sig3(x: f64) -> String {
    format!("{x:.2e}")
}

fn assert_agrees(name: &str, ours: f64, reference: f64) {
    assert_eq!(
        sig3(ours),
        sig3(reference),
        "{name}: ours {ours}, reference {reference}"
    );
    // Rounding can split two numbers that are close; the relative gap says how close.
    assert!(
        (ours / reference - 1.0).abs() < 1e-4,
        "{name}: ours {ours}, reference {reference}"
    );
}

#[test]
fn bgnbd_fit_on_cdnow_agrees_with_the_reference_implementation() {
    let (rows, _) = load_summary(data()).unwrap();
    assert_eq!(rows.len(), 2357);
    let fitted = bgnbd::fit(&rows, 0.0).unwrap();
    // lifetimes.BetaGeoFitter(penalizer_coef=0.0).fit(frequency, recency, T).params_
    assert_agrees("r", fitted.r, 0.242_592_928_279_822);
    assert_agrees("alpha", fitted.alpha, 4.413_532_265_271_825);
    assert_agrees("a", fitted.a, 0.792_885_966_440_675_8);
    assert_agrees("b", fitted.b, 2.425_752_382_625_813_4);
    // The published maximum of the log-likelihood (Fader, Hardie & Lee 2005): −9582.4.
    let ll: f64 = rows
        .iter()
        .map(|c| fitted.log_likelihood(c.frequency, c.recency, c.age))
        .sum();
    assert!((ll + 9582.4).abs() < 0.05, "log-likelihood {ll}");
}

#[test]
fn gamma_gamma_fit_on_cdnow_agrees_with_the_reference_implementation() {
    let (rows, with_spend) = load_summary(data()).unwrap();
    assert!(with_spend);
    let fitted = gamma_gamma::fit(&rows, 0.0).unwrap();
    // lifetimes.GammaGammaFitter(penalizer_coef=0.0).fit(frequency, monetary_value) on the 946
    // repeat buyers.
    assert_agrees("p", fitted.p, 6.248_802_496_075_072);
    assert_agrees("q", fitted.q, 3.744_588_460_923_138);
    assert_agrees("v", fitted.v, 15.447_748_064_929_88);
}

#[test]
fn penalised_fits_agree_with_the_reference_implementation() {
    // The same fitters with penalizer_coef=0.01: the penalty is on the parameters in the
    // reference's rescaled time (oldest customer at age 1), which we reproduce.
    let (rows, _) = load_summary(data()).unwrap();
    let fitted = bgnbd::fit(&rows, 0.01).unwrap();
    assert_agrees("r", fitted.r, 0.242_940_342_129_807_17);
    assert_agrees("alpha", fitted.alpha, 4.432_437_170_705_399);
    assert_agrees("a", fitted.a, 0.285_641_536_276_639_74);
    assert_agrees("b", fitted.b, 0.658_453_673_540_584_4);
    let fitted = gamma_gamma::fit(&rows, 0.01).unwrap();
    assert_agrees("p", fitted.p, 4.109_250_257_153_278);
    assert_agrees("q", fitted.q, 0.968_385_415_855_394_7);
    assert_agrees("v", fitted.v, 3.780_801_423_304_112_5);
}

#[test]
fn training_from_the_cdnow_summary_gives_a_servable_weekly_model() {
    let options = ClvOptions {
        time_unit_days: 7.0,
        ..ClvOptions::default()
    };
    let (artifact, report) = train_clv_summary(data(), &options).unwrap();
    let artifact = ModelArtifact::from_json(&artifact.to_json(), |_| true).unwrap();
    let ModelBody::Clv(model) = &artifact.body else {
        panic!("a lifetime-value artifact holds a CLV model")
    };
    assert_eq!(model.time_unit_days, 7.0);
    assert_agrees("r", model.bgnbd.r, 0.242_592_928_279_822);
    assert!(model.gamma_gamma.is_some());
    assert_eq!(report.training_rows, 2357);
    let printed = report.to_string();
    for name in ["r ", "alpha", "a ", "b ", "p ", "q ", "v "] {
        assert!(printed.contains(&format!("  {name}")), "{name}: {printed}");
    }
}

//! Money in the reporting currency, and recency/frequency/monetary figures of purchases and
//! refunds.

use iee_api::pb::common::Money;
use iee_api::pb::profile::{Profile, Rfm};

use super::config::FoldConfig;
use super::time::{max_ts, min_ts, opt_ms};

/// Converts `money` into the profile's reporting currency, fixing that currency on first use.
/// `None` when the money is in another currency without a configured rate.
pub(crate) fn to_reporting(
    profile: &mut Profile,
    money: &Money,
    config: &FoldConfig,
) -> Option<i64> {
    if money.currency.is_empty() {
        return None;
    }
    if profile.reporting_currency.is_empty() {
        profile.reporting_currency = if config.reporting_currency.is_empty() {
            money.currency.clone()
        } else {
            config.reporting_currency.clone()
        };
    }
    convert(&profile.reporting_currency, money, config)
}

/// `money` in `currency` minor units, if it is in it or a configured rate converts it.
pub(crate) fn convert(currency: &str, money: &Money, config: &FoldConfig) -> Option<i64> {
    if money.currency == currency {
        return Some(money.amount_minor);
    }
    if config.reporting_currency != currency {
        // Rates are relative to the configured reporting currency only.
        return None;
    }
    let rate = config.exchange_rates.get(&money.currency)?;
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let converted = (money.amount_minor as f64 * rate).round() as i64;
    Some(converted)
}

fn money(amount_minor: i64, currency: &str) -> Option<Money> {
    Some(Money {
        amount_minor,
        currency: currency.to_owned(),
    })
}

fn amount(m: Option<&Money>) -> i64 {
    m.map_or(0, |m| m.amount_minor)
}

/// Integer division rounded half away from zero.
fn div_round(n: i64, d: i64) -> i64 {
    if d == 0 {
        return 0;
    }
    let (q, r) = (n / d, n % d);
    if 2 * r.abs() >= d.abs() {
        q + if (n < 0) == (d < 0) { 1 } else { -1 }
    } else {
        q
    }
}

fn refresh_aov(rfm: &mut Rfm, currency: &str) {
    let gross = amount(rfm.gross_revenue.as_ref());
    let n = i64::try_from(rfm.priced_purchase_count).unwrap_or(i64::MAX);
    rfm.average_order_value = if n > 0 {
        money(div_round(gross, n), currency)
    } else {
        None
    };
}

/// Records a purchase at `at_ms` with an optional value.
pub(crate) fn purchase(
    profile: &mut Profile,
    at_ms: i64,
    value: Option<&Money>,
    config: &FoldConfig,
) {
    let converted = value.and_then(|v| to_reporting(profile, v, config));
    let currency = profile.reporting_currency.clone();
    let rfm = profile.rfm.get_or_insert_with(Default::default);
    rfm.purchase_count += 1;
    min_ts(&mut rfm.first_purchase_at, at_ms);
    max_ts(&mut rfm.last_purchase_at, at_ms);
    if let Some(v) = converted {
        rfm.priced_purchase_count += 1;
        rfm.gross_revenue = money(
            amount(rfm.gross_revenue.as_ref()).saturating_add(v),
            &currency,
        );
        rfm.net_revenue = money(
            amount(rfm.net_revenue.as_ref()).saturating_add(v),
            &currency,
        );
        refresh_aov(rfm, &currency);
    }
}

/// Records a refund with an optional value (its sign is ignored: refunds reduce revenue).
pub(crate) fn refund(profile: &mut Profile, value: Option<&Money>, config: &FoldConfig) {
    let converted = value.and_then(|v| to_reporting(profile, v, config));
    let currency = profile.reporting_currency.clone();
    let rfm = profile.rfm.get_or_insert_with(Default::default);
    rfm.refund_count += 1;
    if let Some(v) = converted {
        let v = v.saturating_abs();
        rfm.refunded = money(amount(rfm.refunded.as_ref()).saturating_add(v), &currency);
        rfm.net_revenue = money(
            amount(rfm.net_revenue.as_ref()).saturating_sub(v),
            &currency,
        );
    }
}

/// Merges the RFM figures of `other` (an anonymous profile) into `profile`.
pub(crate) fn merge(profile: &mut Profile, other: &Profile, config: &FoldConfig) {
    let Some(theirs) = other.rfm.as_ref() else {
        return;
    };
    let to_ours =
        |profile: &mut Profile, m: Option<&Money>| m.and_then(|m| to_reporting(profile, m, config));
    let gross = to_ours(profile, theirs.gross_revenue.as_ref());
    let net = to_ours(profile, theirs.net_revenue.as_ref());
    let refunded = to_ours(profile, theirs.refunded.as_ref());
    let currency = profile.reporting_currency.clone();
    let rfm = profile.rfm.get_or_insert_with(Default::default);
    rfm.purchase_count += theirs.purchase_count;
    rfm.refund_count += theirs.refund_count;
    if let Some(t) = opt_ms(theirs.first_purchase_at.as_ref()) {
        min_ts(&mut rfm.first_purchase_at, t);
    }
    if let Some(t) = opt_ms(theirs.last_purchase_at.as_ref()) {
        max_ts(&mut rfm.last_purchase_at, t);
    }
    if let Some(g) = gross {
        rfm.priced_purchase_count += theirs.priced_purchase_count;
        rfm.gross_revenue = money(
            amount(rfm.gross_revenue.as_ref()).saturating_add(g),
            &currency,
        );
    }
    if let Some(n) = net {
        rfm.net_revenue = money(
            amount(rfm.net_revenue.as_ref()).saturating_add(n),
            &currency,
        );
    }
    if let Some(r) = refunded {
        rfm.refunded = money(amount(rfm.refunded.as_ref()).saturating_add(r), &currency);
    }
    if !currency.is_empty() {
        refresh_aov(rfm, &currency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(cents: i64) -> Money {
        Money {
            amount_minor: cents,
            currency: "EUR".into(),
        }
    }

    fn usd(cents: i64) -> Money {
        Money {
            amount_minor: cents,
            currency: "USD".into(),
        }
    }

    #[test]
    fn first_currency_seen_becomes_reporting_and_others_are_left_out() {
        let config = FoldConfig::default();
        let mut p = Profile::default();
        purchase(&mut p, 10, Some(&eur(1_000)), &config);
        purchase(&mut p, 5, Some(&usd(9_999)), &config);
        purchase(&mut p, 20, Some(&eur(2_001)), &config);
        refund(&mut p, Some(&eur(-500)), &config);
        let rfm = p.rfm.clone().unwrap_or_default();
        assert_eq!(p.reporting_currency, "EUR");
        assert_eq!((rfm.purchase_count, rfm.priced_purchase_count), (3, 2));
        assert_eq!(amount(rfm.gross_revenue.as_ref()), 3_001);
        assert_eq!(amount(rfm.net_revenue.as_ref()), 2_501);
        assert_eq!(amount(rfm.refunded.as_ref()), 500);
        // 3001 / 2 = 1500.5, rounded half away from zero.
        assert_eq!(amount(rfm.average_order_value.as_ref()), 1_501);
        assert_eq!(opt_ms(rfm.first_purchase_at.as_ref()), Some(5));
        assert_eq!(opt_ms(rfm.last_purchase_at.as_ref()), Some(20));
    }

    #[test]
    fn configured_rates_convert_into_the_configured_currency() {
        let mut config = FoldConfig {
            reporting_currency: "EUR".into(),
            ..FoldConfig::default()
        };
        config.exchange_rates.insert("USD".into(), 0.9);
        let mut p = Profile::default();
        purchase(&mut p, 0, Some(&usd(1_000)), &config);
        assert_eq!(p.reporting_currency, "EUR");
        assert_eq!(
            amount(p.rfm.as_ref().and_then(|r| r.gross_revenue.as_ref())),
            900
        );
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
        assert_eq!(div_round(4, 3), 1);
        assert_eq!(div_round(7, 0), 0);
    }
}

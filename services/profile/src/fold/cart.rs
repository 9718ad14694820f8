//! The shopping cart: `add_to_cart` and `remove_from_cart` change its lines, `checkout` touches
//! it (restarting the idle clock), `purchase` empties it of everything added before it.

use iee_api::pb::common::{Event, Money};
use iee_api::pb::profile::{Cart, CartItem, Profile};

use super::config::FoldConfig;
use super::props;
use super::rfm;
use super::time::{max_ts, ms_ts, opt_ms};

/// The `quantity` property as a unit count (at least 1), `None` when absent.
fn quantity(event: &Event) -> Option<u32> {
    let q = props::number(event, "quantity")?.floor();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let q = q.clamp(1.0, f64::from(u32::MAX)) as u32;
    Some(q)
}

/// Applies a cart event. Returns whether the cart changed.
pub(crate) fn on_event(
    profile: &mut Profile,
    event: &Event,
    at_ms: i64,
    config: &FoldConfig,
) -> bool {
    let changed = match event.r#type.as_str() {
        "add_to_cart" => add(profile, event, at_ms),
        "remove_from_cart" => remove(profile, event),
        "checkout" => profile.cart.as_ref().is_some_and(|c| !c.items.is_empty()),
        "purchase" => purchase(profile, at_ms),
        _ => false,
    };
    if changed {
        let cart = profile.cart.get_or_insert_with(Default::default);
        max_ts(&mut cart.last_changed_at, at_ms);
        cart.abandoned = false;
        refresh_value(profile, config);
    }
    changed
}

fn add(profile: &mut Profile, event: &Event, at_ms: i64) -> bool {
    let Some(product_id) = props::string(event, "product_id") else {
        return false;
    };
    let qty = quantity(event).unwrap_or(1);
    let unit_price = event.value.as_ref().map(|v| Money {
        amount_minor: v.amount_minor / i64::from(qty),
        currency: v.currency.clone(),
    });
    let cart = profile.cart.get_or_insert_with(Default::default);
    if let Some(item) = cart.items.iter_mut().find(|i| i.product_id == product_id) {
        item.quantity = item.quantity.saturating_add(qty);
        if unit_price.is_some() {
            item.unit_price = unit_price;
        }
    } else {
        cart.items.push(CartItem {
            product_id,
            quantity: qty,
            unit_price,
            added_at: Some(ms_ts(at_ms)),
        });
    }
    true
}

fn remove(profile: &mut Profile, event: &Event) -> bool {
    let Some(product_id) = props::string(event, "product_id") else {
        return false;
    };
    let Some(cart) = profile.cart.as_mut() else {
        return false;
    };
    let Some(index) = cart.items.iter().position(|i| i.product_id == product_id) else {
        return false;
    };
    match quantity(event) {
        Some(q) if q < cart.items[index].quantity => cart.items[index].quantity -= q,
        _ => {
            cart.items.remove(index);
        }
    }
    true
}

fn purchase(profile: &mut Profile, at_ms: i64) -> bool {
    let Some(cart) = profile.cart.as_mut() else {
        return false;
    };
    let before = cart.items.len();
    // A late purchase does not empty lines added after it happened.
    cart.items
        .retain(|i| opt_ms(i.added_at.as_ref()).is_some_and(|added| added > at_ms));
    cart.items.len() != before
}

/// Recomputes the cart's value in the reporting currency (lines without a convertible price
/// are left out).
fn refresh_value(profile: &mut Profile, config: &FoldConfig) {
    let prices: Vec<(u32, Money)> = profile
        .cart
        .as_ref()
        .map(|c| {
            c.items
                .iter()
                .filter_map(|i| Some((i.quantity, i.unit_price.clone()?)))
                .collect()
        })
        .unwrap_or_default();
    let mut total: Option<i64> = None;
    for (qty, price) in &prices {
        if let Some(v) = rfm::to_reporting(profile, price, config) {
            total = Some(
                total
                    .unwrap_or(0)
                    .saturating_add(v.saturating_mul(i64::from(*qty))),
            );
        }
    }
    let currency = profile.reporting_currency.clone();
    let cart = profile.cart.get_or_insert_with(Default::default);
    cart.value = total.map(|amount_minor| Money {
        amount_minor,
        currency,
    });
}

/// When the cart's idle timer is due, `None` when no timer should run (empty or already
/// abandoned cart).
pub(crate) fn idle_due_ms(cart: Option<&Cart>, config: &FoldConfig) -> Option<i64> {
    let cart = cart?;
    if cart.items.is_empty() || cart.abandoned {
        return None;
    }
    Some(opt_ms(cart.last_changed_at.as_ref())? + config.cart_idle_ms())
}

/// Merges an anonymous profile's cart into `profile`'s: lines the customer's cart lacks are
/// added; for a product in both, the larger quantity is kept.
pub(crate) fn merge(profile: &mut Profile, other: &Profile, config: &FoldConfig) {
    let Some(theirs) = other.cart.as_ref() else {
        return;
    };
    if theirs.items.is_empty() && theirs.last_changed_at.is_none() {
        return;
    }
    let cart = profile.cart.get_or_insert_with(Default::default);
    let mut changed = false;
    for item in &theirs.items {
        match cart
            .items
            .iter_mut()
            .find(|i| i.product_id == item.product_id)
        {
            Some(ours) if ours.quantity < item.quantity => {
                ours.quantity = item.quantity;
                changed = true;
            }
            Some(_) => {}
            None => {
                cart.items.push(item.clone());
                changed = true;
            }
        }
    }
    if let Some(t) = opt_ms(theirs.last_changed_at.as_ref()) {
        max_ts(&mut cart.last_changed_at, t);
    }
    if changed {
        cart.abandoned = false;
        refresh_value(profile, config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::props::build::{n, s};

    fn event(event_type: &str, product: &str, qty: Option<f64>, cents: Option<i64>) -> Event {
        let mut e = Event {
            r#type: event_type.into(),
            ..Event::default()
        };
        e.properties.insert("product_id".into(), s(product));
        if let Some(q) = qty {
            e.properties.insert("quantity".into(), n(q));
        }
        e.value = cents.map(|c| Money {
            amount_minor: c,
            currency: "EUR".into(),
        });
        e
    }

    fn items(p: &Profile) -> Vec<(String, u32)> {
        p.cart
            .as_ref()
            .map(|c| {
                c.items
                    .iter()
                    .map(|i| (i.product_id.clone(), i.quantity))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn value(p: &Profile) -> Option<i64> {
        p.cart.as_ref()?.value.as_ref().map(|v| v.amount_minor)
    }

    #[test]
    fn add_remove_and_purchase_maintain_lines_and_value() {
        let config = FoldConfig::default();
        let mut p = Profile::default();
        assert!(on_event(
            &mut p,
            &event("add_to_cart", "shoe", Some(2.0), Some(5_000)),
            10,
            &config
        ));
        assert!(on_event(
            &mut p,
            &event("add_to_cart", "sock", None, Some(300)),
            20,
            &config
        ));
        assert_eq!(items(&p), vec![("shoe".into(), 2), ("sock".into(), 1)]);
        assert_eq!(value(&p), Some(5_300));
        assert!(on_event(
            &mut p,
            &event("remove_from_cart", "shoe", Some(1.0), None),
            30,
            &config
        ));
        assert_eq!(value(&p), Some(2_800));
        assert!(!on_event(
            &mut p,
            &event("remove_from_cart", "hat", None, None),
            31,
            &config
        ));
        assert!(on_event(
            &mut p,
            &event("checkout", "", None, None),
            40,
            &config
        ));
        assert_eq!(idle_due_ms(p.cart.as_ref(), &config), Some(40 + 3_600_000));
        assert!(on_event(
            &mut p,
            &event("purchase", "", None, Some(2_800)),
            50,
            &config
        ));
        assert!(items(&p).is_empty());
        assert_eq!(value(&p), None);
        assert_eq!(idle_due_ms(p.cart.as_ref(), &config), None);
    }

    #[test]
    fn late_purchase_keeps_lines_added_after_it() {
        let config = FoldConfig::default();
        let mut p = Profile::default();
        on_event(&mut p, &event("add_to_cart", "a", None, None), 10, &config);
        on_event(&mut p, &event("add_to_cart", "b", None, None), 30, &config);
        assert!(on_event(
            &mut p,
            &event("purchase", "", None, None),
            20,
            &config
        ));
        assert_eq!(items(&p), vec![("b".into(), 1)]);
        let last_changed = p
            .cart
            .as_ref()
            .and_then(|c| opt_ms(c.last_changed_at.as_ref()));
        assert_eq!(last_changed, Some(30));
    }

    #[test]
    fn abandoned_flag_resets_on_change_and_stops_the_timer() {
        let config = FoldConfig::default();
        let mut p = Profile::default();
        on_event(&mut p, &event("add_to_cart", "a", None, None), 0, &config);
        if let Some(c) = p.cart.as_mut() {
            c.abandoned = true;
        }
        assert_eq!(idle_due_ms(p.cart.as_ref(), &config), None);
        on_event(&mut p, &event("add_to_cart", "a", None, None), 5, &config);
        assert_eq!(p.cart.as_ref().map(|c| c.abandoned), Some(false));
        assert_eq!(items(&p), vec![("a".into(), 2)]);
    }

    #[test]
    fn merged_cart_keeps_the_larger_quantity() {
        let config = FoldConfig::default();
        let mut known = Profile::default();
        on_event(
            &mut known,
            &event("add_to_cart", "a", Some(1.0), None),
            0,
            &config,
        );
        let mut anon = Profile::default();
        on_event(
            &mut anon,
            &event("add_to_cart", "a", Some(3.0), None),
            5,
            &config,
        );
        on_event(
            &mut anon,
            &event("add_to_cart", "b", None, None),
            6,
            &config,
        );
        merge(&mut known, &anon, &config);
        assert_eq!(items(&known), vec![("a".into(), 3), ("b".into(), 1)]);
    }
}

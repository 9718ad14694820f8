//! Control groups: a deterministic salted hash of the customer places them in or out of the
//! global holdout and of each action's control group, the same way on every replica and in
//! every replay. Changing the configuration's salt reshuffles every group.

use xxhash_rust::xxh3::xxh3_64;

/// The experiment id of the global holdout.
pub(crate) const GLOBAL: &str = "global";

/// Prefix of the experiment id of an action's control group.
pub(crate) const ACTION_EXPERIMENT_PREFIX: &str = "action:";

/// The experiment id of an action's control group.
pub(crate) fn action_experiment(action_id: &str) -> String {
    format!("{ACTION_EXPERIMENT_PREFIX}{action_id}")
}

/// A point in [0, 1) fixed by the salt, the tenant, the customer and the experiment.
fn unit(salt: &str, tenant_id: &str, customer_key: &str, experiment: &str) -> f64 {
    let mut text = String::with_capacity(
        salt.len() + tenant_id.len() + customer_key.len() + experiment.len() + 3,
    );
    for part in [salt, tenant_id, customer_key, experiment] {
        text.push_str(part);
        text.push('\u{1f}');
    }
    // The top 53 bits give an exactly representable fraction.
    (xxh3_64(text.as_bytes()) >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether the customer is in the control group of `experiment` with share `share`.
pub(crate) fn in_control(
    salt: &str,
    tenant_id: &str,
    customer_key: &str,
    experiment: &str,
    share: f64,
) -> bool {
    share > 0.0 && unit(salt, tenant_id, customer_key, experiment) < share
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_deterministic_and_near_its_share() {
        let n = 20_000;
        let mut global = 0;
        let mut action = 0;
        let mut both = 0;
        for i in 0..n {
            let key = format!("c:{i}");
            let g = in_control("s1", "acme", &key, GLOBAL, 0.1);
            let a = in_control("s1", "acme", &key, &action_experiment("offer"), 0.2);
            assert_eq!(g, in_control("s1", "acme", &key, GLOBAL, 0.1));
            global += usize::from(g);
            action += usize::from(a);
            both += usize::from(g && a);
        }
        // Binomial bounds at about 5 standard deviations.
        assert!((1_790..2_210).contains(&global), "{global}");
        assert!((3_720..4_280).contains(&action), "{action}");
        // Independent experiments: about 2 % in both.
        assert!((280..520).contains(&both), "{both}");
    }

    #[test]
    fn the_salt_reshuffles_and_zero_share_holds_nobody_out() {
        let moved = (0..1_000)
            .filter(|i| {
                let key = format!("c:{i}");
                in_control("s1", "acme", &key, GLOBAL, 0.5)
                    != in_control("s2", "acme", &key, GLOBAL, 0.5)
            })
            .count();
        assert!(moved > 350, "{moved}");
        assert!((0..1_000).all(|i| !in_control("s1", "acme", &format!("c:{i}"), GLOBAL, 0.0)));
    }
}

//! CEL rules: compiling a rule for one place of the configuration (which variables it may read),
//! and evaluating it against the [`Bindings`] of one decision.

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    sync::{Arc, LazyLock},
    time::{SystemTime, UNIX_EPOCH},
};

use cel::{
    Context, Env, Program, Value,
    common::{
        ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators},
        value::{CowVal, Val},
    },
    context::VariableResolver,
    objects::ValueType,
};
use iee_api::pb::common::{CustomerRef, PropertyValue};

use super::{
    model::{Action, ScoreNeeds},
    view,
};

/// The standard CEL environment, shared by every rule.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// CEL's type names, which an expression may name like variables (`type(x) == double`).
const TYPE_NAMES: [&str; 10] = [
    "bool",
    "bytes",
    "double",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// The scores a rule may read under `scores`.
const SCORE_NAMES: [&str; 3] = ["churn", "clv", "propensity"];

/// A compiled CEL rule.
pub struct Rule {
    /// Its name in decision explanations: `<action id>.<stage>` for action rules, the weight's
    /// name for context weights, `<trigger name>.when` for triggers.
    pub name: String,
    /// The CEL source.
    pub expression: String,
    program: Program,
    needs: ScoreNeeds,
}

impl Rule {
    /// The CEL source.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The customer-level scores the rule reads.
    pub(crate) fn needs(&self) -> ScoreNeeds {
        self.needs
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("name", &self.name)
            .field("expression", &self.expression)
            .finish_non_exhaustive()
    }
}

/// Where a rule stands, which decides the variables it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// `actions[i].eligibility`.
    Eligibility,
    /// `actions[i].applicability`.
    Applicability,
    /// `actions[i].suitability`.
    Suitability,
    /// `context_weights[i].when`: evaluated once per decision, without an action.
    ContextWeight,
    /// `triggers[i].when`: evaluated on the signal, before any decision.
    Trigger,
}

impl Stage {
    /// Why `variable` may not be read here, if it may not.
    fn refuses(self, variable: &str) -> Option<String> {
        let always = ["profile", "context", "customer", "now_unix"];
        if always.contains(&variable) || TYPE_NAMES.contains(&variable) {
            return None;
        }
        match (self, variable) {
            (Self::Eligibility | Self::Applicability | Self::Suitability, "action") => None,
            (Self::Suitability | Self::ContextWeight, "scores") => None,
            (Self::Eligibility | Self::Applicability, "scores") => Some(
                "'scores' is not known at this stage (scores are known from suitability on)".into(),
            ),
            (Self::Trigger, "scores") => {
                Some("'scores' is not known in a trigger's `when` (no decision yet)".into())
            }
            (Self::ContextWeight, "action") => Some(
                "'action' is not available in a context weight (use `actions:` or `groups:`)"
                    .into(),
            ),
            (Self::Trigger, "action") => {
                Some("'action' is not available in a trigger's `when`".into())
            }
            _ => Some(format!("undeclared reference to '{variable}'")),
        }
    }
}

/// Compiles `expression` for `stage`; the errors are messages for the rule's path.
pub(super) fn compile_rule(
    name: String,
    expression: &str,
    stage: Stage,
) -> Result<Rule, Vec<String>> {
    let program = ENV.compile(expression).map_err(|errors| {
        errors
            .errors
            .iter()
            .map(|e| format!("syntax error at {}:{}: {}", e.pos.0, e.pos.1, e.msg))
            .collect::<Vec<_>>()
    })?;
    let mut uses = Uses::default();
    uses.walk(program.expression(), &mut Vec::new());
    let mut errors: Vec<String> = uses
        .variables
        .iter()
        .filter_map(|v| stage.refuses(v))
        .collect();
    errors.extend(
        uses.scores
            .iter()
            .filter(|s| !SCORE_NAMES.contains(&s.as_str()))
            .map(|s| {
                format!("unknown score 'scores.{s}' (expected one of: churn, clv, propensity)")
            }),
    );
    if !errors.is_empty() {
        return Err(errors);
    }
    let reads = |score: &str| uses.all_scores || uses.scores.contains(score);
    Ok(Rule {
        name,
        expression: expression.to_owned(),
        needs: ScoreNeeds {
            churn: reads("churn"),
            clv: reads("clv"),
        },
        program,
    })
}

/// The free variables of an expression and the scores it reads.
#[derive(Default)]
struct Uses {
    variables: BTreeSet<String>,
    /// Fields read as `scores.x` or `scores["x"]`.
    scores: BTreeSet<String>,
    /// `scores` is used some other way (e.g. `"churn" in scores`): it may read any score.
    all_scores: bool,
}

impl Uses {
    /// Collects from `expr`; `bound` holds the comprehension variables in scope.
    fn walk(&mut self, expr: &IdedExpr, bound: &mut Vec<String>) {
        let free = |e: &IdedExpr, bound: &Vec<String>| match &e.expr {
            Expr::Ident(name) if !bound.contains(name) => Some(name.clone()),
            _ => None,
        };
        match &expr.expr {
            Expr::Ident(name) => {
                if !bound.contains(name) && !name.starts_with('@') {
                    if name == "scores" {
                        self.all_scores = true;
                    }
                    self.variables.insert(name.clone());
                }
            }
            Expr::Select(select) => match free(&select.operand, bound) {
                Some(root) if root == "scores" => {
                    self.variables.insert(root);
                    self.scores.insert(select.field.clone());
                }
                _ => self.walk(&select.operand, bound),
            },
            Expr::Call(call) => {
                let key = match (call.func_name.as_str(), call.args.as_slice()) {
                    (operators::INDEX, [target, key]) => free(target, bound)
                        .filter(|r| r == "scores")
                        .and(match &key.expr {
                            Expr::Literal(LiteralValue::String(s)) => Some(s.inner().to_owned()),
                            _ => None,
                        }),
                    _ => None,
                };
                if let Some(key) = key {
                    self.variables.insert("scores".to_owned());
                    self.scores.insert(key);
                    return;
                }
                if let Some(target) = &call.target {
                    self.walk(target, bound);
                }
                for arg in &call.args {
                    self.walk(arg, bound);
                }
            }
            Expr::Comprehension(c) => {
                self.walk(&c.iter_range, bound);
                self.walk(&c.accu_init, bound);
                let depth = bound.len();
                bound.push(c.iter_var.clone());
                bound.extend(c.iter_var2.clone());
                bound.push(c.accu_var.clone());
                self.walk(&c.loop_cond, bound);
                self.walk(&c.loop_step, bound);
                self.walk(&c.result, bound);
                bound.truncate(depth);
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.walk(element, bound);
                }
            }
            Expr::Map(map) => self.walk_entries(map.entries.iter().map(|e| &e.expr), bound),
            Expr::Struct(s) => self.walk_entries(s.entries.iter().map(|e| &e.expr), bound),
            Expr::Literal(_) | Expr::Unspecified => {}
        }
    }

    fn walk_entries<'a>(
        &mut self,
        entries: impl Iterator<Item = &'a EntryExpr>,
        bound: &mut Vec<String>,
    ) {
        for entry in entries {
            match entry {
                EntryExpr::StructField(field) => self.walk(&field.value, bound),
                EntryExpr::MapEntry(entry) => {
                    self.walk(&entry.key, bound);
                    self.walk(&entry.value, bound);
                }
            }
        }
    }
}

/// Customer-level and per-action scores visible to rules as `scores.*` (absent keys when None).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scores {
    /// Churn probability, 0 to 1.
    pub churn: Option<f64>,
    /// Customer lifetime value, in major units.
    pub clv: Option<f64>,
    /// The action's propensity (posterior mean), 0 to 1.
    pub propensity: Option<f64>,
}

/// The variables of one decision, built once per decision and shared by every rule evaluation:
/// `profile`, `context`, `customer` and `now_unix`. `action` and `scores` are given per
/// evaluation.
#[derive(Debug)]
pub struct Bindings {
    profile: Box<dyn Val>,
    context: Box<dyn Val>,
    customer: Box<dyn Val>,
    now_unix: Box<dyn Val>,
}

// Held across `.await` in the decision pipeline.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Bindings>();
    send_sync::<Rule>();
};

impl Bindings {
    /// Binds a decision's inputs: the profile view (see [`super::profile_view`]), the request
    /// context, the customer (only its tenant and whether it is known) and the time.
    pub fn new(
        profile: &prost_types::Struct,
        context: &HashMap<String, PropertyValue>,
        customer: &CustomerRef,
        now: SystemTime,
    ) -> Self {
        let now_unix = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            Err(before) => -before.duration().as_secs_f64(),
        };
        Self {
            profile: view::struct_val(profile),
            context: view::context_val(context),
            customer: view::map_val([
                ("tenant_id".to_owned(), view::string(&customer.tenant_id)),
                (
                    "known".to_owned(),
                    view::boolean(!customer.customer_id.is_empty()),
                ),
            ]),
            now_unix: view::number(now_unix),
        }
    }

    /// Evaluates `rule` for `action` (None for trigger `when` rules and context weights) with the
    /// scores known at that stage. A result that is not a bool, a missing key and any other
    /// evaluation error are errors; the caller records them and treats the rule as not passed.
    pub fn evaluate(
        &self,
        rule: &Rule,
        action: Option<&Action>,
        scores: &Scores,
    ) -> Result<bool, String> {
        let scores = view::map_val(
            [
                ("churn", scores.churn),
                ("clv", scores.clv),
                ("propensity", scores.propensity),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), view::number(v?)))),
        );
        let action = action.map(|a| {
            view::map_val([
                ("id".to_owned(), view::string(&a.id)),
                ("group".to_owned(), view::string(&a.group)),
                ("value".to_owned(), view::number(a.value)),
                (
                    "business_weight".to_owned(),
                    view::number(a.business_weight),
                ),
            ])
        });
        let resolver = Resolver {
            bindings: self,
            action,
            scores,
        };
        let mut context = Context::with_env(Arc::clone(&ENV));
        context.set_variable_resolver(&resolver);
        match rule.program.execute(&context) {
            Ok(Value::Bool(passed)) => Ok(passed),
            Ok(other) => {
                // CEL calls its floating-point type `double`.
                let kind = match other.type_of() {
                    ValueType::Float => "double".to_owned(),
                    kind => kind.to_string(),
                };
                Err(format!("rule '{}' returned {kind}, not bool", rule.name))
            }
            Err(error) => Err(format!("rule '{}' failed: {error}", rule.name)),
        }
    }
}

/// The variables of one evaluation.
struct Resolver<'a> {
    bindings: &'a Bindings,
    action: Option<Box<dyn Val>>,
    scores: Box<dyn Val>,
}

impl VariableResolver for Resolver<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let value: &dyn Val = match variable {
            "profile" => self.bindings.profile.as_ref(),
            "context" => self.bindings.context.as_ref(),
            "customer" => self.bindings.customer.as_ref(),
            "now_unix" => self.bindings.now_unix.as_ref(),
            "scores" => self.scores.as_ref(),
            "action" => self.action.as_deref()?,
            _ => return None,
        };
        Some(CowVal::Borrowed(value))
    }
}

//! Bring-your-own models: an ONNX graph, run by the pure-Rust `tract` runtime, whose single input
//! columns are named catalogue features. Compiled only with the `onnx` feature (see docs/onnx.md).

use std::{collections::BTreeSet, fmt, sync::Arc};

use base64::Engine as _;
use iee_api::pb::predict::FeatureVector;
use serde::{Deserialize, Serialize};
use tract_onnx::{
    prelude::{
        Datum, Framework, InferenceFact, InferenceModelExt, IntoRunnable, Tensor,
        TypedRunnableModel, tvec,
    },
    tract_hir::infer::Factoid,
};

use super::Kind;

/// Largest ONNX graph accepted, in bytes: the artifact is one value in the store, and base64 in
/// JSON makes it a third larger again.
pub const MAX_ONNX_BYTES: usize = 64 * 1024 * 1024;

/// An ONNX model as stored in an artifact (`"type": "onnx"`). The graph bytes travel as standard,
/// padded base64 in the field `onnx_base64`, so the artifact stays one self-contained JSON
/// document like every other model.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxModel {
    /// The kind it serves (churn, propensity or satisfaction; lifetime value is not supported).
    pub serves: Kind,
    /// The serialised ONNX `ModelProto`, weights embedded (no external data files).
    #[serde(rename = "onnx_base64", with = "base64_bytes")]
    pub onnx: Vec<u8>,
    /// How a feature vector becomes the graph's input tensor.
    pub input: OnnxInput,
    /// Which graph output holds the scores.
    pub output: OnnxOutput,
}

/// The graph's one input: an `f32` tensor of shape `[1, columns.len()]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxInput {
    /// The input's name in the graph (checked at load).
    pub name: String,
    /// The tensor's columns, in order.
    pub columns: Vec<OnnxColumn>,
}

/// One input column: a catalogue feature, or one category of a categorical feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxColumn {
    /// The catalogue feature it reads.
    pub feature: String,
    /// The value when the feature is missing from the feature vector.
    pub default: f64,
    /// If set, the column is a one-hot indicator of this category of a categorical feature: 1
    /// when the feature equals it, 0 when it has another value, `default` when it is missing.
    /// If unset, the column is the numeric feature's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_hot: Option<String>,
}

/// The graph output the scores are read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxOutput {
    /// The output's name in the graph.
    pub name: String,
    /// Churn and propensity: which element of the output is the positive-class probability (0
    /// for a single sigmoid output, 1 for a `[p(no), p(yes)]` pair as scikit-learn exports).
    #[serde(default)]
    pub index: usize,
    /// Satisfaction: the class names, in the order of the output's probabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
}

impl fmt::Debug for OnnxModel {
    // The graph bytes would drown every log line the artifact appears in.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxModel")
            .field("serves", &self.serves)
            .field("onnx", &format_args!("<{} bytes>", self.onnx.len()))
            .field("input", &self.input)
            .field("output", &self.output)
            .finish()
    }
}

impl OnnxModel {
    /// Checks the mapping against the artifact's `feature_names` (the same set, no more, no less)
    /// and that the graph loads. Errors name the offending field relative to the body.
    pub fn check(&self, feature_names: &[String]) -> Result<(), (String, String)> {
        let err = |field: &str, reason: String| Err((field.to_owned(), reason));
        match self.serves {
            Kind::Churn | Kind::Propensity if !self.output.classes.is_empty() => {
                return err(
                    "output.classes",
                    format!(
                        "a {} model reads one probability: leave classes empty",
                        self.serves.as_str()
                    ),
                );
            }
            Kind::Satisfaction => {
                let unique: BTreeSet<_> = self.output.classes.iter().collect();
                if self.output.classes.len() < 2 || unique.len() != self.output.classes.len() {
                    return err(
                        "output.classes",
                        "a satisfaction model needs at least 2 distinct class names".to_owned(),
                    );
                }
            }
            Kind::LifetimeValue => {
                return err(
                    "serves",
                    "ONNX models serve churn, propensity or satisfaction, not lifetime_value"
                        .to_owned(),
                );
            }
            Kind::Churn | Kind::Propensity => {}
        }
        if self.input.columns.is_empty() {
            return err("input.columns", "needs at least one column".to_owned());
        }
        let mut seen = BTreeSet::new();
        for (i, c) in self.input.columns.iter().enumerate() {
            if !c.default.is_finite() {
                return err(
                    &format!("input.columns[{i}].default"),
                    "must be finite".to_owned(),
                );
            }
            if !seen.insert((&c.feature, &c.one_hot)) {
                return err(
                    &format!("input.columns[{i}]"),
                    format!("feature {:?} is mapped twice", c.feature),
                );
            }
        }
        let mapped: BTreeSet<&str> = self
            .input
            .columns
            .iter()
            .map(|c| c.feature.as_str())
            .collect();
        let declared: BTreeSet<&str> = feature_names.iter().map(String::as_str).collect();
        if mapped != declared {
            return err(
                "input.columns",
                format!(
                    "the columns read {mapped:?} but the artifact's feature_names are {declared:?}"
                ),
            );
        }
        self.load()
            .map(drop)
            .map_err(|reason| ("onnx_base64".to_owned(), reason))
    }

    /// Parses the graph, checks its input and output against the mapping and builds an
    /// optimised, runnable plan. Costly (milliseconds for small graphs): do it once per version.
    pub fn load(&self) -> Result<LoadedOnnx, String> {
        if self.onnx.len() > MAX_ONNX_BYTES {
            return Err(format!(
                "the ONNX model is {} bytes, more than the {MAX_ONNX_BYTES} accepted",
                self.onnx.len()
            ));
        }
        let width = self.input.columns.len();
        let model = tract_onnx::onnx()
            .model_for_read(&mut self.onnx.as_slice())
            .map_err(|e| format!("the ONNX model does not parse: {e:#}"))?;

        let inputs = model.input_outlets().map_err(|e| e.to_string())?;
        if inputs.len() != 1 {
            return Err(format!(
                "the ONNX model has {} inputs; exactly one (an f32 [1, {width}] tensor) is supported",
                inputs.len()
            ));
        }
        let input_name = &model.node(inputs[0].node).name;
        if *input_name != self.input.name {
            return Err(format!(
                "the ONNX model's input is {input_name:?}, the mapping names {:?}",
                self.input.name
            ));
        }
        let declared = model.input_fact(0).map_err(|e| e.to_string())?;
        check_input(declared, width)?;

        let outputs = model.output_outlets().map_err(|e| e.to_string())?;
        let output_names: Vec<&str> = outputs
            .iter()
            .filter_map(|o| model.outlet_label(*o))
            .collect();
        if !output_names.contains(&self.output.name.as_str()) {
            return Err(format!(
                "the ONNX model has no output {:?} (its outputs: {output_names:?})",
                self.output.name
            ));
        }

        let input_fact = InferenceFact::dt_shape(f32::datum_type(), tvec![1, width]);
        let typed = model
            .with_outputs_by_name([self.output.name.as_str()])
            .and_then(|m| m.with_input_fact(0, input_fact))
            .and_then(|m| m.into_optimized())
            .map_err(|e| {
                format!("the ONNX model cannot run on an f32 [1, {width}] input: {e:#}")
            })?;

        let out = typed.output_fact(0).map_err(|e| e.to_string())?;
        if !out.datum_type.is_float() {
            return Err(format!(
                "the ONNX output {:?} holds {:?}, not probabilities",
                self.output.name, out.datum_type
            ));
        }
        let len = out
            .shape
            .as_concrete()
            .map(|dims| dims.iter().product::<usize>());
        let want_ok = match (self.serves, len) {
            (_, None) => true, // only known after a run: checked per score
            (Kind::Satisfaction, Some(n)) => n == self.output.classes.len(),
            (_, Some(n)) => self.output.index < n,
        };
        if !want_ok {
            return Err(format!(
                "the ONNX output {:?} has {} element(s); the mapping reads {}",
                self.output.name,
                len.unwrap_or_default(),
                self.reads()
            ));
        }

        let plan = typed
            .into_runnable()
            .map_err(|e| format!("the ONNX model cannot be planned: {e:#}"))?;
        Ok(LoadedOnnx {
            plan,
            model: Arc::new(self.clone()),
        })
    }

    fn reads(&self) -> String {
        if self.serves == Kind::Satisfaction {
            format!("{} class probabilities", self.output.classes.len())
        } else {
            format!("the probability at index {}", self.output.index)
        }
    }
}

/// What the graph declares for its input must fit an f32 `[1, width]` tensor; unknown parts
/// (such as a symbolic batch dimension `N`) fit anything.
fn check_input(declared: &InferenceFact, width: usize) -> Result<(), String> {
    if let Some(dt) = declared.datum_type.concretize()
        && dt != f32::datum_type()
    {
        return Err(format!(
            "the ONNX model's input holds {dt:?}; the mapping feeds f32"
        ));
    }
    let rank = declared.shape.rank().concretize();
    let fits = match rank {
        None => true,
        Some(2) => [1, width].iter().enumerate().all(|(axis, want)| {
            match declared.shape.dim(axis).and_then(|d| d.concretize()) {
                Some(d) => d.as_i64().is_none_or(|d| usize::try_from(d) == Ok(*want)),
                None => true,
            }
        }),
        Some(_) => false,
    };
    if fits {
        Ok(())
    } else {
        let dims: Vec<String> = declared.shape.dims().map(ToString::to_string).collect();
        Err(format!(
            "the ONNX model's input has shape [{}]; the mapping's {width} columns make [1, {width}]",
            dims.join(", ")
        ))
    }
}

/// An ONNX model ready to score. Cheap to clone; scoring from several threads at once is fine
/// (each call runs its own state).
#[derive(Clone)]
pub struct LoadedOnnx {
    plan: Arc<TypedRunnableModel>,
    model: Arc<OnnxModel>,
}

impl fmt::Debug for LoadedOnnx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedOnnx")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl LoadedOnnx {
    /// The model it runs.
    pub fn model(&self) -> &OnnxModel {
        &self.model
    }

    /// The input row a feature vector becomes, one value per column (exposed for explanations
    /// and tests).
    pub fn input_row(&self, features: &FeatureVector) -> Result<Vec<f32>, String> {
        self.model
            .input
            .columns
            .iter()
            .map(|c| {
                let value = match &c.one_hot {
                    None => features.numeric.get(&c.feature).copied(),
                    Some(category) => features
                        .categorical
                        .get(&c.feature)
                        .map(|v| if v == category { 1.0 } else { 0.0 }),
                };
                let value = value.unwrap_or(c.default);
                if value.is_finite() {
                    Ok(value as f32)
                } else {
                    Err(format!("feature {:?} is not a finite number", c.feature))
                }
            })
            .collect()
    }

    /// Scores one feature vector: `[probability]` for churn and propensity, one probability per
    /// class (in `output.classes` order) for satisfaction.
    pub fn score(&self, features: &FeatureVector) -> Result<Vec<f32>, String> {
        let row = self.input_row(features)?;
        let input = Tensor::from_shape(&[1, row.len()], &row).map_err(|e| e.to_string())?;
        let outputs = self
            .plan
            .run(tvec![input.into()])
            .map_err(|e| format!("the ONNX model failed to run: {e:#}"))?;
        let output = outputs
            .first()
            .ok_or_else(|| "the ONNX model returned no output".to_owned())?;
        let values: Vec<f32> = output
            .cast_to::<f32>()
            .and_then(|t| Ok(t.to_plain_array_view::<f32>()?.iter().copied().collect()))
            .map_err(|e| format!("the ONNX output is not readable as f32: {e:#}"))?;

        let m = &self.model;
        let scores = if m.serves == Kind::Satisfaction {
            if values.len() != m.output.classes.len() {
                return Err(format!(
                    "the ONNX output has {} values for {} classes",
                    values.len(),
                    m.output.classes.len()
                ));
            }
            values
        } else {
            let p = values.get(m.output.index).copied().ok_or_else(|| {
                format!(
                    "the ONNX output has {} values, no index {}",
                    values.len(),
                    m.output.index
                )
            })?;
            vec![p]
        };
        // A graph that emits logits instead of probabilities is a mapping mistake, not a score.
        if let Some(bad) = scores.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(format!(
                "the ONNX output {bad} is not a probability in [0, 1]"
            ));
        }
        Ok(scores)
    }
}

/// `Vec<u8>` as standard, padded base64 in a JSON string.
mod base64_bytes {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| D::Error::custom(format!("onnx_base64 is not valid base64: {e}")))
    }
}

/// Encodes graph bytes the way artifacts store them (for tools writing artifacts by hand).
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

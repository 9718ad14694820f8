#!/usr/bin/env python3
"""Writes logistic.onnx, the fixture of tests/onnx.rs: a logistic regression over 3 inputs.

    p = sigmoid(x @ W + b),  W = [0.8, -1.5, 0.25],  b = -0.3

Input `features`: float32 [N, 3] (a symbolic batch dimension, as exporters write it); output
`churn_probability`: float32 [N, 1]. The weights here and in tests/onnx.rs must agree.

    python3 -m pip install onnx    # numpy comes with it
    python3 services/predict/tests/data/make_logistic_onnx.py

The output is deterministic: rerunning the script rewrites the same bytes.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

WEIGHTS = [0.8, -1.5, 0.25]
INTERCEPT = -0.3
# Operator set 13 and IR version 8: within what tract is tested against (sets 9 to 18).
OPSET = 13
IR_VERSION = 8


def build() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.array(WEIGHTS, dtype=np.float32).reshape(3, 1), name="W")
    b = numpy_helper.from_array(np.array([INTERCEPT], dtype=np.float32), name="b")
    graph = helper.make_graph(
        nodes=[
            helper.make_node("MatMul", ["features", "W"], ["logit_no_bias"], name="matmul"),
            helper.make_node("Add", ["logit_no_bias", "b"], ["logit"], name="add"),
            helper.make_node("Sigmoid", ["logit"], ["churn_probability"], name="sigmoid"),
        ],
        name="logistic",
        inputs=[helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3])],
        outputs=[helper.make_tensor_value_info("churn_probability", TensorProto.FLOAT, ["N", 1])],
        initializer=[w, b],
    )
    model = helper.make_model(
        graph,
        producer_name="iee-make-logistic-onnx",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def self_check(model: onnx.ModelProto) -> None:
    """The ONNX reference runtime must agree with the logistic function computed by hand."""
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    (got,) = ReferenceEvaluator(model).run(None, {"features": x})
    want = 1.0 / (1.0 + np.exp(-(x.astype(np.float64) @ np.array(WEIGHTS) + INTERCEPT)))
    assert np.allclose(got[:, 0], want, atol=1e-6), (got, want)


def main() -> None:
    model = build()
    self_check(model)
    out = Path(__file__).with_name("logistic.onnx")
    out.write_bytes(model.SerializeToString())
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

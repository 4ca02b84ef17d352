"""Model -> ONNX / INT8 / FP16 / TensorRT, with parity checks."""

"""rnnzoo.export: Keras -> ONNX bundles with fused recurrent operators, and the TF-free runtime."""

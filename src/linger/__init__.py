"""linger: the training side (PyTorch). Quantization-aware training and export to the thinker
ONNX dialect. It imports ``thinker.qmath`` for its arithmetic; thinker never imports linger."""

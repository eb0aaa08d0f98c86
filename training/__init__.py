"""The paper's training recipe: data, loss, schedule, ensembling, export to ONNX."""

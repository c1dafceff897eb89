"""Training, benchmarking and publishing scripts for ViTDeblur (`python -m train`, `python -m train.push`)."""

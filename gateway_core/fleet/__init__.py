"""The box's own hardware and llama-server deployments: GPUs, containers, models."""

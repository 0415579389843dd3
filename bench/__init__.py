"""Benchmarks: what Corral's gateway costs against calling llama-server (or a null upstream) directly."""

"""Property-based fuzzing of both APIs with generated requests (hypothesis): tests/fuzz/strategies.py builds them."""

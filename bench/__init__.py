"""Benchmarks of the real citygw agent (`make bench`); see bench/README.md."""

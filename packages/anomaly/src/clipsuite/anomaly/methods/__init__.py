"""Anomaly detection methods: pure torch, each returning ``AnomalyResult`` (scores + maps)."""

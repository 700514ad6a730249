"""Reusable CDK constructs of the Pat data platform (synth-time only; run-time code lives in pat_data)."""

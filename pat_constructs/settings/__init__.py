"""Construct settings: one typed object per construct, each field with its documented default.

Like the props of a CDK construct library, but CDK-free on purpose (stdlib only): `stacks/config.py` composes these
objects into the environment model, and config must never import aws_cdk. This package imports nothing.
"""

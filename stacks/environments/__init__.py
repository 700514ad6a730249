"""The environment model and its values, CDK-free: model, validation, and one module per environment.

`stacks/config.py` loads them (and is the one reader of CDK context and the process environment). This package
imports nothing, so importing a submodule never pulls in aws_cdk.
"""

#!/usr/bin/env python3
"""Pat data platform CDK app: load config -> build each environment's stacks -> register the compliance gate."""

import aws_cdk as cdk

from pat_constructs.compliance import register_compliance_packs
from stacks import config
from stacks.pat_app import build_environment

app = cdk.App()
for environment in config.load(app):
    build_environment(app, environment)
register_compliance_packs(app)
app.synth()

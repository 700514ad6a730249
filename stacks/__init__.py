"""Stack composition of the Pat data platform: one module per stack, values from stacks.config."""

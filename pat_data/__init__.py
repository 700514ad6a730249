"""pat_data: run-time library (migrations, partitions, connections, repositories, cache). No aws_cdk here."""

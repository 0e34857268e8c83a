"""AWS adapters: S3, DynamoDB and Secrets Manager implementations of the domain's ports,
the only AWS-aware code in the library. Built by ``opencrs.bootstrap`` alone."""

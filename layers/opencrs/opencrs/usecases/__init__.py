"""What the service does, one module per use case, on the domain's ports only: create,
update, delete and read targets, answer queries, grade images, index uploads."""

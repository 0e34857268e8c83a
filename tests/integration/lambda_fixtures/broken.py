"""A handler module whose init fails, as one with a bad import or configuration would."""

raise RuntimeError("this module cannot be loaded")


def handler(event: dict, context: object) -> dict:  # never reached
    return {}

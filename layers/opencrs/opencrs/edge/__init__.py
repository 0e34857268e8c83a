"""The HTTP edge: API Gateway events in, EasyAR envelopes out. Parses requests,
authenticates callers, maps every error to EasyAR's statusCode, and routes to use cases."""

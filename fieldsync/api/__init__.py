"""The HTTP edge: blueprints, authentication, error mapping and the transaction per request."""

"""Adapters to the outside world (Helm, Kubernetes, Keycloak); the only modules that import their libraries."""

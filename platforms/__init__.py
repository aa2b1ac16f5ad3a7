"""The BinderAdmin console: platforms, clusters, deploys and access."""

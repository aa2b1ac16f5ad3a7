"""BinderAdmin project configuration (settings, URLs, WSGI/ASGI entry points)."""

"""The real local stack (helm, etcd, kube-apiserver, Keycloak) for `make run` and the test suite."""

"""A real single-node Kubernetes on this machine, built from Debian's packages and the Go module
proxy, with Loupe's images built locally and its chart installed (`make k8s-up`)."""

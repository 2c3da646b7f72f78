"""Code shared by every Loupe service: configuration, errors, gRPC server and clients, Kafka."""

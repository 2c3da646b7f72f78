"""The public gRPC API (protos/loupe/v1/api.proto, docs/grpc.md), served by the gateway process
beside REST. Same three layers as the REST side: thin servicers (`servicer.py`: protobuf in,
flows called, protobuf out), the transport-free flows (`loupe_gateway.flows`) and the backends
(`loupe_gateway.clients`). `auth.py` turns request metadata into the caller's principal with
the REST key rules; `convert.py` maps internal messages to public ones; `server.py` builds the
server."""

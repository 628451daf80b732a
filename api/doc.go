// Package api holds Brook's contracts: the .proto files under proto/ and the
// code generated from them. It has no logic.
//
//   - bookshelf/v1 (package bookshelfv1): the gRPC services BookshelfCommands
//     and BookshelfLastRead with their grpc-gateway REST bindings, the event
//     data messages, and the names proto cannot express (topic, CloudEvents
//     types, Consul service names, the idempotency-key metadata).
//   - openapi: the generated OpenAPI documents, embedded for the gateway.
//
// Regenerate with `make gen` (scripts/gen.sh; buf and the plugins run with go
// run at pinned versions). TestGeneratedCodeIsFresh fails when the committed
// output is stale.
package api

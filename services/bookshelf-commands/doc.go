// Command bookshelf-commands is the write side of the bookshelf: an event-sourced book aggregate
// served over gRPC (BookshelfCommands) and REST (/v1/books...), publishing every accepted change
// as a CloudEvent on the Kafka topic "bookshelf" (key = book id).
//
// Durability and delivery: a command's events, their outbox entries, the books projection (what
// GetBook and ListBooks read) and the idempotency record are written in one bbolt transaction
// (kit/store.EventStore); the outbox relay publishes the entries in order and deletes each
// only after Kafka acknowledged it, so no accepted command is ever missing from Kafka, even
// after a crash. Kafka being down does not stop commands: events wait in the outbox, and the
// readiness check "kafka" reports it (also while idle: it probes the brokers every few
// seconds). The relay is the stream "outbox-relay" at /mgmt/streams.
//
// Idempotency-Key answers are kept for idempotency.retention (24h by default); a retry after it
// is a new command. A background sweeper deletes expired records in small transactions.
//
// Concurrent commands are group-committed (one fsync for many), and decided inside their
// transaction, so parallel changes to one book never lose an update; expected_version turns a
// change into a conditional one (409 on mismatch).
//
// Usage:
//
//	bookshelf-commands [--config config.yaml] [--key value ...]
//
// Settings: see config.yaml; every key is also a flag and a BROOK_* environment variable.
package main

// Package store holds the bbolt-backed storage helpers of the kit.
//
// Two stores live here, each in its own file and each for one side of CQRS:
//
//   - EventStore (eventstore.go, outbox.go): the write side. Append-only event streams, one per
//     aggregate id, with optimistic concurrency (an expected version; a mismatch is ErrConflict),
//     and a transactional outbox: every appended event gets an outbox entry in the same bbolt
//     transaction, and a Relay publishes the entries to Kafka in order, deleting each only after
//     the broker acknowledged it. A command is therefore either fully recorded (events, outbox,
//     whatever projection the caller wrote in the same transaction) or not at all, and every
//     recorded event reaches Kafka at least once, even across crashes. Concurrent commits are
//     group-committed: requests that arrive while a transaction is being written are coalesced
//     into the next one, so many writers share one fsync.
//
//   - ViewStore (view.go): the read side. A view mutation and the Kafka offset it corresponds to
//     are written in one transaction, so replays after a crash or rebalance are no-ops. ApplyBatch
//     does that for a consumer's whole batch of a partition in one transaction.
//
// Both group-commit their writes through the same mechanism (groupcommit.go): requests queued
// while a transaction is being written share the next one, and its fsync.
//
// Both use bbolt with fsync on commit by default: a commit that returned nil survives a power
// loss.
package store

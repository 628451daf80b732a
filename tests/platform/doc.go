// Package platform holds the whole-platform tests of Brook: the failure tests (scripts/failure.sh,
// part of `make test`) and the load benchmark (scripts/load.sh, part of `make bench`).
//
// The tests own every component as a real process: the Kafka-protocol broker (kfake run by
// `devstack up --only kafka`, persistent in a data dir so a restart keeps the log and the
// consumer groups' offsets), a real Consul dev agent (bin/consul via kit/consultest), and
// bookshelf-commands, bookshelf-lastread and the gateway, all built from this checkout with
// `go build`. Nothing is mocked; faults are real (SIGKILL of a service, of the broker's process
// and of the Consul agent, a clean agent restart), and the assertions are what a user of the
// public API and of the Kafka topic would observe.
//
//	go test -count=1 -v -run TestFailures ./tests/platform/
//	go test -count=1 -run '^$' -bench BenchmarkPlatform -benchtime 300x ./tests/platform/
package platform

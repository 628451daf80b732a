// Package compose holds Brook's Docker Compose deployment (compose.yaml, Dockerfile).
// Docker can't run in CI, so its tests load both files with the same parsers Docker
// uses (compose-go, BuildKit's Dockerfile parser) and check them against the
// contracts in ARCHITECTURE.md.
package compose

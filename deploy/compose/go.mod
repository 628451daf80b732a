module github.com/brook-dev/brook/deploy/compose

go 1.26.8

require (
	github.com/compose-spec/compose-go/v2 v2.16.2 // indirect
	github.com/moby/buildkit v0.34.2 // indirect
)

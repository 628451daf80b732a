// Package catalog lists the services devstack runs and where they live. The
// list is code, not a file: adding a service to the platform means adding a
// line here (name, folder, ports from the contract in ARCHITECTURE.md).
package catalog

import (
	"errors"
	"go/build"
	"path/filepath"
)

// Service is one runnable service of the platform.
type Service struct {
	Name     string   // binary name and Consul service name
	Dir      string   // main package, relative to the repo root
	GRPCPort int      // 0 = no gRPC server
	HTTPPort int      // serves /readyz, /metrics (and the REST API)
	Args     []string // command-line arguments of the binary
}

// Default is the platform in start order: backends first, the gateway last
// (it discovers the backends through Consul).
func Default() []Service {
	return []Service{
		{Name: "bookshelf-commands", Dir: "services/bookshelf-commands", GRPCPort: 9001, HTTPPort: 8001},
		{Name: "bookshelf-lastread", Dir: "services/bookshelf-lastread", GRPCPort: 9002, HTTPPort: 8002},
		{Name: "gateway", Dir: "services/gateway", HTTPPort: 8080},
	}
}

// HasMain reports whether root/s.Dir holds a main package yet. Services are
// written over time; devstack skips (with a warning) those that have none.
func HasMain(root string, s Service) bool {
	pkg, err := build.ImportDir(filepath.Join(root, s.Dir), 0)
	if err == nil {
		return pkg.Name == "main" && len(pkg.GoFiles) > 0
	}
	// A folder mid-way (doc.go still says "package x" next to a new main.go):
	// it is meant to be a command, let the build report what is wrong.
	var multi *build.MultiplePackageError
	if errors.As(err, &multi) {
		for _, name := range multi.Packages {
			if name == "main" {
				return true
			}
		}
	}
	return false
}

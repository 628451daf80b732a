package catalog

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHasMain(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("services/lib/doc.go", "// Package lib is not a command.\npackage lib\n")
	write("services/cmd/main.go", "package main\n\nfunc main() {}\n")
	write("services/mixed/doc.go", "package mixed\n")
	write("services/mixed/main.go", "package main\n\nfunc main() {}\n")
	write("services/onlytest/x_test.go", "package main\n")

	cases := map[string]bool{
		"services/lib":      false,
		"services/cmd":      true,
		"services/mixed":    true,
		"services/onlytest": false,
		"services/missing":  false,
	}
	for dir, want := range cases {
		if got := HasMain(root, Service{Name: filepath.Base(dir), Dir: dir}); got != want {
			t.Errorf("HasMain(%s) = %v, want %v", dir, got, want)
		}
	}
}

func TestDefaultMatchesContractPorts(t *testing.T) {
	want := map[string][2]int{
		"bookshelf-commands": {9001, 8001},
		"bookshelf-lastread": {9002, 8002},
		"gateway":            {0, 8080},
	}
	got := Default()
	if len(got) != len(want) {
		t.Fatalf("Default() has %d services, want %d", len(got), len(want))
	}
	for _, s := range got {
		if p, ok := want[s.Name]; !ok || p != [2]int{s.GRPCPort, s.HTTPPort} {
			t.Errorf("%s: ports grpc=%d http=%d, want %v", s.Name, s.GRPCPort, s.HTTPPort, p)
		}
	}
	if got[len(got)-1].Name != "gateway" {
		t.Errorf("gateway must start last, got order %v", got)
	}
}

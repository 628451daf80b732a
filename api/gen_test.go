package api

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// generatedGlobs are the files scripts/gen.sh owns, relative to api/.
var generatedGlobs = []string{
	"bookshelf/v1/*.pb.go",
	"bookshelf/v1/*.pb.gw.go",
	"openapi/*.swagger.json",
}

// TestGeneratedCodeIsFresh regenerates everything into a temporary directory
// and fails when the committed output differs, so a .proto edit without
// `make gen` cannot go unnoticed. The first run builds buf and the plugins
// (minutes, and needs the Go module proxy); afterwards it works offline from
// the module and build caches. Skipped with -short.
func TestGeneratedCodeIsFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerates with buf; skipped in -short mode")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not found; cannot run scripts/gen.sh")
	}
	out := t.TempDir()
	cmd := exec.Command(bash, filepath.Join("..", "scripts", "gen.sh"), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/gen.sh failed: %v\n%s", err, b)
	}

	committed := generatedFiles(t, ".")
	fresh := generatedFiles(t, out)
	for name := range committed {
		if _, ok := fresh[name]; !ok {
			t.Errorf("api/%s is no longer generated: run make gen", name)
		}
	}
	for name, path := range fresh {
		old, ok := committed[name]
		if !ok {
			t.Errorf("api/%s is missing: run make gen", name)
			continue
		}
		if !bytes.Equal(readFile(t, old), readFile(t, path)) {
			t.Errorf("api/%s is stale (differs from what the .proto files generate): run make gen", name)
		}
	}
}

// generatedFiles maps each generated file's path relative to dir to its full path.
func generatedFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, g := range generatedGlobs {
		matches, err := filepath.Glob(filepath.Join(dir, g))
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(matches)
		for _, m := range matches {
			rel, err := filepath.Rel(dir, m)
			if err != nil {
				t.Fatal(err)
			}
			files[filepath.ToSlash(rel)] = m
		}
	}
	if len(files) == 0 {
		t.Fatalf("no generated files under %s", dir)
	}
	return files
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

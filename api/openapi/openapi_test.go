package openapi_test

import (
	"encoding/json"
	"io/fs"
	"testing"

	"github.com/brook-dev/brook/api/openapi"
)

type swagger struct {
	Swagger string `json:"swagger"`
	Info    struct {
		Title   string `json:"title"`
		Version string `json:"version"`
	} `json:"info"`
	Paths       map[string]map[string]json.RawMessage `json:"paths"`
	Definitions map[string]struct {
		Properties map[string]json.RawMessage `json:"properties"`
	} `json:"definitions"`
}

// The gateway serves these documents; check they describe the REST contract of
// ARCHITECTURE.md with snake_case field names.
func TestDocumentsDescribeTheRESTContract(t *testing.T) {
	want := map[string]map[string][]string{
		"bookshelf-commands": {
			"/v1/books":           {"get", "post"},
			"/v1/books/{id}":      {"get", "delete"},
			"/v1/books/{id}/read": {"post"},
		},
		"bookshelf-lastread": {
			"/v1/last-read": {"get"},
		},
	}
	docs := openapi.Documents()
	if len(docs) != len(want) {
		t.Fatalf("got %d documents, want %d", len(docs), len(want))
	}
	for _, d := range docs {
		paths, ok := want[d.Service]
		if !ok {
			t.Errorf("unexpected document %s for service %q", d.Name, d.Service)
			continue
		}
		var doc swagger
		if err := json.Unmarshal(d.JSON, &doc); err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		if doc.Swagger != "2.0" || doc.Info.Title == "" || doc.Info.Version == "" {
			t.Errorf("%s: swagger %q, title %q, version %q", d.Name, doc.Swagger, doc.Info.Title, doc.Info.Version)
		}
		for p, methods := range paths {
			for _, m := range methods {
				if _, ok := doc.Paths[p][m]; !ok {
					t.Errorf("%s: no %s %s", d.Name, m, p)
				}
			}
		}
		for name, def := range doc.Definitions {
			for prop := range def.Properties {
				for _, camel := range []string{"readAt", "lastReadAt", "createdAt", "readCount", "expectedVersion"} {
					if prop == camel {
						t.Errorf("%s: %s.%s is lowerCamelCase; REST uses proto names", d.Name, name, prop)
					}
				}
			}
		}
	}
}

func TestFSServesTheSameDocuments(t *testing.T) {
	for _, d := range openapi.Documents() {
		b, err := fs.ReadFile(openapi.FS(), d.Name)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != string(d.JSON) {
			t.Errorf("%s differs between FS and Documents", d.Name)
		}
	}
}

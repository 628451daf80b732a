package docs_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/brook-dev/brook/api/openapi"
	"github.com/brook-dev/brook/services/gateway/internal/docs"
)

func sources() []docs.Source {
	var out []docs.Source
	for _, d := range openapi.Documents() {
		out = append(out, docs.Source{Name: d.Name, JSON: d.JSON})
	}
	return out
}

type swagger struct {
	Swagger string `json:"swagger"`
	Info    struct {
		Title string `json:"title"`
	} `json:"info"`
	Paths               map[string]map[string]map[string]any `json:"paths"`
	Definitions         map[string]map[string]any            `json:"definitions"`
	SecurityDefinitions map[string]any                       `json:"securityDefinitions"`
	Tags                []map[string]any                     `json:"tags"`
}

func TestMergeListsEveryOperation(t *testing.T) {
	srcs := sources()
	if len(srcs) < 2 {
		t.Fatalf("api/openapi embeds %d documents, want both services'", len(srcs))
	}
	b, err := docs.Merge(srcs)
	if err != nil {
		t.Fatal(err)
	}
	var merged swagger
	if err := json.Unmarshal(b, &merged); err != nil {
		t.Fatal(err)
	}
	if merged.Swagger != "2.0" || merged.Info.Title != "Brook API" {
		t.Errorf("swagger %q title %q", merged.Swagger, merged.Info.Title)
	}
	ops := 0
	for _, src := range srcs {
		var doc swagger
		if err := json.Unmarshal(src.JSON, &doc); err != nil {
			t.Fatal(err)
		}
		for path, methods := range doc.Paths {
			for method, op := range methods {
				ops++
				got, ok := merged.Paths[path][method]
				if !ok || got["operationId"] != op["operationId"] {
					t.Errorf("%s %s (%s) missing from the merged document", method, path, src.Name)
				}
			}
		}
		for name := range doc.Definitions {
			if _, ok := merged.Definitions[name]; !ok {
				t.Errorf("definition %s (%s) missing", name, src.Name)
			}
		}
	}
	// The public contract (ARCHITECTURE.md): six operations.
	for _, want := range []struct{ method, path string }{
		{"post", "/v1/books"}, {"get", "/v1/books"}, {"get", "/v1/books/{id}"},
		{"post", "/v1/books/{id}/read"}, {"delete", "/v1/books/{id}"}, {"get", "/v1/last-read"},
	} {
		op, ok := merged.Paths[want.path][want.method]
		if !ok {
			t.Errorf("%s %s missing", want.method, want.path)
			continue
		}
		_, secured := op["security"]
		if write := want.method != "get"; write != secured {
			t.Errorf("%s %s: security %v, want %v", want.method, want.path, op["security"], write)
		}
	}
	if ops < 6 {
		t.Errorf("sources have %d operations", ops)
	}
	if _, ok := merged.SecurityDefinitions["bearer"]; !ok {
		t.Error("no bearer security definition")
	}
	if props := merged.Definitions["rpcStatus"]["properties"].(map[string]any); props["code"].(map[string]any)["type"] != "string" {
		t.Errorf("error schema not replaced by the gateway's {code,message}: %v", props)
	}
	if len(merged.Tags) != len(srcs) {
		t.Errorf("tags %v", merged.Tags)
	}
}

func TestMergeConflicts(t *testing.T) {
	a := docs.Source{Name: "a.json", JSON: []byte(`{"swagger":"2.0","paths":{"/v1/x":{"get":{"operationId":"A"}}},"definitions":{"T":{"type":"object"}}}`)}
	samePath := docs.Source{Name: "b.json", JSON: []byte(`{"swagger":"2.0","paths":{"/v1/x":{"get":{"operationId":"B"}}}}`)}
	otherMethod := docs.Source{Name: "c.json", JSON: []byte(`{"swagger":"2.0","paths":{"/v1/x":{"post":{"operationId":"C"}}},"definitions":{"T":{"type":"object"}}}`)}
	otherDef := docs.Source{Name: "d.json", JSON: []byte(`{"swagger":"2.0","definitions":{"T":{"type":"string"}}}`)}
	if _, err := docs.Merge([]docs.Source{a, samePath}); err == nil || !strings.Contains(err.Error(), "GET /v1/x") {
		t.Errorf("same operation twice: %v", err)
	}
	if _, err := docs.Merge([]docs.Source{a, otherDef}); err == nil || !strings.Contains(err.Error(), "definition T") {
		t.Errorf("conflicting definition: %v", err)
	}
	if _, err := docs.Merge([]docs.Source{a, {Name: "v3.json", JSON: []byte(`{"openapi":"3.0.0"}`)}}); err == nil {
		t.Error("OpenAPI 3 accepted")
	}
	b, err := docs.Merge([]docs.Source{a, otherMethod})
	if err != nil {
		t.Fatal(err)
	}
	var m swagger
	_ = json.Unmarshal(b, &m)
	if len(m.Paths["/v1/x"]) != 2 {
		t.Errorf("methods of one path from two documents not merged: %v", m.Paths)
	}
}

func TestHandlerServesPageAndEmbeddedAssets(t *testing.T) {
	h, err := docs.New(sources())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for p, hh := range h.Routes() {
		mux.Handle(p, hh)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	res, page := get("/docs")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("/docs page loads something from another host (no CDN allowed)")
	}
	refs := regexp.MustCompile(`(?:src|href)="(/docs/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("page references %v, want the bundle, the css and init.js", refs)
	}
	for _, ref := range refs {
		res, body := get(ref[1])
		if res.StatusCode != 200 || len(body) < 100 {
			t.Errorf("%s: %d, %d bytes", ref[1], res.StatusCode, len(body))
		}
	}
	if res, body := get("/docs/swagger-ui-bundle.js"); res.StatusCode != 200 || len(body) < 1_000_000 ||
		!strings.Contains(res.Header.Get("Content-Type"), "javascript") {
		t.Errorf("bundle: %d, %d bytes, %s", res.StatusCode, len(body), res.Header.Get("Content-Type"))
	}
	if res, body := get("/docs/init.js"); !strings.Contains(body, "/openapi.json") {
		t.Errorf("init.js (%d) does not load /openapi.json", res.StatusCode)
	}
	if res, _ := get("/docs/../go.mod"); res.StatusCode == 200 {
		t.Error("path escape served something")
	}
	if res, _ := get("/docs/LICENSE.swagger-ui"); res.StatusCode != 404 {
		t.Errorf("unlisted asset: %d", res.StatusCode)
	}
	res, spec := get("/openapi.json")
	var m swagger
	if res.StatusCode != 200 || json.Unmarshal([]byte(spec), &m) != nil || m.Paths["/v1/last-read"] == nil {
		t.Fatalf("/openapi.json: %d %.200s", res.StatusCode, spec)
	}
}

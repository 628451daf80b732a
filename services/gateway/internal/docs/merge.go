package docs

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Source is one OpenAPI (Swagger 2.0) document to merge, named for error messages.
type Source struct {
	Name string // e.g. the file name
	JSON []byte
}

// Title is the title of the merged document.
const Title = "Brook API"

// writeMethods are the operations the gateway guards with a JWT (see internal/auth).
var writeMethods = map[string]bool{"post": true, "put": true, "patch": true, "delete": true}

// errorSchema is what every gateway error looks like on the wire ({"code","message","field"}
// from kit/service), replacing grpc-gateway's rpcStatus whose numeric code and details the
// gateway never sends.
var errorSchema = map[string]any{
	"type":        "object",
	"description": "Every error answer: a snake_case code (invalid_argument, unauthenticated, not_found, unavailable, ...), a human-readable message and, for bad input, the offending field.",
	"properties": map[string]any{
		"code":    map[string]any{"type": "string", "example": "invalid_argument"},
		"message": map[string]any{"type": "string"},
		"field":   map[string]any{"type": "string"},
	},
}

// bearer is the security scheme of the gateway's writes.
var bearer = map[string]any{
	"type":        "apiKey",
	"name":        "Authorization",
	"in":          "header",
	"description": "A JWT, sent as `Authorization: Bearer <token>`. The gateway requires it for writes (and for reads when auth.reads_open is false). `gateway token --sub you` mints a dev token.",
}

// Merge combines the services' documents into the single document the gateway serves: paths,
// definitions, tags and security definitions of every source in one Swagger 2.0 document
// titled "Brook API". A path+method or a definition that two sources define differently is an
// error (it would make one of the services unreachable or its schema wrong). Write operations
// are marked as needing the bearer token, so the docs page offers "Authorize".
func Merge(sources []Source) ([]byte, error) {
	paths := map[string]map[string]any{}
	definitions := map[string]any{}
	defFrom := map[string]string{}
	security := map[string]any{}
	var tags []any
	seenTag := map[string]bool{}
	var descriptions []string
	out := map[string]any{"swagger": "2.0"}

	for _, src := range sources {
		var doc struct {
			Swagger             string                    `json:"swagger"`
			Info                map[string]any            `json:"info"`
			Tags                []map[string]any          `json:"tags"`
			Schemes             []any                     `json:"schemes"`
			Consumes            []any                     `json:"consumes"`
			Produces            []any                     `json:"produces"`
			Paths               map[string]map[string]any `json:"paths"`
			Definitions         map[string]any            `json:"definitions"`
			SecurityDefinitions map[string]any            `json:"securityDefinitions"`
		}
		if err := json.Unmarshal(src.JSON, &doc); err != nil {
			return nil, fmt.Errorf("openapi merge: %s: %w", src.Name, err)
		}
		if doc.Swagger != "2.0" {
			return nil, fmt.Errorf("openapi merge: %s: swagger version %q, want 2.0", src.Name, doc.Swagger)
		}
		if t, ok := doc.Info["title"].(string); ok && t != "" {
			d, _ := doc.Info["description"].(string)
			descriptions = append(descriptions, "## "+t+"\n\n"+d)
		}
		for key, v := range map[string][]any{"schemes": doc.Schemes, "consumes": doc.Consumes, "produces": doc.Produces} {
			if _, done := out[key]; !done && len(v) > 0 {
				out[key] = v
			}
		}
		for _, t := range doc.Tags {
			name, _ := t["name"].(string)
			if !seenTag[name] {
				seenTag[name] = true
				tags = append(tags, t)
			}
		}
		for p, ops := range doc.Paths {
			if paths[p] == nil {
				paths[p] = map[string]any{}
			}
			for method, op := range ops {
				if _, dup := paths[p][method]; dup {
					return nil, fmt.Errorf("openapi merge: %s: %s %s is defined by two services", src.Name, strings.ToUpper(method), p)
				}
				paths[p][method] = op
			}
		}
		for name, def := range doc.Definitions {
			if prev, dup := definitions[name]; dup && !reflect.DeepEqual(prev, def) {
				return nil, fmt.Errorf("openapi merge: definition %s differs between %s and %s", name, defFrom[name], src.Name)
			}
			definitions[name] = def
			defFrom[name] = src.Name
		}
		for name, def := range doc.SecurityDefinitions {
			security[name] = def
		}
	}

	if _, ok := definitions["rpcStatus"]; ok {
		definitions["rpcStatus"] = errorSchema
	}
	if _, ok := security["bearer"]; !ok {
		security["bearer"] = bearer
	}
	for _, ops := range paths {
		for method, op := range ops {
			m, ok := op.(map[string]any)
			if !ok || !writeMethods[method] {
				continue
			}
			if _, has := m["security"]; !has {
				m["security"] = []any{map[string]any{"bearer": []any{}}}
			}
		}
	}
	sort.Strings(descriptions)
	out["info"] = map[string]any{
		"title":   Title,
		"version": "1.0",
		"description": "The public REST API of Brook, served by the gateway. Writes need `Authorization: Bearer <JWT>`; " +
			"every response carries `X-Request-Id`. Errors are JSON `{\"code\",\"message\"}`.\n\n" +
			strings.Join(descriptions, "\n\n"),
		"license": map[string]any{"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
	}
	out["tags"] = tags
	out["paths"] = paths
	out["definitions"] = definitions
	out["securityDefinitions"] = security
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("openapi merge: encode: %w", err)
	}
	return b, nil
}

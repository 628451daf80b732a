// Package openapi embeds the OpenAPI (Swagger 2.0) documents generated from
// the service protos, one per gRPC service, so that the gateway can merge and
// serve them without reading files at run time. The documents are generated
// by `make gen`; do not edit them by hand.
package openapi

import (
	"embed"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed *.swagger.json
var files embed.FS

// Document is one generated OpenAPI document.
type Document struct {
	// Service is the Consul service name that serves the API, derived from the
	// file name ("bookshelf_commands.swagger.json" -> "bookshelf-commands").
	Service string
	// Name is the embedded file name.
	Name string
	// JSON is the Swagger 2.0 document.
	JSON []byte
}

// Documents returns every embedded document, sorted by name. The byte slices
// are fresh copies, so callers may modify them.
func Documents() []Document {
	names, err := fs.Glob(files, "*.swagger.json")
	if err != nil { // only for a malformed pattern, which this one is not
		panic("openapi: " + err.Error())
	}
	sort.Strings(names)
	docs := make([]Document, 0, len(names))
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil { // embedded files are always readable
			panic("openapi: " + err.Error())
		}
		service := strings.ReplaceAll(strings.TrimSuffix(path.Base(name), ".swagger.json"), "_", "-")
		docs = append(docs, Document{Service: service, Name: name, JSON: data})
	}
	return docs
}

// FS returns the embedded documents as a read-only file system, for serving
// them as they are.
func FS() fs.FS { return files }

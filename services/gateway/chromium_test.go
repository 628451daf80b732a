package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// chromiumPath is where Debian's "chromium" package installs the browser; BROOK_CHROMIUM
// overrides it.
func chromiumPath() string {
	if p := os.Getenv("BROOK_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// TestDocsPageInChromium loads /docs in headless Chromium and checks that Swagger UI rendered
// the merged document: every operation of the public API is listed in the DOM. This proves the
// embedded assets load and run (no CDN) and /openapi.json is valid for Swagger UI.
func TestDocsPageInChromium(t *testing.T) {
	bin := chromiumPath()
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("Chromium is absent (%s: %v); install the Debian package chromium to run this test", bin, err)
	}
	if testing.Short() {
		t.Skip("starts a browser; skipped with -short")
	}
	gw := edgeGateway(t, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=15000", "--dump-dom", gw.URL+"/docs")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	dom := string(out)
	for _, want := range []string{"Brook API", "/v1/books", "/v1/books/{id}", "/v1/books/{id}/read", "/v1/last-read", "Authorize"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered /docs does not show %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM (%d bytes):\n%.3000s\nchromium stderr:\n%.3000s", len(dom), dom, stderr.String())
	}
	// Swagger UI fetched the document from the gateway itself.
	if !strings.Contains(gw.Logs.String(), "path=/openapi.json") {
		t.Error("the page never requested /openapi.json")
	}
}

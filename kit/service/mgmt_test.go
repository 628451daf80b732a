package service_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/brook-dev/brook/kit/service"
)

// fakeStream is a pure-logic Stream and Runner: it only tracks its state.
type fakeStream struct {
	name   string
	events *eventLog
	mu     sync.Mutex
	state  string
	starts int
}

func (f *fakeStream) Name() string { return f.name }

func (f *fakeStream) Start() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = "running"
	f.starts++
	return nil
}

func (f *fakeStream) Stop() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = "stopped"
	if f.events != nil {
		f.events.add("stream " + f.name + " stop")
	}
	return nil
}

func (f *fakeStream) Status() service.StreamStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return service.StreamStatus{Name: f.name, State: f.state, Consumed: 42, Topics: []string{"bookshelf"}}
}

func (f *fakeStream) Run(ctx context.Context) error {
	<-ctx.Done()
	if f.events != nil {
		f.events.add("stream " + f.name + " run ended")
	}
	return nil
}

func TestMgmtStreams(t *testing.T) {
	cfg := testConfig()
	cfg.Admin.Token = "s3cret"
	st := &fakeStream{name: "lastread", state: "running"}
	h := start(t, cfg, service.Options{}, func(s *service.Service) {
		if err := s.AddStream(st); err != nil {
			t.Fatal(err)
		}
		if err := s.AddStream(&fakeStream{name: "lastread"}); err == nil {
			t.Error("duplicate stream name accepted")
		}
	})

	code, body, _ := do(t, "GET", h.base+"/mgmt/streams", "", nil)
	streams, _ := body["streams"].([]any)
	if code != http.StatusOK || len(streams) != 1 {
		t.Fatalf("list = %d %v", code, body)
	}
	if s0 := streams[0].(map[string]any); s0["name"] != "lastread" || s0["state"] != "running" || s0["consumed"] != float64(42) {
		t.Fatalf("status = %v", s0)
	}

	stop := h.base + "/mgmt/streams/lastread/stop"
	for _, token := range []string{"", "wrong"} {
		code, body, hdr := do(t, "POST", stop, token, nil)
		if code != http.StatusUnauthorized || body["code"] != "unauthenticated" || hdr.Get("WWW-Authenticate") == "" {
			t.Fatalf("token %q -> %d %v", token, code, body)
		}
	}
	if st.Status().State != "running" {
		t.Fatal("stream stopped without a valid token")
	}
	if code, body, _ := do(t, "POST", stop, "s3cret", nil); code != http.StatusOK || body["state"] != "stopped" {
		t.Fatalf("stop -> %d %v", code, body)
	}
	if code, body, _ := do(t, "POST", h.base+"/mgmt/streams/lastread/start", "s3cret", nil); code != http.StatusOK || body["state"] != "running" {
		t.Fatalf("start -> %d %v", code, body)
	}
	if code, body, _ := do(t, "POST", h.base+"/mgmt/streams/nope/stop", "s3cret", nil); code != http.StatusNotFound || body["code"] != "not_found" {
		t.Fatalf("unknown stream -> %d %v", code, body)
	}
	if code, _, _ := do(t, "POST", h.base+"/mgmt/streams/lastread/explode", "s3cret", nil); code != http.StatusNotFound {
		t.Fatalf("unknown action -> %d", code)
	}
}

func TestMgmtDisabledWithoutAdminToken(t *testing.T) {
	h := start(t, testConfig(), service.Options{}, func(s *service.Service) {
		_ = s.AddStream(&fakeStream{name: "x", state: "running"})
	})
	code, body, _ := do(t, "POST", h.base+"/mgmt/streams/x/stop", "anything", nil)
	if code != http.StatusForbidden || body["code"] != "permission_denied" {
		t.Fatalf("no admin token configured -> %d %v", code, body)
	}
}

// TestRequireAdmin: 403 without a configured token, 401 (with WWW-Authenticate) for a missing
// or wrong bearer, the handler otherwise.
func TestRequireAdmin(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, c := range []struct {
		token, auth string
		want        int
		code        string
	}{
		{"", "Bearer x", http.StatusForbidden, "permission_denied"},
		{"s3cret", "", http.StatusUnauthorized, "unauthenticated"},
		{"s3cret", "Bearer wrong", http.StatusUnauthorized, "unauthenticated"},
		{"s3cret", "Basic s3cret", http.StatusUnauthorized, "unauthenticated"},
		{"s3cret", "bearer s3cret", http.StatusNoContent, ""},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/mgmt/x", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		service.RequireAdmin(c.token, ok).ServeHTTP(rec, req)
		if rec.Code != c.want || (c.code != "" && !strings.Contains(rec.Body.String(), `"code":"`+c.code+`"`)) {
			t.Errorf("token %q, Authorization %q: %d %s, want %d %s", c.token, c.auth, rec.Code, rec.Body, c.want, c.code)
		}
		if (c.want == http.StatusUnauthorized) != (rec.Header().Get("WWW-Authenticate") != "") {
			t.Errorf("token %q, Authorization %q: WWW-Authenticate %q", c.token, c.auth, rec.Header().Get("WWW-Authenticate"))
		}
	}
}

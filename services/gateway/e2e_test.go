package main

import (
	"encoding/json"
	"fmt"
	gobuild "go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/consultest"
	"github.com/brook-dev/brook/kit/kafkatest"
)

// buildService compiles ../<name> into dir; a sibling service without a main package fails
// the test.
func buildService(t *testing.T, dir, name string) string {
	t.Helper()
	src := filepath.Join("..", name)
	if pkg, err := gobuild.ImportDir(src, 0); err != nil || pkg.Name != "main" {
		t.Fatalf("services/%s: no main package to build (%v)", name, err)
	}
	bin := filepath.Join(dir, name)
	out, err := exec.Command("go", "build", "-o", bin, "./"+src).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", src, err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is a service binary running for the test; it gets SIGTERM at the end and must exit
// cleanly.
type process struct {
	name     string
	httpAddr string
	out      *logBuffer
}

func startProcess(t *testing.T, bin, name string, env ...string) *process {
	t.Helper()
	p := &process{name: name, httpAddr: freeAddr(t), out: &logBuffer{}}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"BROOK_HTTP_ADDR="+p.httpAddr,
		"BROOK_GRPC_ADDR="+freeAddr(t),
		"BROOK_DATA_DIR="+t.TempDir(),
		"BROOK_LOG_FORMAT=text",
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s exited with %v", name, err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("%s did not stop within 30s of SIGTERM", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// TestEndToEnd runs the real bookshelf services as processes against the embedded Kafka broker
// and a real Consul agent, and drives them through the gateway: add a book, mark it read, see
// it in /v1/last-read, delete it.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both services; skipped with -short")
	}
	bins := t.TempDir()
	commandsBin := buildService(t, bins, bookshelfv1.ServiceCommands)
	lastReadBin := buildService(t, bins, bookshelfv1.ServiceLastRead)

	kafka := kafkatest.New(t)
	kafka.CreateTopic(t, bookshelfv1.Topic, 3)
	agent := consultest.New(t)
	env := []string{
		"BROOK_KAFKA_BROKERS=" + kafka.Brokers()[0],
		"BROOK_CONSUL_ADDR=" + agent.Addr(),
	}
	commands := startProcess(t, commandsBin, bookshelfv1.ServiceCommands, env...)
	lastRead := startProcess(t, lastReadBin, bookshelfv1.ServiceLastRead, env...)
	gw := startGateway(t, func(c *Config) { c.Consul.Addr = agent.Addr() })
	for _, p := range []*process{commands, lastRead} {
		eventually(t, 60*time.Second, p.name+" ready", func() error {
			res, err := httpClient.Get("http://" + p.httpAddr + "/readyz")
			if err != nil {
				return err
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				return fmt.Errorf("readyz %d", res.StatusCode)
			}
			return nil
		})
	}

	auth := []string{"Authorization", "Bearer " + token(t, "alice")}
	var added response
	eventually(t, 60*time.Second, "add a book through the gateway (waits for Consul to pass the instance)", func() error {
		added = do(t, "POST", gw.URL+"/v1/books", `{"title":"The Left Hand of Darkness","author":"Ursula K. Le Guin"}`,
			append(auth, "Idempotency-Key", "e2e-add-1")...)
		if added.Status != 201 {
			return fmt.Errorf("POST /v1/books: %s", added)
		}
		return nil
	})
	book := added.json(t)["book"].(map[string]any)
	id, _ := book["id"].(string)
	if id == "" || book["title"] != "The Left Hand of Darkness" {
		t.Fatalf("added %v", book)
	}
	// The same Idempotency-Key again: the same book, not a second one.
	again := do(t, "POST", gw.URL+"/v1/books", `{"title":"The Left Hand of Darkness","author":"Ursula K. Le Guin"}`,
		append(auth, "Idempotency-Key", "e2e-add-1")...)
	if again.Status/100 != 2 || again.json(t)["book"].(map[string]any)["id"] != id {
		t.Errorf("retried add: %s, want book %s", again, id)
	}

	if res := do(t, "GET", gw.URL+"/v1/books/"+id, ""); res.Status != 200 {
		t.Fatalf("GET /v1/books/%s: %s", id, res)
	}
	if res := do(t, "POST", gw.URL+"/v1/books/"+id+"/read", `{}`, auth...); res.Status != 200 {
		t.Fatalf("mark read: %s", res)
	}
	inLastRead := func() (bool, error) {
		res := do(t, "GET", gw.URL+"/v1/last-read?limit=10", "")
		if res.Status != 200 {
			return false, fmt.Errorf("GET /v1/last-read: %s", res)
		}
		var body struct {
			Books []struct {
				ID     string `json:"id"`
				ReadAt string `json:"read_at"`
			} `json:"books"`
		}
		if err := json.Unmarshal(res.Body, &body); err != nil {
			return false, err
		}
		for _, b := range body.Books {
			if b.ID == id {
				if b.ReadAt == "" {
					return true, fmt.Errorf("book without read_at: %s", res.Body)
				}
				return true, nil
			}
		}
		return false, nil
	}
	eventually(t, 30*time.Second, "book shows up in /v1/last-read", func() error {
		found, err := inLastRead()
		if err == nil && !found {
			err = fmt.Errorf("book %s not in the view yet", id)
		}
		return err
	})

	if res := do(t, "DELETE", gw.URL+"/v1/books/"+id, ""); res.Status != 401 {
		t.Errorf("DELETE without a token: %s", res)
	}
	if res := do(t, "DELETE", gw.URL+"/v1/books/"+id, "", auth...); res.Status != 200 {
		t.Fatalf("DELETE: %s", res)
	}
	if res := do(t, "GET", gw.URL+"/v1/books/"+id, ""); res.Status != 404 || res.json(t)["code"] != "not_found" {
		t.Errorf("GET after delete: %s", res)
	}
	eventually(t, 30*time.Second, "removed book leaves /v1/last-read", func() error {
		found, err := inLastRead()
		if err == nil && found {
			err = fmt.Errorf("book %s still in the view", id)
		}
		return err
	})
	t.Logf("book %s added, read, seen in the view and removed through the gateway at %s (commands %s, lastread %s)",
		id, gw.URL, commands.httpAddr, lastRead.httpAddr)
}

package platform

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one component (a service, or the Kafka broker) run as a child process. Its ports and
// data dir are fixed at creation, so a restart after a SIGKILL comes back at the same addresses
// with the same state, as a supervisor (systemd, Kubernetes) would restart it. Output of every
// run is appended to one log file, which the test prints the tail of when it fails.
type proc struct {
	name     string
	bin      string
	args     []string
	env      []string
	httpAddr string // where GET /readyz answers (services)
	logPath  string
	// probe, when set, replaces the /readyz check: one attempt, nil when ready, else what is
	// not ready yet.
	probe func(ctx context.Context) error

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current run has exited
	runs int
}

// start launches a new run. The child is in its own process group and is SIGKILLed by the
// kernel if the test binary dies, so no service outlives the test.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s: already running (pid %d)", p.name, p.cmd.Process.Pid)
		}
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: open log: %w", p.name, err)
	}
	p.runs++
	fmt.Fprintf(logf, "==== run %d of %s at %s ====\n", p.runs, p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: start %s: %w", p.name, p.bin, err)
	}
	done := make(chan struct{})
	go func() { // owned by the run: ends when the process exits
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// current returns the running command and its done channel (nil when never started).
func (p *proc) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// kill sends SIGKILL, the crash a supervisor sees on OOM or a node loss, and waits for the exit.
func (p *proc) kill() error {
	cmd, done := p.current()
	if cmd == nil {
		return nil
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: pid %d still alive 10s after SIGKILL", p.name, cmd.Process.Pid)
	}
}

// stop sends SIGTERM (graceful shutdown) and SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	cmd, done := p.current()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	if err := p.kill(); err != nil {
		return err
	}
	return fmt.Errorf("%s: did not stop within %s of SIGTERM; killed", p.name, grace)
}

// waitReady polls the readiness probe (by default GET /readyz until it answers 200). It fails
// early if the process exits, and at ctx's end with the last answer (readyz names the failing
// dependency).
func (p *proc) waitReady(ctx context.Context) error {
	_, done := p.current()
	probe := p.probe
	if probe == nil {
		probe = p.readyz
	}
	last := "no answer yet"
	for {
		err := probe(ctx)
		if err == nil {
			return nil
		}
		last = err.Error()
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready (log %s)", p.name, p.logPath)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %s: %w", p.name, last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// readyz is the services' readiness probe: GET /readyz answers 200.
func (p *proc) readyz(ctx context.Context) error {
	url := "http://" + p.httpAddr + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// restart starts the process again after a crash and waits until it is ready.
func (p *proc) restart(ctx context.Context) error {
	if err := p.start(); err != nil {
		return err
	}
	return p.waitReady(ctx)
}

// logTail returns the last n lines of the process log.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// freePort returns a TCP port free on 127.0.0.1 at the time of the call, never the same twice
// in one test binary. It is chosen below the kernel's ephemeral range, where outgoing
// connections take local ports at random: a port released by a killed service must still be
// free when the service restarts on it.
func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	low := ephemeralLow()
	for range 200 {
		p := 20000 + rand.IntN(max(low-20000, 1000))
		if portsUsed[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[p] = true
		return p
	}
	t.Fatalf("free port: none free among 200 tries in [20000, %d)", low)
	return 0
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// ephemeralLow is the first port of the kernel's ephemeral range (32768 when unknown).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 21000 {
		return 32768
	}
	return n
}

func freeAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}

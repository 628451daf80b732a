package stack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/brook-dev/brook/tools/devstack/internal/catalog"
	"github.com/brook-dev/brook/tools/devstack/internal/procs"
)

// service is one supervised service process; proc changes on restart.
type service struct {
	def     catalog.Service
	spec    procs.Spec
	out     *procs.Output
	host    string
	dataDir string // BROOK_DATA_DIR, created before each start

	mu       sync.Mutex
	proc     *procs.Process
	stopping bool
}

func (s *stack) newService(def catalog.Service) *service {
	cfg := s.cfg
	dataDir := filepath.Join(cfg.DataDir, def.Name)
	env := append(os.Environ(),
		"BROOK_KAFKA_BROKERS="+net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.KafkaPort)),
		"BROOK_CONSUL_ADDR="+net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.ConsulHTTPPort)),
		"BROOK_DATA_DIR="+dataDir,
		"BROOK_HTTP_ADDR="+net.JoinHostPort(cfg.Host, strconv.Itoa(def.HTTPPort)),
		"BROOK_LOG_FORMAT=text",
		"BROOK_ADMIN_TOKEN="+cfg.AdminToken,
		"BROOK_AUTH_JWT_SECRET="+cfg.JWTSecret,
	)
	if def.GRPCPort != 0 {
		env = append(env, "BROOK_GRPC_ADDR="+net.JoinHostPort(cfg.Host, strconv.Itoa(def.GRPCPort)))
	}
	return &service{
		def:     def,
		out:     cfg.Out,
		host:    cfg.Host,
		dataDir: dataDir,
		spec: procs.Spec{
			Name: def.Name,
			Path: filepath.Join(cfg.Root, "bin", def.Name),
			Args: def.Args,
			Env:  env,
			Dir:  cfg.Root,
		},
	}
}

// start launches the service's process (again, after a crash). It refuses
// once stop has begun, so a restart never races with shutdown.
func (v *service) start() error {
	if err := os.MkdirAll(v.dataDir, 0o755); err != nil {
		return fmt.Errorf("%s: data dir: %w", v.def.Name, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopping {
		return fmt.Errorf("%s: not started, devstack is stopping", v.def.Name)
	}
	p, err := procs.Start(v.spec, v.out)
	if err != nil {
		return err
	}
	v.proc = p
	v.out.Prefixed("devstack").Println(fmt.Sprintf("%s: started pid %d (http %s)", v.def.Name, p.Pid(), v.httpAddr()))
	return nil
}

func (v *service) current() *procs.Process {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.proc
}

func (v *service) httpAddr() string {
	return net.JoinHostPort(v.host, strconv.Itoa(v.def.HTTPPort))
}

// waitReady polls GET /readyz until it answers 200. It fails early when the
// process exits, and after timeout with the last answer (readyz names the
// failing dependency).
func (v *service) waitReady(ctx context.Context, timeout time.Duration) error {
	p := v.current()
	url := "http://" + v.httpAddr() + "/readyz"
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		if status, body, err := get(ctx, client, url); err != nil {
			last = err.Error()
		} else if status == http.StatusOK {
			v.out.Prefixed("devstack").Println(v.def.Name + ": ready")
			return nil
		} else {
			last = fmt.Sprintf("%d %s", status, body)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %s: %w", v.def.Name, url, ctx.Err())
		case <-p.Done():
			return fmt.Errorf("%s exited before it was ready (%s); see the [%s] lines above", v.def.Name, exitText(p.Err()), v.def.Name)
		case <-deadline.C:
			return fmt.Errorf("%s not ready after %s: GET %s: %s", v.def.Name, timeout, url, last)
		case <-tick.C:
		}
	}
}

// unregisteredGrace is how long devstack waits for a ready service to show up
// in Consul at all before assuming it doesn't register (a custom service
// without kit/service) and moving on with a warning.
const unregisteredGrace = 5 * time.Second

// waitDiscoverable follows the service's Consul health entries with blocking
// queries until an instance has all its checks passing, which is when the
// gateway's resolver can route to it. A service that never registers is
// skipped with a warning.
func (v *service) waitDiscoverable(ctx context.Context, client *api.Client, timeout time.Duration) error {
	log := v.out.Prefixed("devstack")
	start := time.Now()
	var index uint64
	for {
		// Not passingOnly: one answer tells both "passing" and "registered at all".
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: time.Second}).WithContext(ctx)
		entries, meta, err := client.Health().Service(v.def.Name, "", false, q)
		if err == nil {
			if meta.LastIndex < index { // Consul's index went back: start over
				index = 0
			} else {
				index = meta.LastIndex
			}
			for _, e := range entries {
				if e.Checks.AggregatedStatus() == api.HealthPassing {
					log.Println(v.def.Name + ": passing in consul")
					return nil
				}
			}
			if len(entries) == 0 && time.Since(start) > unregisteredGrace {
				log.Println("warning: " + v.def.Name + " did not register in consul; the gateway cannot discover it")
				return nil
			}
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("%s: registered in consul but its checks did not pass within %s (see consul's /v1/health/service/%s)", v.def.Name, timeout, v.def.Name)
		}
		if err == nil {
			continue // the next blocking query waits for a change
		}
		select { // the agent did not answer: retry shortly
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for consul: %w", v.def.Name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// get returns the status and the first line of the body (trimmed).
func get(ctx context.Context, c *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return resp.StatusCode, strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]), nil
}

// stop marks the service as stopping (so its exit is expected) and stops it.
func (v *service) stop(grace time.Duration, force <-chan struct{}) error {
	v.mu.Lock()
	v.stopping = true
	p := v.proc
	v.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Stop(grace, force)
}

// watchService logs an unexpected exit and, with --restart, starts the
// service again after a short pause. It ends when ctx is done.
func (s *stack) watchService(ctx context.Context, v *service) {
	s.watchers.Add(1)
	go func() {
		defer s.watchers.Done()
		for {
			p := v.current()
			select {
			case <-ctx.Done():
				return
			case <-p.Done():
			}
			v.mu.Lock()
			stopping := v.stopping
			v.mu.Unlock()
			if stopping || ctx.Err() != nil {
				return
			}
			s.log.Println(fmt.Sprintf("%s exited unexpectedly: %s", v.def.Name, exitText(p.Err())))
			if !s.cfg.Restart {
				s.log.Println(fmt.Sprintf("%s stays down (run with --restart to restart crashed services)", v.def.Name))
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			s.log.Println("restarting " + v.def.Name)
			if err := v.start(); err != nil {
				s.log.Println(fmt.Sprintf("restart %s: %v", v.def.Name, err))
				return
			}
		}
	}()
}

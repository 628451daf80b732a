package registry

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// Instance is one healthy instance of a service, as Consul reports it.
type Instance struct {
	ID       string
	Name     string
	Node     string
	Address  string // service address, or the node's when the service has none
	Port     int    // the service port (gRPC when the instance has gRPC)
	GRPCPort int    // from meta grpc_port; 0 when absent
	HTTPPort int    // from meta http_port; 0 when absent
	Version  string // from meta version
	Tags     []string
	Meta     map[string]string
}

// GRPCAddr is "address:grpc_port", falling back to the service port for
// instances registered by something other than this package.
func (i Instance) GRPCAddr() string { return i.addr(i.GRPCPort) }

// HTTPAddr is "address:http_port", falling back to the service port.
func (i Instance) HTTPAddr() string { return i.addr(i.HTTPPort) }

// addr joins the address with port, or with the service port when port is 0.
func (i Instance) addr(port int) string {
	if port == 0 {
		port = i.Port
	}
	return net.JoinHostPort(i.Address, strconv.Itoa(port))
}

// Instances returns the instances of service name whose checks all pass,
// having every one of tags, sorted by ID.
func Instances(ctx context.Context, client *api.Client, name string, tags ...string) ([]Instance, error) {
	entries, _, err := client.Health().ServiceMultipleTags(name, tags, true, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("registry: healthy instances of %q: %w", name, err)
	}
	return toInstances(entries), nil
}

func toInstances(entries []*api.ServiceEntry) []Instance {
	out := make([]Instance, 0, len(entries))
	for _, e := range entries {
		if e.Service == nil {
			continue
		}
		s := e.Service
		in := Instance{
			ID:      s.ID,
			Name:    s.Service,
			Address: s.Address,
			Port:    s.Port,
			Tags:    s.Tags,
			Meta:    s.Meta,
			Version: s.Meta[MetaVersion],
		}
		in.GRPCPort, _ = strconv.Atoi(s.Meta[MetaGRPCPort])
		in.HTTPPort, _ = strconv.Atoi(s.Meta[MetaHTTPPort])
		if e.Node != nil {
			in.Node = e.Node.Node
			if in.Address == "" {
				in.Address = e.Node.Address
			}
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// sameInstances compares two sorted lists on what a client dials and routes by.
func sameInstances(a, b []Instance) bool {
	return slices.EqualFunc(a, b, func(x, y Instance) bool {
		return x.ID == y.ID && x.Address == y.Address && x.Port == y.Port &&
			x.GRPCPort == y.GRPCPort && x.HTTPPort == y.HTTPPort && x.Version == y.Version &&
			slices.Equal(x.Tags, y.Tags)
	})
}

// Watcher follows the healthy instances of one service with Consul blocking
// queries and delivers each change on Updates. While Consul is unreachable it
// retries with backoff and delivers nothing, so consumers keep the last known
// instances.
type Watcher struct {
	client  *api.Client
	name    string
	tags    []string
	logger  *slog.Logger
	updates chan []Instance
}

// NewWatcher returns a Watcher of service name (instances having all of
// tags). Start it with Run. A nil logger discards.
func NewWatcher(client *api.Client, name string, tags []string, logger *slog.Logger) *Watcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{client: client, name: name, tags: tags, logger: logger, updates: make(chan []Instance, 1)}
}

// Updates delivers the current healthy instances: first the initial list,
// then a new list on each change. Only the latest list is kept when the
// reader is slow. The channel is closed when Run returns.
func (w *Watcher) Updates() <-chan []Instance { return w.updates }

// Run watches until ctx is done. The caller owns the goroutine running it.
func (w *Watcher) Run(ctx context.Context) {
	defer close(w.updates)
	watch(ctx, w.client, w.name, w.tags, w.logger, func(in []Instance) {
		// Replace an unread stale list: only the latest state matters.
		select {
		case <-w.updates:
		default:
		}
		w.updates <- in
	}, nil)
}

// watch runs blocking queries on the health of service name until ctx is
// done, calling deliver with each changed list of passing instances (and the
// first one), and onErr (if not nil) with each failed query.
func watch(ctx context.Context, client *api.Client, name string, tags []string, logger *slog.Logger,
	deliver func([]Instance), onErr func(error)) {
	var (
		index   uint64
		last    []Instance
		sent    bool
		failing bool
		backoff = newBackoff()
	)
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, watchWait+15*time.Second)
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: watchWait}).WithContext(qctx)
		entries, meta, err := client.Health().ServiceMultipleTags(name, tags, true, q)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !failing {
				logger.Warn("consul: watch failed; keeping the last known instances", "service", name, "error", err)
				failing = true
			}
			if onErr != nil {
				onErr(fmt.Errorf("registry: watch %q: %w", name, err))
			}
			index = 0 // the agent may have restarted with a fresh index
			sleep(ctx, backoff.next())
			continue
		}
		if failing {
			logger.Info("consul: watch recovered", "service", name)
			failing = false
		}
		backoff.reset()
		// Blocking query rules: an index that goes backwards (agent or
		// cluster restarted) restarts from zero; zero never blocks, so
		// pace the loop a little in that case.
		switch {
		case meta.LastIndex < index:
			index = 0
		case meta.LastIndex == 0:
			index = 0
			sleep(ctx, time.Second)
		default:
			index = meta.LastIndex
		}
		in := toInstances(entries)
		if sent && sameInstances(in, last) {
			continue
		}
		last, sent = in, true
		deliver(in)
	}
}

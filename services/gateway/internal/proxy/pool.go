package proxy

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/consul/api"

	"github.com/brook-dev/brook/kit/registry"
)

// Pool is the healthy HTTP addresses ("host:http_port") of one Consul service, followed with a
// kit/registry Watcher (blocking queries), handed out round robin.
//
// Availability rules: while Consul is unreachable the Watcher delivers nothing, so the pool keeps
// the last known addresses, as the gRPC resolver does. Unlike the resolver, an empty answer from
// Consul empties the pool: a plain HTTP client has no connection state telling it which old
// address still works, so requests get a clear 503 rather than 502s from dead instances.
type Pool struct {
	watcher *registry.Watcher
	addrs   atomic.Pointer[[]string]
	next    atomic.Uint64
}

// NewPool returns the pool of service; it is empty until Run has received Consul's first answer.
func NewPool(client *api.Client, service string, logger *slog.Logger) *Pool {
	return &Pool{
		watcher: registry.NewWatcher(client, service, nil, logger),
	}
}

// Run follows Consul until ctx ends. The caller owns the goroutine running it.
func (p *Pool) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned here: ends with ctx (the watcher closes Updates when it returns)
		defer wg.Done()
		p.watcher.Run(ctx)
	}()
	for in := range p.watcher.Updates() {
		addrs := make([]string, 0, len(in))
		for _, i := range in {
			addrs = append(addrs, i.HTTPAddr())
		}
		p.addrs.Store(&addrs)
	}
	wg.Wait()
}

// Addrs is a copy of the current addresses.
func (p *Pool) Addrs() []string {
	if a := p.addrs.Load(); a != nil {
		return append([]string(nil), *a...)
	}
	return nil
}

// Pick returns the next address round robin, false when there is none.
func (p *Pool) Pick() (string, bool) {
	a := p.addrs.Load()
	if a == nil || len(*a) == 0 {
		return "", false
	}
	n := p.next.Add(1) - 1
	return (*a)[n%uint64(len(*a))], true
}

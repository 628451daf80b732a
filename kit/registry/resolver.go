package registry

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
)

// Scheme is the gRPC target scheme served by the resolver:
// "consul:///<service>" or "consul:///<service>?tag=a&tag=b".
const Scheme = "consul"

// roundRobin is the service config the resolver hands to gRPC: a Consul
// service has many instances, so spread calls over them. A client's own
// grpc.WithDefaultServiceConfig is overridden by it; use
// grpc.WithDisableServiceConfig to choose another policy.
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// NewResolverBuilder returns a gRPC resolver for "consul:///<service>"
// targets, resolved to the GRPCAddr of the service's passing instances and
// updated by a blocking-query watch. Pass it per client, without global
// state:
//
//	grpc.NewClient("consul:///bookshelf-lastread",
//		grpc.WithResolvers(registry.NewResolverBuilder(client, logger)),
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// Availability rules: while Consul is unreachable, or when it suddenly
// reports no passing instance (typically an agent that restarted and has not
// yet seen the services register again), the resolver keeps the last known
// addresses instead of pushing an empty list that would close working
// connections; round_robin only uses connections that are up, so an instance
// that is really gone gets no calls. Before the first successful answer,
// errors are reported to gRPC so that calls fail instead of hanging.
func NewResolverBuilder(client *api.Client, logger *slog.Logger) resolver.Builder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &resolverBuilder{client: client, logger: logger}
}

// WithResolver is the dial option that makes a client resolve "consul:///"
// targets through the agent client talks to.
func WithResolver(client *api.Client, logger *slog.Logger) grpc.DialOption {
	return grpc.WithResolvers(NewResolverBuilder(client, logger))
}

type resolverBuilder struct {
	client *api.Client
	logger *slog.Logger
}

func (b *resolverBuilder) Scheme() string { return Scheme }

func (b *resolverBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	name := target.Endpoint()
	if name == "" {
		return nil, errors.New(`registry: consul target has no service name (want "consul:///<service>")`)
	}
	tags := target.URL.Query()["tag"]
	sc := cc.ParseServiceConfig(roundRobin)
	ctx, cancel := context.WithCancel(context.Background())
	r := &consulResolver{cancel: cancel}
	r.wg.Add(1)
	// Owned by the resolver: Close cancels ctx and waits for it.
	go func() {
		defer r.wg.Done()
		var known bool // an address list has been pushed
		watch(ctx, b.client, name, tags, b.logger, func(in []Instance) {
			if len(in) == 0 && known {
				b.logger.Warn("consul: no passing instance; keeping the last known addresses", "service", name)
				return
			}
			state := resolver.State{ServiceConfig: sc}
			for _, i := range in {
				addr := resolver.Address{Addr: i.GRPCAddr()}
				state.Addresses = append(state.Addresses, addr)
				state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{addr}})
			}
			// An error here means the balancer rejected the state (e.g.
			// no address); gRPC then calls ResolveNow, and the watch
			// delivers the next change anyway.
			_ = cc.UpdateState(state)
			known = len(in) > 0
		}, func(err error) {
			if !known {
				cc.ReportError(err)
			}
		})
	}()
	return r, nil
}

type consulResolver struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ResolveNow does nothing: the blocking query already delivers every change
// as it happens.
func (r *consulResolver) ResolveNow(resolver.ResolveNowOptions) {}

func (r *consulResolver) Close() {
	r.cancel()
	r.wg.Wait()
}

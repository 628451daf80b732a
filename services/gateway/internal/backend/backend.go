// Package backend connects the gateway to the bookshelf services over gRPC.
//
// Each backend is one grpc.ClientConn to a target such as "consul:///bookshelf-lastread"
// (resolved by kit/registry to the service's passing instances, balanced round robin). Every
// call carries the request id and traceparent (kit/track), gets a deadline (the gateway never
// waits longer than the configured timeout for a backend), and its transport errors are renamed
// after the service so a client reading a 503 knows which dependency is down:
//
//	503 {"code":"unavailable","message":"bookshelf-lastread: no healthy instance"}
package backend

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/brook-dev/brook/kit/track"
)

// roundRobin spreads calls over every resolved address. The consul resolver sets the same
// policy itself; this is the default for other targets (dns:///, a static list).
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// Options tune a connection.
type Options struct {
	// Timeout bounds each call that has no earlier deadline; 0 means 10s.
	Timeout time.Duration
	// DialOptions are added last (e.g. registry.WithResolver for consul:/// targets).
	DialOptions []grpc.DialOption
}

// Dial creates the connection to service at target. It does not connect yet: the first call
// (or the resolver) does, so the gateway starts even while the backends are down.
func Dial(service, target string, o Options) (*grpc.ClientConn, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(roundRobin),
		// Outermost first: name the service on the final error, then bound the call, then
		// attach the tracking metadata.
		grpc.WithChainUnaryInterceptor(
			NameErrors(service),
			Deadline(o.Timeout),
			track.UnaryClientInterceptor(),
		),
		grpc.WithChainStreamInterceptor(track.StreamClientInterceptor()),
	}
	cc, err := grpc.NewClient(target, append(opts, o.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %s: %w", service, target, err)
	}
	return cc, nil
}

// Deadline gives a call at most d, unless its context already ends sooner.
func Deadline(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// NameErrors prefixes transport-level failures with the service name. Unavailable while the
// connection has no ready instance becomes "<service>: no healthy instance"; Unavailable from a
// ready connection (the backend said so, or the instance went away mid-call) keeps its message
// after the prefix; a deadline becomes "<service>: no answer in time". Application errors
// (NotFound, InvalidArgument, ...) pass unchanged.
func NameErrors(service string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil {
			return nil
		}
		st, _ := status.FromError(err)
		switch st.Code() {
		case codes.Unavailable:
			if cc.GetState() != connectivity.Ready {
				return status.Error(codes.Unavailable, service+": no healthy instance")
			}
			return status.Error(codes.Unavailable, service+": "+st.Message())
		case codes.DeadlineExceeded:
			return status.Error(codes.DeadlineExceeded, service+": no answer in time")
		}
		return err
	}
}

package track

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// FromIncomingMetadata returns ctx carrying the tracking values from the incoming gRPC
// metadata, generating the missing ones (a gRPC server is an edge too).
func FromIncomingMetadata(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(key string) string {
		if v := md.Get(key); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	// Valid metadata values replace those already in ctx; for an in-process grpc-gateway call
	// both are the same, set by the HTTP middleware.
	ctx = Extract(ctx, GRPCKeys, get)
	return Ensure(ctx)
}

// ToOutgoingMetadata returns ctx whose outgoing gRPC metadata carries the tracking values of ctx.
func ToOutgoingMetadata(ctx context.Context) context.Context {
	var kv []string
	Inject(ctx, GRPCKeys, func(k, v string) { kv = append(kv, k, v) })
	if len(kv) == 0 {
		return ctx
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	for i := 0; i < len(kv); i += 2 {
		md.Set(kv[i], kv[i+1])
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// UnaryServerInterceptor restores tracking from incoming metadata into the handler's context.
func UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(FromIncomingMetadata(ctx), req)
	}
}

// StreamServerInterceptor restores tracking from incoming metadata into the stream's context.
func StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &serverStream{ServerStream: ss, ctx: FromIncomingMetadata(ss.Context())})
	}
}

// UnaryClientInterceptor sends the tracking values of the call's context as metadata.
func UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(ToOutgoingMetadata(ctx), method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor sends the tracking values of the stream's context as metadata.
func StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(ToOutgoingMetadata(ctx), desc, cc, method, opts...)
	}
}

// DialOptions returns the client interceptors as dial options, for grpc.NewClient.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(StreamClientInterceptor()),
	}
}

type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }

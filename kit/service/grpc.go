package service

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/brook-dev/brook/kit/track"
)

// newGRPCServer chains, outermost first: tracking (ids into ctx), access log + metrics,
// panic recovery, then the caller's interceptors.
func (s *Service) newGRPCServer() *grpc.Server {
	unary := append([]grpc.UnaryServerInterceptor{
		track.UnaryServerInterceptor(), s.observeUnary(), s.recoverUnary(),
	}, s.opts.UnaryInterceptors...)
	stream := append([]grpc.StreamServerInterceptor{
		track.StreamServerInterceptor(), s.observeStream(), s.recoverStream(),
	}, s.opts.StreamInterceptors...)
	opts := append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	}, s.opts.GRPCOptions...)
	return grpc.NewServer(opts...)
}

func (s *Service) observeUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		s.observeCall(ctx, info.FullMethod, start, err)
		return resp, err
	}
}

func (s *Service) observeStream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		err := h(srv, ss)
		s.observeCall(ss.Context(), info.FullMethod, start, err)
		return err
	}
}

// observeCall writes the access log line and the metrics of one call. Health checks (Consul
// polls them) log at debug so they do not drown the log.
func (s *Service) observeCall(ctx context.Context, method string, start time.Time, err error) {
	d := time.Since(start)
	code := status.Code(err)
	grpcHandled.WithLabelValues(s.name, method, code.String()).Inc()
	grpcDuration.WithLabelValues(s.name, method).Observe(d.Seconds())
	level := slog.LevelInfo
	switch {
	case strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection."):
		level = slog.LevelDebug
	case code == codes.Internal || code == codes.Unknown || code == codes.DataLoss:
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("method", method), slog.String("code", code.String()),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", status.Convert(err).Message()))
	}
	s.logger.LogAttrs(ctx, level, "grpc call", attrs...)
}

func (s *Service) recoverUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = s.recovered(ctx, info.FullMethod, p)
			}
		}()
		return h(ctx, req)
	}
}

func (s *Service) recoverStream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = s.recovered(ss.Context(), info.FullMethod, p)
			}
		}()
		return h(srv, ss)
	}
}

func (s *Service) recovered(ctx context.Context, method string, p any) error {
	panicsRecovered.WithLabelValues(s.name, "grpc").Inc()
	s.logger.ErrorContext(ctx, "panic in gRPC handler", "method", method,
		"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error")
}

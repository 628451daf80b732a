// Command gateway is Brook's single public entry point: the REST API of both bookshelf
// services on one port (grpc-gateway handlers calling the services over gRPC, instances found
// through Consul), with authentication, rate limiting, CORS and the API docs.
//
// A request goes through, outermost first:
//
//	kit/service   request id + traceparent (taken or generated, echoed), access log, metrics,
//	              panic recovery (500), body size limit (413)
//	cors          preflights answered here; CORS headers for allowed origins
//	ratelimit     token bucket per client IP (429 + Retry-After)
//	REST mux      auth (401 for writes without a valid JWT; subject -> x-subject metadata),
//	              grpc-gateway -> gRPC client conn (round robin over healthy instances,
//	              deadline, 503 naming a service with no healthy instance)
//	  or, for a configured route (config "routes", e.g. /v1/authors -> bookshelf-authors):
//	routes        auth by the route's mode (subject -> X-Subject header), reverse proxy to a
//	              healthy instance's HTTP port (round robin, timeout, 503 / 502 / 504 JSON)
//
// /healthz, /readyz and /metrics skip CORS, rate limit and auth. Readiness needs Consul only,
// not the backends: a gateway whose backends are down still answers, with a 503 per request
// that names the missing service, which tells clients more than being taken out of rotation.
//
// `gateway token --sub alice` mints a development JWT with BROOK_AUTH_JWT_SECRET.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/hashicorp/consul/api"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/api/openapi"
	"github.com/brook-dev/brook/kit/config"
	kitlog "github.com/brook-dev/brook/kit/log"
	"github.com/brook-dev/brook/kit/registry"
	"github.com/brook-dev/brook/kit/service"
	"github.com/brook-dev/brook/services/gateway/internal/auth"
	"github.com/brook-dev/brook/services/gateway/internal/backend"
	"github.com/brook-dev/brook/services/gateway/internal/cors"
	"github.com/brook-dev/brook/services/gateway/internal/docs"
	"github.com/brook-dev/brook/services/gateway/internal/proxy"
	"github.com/brook-dev/brook/services/gateway/internal/ratelimit"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

// created lists the RPCs whose REST answer is 201 even when the backend does not say so.
var created = map[string]int{
	bookshelfv1.BookshelfCommands_AddBook_FullMethodName: http.StatusCreated,
}

func main() {
	if err := rootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func rootCommand() *cobra.Command {
	var file string
	cfg := defaultConfig()
	cmd := &cobra.Command{
		Use:           "gateway",
		Short:         "Brook's public REST entry point",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.Load(&cfg, config.WithFile(file), config.WithFlags(cmd.Flags())); err != nil {
				return err
			}
			return run(cmd.Context(), cfg)
		},
	}
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.PersistentFlags().StringVar(&file, "config", "", "YAML config file (see services/gateway/config.yaml)")
	if err := config.AddFlags(cmd.Flags(), cfg); err != nil {
		panic(err) // Config is a static struct; only a programming error gets here
	}
	cmd.AddCommand(tokenCommand(&file))
	return cmd
}

// run serves until ctx ends or SIGINT/SIGTERM.
func run(ctx context.Context, cfg Config) error {
	logger := kitlog.New(os.Stderr, kitlog.Options{
		Service: cfg.Service, Version: version, Level: cfg.Log.Level, Format: cfg.Log.Format,
	})
	svc, err := build(ctx, cfg, logger, service.Options{})
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

// build wires the gateway: config, dependencies, handlers. The returned service is not running;
// its Run closes what build opened.
func build(ctx context.Context, cfg Config, logger *slog.Logger, opts service.Options) (_ *service.Service, err error) {
	var cleanup []func() error // undone in reverse if build fails
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				_ = cleanup[i]()
			}
		}
	}()

	// Edge policies.
	authCtx, stopAuth := context.WithCancel(context.WithoutCancel(ctx))
	cleanup = append(cleanup, func() error { stopAuth(); return nil })
	authn, err := newAuthenticator(authCtx, cfg.Auth, logger)
	if err != nil {
		return nil, err
	}
	limiter, err := ratelimit.New(ratelimit.Options{
		RPS: cfg.RateLimit.RPS, Burst: cfg.RateLimit.Burst,
		MaxClients: cfg.RateLimit.MaxClients, TrustedProxies: cfg.RateLimit.TrustedProxies,
	})
	if err != nil {
		return nil, err
	}
	corsPolicy := cors.New(cors.Options{AllowedOrigins: cfg.CORS.AllowedOrigins})
	apiDocs, err := docs.New(openAPISources())
	if err != nil {
		return nil, err
	}

	// Backends: one gRPC connection per service, instances resolved through Consul.
	var dial []grpc.DialOption
	var consul *api.Client
	if cfg.Consul.Addr != "" {
		consul, err = registry.NewClient(cfg.Consul.Addr)
		if err != nil {
			return nil, fmt.Errorf("consul.addr %s: %w", cfg.Consul.Addr, err)
		}
		dial = append(dial, registry.WithResolver(consul, logger))
	}
	backends := backend.Options{Timeout: cfg.Backends.Timeout, DialOptions: dial}
	commands, err := backend.Dial(bookshelfv1.ServiceCommands, cfg.Backends.Commands, backends)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, commands.Close)
	lastRead, err := backend.Dial(bookshelfv1.ServiceLastRead, cfg.Backends.LastRead, backends)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, lastRead.Close)

	// Runtime: HTTP port only; auth and the 201 rule live inside the REST mux.
	opts.Version, opts.Logger = version, logger
	opts.GatewayOptions = append(opts.GatewayOptions, runtime.WithMiddlewares(authn.GatewayMiddleware))
	opts.DefaultHTTPStatus = created
	svc, err := service.New(cfg.Base, opts)
	if err != nil {
		return nil, err
	}
	svc.OnClose("auth", func(context.Context) error { stopAuth(); return nil })
	svc.OnClose(bookshelfv1.ServiceCommands+" connection", func(context.Context) error { return commands.Close() })
	svc.OnClose(bookshelfv1.ServiceLastRead+" connection", func(context.Context) error { return lastRead.Close() })

	// Handlers. The Register*Handler calls only add routes; they cannot fail for these services.
	if err := bookshelfv1.RegisterBookshelfCommandsHandler(ctx, svc.Gateway(), commands); err != nil {
		return nil, fmt.Errorf("register %s handlers: %w", bookshelfv1.ServiceCommands, err)
	}
	if err := bookshelfv1.RegisterBookshelfLastReadHandler(ctx, svc.Gateway(), lastRead); err != nil {
		return nil, fmt.Errorf("register %s handlers: %w", bookshelfv1.ServiceLastRead, err)
	}
	edge := func(h http.Handler) http.Handler { return corsPolicy.Middleware(limiter.Middleware(h)) }
	svc.HandleHTTP("/v1/", edge(svc.Gateway()))
	for pattern, h := range apiDocs.Routes() {
		svc.HandleHTTP(pattern, edge(h))
	}

	// Configured routes: services' own REST APIs, reverse-proxied (Validate guarantees Consul).
	if len(cfg.Routes) > 0 {
		routes := proxy.NewSet(consul, logger)
		for _, rc := range cfg.Routes {
			r, mode := cfg.proxyRoute(rc)
			h := edge(authn.Guard(mode, routes.Handler(r)))
			svc.HandleHTTP(r.Prefix, h)     // the prefix itself
			svc.HandleHTTP(r.Prefix+"/", h) // and everything below it
			logger.InfoContext(ctx, "route configured", "prefix", r.Prefix, "upstream", r.Service,
				"auth", string(mode), "strip_prefix", r.StripPrefix, "timeout", r.Timeout)
		}
		routes.Start()
		svc.OnClose("routes", func(context.Context) error { return routes.Close() })
	}
	return svc, nil
}

// newAuthenticator builds the verifier for the one configured key source (Config.Validate
// guarantees exactly one).
func newAuthenticator(ctx context.Context, c AuthConfig, logger *slog.Logger) (*auth.Authenticator, error) {
	o := auth.Options{Issuer: c.Issuer, Audience: c.Audience, ReadsOpen: c.ReadsOpen}
	if c.JWKSURL != "" {
		return auth.NewJWKS(ctx, c.JWKSURL, o, &http.Client{Timeout: 10 * time.Second}, logger)
	}
	if len(c.JWTSecret) < 32 {
		logger.WarnContext(ctx, "auth.jwt_secret is shorter than 32 bytes; fine for development only")
	}
	return auth.NewHMAC([]byte(c.JWTSecret), o)
}

// openAPISources are the services' generated documents, embedded by the api module.
func openAPISources() []docs.Source {
	var out []docs.Source
	for _, d := range openapi.Documents() {
		out = append(out, docs.Source{Name: d.Name, JSON: d.JSON})
	}
	return out
}

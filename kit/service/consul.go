package service

import (
	"context"
	"log/slog"

	"github.com/brook-dev/brook/kit/registry"
)

// consulRegistrar adapts kit/registry to Registrar: the default when cfg.Consul.Addr is set.
// kit/registry retries registration in the background, restores it after an agent restart,
// and reports the state through Healthy (the "consul" readiness check).
type consulRegistrar struct{ r *registry.Registry }

func newConsulRegistrar(addr string, logger *slog.Logger) (Registrar, error) {
	r, err := registry.New(addr, logger)
	if err != nil {
		return nil, err
	}
	return consulRegistrar{r: r}, nil
}

func (c consulRegistrar) Register(ctx context.Context, in Instance) error {
	return c.r.Register(ctx, registry.Registration{
		Name: in.Name, ID: in.ID, Address: in.Address,
		GRPCPort: in.GRPCPort, HTTPPort: in.HTTPPort,
		Version: in.Version, Tags: in.Tags,
	})
}

// Deregister removes the instance, then releases the client's connections.
func (c consulRegistrar) Deregister(ctx context.Context) error {
	err := c.r.Deregister(ctx)
	_ = c.r.Close()
	return err
}

func (c consulRegistrar) Healthy(ctx context.Context) error { return c.r.Healthy(ctx) }

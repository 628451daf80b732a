package service

import (
	"errors"
	"log/slog"
)

// newConsulRegistrar builds the default Registrar for cfg.Consul.Addr on kit/registry.
// TODO(kit/registry): wire registry.New once that package is committed.
func newConsulRegistrar(addr string, logger *slog.Logger) (Registrar, error) {
	_ = logger
	return nil, errors.New("kit/registry is not wired yet; pass Options.Registrar or leave BROOK_CONSUL_ADDR empty (" + addr + ")")
}

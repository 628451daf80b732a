package stack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/brook-dev/brook/tools/devstack/internal/catalog"
	"github.com/brook-dev/brook/tools/devstack/internal/procs"
)

// prepareServices keeps the services that have a main package (warning about
// the others) and builds them into <root>/bin. A build failure stops devstack
// (a platform missing a service is confusing), unless SkipBroken is set: then
// each service is built on its own and the ones that fail are skipped with a
// warning, for days when someone's service is half-written.
func (s *stack) prepareServices(ctx context.Context) ([]catalog.Service, error) {
	var withMain []catalog.Service
	for _, def := range s.cfg.Services {
		if !catalog.HasMain(s.cfg.Root, def) {
			s.log.Println(fmt.Sprintf("warning: skipping %s: no main package in %s yet", def.Name, def.Dir))
			continue
		}
		withMain = append(withMain, def)
	}
	if len(withMain) == 0 {
		return nil, nil
	}
	if !s.cfg.SkipBroken {
		if err := s.build(ctx, withMain); err != nil {
			return nil, fmt.Errorf("%w (--skip-broken starts the services that do build)", err)
		}
		return withMain, nil
	}
	var built []catalog.Service
	for _, def := range withMain {
		err := s.build(ctx, []catalog.Service{def})
		if ctx.Err() != nil {
			return nil, err
		}
		if err != nil {
			s.log.Println(fmt.Sprintf("warning: skipping %s: %v", def.Name, err))
			continue
		}
		built = append(built, def)
	}
	return built, nil
}

// build runs one `go build -o <root>/bin/ ./services/...` for defs, its
// output prefixed "[build] ".
func (s *stack) build(ctx context.Context, defs []catalog.Service) error {
	var pkgs, names []string
	for _, def := range defs {
		pkgs = append(pkgs, "./"+filepath.ToSlash(def.Dir))
		names = append(names, def.Name)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build: the go command is not on PATH: %w", err)
	}
	binDir := filepath.Join(s.cfg.Root, "bin")
	s.log.Println(fmt.Sprintf("building %s into %s", strings.Join(names, ", "), binDir))
	// The repo builds in workspace mode (go.work), where -mod=mod is an error;
	// drop it if the caller's GOFLAGS carries it.
	env := append(os.Environ(), "GOFLAGS="+workspaceGoflags(os.Getenv("GOFLAGS")))
	p, err := procs.Start(procs.Spec{
		Name: "build", Path: goBin,
		Args: append([]string{"build", "-o", binDir + string(filepath.Separator)}, pkgs...),
		Env:  env, Dir: s.cfg.Root,
	}, s.cfg.Out)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		_ = p.Stop(s.cfg.Grace, s.cfg.Force)
		return fmt.Errorf("build: %w", ctx.Err())
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("build of %s failed (%v); see the [build] lines above", strings.Join(names, ", "), err)
	}
	return nil
}

// workspaceGoflags removes -mod=mod from a GOFLAGS value.
func workspaceGoflags(goflags string) string {
	var keep []string
	for _, f := range strings.Fields(goflags) {
		if f != "-mod=mod" {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

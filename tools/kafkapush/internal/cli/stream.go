package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/tools/kafkapush/internal/fakebooks"
	"github.com/brook-dev/brook/tools/kafkapush/internal/push"
)

// eventFunc builds the i-th event of a book run.
type eventFunc func(i int, p *fakebooks.Picker) (events.Event, error)

// runBook sends bo.count events built by gen, paced at bo.rate per second, with a progress
// line when stderr is a terminal, then prints the summary.
func runBook(cmd *cobra.Command, c *common, bo *bookOpts, gen eventFunc) error {
	if err := c.validate(); err != nil {
		return err
	}
	if bo.count < 1 {
		return usagef("--count %d: want 1 or more", bo.count)
	}
	if bo.rate < 0 {
		return usagef("--rate %g: want events per second, or 0 for as fast as possible", bo.rate)
	}
	extra, err := c.headerList()
	if err != nil {
		return err
	}
	keySet := cmd.Flags().Changed("key")
	sink, err := c.open(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	picker := fakebooks.NewPicker(bo.seed)
	pace := newPacer(bo.rate)
	prog := newProgress(cmd.ErrOrStderr(), bo.count)
	var runErr error
	for i := 0; i < bo.count; i++ {
		if runErr = pace.wait(ctx, i); runErr != nil {
			break
		}
		ev, err := gen(i, picker)
		if err != nil {
			runErr = err
			break
		}
		rec, err := encodeEvent(ev, c.structured)
		if err != nil {
			runErr = err
			break
		}
		if keySet {
			rec.Key = []byte(c.key)
		}
		rec.Headers = withHeaders(rec.Headers, extra)
		if runErr = sink.Send(ctx, rec); runErr != nil {
			break
		}
		prog.update(i + 1)
	}
	prog.done()
	return finish(cmd, sink, 0, runErr)
}

// pacer spaces sends at rate per second, from a fixed start so that slow sends catch up
// instead of drifting.
type pacer struct {
	start time.Time
	every time.Duration // 0: no pacing
}

func newPacer(rate float64) *pacer {
	p := &pacer{start: time.Now()}
	if rate > 0 {
		p.every = time.Duration(float64(time.Second) / rate)
	}
	return p
}

// wait blocks until the i-th send is due, or ctx ends.
func (p *pacer) wait(ctx context.Context, i int) error {
	if p.every == 0 {
		return ctx.Err()
	}
	d := time.Until(p.start.Add(time.Duration(i) * p.every))
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// progress draws "kafkapush: 340/1000 events (50/s)" in place on a terminal, at most ten
// times a second; on anything else (a pipe, a file, a test buffer) it prints nothing.
type progress struct {
	w     io.Writer
	total int
	start time.Time
	last  time.Time
	shown bool
}

func newProgress(w io.Writer, total int) *progress {
	if total < 2 || !isTerminal(w) {
		return &progress{}
	}
	return &progress{w: w, total: total, start: time.Now()}
}

func (p *progress) update(n int) {
	if p.w == nil || (time.Since(p.last) < 100*time.Millisecond && n < p.total) {
		return
	}
	p.last = time.Now()
	rate := float64(n) / max(time.Since(p.start).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\rkafkapush: %d/%d events queued (%.0f/s)   ", n, p.total, rate)
	p.shown = true
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprintln(p.w)
	}
}

// check at compile time that both sinks satisfy push.Sink.
var (
	_ push.Sink = (*push.Producer)(nil)
	_ push.Sink = (*push.DryRun)(nil)
)

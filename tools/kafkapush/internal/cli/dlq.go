package cli

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/brook-dev/brook/tools/kafkapush/internal/dlq"
	"github.com/brook-dev/brook/tools/kafkapush/internal/push"
)

// dlqOpts are the flags of the dlq subcommands.
type dlqOpts struct {
	offsets       string // --offset N, N-M or N-
	limit         int
	asJSON        bool
	full          bool
	follow        bool
	fromBeginning bool
	to            string
}

func newDLQCommand(c *common) *cobra.Command {
	o := &dlqOpts{}
	d := &cobra.Command{
		Use:   "dlq",
		Short: "Read a dead-letter topic, and replay dead letters to their topic",
		Long: `A Brook consumer sends a record it cannot handle to its dead-letter topic, <group>.dlq
(bookshelf-lastread.dlq for the last-read view): the original key, value and headers, plus
dlq_topic, dlq_partition, dlq_offset, dlq_error, dlq_service and dlq_time headers.

'dlq read' prints them with their reasons; 'dlq replay' publishes the originals again.
Both read the topic from its oldest record up to its end as of the start (a bounded read,
no consumer group: nobody's offsets move). -t names the dead-letter topic; -p N reads only
its partition N; --offset and --limit select dead letters by their place in it.`,
		Example: `  kafkapush dlq read -t bookshelf-lastread.dlq
  kafkapush dlq read -t bookshelf-lastread.dlq --offset 3 --full
  kafkapush dlq read -t bookshelf-lastread.dlq --json | jq -r .error
  kafkapush dlq replay -t bookshelf-lastread.dlq --offset 3 --dry-run
  kafkapush dlq replay -t bookshelf-lastread.dlq --offset 3`,
		Args: cobra.NoArgs,
	}
	pf := d.PersistentFlags()
	pf.StringVar(&o.offsets, "offset", "", "only dead letters at these DLQ offsets: N, N-M or N- (in each partition read)")
	pf.IntVar(&o.limit, "limit", 0, "at most N dead letters (0: all)")

	read := &cobra.Command{
		Use:   "read -t DLQ_TOPIC",
		Short: "Print dead letters: origin, error, service, time, key, headers and value",
		Long: `Print each dead letter of a dead-letter topic: where the record came from (topic,
partition, offset), the consumer's error, the service and the time, then the original key,
headers and value (cut at 200 bytes unless --full). With --json, one JSON object per line
on stdout (never cut). A summary goes to stderr. The read ends at the end of the topic as
of the start; --follow keeps printing new dead letters until Ctrl-C.`,
		Example: `  kafkapush dlq read -t bookshelf-lastread.dlq
  kafkapush dlq read -t bookshelf-lastread.dlq --limit 5 --full
  kafkapush dlq read -t bookshelf-lastread.dlq --json
  kafkapush dlq read -t bookshelf-lastread.dlq --follow`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDLQRead(cmd, c, o) },
	}
	rf := read.Flags()
	rf.BoolVar(&o.asJSON, "json", false, "one JSON object per dead letter and line (snake_case names, values never cut)")
	rf.BoolVar(&o.full, "full", false, "print whole values (default: the first 200 bytes)")
	rf.BoolVar(&o.follow, "follow", false, "after the end, keep printing new dead letters until Ctrl-C")
	rf.BoolVar(&o.fromBeginning, "from-beginning", true, "start at the oldest dead letter; =false prints only new ones (needs --follow)")

	replay := &cobra.Command{
		Use:   "replay -t DLQ_TOPIC",
		Short: "Publish dead letters again, as they were, to their original topic",
		Long: `Publish each selected dead letter again: the original key, value and headers (the dlq_*
headers removed) to the topic it came from (its dlq_topic header), or to --to. The record
is partitioned like the services' own (murmur2 of the key), acks=all with the idempotent
producer; a consumer decodes it exactly as it decoded the original.

A replay publishes NEW records: consumers see them at new offsets and handle them again
(bookshelf-lastread's checkpoints are per offset, so a replayed read is applied). Fix the
cause first (the consumer, or the producer of the bad data): a record that failed for a
reason that still holds goes to the dead-letter topic again. The dead letters stay in the
DLQ; --offset and --limit pick which ones, --dry-run shows what would be sent.`,
		Example: `  kafkapush dlq replay -t bookshelf-lastread.dlq --dry-run
  kafkapush dlq replay -t bookshelf-lastread.dlq --offset 4-6
  kafkapush dlq replay -t bookshelf-lastread.dlq --to bookshelf-retry`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDLQReplay(cmd, c, o) },
	}
	replay.Flags().StringVar(&o.to, "to", "", "publish to this topic instead of each record's dlq_topic")

	d.AddCommand(read, replay)
	return d
}

// filter validates the flags every dlq subcommand shares and builds the selection.
func (o *dlqOpts) filter(cmd *cobra.Command, c *common, allowed ...string) (dlq.Filter, error) {
	if !cmd.Flags().Changed("topic") {
		return dlq.Filter{}, usagef("-t: name the dead-letter topic, e.g. -t bookshelf-lastread.dlq (<consumer group>.dlq)")
	}
	if c.topic == "" {
		return dlq.Filter{}, usagef("-t/--topic must not be empty")
	}
	// Root flags about composing records mean nothing here: refuse them rather than ignore.
	for _, name := range []string{"key", "header", "structured", "source", "acks", "compression", "dry-run"} {
		if cmd.Flags().Changed(name) && !slices.Contains(allowed, name) {
			return dlq.Filter{}, usagef("--%s does not apply to 'kafkapush %s'", name, cmd.Parent().Name()+" "+cmd.Name())
		}
	}
	if c.partition < -1 {
		return dlq.Filter{}, usagef("-p/--partition %d: want a partition of the dead-letter topic, or -1 for all", c.partition)
	}
	if o.limit < 0 {
		return dlq.Filter{}, usagef("--limit %d: want 0 (all) or more", o.limit)
	}
	f := dlq.Filter{Partition: c.partition, To: -1, Limit: o.limit}
	if o.offsets != "" {
		from, to, err := parseOffsets(o.offsets)
		if err != nil {
			return dlq.Filter{}, err
		}
		f.From, f.To = from, to
	}
	return f, nil
}

// parseOffsets reads --offset: N, N-M (inclusive) or N- (to the end).
func parseOffsets(s string) (from, to int64, err error) {
	bad := usagef("--offset %q: want N, N-M or N- (DLQ offsets, from 0)", s)
	a, b, isRange := strings.Cut(s, "-")
	from, err = strconv.ParseInt(a, 10, 64)
	if err != nil || from < 0 {
		return 0, 0, bad
	}
	switch {
	case !isRange:
		return from, from, nil
	case b == "":
		return from, -1, nil
	}
	to, err = strconv.ParseInt(b, 10, 64)
	if err != nil || to < from {
		return 0, 0, bad
	}
	return from, to, nil
}

func runDLQRead(cmd *cobra.Command, c *common, o *dlqOpts) error {
	f, err := o.filter(cmd, c)
	if err != nil {
		return err
	}
	if !o.fromBeginning && !o.follow {
		return usagef("--from-beginning=false prints only dead letters written from now on: add --follow")
	}
	if o.follow && (o.limit > 0 || f.To >= 0) {
		return usagef("--follow reads to the end and beyond: it cannot be combined with --limit or an --offset upper bound")
	}
	if o.asJSON && o.full {
		return usagef("--json never cuts values; --full is for the text output")
	}
	brokers, err := c.brokerList(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	r, err := dlq.Open(ctx, brokers, c.topic)
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()

	out := cmd.OutOrStdout()
	truncate := dlq.DefaultTruncate
	if o.full {
		truncate = 0
	}
	show := func(d dlq.DeadLetter) error {
		if o.asJSON {
			return dlq.WriteJSON(out, d)
		}
		return dlq.WriteText(out, d, truncate)
	}
	if !o.fromBeginning {
		f.From = math.MaxInt64 // nothing old: only the spans (the ends) are wanted
	}
	st, err := r.Read(ctx, f, show)
	if err != nil {
		if errors.Is(err, ctx.Err()) {
			return errors.New("interrupted")
		}
		return err
	}
	if o.fromBeginning {
		fmt.Fprintln(cmd.ErrOrStderr(), summary("shown", r.Topic(), st, o))
	}
	if !o.follow {
		return nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "kafkapush: following %q for new dead letters (Ctrl-C stops)\n", r.Topic())
	return r.Follow(ctx, st.Spans, show)
}

// summary says how many dead letters were shown (verb) or selected, by which flags, and what
// the partitions hold, e.g. `kafkapush: 1 dead letter shown from "bookshelf-lastread.dlq"
// (--offset 2; partition 0 holds offsets 0-2)`.
func summary(verb, topic string, st dlq.Stats, o *dlqOpts) string {
	var sel []string
	if o.offsets != "" {
		sel = append(sel, "--offset "+o.offsets)
	}
	if st.Limited {
		sel = append(sel, fmt.Sprintf("stopped at --limit %d", o.limit))
	}
	sel = append(sel, spans(st))
	return fmt.Sprintf("kafkapush: %d dead %s %s from %q (%s)", st.Matched, push.Plural(st.Matched, "letter"), verb, topic, strings.Join(sel, "; "))
}

// spans describes what each partition held: "partition 0 holds offsets 0-2".
func spans(st dlq.Stats) string {
	parts := make([]int32, 0, len(st.Spans))
	for p := range st.Spans {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	var out []string
	for _, p := range parts {
		sp := st.Spans[p]
		switch {
		case sp.End <= sp.Oldest:
			out = append(out, fmt.Sprintf("partition %d is empty", p))
		case sp.End-1 == sp.Oldest:
			out = append(out, fmt.Sprintf("partition %d holds offset %d", p, sp.Oldest))
		default:
			out = append(out, fmt.Sprintf("partition %d holds offsets %d-%d", p, sp.Oldest, sp.End-1))
		}
	}
	return strings.Join(out, ", ")
}

func runDLQReplay(cmd *cobra.Command, c *common, o *dlqOpts) error {
	f, err := o.filter(cmd, c, "dry-run", "compression")
	if err != nil {
		return err
	}
	if _, err := push.SaramaConfig(push.Config{Acks: "all", Compression: c.compression, Partition: -1}); err != nil {
		return usageError{err}
	}
	if o.to == c.topic {
		return usagef("--to %q is the dead-letter topic itself", o.to)
	}
	brokers, err := c.brokerList(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	r, err := dlq.Open(ctx, brokers, c.topic)
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	if o.to != "" {
		if err := r.TopicExists(o.to); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}

	var sink push.Sink
	if c.dryRun {
		sink = push.NewDryRun(cmd.OutOrStdout(), o.to, -1)
	} else {
		sink, err = push.NewProducer(ctx, push.Config{
			Brokers: brokers, Topic: o.to, Partition: -1, Acks: "all", Compression: c.compression,
			ClientID: "kafkapush-replay",
		})
		if err != nil {
			return err
		}
	}
	dests := map[string]error{} // destination topic -> whether it exists, checked once each
	var notSent []string
	st, runErr := r.Read(ctx, f, func(d dlq.DeadLetter) error {
		dest := o.to
		if dest == "" {
			dest = d.Topic
		}
		if dest == "" {
			notSent = append(notSent, d.Ref()+": no dlq_topic header; give --to")
			return nil
		}
		if dest == c.topic {
			notSent = append(notSent, d.Ref()+": its dlq_topic is the dead-letter topic itself")
			return nil
		}
		if _, ok := dests[dest]; !ok {
			dests[dest] = r.TopicExists(dest)
		}
		if err := dests[dest]; err != nil {
			notSent = append(notSent, d.Ref()+": "+err.Error())
			return nil
		}
		return sink.Send(ctx, d.Original(dest))
	})
	fmt.Fprintln(cmd.ErrOrStderr(), summary("selected", r.Topic(), st, o))
	if len(notSent) > 0 {
		runErr = errors.Join(runErr, fmt.Errorf("%d dead %s not replayed:\n  %s", len(notSent), push.Plural(len(notSent), "letter"), strings.Join(notSent, "\n  ")))
	}
	return finish(cmd, sink, 0, runErr)
}

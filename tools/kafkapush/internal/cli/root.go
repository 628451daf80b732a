// Package cli holds kafkapush's cobra commands: the root command pushes lines (plain or
// as CloudEvents), and `book ...` pushes bookshelf events. Everything a command needs from
// the process (arguments, stdin/stdout/stderr, environment) comes through cobra and Env,
// so tests run the real commands in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/brook-dev/brook/tools/kafkapush/internal/push"
)

// EnvBrokers is the environment variable shared by every Brook process for the broker list.
const EnvBrokers = push.EnvBrokers

// DefaultBrokers is used when neither -b nor BROOK_KAFKA_BROKERS is set.
const DefaultBrokers = "localhost:9092"

// Env is what kafkapush reads from the environment (os.LookupEnv in main; a map in tests).
type Env func(key string) (string, bool)

// common holds the flags every mode shares (persistent flags of the root command).
type common struct {
	env         Env
	brokers     string
	topic       string
	partition   int32
	acks        string
	compression string
	headers     []string
	key         string
	dryRun      bool
	structured  bool
	source      string
}

// Execute runs kafkapush with args and returns the process exit code: 0 on success,
// 1 on any failure (unreachable broker, rejected record, bad input), 2 on bad usage.
// Errors are printed on stderr, prefixed "kafkapush: ".
func Execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env Env) int {
	root := NewRootCommand(env)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "kafkapush: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "Run 'kafkapush --help' for usage.\n")
		return 2
	}
	return 1
}

// usageError marks mistakes in flags or arguments (exit code 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// NewRootCommand builds the kafkapush command tree. env nil means os.LookupEnv.
func NewRootCommand(env Env) *cobra.Command {
	if env == nil {
		env = os.LookupEnv
	}
	c := &common{env: env}
	lo := &lineOpts{}
	root := &cobra.Command{
		Use:   "kafkapush [flags] [LINE...]",
		Short: "Push records or CloudEvents to Kafka, one per line (like kcat -P, made for Brook)",
		Long: `kafkapush produces one Kafka record per input line. Lines come from the arguments,
from -f FILE, or from stdin (in that order of preference). Empty lines are skipped; a
trailing CR is removed; lines up to --max-line bytes (16 MiB) are accepted.

With --cloudevents each line becomes a CloudEvent (binary mode, or --structured): a line
is either the JSON data, or a partial CloudEvent (a JSON object with a "specversion",
"type" or "data" key); kafkapush fills id, source, time and specversion.

'kafkapush book ...' pushes bookshelf events without writing JSON by hand.
'kafkapush dlq read|replay' reads a dead-letter topic and puts dead letters back.

A summary (records, bytes, partitions and offsets, duration) goes to stderr. The exit
code is non-zero if the broker cannot be reached, a line is invalid, or any record was
rejected: nothing is dropped silently. The broker list comes from -b, else
BROOK_KAFKA_BROKERS, else localhost:9092.`,
		Example: `  # one record per line from stdin
  printf 'hello\nworld\n' | kafkapush -b localhost:9092 -t demo

  # lines as arguments, with a fixed key and a header, to partition 0
  kafkapush -t demo -k user-1 -H source=cli -p 0 'first line' 'second line'

  # key:value lines from a file, gzip-compressed, leader-only acks
  kafkapush -t demo -f lines.txt -K : --compression gzip --acks 1

  # JSON data as CloudEvents (binary mode); the subject and key come from data.id
  echo '{"id":"b-1","title":"Dune","author":"Frank Herbert"}' |
    kafkapush --cloudevents --type bookshelf.book.added.v1

  # a partial CloudEvent, sent as a structured JSON CloudEvent
  echo '{"type":"bookshelf.book.removed.v1","data":{"id":"b-1"}}' |
    kafkapush --cloudevents --structured

  # see what would be sent, without connecting
  kafkapush --dry-run --cloudevents --type demo.v1 '{"id":"x"}'`,
		Args:          cobra.ArbitraryArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLines(cmd, c, lo, args)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	pf := root.PersistentFlags()
	pf.StringVarP(&c.brokers, "brokers", "b", DefaultBrokers, "comma-separated bootstrap brokers (env "+EnvBrokers+")")
	pf.StringVarP(&c.topic, "topic", "t", defaultTopic, "topic to produce to")
	pf.Int32VarP(&c.partition, "partition", "p", -1, "send every record to this partition (-1: by key hash, random without key)")
	pf.StringVar(&c.acks, "acks", "all", "required acks: all (idempotent, ordered), 1 (leader only) or 0 (fire and forget, offsets unknown)")
	pf.StringVar(&c.compression, "compression", "none", "compression codec: none, gzip, snappy, lz4 or zstd")
	pf.StringArrayVarP(&c.headers, "header", "H", nil, "record header name=value (repeatable; replaces an envelope header of the same name)")
	pf.StringVarP(&c.key, "key", "k", "", "key for every record (default: none for plain lines, the subject for CloudEvents)")
	pf.BoolVar(&c.dryRun, "dry-run", false, "print what would be sent (key, headers, value) on stdout; do not connect")
	pf.BoolVar(&c.structured, "structured", false, "CloudEvents in structured mode: the value is the JSON event, content-type application/cloudevents+json")
	pf.StringVar(&c.source, "source", defaultSource, "CloudEvents source filled in when a line has none")

	f := root.Flags()
	f.StringVarP(&lo.file, "file", "f", "", "read lines from FILE ('-' = stdin) instead of stdin")
	f.StringVarP(&lo.keySep, "key-separator", "K", "", "split each line at the first SEP into key and value (key<SEP>value)")
	f.BoolVar(&lo.cloudEvents, "cloudevents", false, "send each line as a CloudEvent (JSON data or a partial CloudEvent)")
	f.StringVar(&lo.ceType, "type", "", "CloudEvents type for lines without one (required with --cloudevents unless every line has \"type\")")
	f.IntVar(&lo.maxLine, "max-line", 16<<20, "longest accepted input line in bytes")

	root.AddCommand(newBookCommand(c), newDLQCommand(c))
	return root
}

// brokerList resolves -b, then BROOK_KAFKA_BROKERS, then the default.
func (c *common) brokerList(cmd *cobra.Command) ([]string, error) {
	raw := c.brokers
	if !cmd.Flags().Changed("brokers") {
		if v, ok := c.env(EnvBrokers); ok && strings.TrimSpace(v) != "" {
			raw = v
		}
	}
	var out []string
	for _, b := range strings.Split(raw, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, usagef("-b/--brokers: no broker address given (env %s)", EnvBrokers)
	}
	return out, nil
}

// headerList parses the -H flags.
func (c *common) headerList() ([]push.Header, error) {
	hs := make([]push.Header, 0, len(c.headers))
	for _, h := range c.headers {
		name, value, ok := strings.Cut(h, "=")
		if !ok || name == "" {
			return nil, usagef("-H %q: want name=value", h)
		}
		hs = append(hs, push.Header{Key: name, Value: value})
	}
	return hs, nil
}

// validate checks the flags shared by all modes, before any connection is made.
func (c *common) validate() error {
	if c.topic == "" {
		return usagef("-t/--topic must not be empty")
	}
	if c.partition < -1 {
		return usagef("-p/--partition %d: want a partition number, or -1 for the partitioner", c.partition)
	}
	if _, err := push.SaramaConfig(push.Config{Acks: c.acks, Compression: c.compression, Partition: c.partition}); err != nil {
		return usageError{err}
	}
	return nil
}

// open returns the sink for this run: the dry-run printer or a connected producer.
func (c *common) open(cmd *cobra.Command) (push.Sink, error) {
	if c.dryRun {
		return push.NewDryRun(cmd.OutOrStdout(), c.topic, c.partition), nil
	}
	brokers, err := c.brokerList(cmd)
	if err != nil {
		return nil, err
	}
	return push.NewProducer(cmd.Context(), push.Config{
		Brokers:     brokers,
		Topic:       c.topic,
		Partition:   c.partition,
		Acks:        c.acks,
		Compression: c.compression,
	})
}

// withHeaders adds the -H headers to hs: a -H header replaces one of the same name
// (so -H content-type=text/plain overrides the envelope), others are appended in order.
func withHeaders(hs []push.Header, extra []push.Header) []push.Header {
	for _, x := range extra {
		replaced := false
		for i := range hs {
			if hs[i].Key == x.Key {
				hs[i].Value, replaced = x.Value, true
				break
			}
		}
		if !replaced {
			hs = append(hs, x)
		}
	}
	return hs
}

// finish closes the sink, prints the summary on stderr and joins the errors of the run.
func finish(cmd *cobra.Command, sink push.Sink, skipped int, runErr error) error {
	rep, err := sink.Close()
	rep.Skipped = skipped
	rep.Write(cmd.ErrOrStderr())
	if errors.Is(runErr, context.Canceled) {
		runErr = errors.New("interrupted; the summary above counts what was sent")
	}
	return errors.Join(runErr, err)
}

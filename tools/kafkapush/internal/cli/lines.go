package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/brook-dev/brook/tools/kafkapush/internal/lines"
	"github.com/brook-dev/brook/tools/kafkapush/internal/push"
)

// lineOpts are the root command's own flags (line mode).
type lineOpts struct {
	file        string
	keySep      string
	cloudEvents bool
	ceType      string
	maxLine     int
}

// runLines is the root command: read lines, turn each into a record, send, summarise.
func runLines(cmd *cobra.Command, c *common, lo *lineOpts, args []string) error {
	if err := c.validate(); err != nil {
		return err
	}
	keySet := cmd.Flags().Changed("key")
	if keySet && lo.keySep != "" {
		return usagef("-k and -K are exclusive: -k sets one key for all records, -K reads it from each line")
	}
	if err := notACommand(cmd, args); err != nil {
		return err
	}
	if lo.file != "" && len(args) > 0 {
		return usagef("give lines either as arguments or with -f %s, not both", lo.file)
	}
	if !lo.cloudEvents && (c.structured || lo.ceType != "") {
		return usagef("--structured and --type need --cloudevents")
	}
	extra, err := c.headerList()
	if err != nil {
		return err
	}
	build := plainRecord
	if lo.cloudEvents {
		build = ceRecord(c, lo.ceType)
	}

	src, closeSrc, err := openInput(cmd, lo, args)
	if err != nil {
		return err
	}
	defer closeSrc()
	// Connect before reading, so a dead broker fails at once instead of after stdin ends.
	sink, err := c.open(cmd)
	if err != nil {
		return err
	}

	ctx := cmd.Context()
	var runErr error
	for {
		if runErr = ctx.Err(); runErr != nil {
			break
		}
		ln, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			runErr = err
			break
		}
		rec, err := build(ln)
		if err != nil {
			runErr = fmt.Errorf("line %d: %w", ln.Number, err)
			break
		}
		if keySet {
			rec.Key = []byte(c.key)
		}
		rec.Headers = withHeaders(rec.Headers, extra)
		if runErr = sink.Send(ctx, rec); runErr != nil {
			break
		}
	}
	return finish(cmd, sink, src.Skipped(), runErr)
}

// notACommand refuses arguments that look like a forgotten or mistyped "book" or "dlq"
// subcommand ("kafkapush read", "kafkapush boko read", "kafkapush dql replay"), which would otherwise be sent as lines, unless
// they come after "--".
func notACommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 || cmd.ArgsLenAtDash() == 0 {
		return nil
	}
	first := strings.ToLower(args[0])
	switch {
	case bookSubcommand(first):
		return usagef("%q looks like a command, not a line: did you mean 'kafkapush book %s'? To send it as a record, put it after --: kafkapush -- %s",
			args[0], strings.Join(args, " "), strings.Join(args, " "))
	case first == "replay" || (len(args) > 1 && dlqSubcommand(strings.ToLower(args[1])) && editDistanceAtMostOne(first, "dlq")):
		rest := args
		if first != "replay" {
			rest = args[1:]
		}
		return usagef("%q looks like a command, not a line: did you mean 'kafkapush dlq %s'? To send it as a record, put it after --: kafkapush -- %s",
			args[0], strings.Join(rest, " "), strings.Join(args, " "))
	case len(args) > 1 && bookSubcommand(strings.ToLower(args[1])) && (first == "books" || editDistanceAtMostOne(first, "book")):
		return usagef("%q looks like a command, not a line: did you mean 'kafkapush book %s'? To send it as a record, put it after --: kafkapush -- %s",
			args[0], strings.Join(args[1:], " "), strings.Join(args, " "))
	}
	return nil
}

// bookSubcommand reports whether word is (nearly) a "book" subcommand name.
func bookSubcommand(word string) bool {
	switch word {
	case "read", "added", "removed", "catalog", "add", "remove":
		return true
	}
	return false
}

// dlqSubcommand reports whether word is a "dlq" subcommand name.
func dlqSubcommand(word string) bool { return word == "read" || word == "replay" }

// editDistanceAtMostOne reports whether a and b differ by at most one insertion, deletion,
// substitution or swap of adjacent letters.
func editDistanceAtMostOne(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) > 1 {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	if len(a) == len(b) {
		if i >= len(a)-1 {
			return true
		}
		// one substitution, or two adjacent letters swapped ("boko")
		return a[i+1:] == b[i+1:] || (a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:])
	}
	return a[i:] == b[i+1:]
}

// openInput picks the line source: arguments, -f FILE, or stdin.
func openInput(cmd *cobra.Command, lo *lineOpts, args []string) (*lines.Reader, func(), error) {
	o := lines.Options{KeySeparator: lo.keySep, MaxLine: lo.maxLine}
	switch {
	case len(args) > 0:
		return lines.FromArgs(args, o), func() {}, nil
	case lo.file != "" && lo.file != "-":
		f, err := os.Open(lo.file)
		if err != nil {
			return nil, nil, fmt.Errorf("-f: %w", err)
		}
		return lines.FromReader(f, o), func() { _ = f.Close() }, nil
	default:
		in := cmd.InOrStdin()
		if isTerminal(in) {
			fmt.Fprintln(cmd.ErrOrStderr(), "kafkapush: reading lines from the terminal; end with Ctrl-D")
		}
		return lines.FromReader(in, o), func() {}, nil
	}
}

// plainRecord sends the line as it is (key from -K when used).
func plainRecord(ln lines.Line) (push.Record, error) {
	return push.Record{Line: ln.Number, Key: ln.Key, Value: ln.Value}, nil
}

// isTerminal reports whether v is a character device (a terminal), without extra deps.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

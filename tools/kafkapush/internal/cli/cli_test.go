package cli_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/brook-dev/brook/kit/kafkatest"
	"github.com/brook-dev/brook/tools/kafkapush/internal/cli"
)

// result is what a kafkapush run printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// kafkapush runs the real command tree in-process with args and stdin, with an empty
// environment unless env is given.
func kafkapush(t *testing.T, stdin string, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code := cli.Execute(ctx, args, strings.NewReader(stdin), &out, &errb, lookup)
	return result{out.String(), errb.String(), code}
}

// mustPush runs kafkapush and fails the test on a non-zero exit.
func mustPush(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := kafkapush(t, stdin, nil, args...)
	if r.code != 0 {
		t.Fatalf("kafkapush %v: exit %d\nstderr: %s", args, r.code, r.stderr)
	}
	return r
}

func newCluster(t *testing.T, topic string, partitions int32) (*kafkatest.Cluster, string) {
	t.Helper()
	c := kafkatest.New(t)
	c.CreateTopic(t, topic, partitions)
	return c, strings.Join(c.Brokers(), ",")
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func headerMap(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestLinesFromStdinArriveInOrderAndEmptyLinesAreSkipped(t *testing.T) {
	c, brokers := newCluster(t, "demo", 1)
	r := mustPush(t, "first\n\nsecond\r\n  \nthird", "-b", brokers, "-t", "demo")

	recs := c.WaitFor(t, "demo", 4, 30*time.Second)
	want := []string{"first", "second", "  ", "third"}
	for i, rec := range recs {
		if string(rec.Value) != want[i] || rec.Key != nil || len(rec.Headers) != 0 {
			t.Errorf("record %d = key %q value %q headers %v; want no key, value %q, no headers", i, rec.Key, rec.Value, rec.Headers, want[i])
		}
	}
	for _, s := range []string{"4 records", `topic "demo"`, "0 rejected", "1 empty line skipped", "partition 0: offsets 0-3 (4 records)"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("summary lacks %q:\n%s", s, r.stderr)
		}
	}
}

func TestArgsFixedKeyHeadersAndPartition(t *testing.T) {
	c, brokers := newCluster(t, "demo", 3)
	mustPush(t, "", "-b", brokers, "-t", "demo", "-k", "user-1", "-H", "source=cli", "-H", "trace=a=b", "-p", "2", "one", "two")

	recs := c.WaitFor(t, "demo", 2, 30*time.Second)
	for i, rec := range recs {
		if rec.Partition != 2 || string(rec.Key) != "user-1" || string(rec.Value) != []string{"one", "two"}[i] {
			t.Errorf("record %d: partition %d key %q value %q; want partition 2, key user-1", i, rec.Partition, rec.Key, rec.Value)
		}
		if len(rec.Headers) != 2 || rec.Headers[0].Key != "source" || string(rec.Headers[0].Value) != "cli" ||
			rec.Headers[1].Key != "trace" || string(rec.Headers[1].Value) != "a=b" {
			t.Errorf("record %d headers = %v; want [source=cli trace=a=b] in order", i, rec.Headers)
		}
	}
}

func TestKeySeparatorFromFileWithLongLineAndCompression(t *testing.T) {
	for _, codec := range []string{"gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			c, brokers := newCluster(t, "demo", 4)
			long := strings.Repeat("x", 200*1024) // far above bufio.Scanner's 64 KiB default
			file := filepath.Join(t.TempDir(), "lines.txt")
			content := "b-1:{\"n\":1}\nb-2::colon in value\n:empty key\nb-1:" + long + "\n"
			if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			mustPush(t, "", "-b", brokers, "-t", "demo", "-f", file, "-K", ":", "--compression", codec, "--acks", "1")

			recs := c.WaitFor(t, "demo", 4, 30*time.Second)
			got := map[string][]string{}
			parts := map[string]int32{}
			for _, rec := range recs {
				got[string(rec.Key)] = append(got[string(rec.Key)], string(rec.Value))
				if p, ok := parts[string(rec.Key)]; ok && p != rec.Partition {
					t.Errorf("key %q on partitions %d and %d; want one partition per key", rec.Key, p, rec.Partition)
				}
				parts[string(rec.Key)] = rec.Partition
			}
			if v := got["b-1"]; len(v) != 2 || v[0] != `{"n":1}` || v[1] != long {
				t.Errorf("key b-1 values wrong (lengths %d)", len(v))
			}
			if v := got["b-2"]; len(v) != 1 || v[0] != ":colon in value" {
				t.Errorf("key b-2 = %q; want the value after the first separator", v)
			}
			if v := got[""]; len(v) != 1 || v[0] != "empty key" {
				t.Errorf("empty key = %q", v)
			}
		})
	}
}

func TestKeySeparatorMissingFailsNamingTheLine(t *testing.T) {
	c, brokers := newCluster(t, "demo", 1)
	r := kafkapush(t, "a:1\nno separator here\nb:2\n", nil, "-b", brokers, "-t", "demo", "-K", ":")
	if r.code == 0 || !strings.Contains(r.stderr, "line 2") {
		t.Fatalf("exit %d, stderr %q; want non-zero naming line 2", r.code, r.stderr)
	}
	// The line before the bad one was sent, and the summary says so.
	if recs := c.WaitFor(t, "demo", 1, 30*time.Second); string(recs[0].Key) != "a" {
		t.Errorf("first record key %q; want a", recs[0].Key)
	}
	if !strings.Contains(r.stderr, "1 record ") {
		t.Errorf("summary should count the 1 record sent:\n%s", r.stderr)
	}
}

func TestBrokersFromEnvironment(t *testing.T) {
	c, brokers := newCluster(t, "demo", 1)
	r := kafkapush(t, "", map[string]string{"BROOK_KAFKA_BROKERS": brokers}, "-t", "demo", "from-env")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if recs := c.WaitFor(t, "demo", 1, 30*time.Second); string(recs[0].Value) != "from-env" {
		t.Errorf("value %q", recs[0].Value)
	}
}

func TestUnreachableBrokerFailsFastNamingTheAddress(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()

	start := time.Now()
	r := kafkapush(t, "never read\n", nil, "-b", addr, "-t", "demo")
	if r.code == 0 {
		t.Fatalf("exit 0; want failure. stderr: %s", r.stderr)
	}
	if !strings.Contains(r.stderr, "cannot reach Kafka at "+addr) {
		t.Errorf("stderr %q does not name the address %s", r.stderr, addr)
	}
	// Not a performance assertion: just that it did not hang on sarama's default retries.
	if d := time.Since(start); d > 45*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestUnknownTopicAndPartitionOutOfRangeAreReported(t *testing.T) {
	_, brokers := newCluster(t, "demo", 2)
	r := kafkapush(t, "", nil, "-b", brokers, "-t", "demo", "-p", "5", "x")
	if r.code == 0 || !strings.Contains(r.stderr, `-p 5: topic "demo" has 2 partitions (0-1)`) {
		t.Errorf("exit %d stderr %q", r.code, r.stderr)
	}
	r = kafkapush(t, "", nil, "-b", brokers, "-t", "no-such-topic", "x")
	if r.code == 0 || !strings.Contains(r.stderr, `topic "no-such-topic" does not exist`) {
		t.Errorf("exit %d stderr %q", r.code, r.stderr)
	}
}

func TestRejectedRecordMakesTheRunFail(t *testing.T) {
	// kfake enforces the topic's max.message.bytes: a record above it must be reported as
	// rejected (naming its line), not dropped. A single line keeps the batch deterministic.
	c, brokers := newCluster(t, "small", 1)
	setTopicConfig(t, c, "small", "max.message.bytes", "1024")
	big := strings.Repeat("y", 4096)
	r := kafkapush(t, big+"\n", nil, "-b", brokers, "-t", "small")
	if r.code == 0 {
		t.Fatalf("exit 0; want failure for the rejected record. stderr: %s", r.stderr)
	}
	for _, s := range []string{"0 records", "1 rejected", "1 record rejected", "line 1:"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
}

func setTopicConfig(t *testing.T, c *kafkatest.Cluster, topic, name, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(c.Client(t)).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: name, Value: &value}}, topic)
	if err == nil {
		_, err = resp.On(topic, nil)
	}
	if err != nil {
		t.Fatalf("set %s=%s on %s: %v", name, value, topic, err)
	}
}

func TestDryRunPrintsWithoutConnecting(t *testing.T) {
	// The broker address is a closed port: a connection attempt would fail the run.
	r := kafkapush(t, "a:1\n\nb:2\n", nil, "-b", "127.0.0.1:1", "-K", ":", "-H", "x=y", "-p", "3", "--dry-run")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := "record 1 topic=bookshelf partition=3 key=\"a\"\n  header x: y\n  value: 1\n" +
		"record 2 topic=bookshelf partition=3 key=\"b\"\n  header x: y\n  value: 2\n"
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "dry run: nothing sent") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"--acks", "2", "x"},
		{"--compression", "brotli", "x"},
		{"-H", "novalue", "x"},
		{"-k", "a", "-K", ":", "x"},
		{"--structured", "x"},
		{"--no-such-flag"},
	} {
		r := kafkapush(t, "", nil, append([]string{"--dry-run"}, args...)...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
		}
	}
}

func TestHelpHasExamples(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"book", "read", "--help"}, {"book", "added", "--help"}, {"book", "removed", "--help"}} {
		r := kafkapush(t, "", nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("%v: exit %d, no examples:\n%s", args, r.code, r.stdout)
		}
	}
}

func TestMistypedSubcommandIsNotSentAsLines(t *testing.T) {
	for _, args := range [][]string{{"boko", "read"}, {"books", "read"}, {"read"}, {"bok", "added"}, {"bookk", "catalog"}} {
		r := kafkapush(t, "", nil, append([]string{"--dry-run"}, args...)...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "looks like a command") {
			t.Errorf("%v: exit %d stdout %q stderr %q; want usage error and nothing sent", args, r.code, r.stdout, r.stderr)
		}
	}
	// Ordinary words near "book" are lines.
	if r := mustPush(t, "", "--dry-run", "took", "look"); !strings.Contains(r.stdout, "value: took") {
		t.Errorf("took look: %s", r.stdout)
	}
	// After --, the same words are plain lines.
	r := mustPush(t, "", "--dry-run", "--", "read", "books")
	if !strings.Contains(r.stdout, "value: read") || !strings.Contains(r.stdout, "value: books") {
		t.Errorf("after --: %s", r.stdout)
	}
}

func TestAcksZeroStillDeliversAndSaysOffsetsAreUnknown(t *testing.T) {
	c, brokers := newCluster(t, "demo", 1)
	r := mustPush(t, "a\nb\nc\n", "-b", brokers, "-t", "demo", "--acks", "0")
	c.WaitFor(t, "demo", 3, 30*time.Second)
	if !strings.Contains(r.stderr, "3 records") || !strings.Contains(r.stderr, "offsets unknown with --acks 0") {
		t.Errorf("summary: %s", r.stderr)
	}
}

func TestRecordAboveOneMiBIsRejectedNamingItsLine(t *testing.T) {
	c, brokers := newCluster(t, "demo", 1)
	huge := strings.Repeat("h", 3<<19) // 1.5 MiB: readable, but above Kafka's default limit
	r := kafkapush(t, "small\n"+huge+"\n", nil, "-b", brokers, "-t", "demo")
	if r.code != 1 || !strings.Contains(r.stderr, "line 2:") || !strings.Contains(r.stderr, "1 rejected") {
		t.Errorf("exit %d stderr %.500s", r.code, r.stderr)
	}
	if recs := c.WaitFor(t, "demo", 1, 30*time.Second); string(recs[0].Value) != "small" {
		t.Errorf("first record %q", recs[0].Value)
	}
}

package procs

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of processes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLineWriterPrefixesWholeLines(t *testing.T) {
	var buf syncBuffer
	out := NewOutput(&buf)
	a, b := out.Prefixed("a"), out.Prefixed("b")
	_, _ = a.Write([]byte("one\ntw"))
	_, _ = b.Write([]byte("x\n"))
	_, _ = a.Write([]byte("o\nthree"))
	a.Flush()
	out.Println("ready plain")
	want := "[a] one\n[b] x\n[a] two\n[a] three\nready plain\n"
	if got := buf.String(); got != want {
		t.Fatalf("output:\n%q\nwant\n%q", got, want)
	}
	a.Mute()
	_, _ = a.Write([]byte("hidden\n"))
	if strings.Contains(buf.String(), "hidden") {
		t.Fatal("muted writer still writes")
	}
}

func TestStopTermsThenKillsTheWholeGroup(t *testing.T) {
	var buf syncBuffer
	out := NewOutput(&buf)
	// A shell that ignores SIGTERM and has a grandchild (sleep) in its group.
	p, err := Start(Spec{Name: "stubborn", Path: "/bin/sh", Args: []string{"-c",
		`trap "" TERM; sleep 300 & echo "grandchild $!"; wait`}}, out)
	if err != nil {
		t.Fatal(err)
	}
	grandchild := waitForPid(t, &buf, "[stubborn] grandchild ")
	err = p.Stop(300*time.Millisecond, nil)
	if !errors.Is(err, ErrKilled) {
		t.Fatalf("Stop = %v, want ErrKilled", err)
	}
	waitGone(t, p.Pid())
	waitGone(t, grandchild)
}

func TestStopIsCleanWhenChildExitsOnTerm(t *testing.T) {
	out := NewOutput(&syncBuffer{})
	p, err := Start(Spec{Name: "polite", Path: "/bin/sleep", Args: []string{"300"}}, out)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(30*time.Second, nil); err != nil {
		t.Fatalf("Stop = %v, want nil", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
}

func TestForceSkipsGrace(t *testing.T) {
	out := NewOutput(&syncBuffer{})
	p, err := Start(Spec{Name: "stubborn", Path: "/bin/sh", Args: []string{"-c", `trap "" TERM; while :; do sleep 1; done`}}, out)
	if err != nil {
		t.Fatal(err)
	}
	force := make(chan struct{})
	close(force)
	if err := p.Stop(time.Hour, force); !errors.Is(err, ErrKilled) {
		t.Fatalf("Stop = %v, want ErrKilled", err)
	}
}

func waitForPid(t *testing.T, buf *syncBuffer, prefix string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(buf.String(), "\n") {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				pid, err := strconv.Atoi(strings.TrimSpace(rest))
				if err != nil {
					t.Fatalf("bad pid line %q", line)
				}
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no line %q in output:\n%s", prefix, buf.String())
	return 0
}

// waitGone waits until pid no longer exists (it is ours or reaped by init).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if isZombie(pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d still exists", pid)
}

// isZombie reports whether pid has exited but not been reaped yet (a
// grandchild re-parented to a subreaper that reaps lazily).
func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

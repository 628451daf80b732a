package procs

import (
	"bytes"
	"io"
	"sync"
)

// Output is the terminal all processes share. Every write of a whole line goes
// through one mutex, so lines of different processes never interleave mid-line.
type Output struct {
	mu sync.Mutex
	w  io.Writer
}

// NewOutput returns an Output writing to w.
func NewOutput(w io.Writer) *Output { return &Output{w: w} }

// Println writes one line as is (no prefix), e.g. the ready line.
func (o *Output) Println(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, _ = io.WriteString(o.w, line+"\n")
}

// Prefixed returns a writer that prefixes every line with "[name] ".
// Partial lines are buffered until their newline or Flush.
func (o *Output) Prefixed(name string) *LineWriter {
	return &LineWriter{out: o, prefix: []byte("[" + name + "] ")}
}

// LineWriter is an io.Writer that emits whole prefixed lines to an Output.
type LineWriter struct {
	out    *Output
	prefix []byte
	mu     sync.Mutex
	buf    []byte
	muted  bool
}

// Mute drops every later line (e.g. a process's shutdown chatter).
func (l *LineWriter) Mute() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.muted = true
}

// Write buffers p and emits every complete line in it.
func (l *LineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i+1])
		l.buf = l.buf[i+1:]
	}
	// Compact so a long-running process does not keep a growing backing array.
	if len(l.buf) == 0 {
		l.buf = nil
	}
	return len(p), nil
}

// Flush emits a trailing partial line, if any, with a newline.
func (l *LineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(append(l.buf, '\n'))
		l.buf = nil
	}
}

// Println writes s as one line (devstack's own messages).
func (l *LineWriter) Println(s string) { _, _ = l.Write([]byte(s + "\n")) }

func (l *LineWriter) emit(line []byte) {
	if l.muted {
		return
	}
	l.out.mu.Lock()
	defer l.out.mu.Unlock()
	_, _ = l.out.w.Write(l.prefix)
	_, _ = l.out.w.Write(line)
}

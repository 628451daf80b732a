package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// writeLoad adds books and marks some of them read through the API, with several concurrent
// clients at a steady pace, each command retried with its own Idempotency-Key until accepted.
// Book i is marked read when i%3 == 0, so reads are spread over the whole run. Some answers
// are thrown away on purpose (loseEvery), so that retries of commands the server already
// applied happen on every run, not only when a fault happens to hit a request in flight.
//
// The load runs until finish is called (then the books in flight are completed) or until
// books were started, whichever comes first, so that faults whose recovery takes long still
// happen while it runs.
type writeLoad struct {
	client  *apiClient
	books   int     // at most this many books are added
	workers int     // concurrent clients
	rate    float64 // first attempts per second, all clients together
	prefix  string  // makes idempotency keys unique to this run
	// loseEvery: for books i%loseEvery == 0, each command's first answer is thrown away and
	// the command sent again with the same key (0 = never).
	loseEvery int

	accepted atomic.Int64 // commands answered 2xx so far

	finishOnce sync.Once
	finishing  chan struct{} // closed by finish

	mu          sync.Mutex
	started     int                 // books handed to a client
	added       map[string]int      // book id -> index
	read        map[string]bookJSON // book id -> the answer of its mark-read command
	readOrder   []string            // book ids in the order their mark-read was accepted
	attempts    int
	lostAnswers int // answers thrown away (see loseEvery)
	failures    []error
}

func (w *writeLoad) wantRead(i int) bool { return i%3 == 0 }

// maxReads is how many books the load marks read at most.
func (w *writeLoad) maxReads() int { return (w.books + 2) / 3 }

// newLoad returns a load of at most books books; run starts it.
func newLoad(client *apiClient, books, workers int, rate float64, loseEvery int, prefix string) *writeLoad {
	return &writeLoad{
		client: client, books: books, workers: workers, rate: rate, loseEvery: loseEvery, prefix: prefix,
		finishing: make(chan struct{}),
		added:     map[string]int{}, read: map[string]bookJSON{},
	}
}

// finish stops handing out new books; run returns once the books in flight are done.
func (w *writeLoad) finish() { w.finishOnce.Do(func() { close(w.finishing) }) }

// total is the number of commands of the books started so far (all of them once run returned).
func (w *writeLoad) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.started
	for i := range w.started {
		if w.wantRead(i) {
			n++
		}
	}
	return n
}

// readsAccepted returns how many mark-read commands were accepted so far, and the book of the
// n-th one (0-based) when there is one.
func (w *writeLoad) readsAccepted(n int) (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n < len(w.readOrder) {
		return len(w.readOrder), w.readOrder[n]
	}
	return len(w.readOrder), ""
}

// run sends the commands of each book it starts and returns when all were accepted or given up
// on (ctx's end or a non-retryable answer, recorded in failures).
func (w *writeLoad) run(ctx context.Context) {
	pace := time.NewTicker(time.Duration(float64(time.Second) / w.rate))
	defer pace.Stop()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range w.workers {
		wg.Go(func() {
			for i := range jobs {
				w.book(ctx, i, pace.C)
			}
		})
	}
feed:
	for i := range w.books {
		select {
		case jobs <- i:
			w.mu.Lock()
			w.started++
			w.mu.Unlock()
		case <-w.finishing:
			break feed
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
}

// book adds book i and, when wanted, marks it read.
func (w *writeLoad) book(ctx context.Context, i int, pace <-chan time.Time) {
	send := func(method, path string, body []byte, key string) (answer, bool) {
		select {
		case <-pace:
		case <-ctx.Done():
			w.fail(fmt.Errorf("%s %s (key %s): not sent: %w", method, path, key, ctx.Err()))
			return answer{}, false
		}
		lost := 0
		if w.loseEvery > 0 && i%w.loseEvery == 0 {
			// The connection "breaks" after the request was sent: the server may have acted,
			// the client never sees the answer and sends the command again.
			if _, err := w.client.do(ctx, method, path, body, key); err == nil {
				lost = 1
			}
		}
		a, n, err := w.client.command(ctx, method, path, body, key)
		w.mu.Lock()
		w.attempts += n + lost
		w.lostAnswers += lost
		w.mu.Unlock()
		if err != nil {
			w.fail(err)
			return a, false
		}
		w.accepted.Add(1)
		return a, true
	}
	body, _ := json.Marshal(map[string]string{
		"title": fmt.Sprintf("Platform Book %d", i), "author": "Platform Test",
	})
	a, ok := send(http.MethodPost, "/v1/books", body, fmt.Sprintf("%s-add-%d", w.prefix, i))
	if !ok {
		return
	}
	b, err := decodeBook(a)
	if err != nil {
		w.fail(fmt.Errorf("add book %d: %w", i, err))
		return
	}
	w.mu.Lock()
	w.added[b.ID] = i
	w.mu.Unlock()
	if !w.wantRead(i) {
		return
	}
	a, ok = send(http.MethodPost, "/v1/books/"+b.ID+"/read", nil, fmt.Sprintf("%s-read-%d", w.prefix, i))
	if !ok {
		return
	}
	r, err := decodeBook(a)
	if err != nil {
		w.fail(fmt.Errorf("mark book %d read: %w", i, err))
		return
	}
	w.mu.Lock()
	w.read[r.ID] = r
	w.readOrder = append(w.readOrder, r.ID)
	w.mu.Unlock()
}

func (w *writeLoad) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures = append(w.failures, err)
}

// firstFailure is the first command given up on, or nil.
func (w *writeLoad) firstFailure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.failures) == 0 {
		return nil
	}
	return w.failures[0]
}

// waitAccepted blocks until at least n commands were accepted, or done is closed (the load
// ended), or ctx ends. It reports whether n was reached.
func (w *writeLoad) waitAccepted(ctx context.Context, n int, done <-chan struct{}) bool {
	for w.accepted.Load() < int64(n) {
		select {
		case <-ctx.Done():
			return false
		case <-done:
			return w.accepted.Load() >= int64(n)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

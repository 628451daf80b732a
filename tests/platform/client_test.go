package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// apiClient speaks the public REST API (the gateway's, or a service's own REST port, which
// serves the same paths), as a user's program would.
type apiClient struct {
	base  string // http://host:port
	token string // bearer token for writes; "" for none
	http  *http.Client
}

func newAPIClient(httpAddr, token string) *apiClient {
	return &apiClient{
		base:  "http://" + httpAddr,
		token: token,
		http: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		},
	}
}

// answer is one HTTP response.
type answer struct {
	status int
	body   []byte
}

func (a answer) String() string { return fmt.Sprintf("HTTP %d %s", a.status, bytes.TrimSpace(a.body)) }

// do sends one request. key, when not empty, is sent as the Idempotency-Key.
func (c *apiClient) do(ctx context.Context, method, path string, body []byte, key string) (answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{status: resp.StatusCode}, fmt.Errorf("read body: %w", err)
	}
	return answer{status: resp.StatusCode, body: b}, nil
}

// retryable: what a well-behaved client retries with the same Idempotency-Key. A lost
// connection or a 5xx may or may not have been applied; the key makes the retry safe.
func retryable(a answer, err error) bool {
	return err != nil || a.status >= 500 || a.status == http.StatusTooManyRequests || a.status == http.StatusRequestTimeout
}

// command sends one command until it is accepted (2xx), always with the same Idempotency-Key,
// backing off between attempts. Any other 4xx is returned as an error at once; so is ctx's
// end. It reports how many attempts it took.
func (c *apiClient) command(ctx context.Context, method, path string, body []byte, key string) (answer, int, error) {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		a, err := c.do(ctx, method, path, body, key)
		if err == nil && a.status >= 200 && a.status < 300 {
			return a, attempt, nil
		}
		if !retryable(a, err) {
			return a, attempt, fmt.Errorf("%s %s (key %s): %s", method, path, key, a)
		}
		last := a.String()
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return a, attempt, fmt.Errorf("%s %s (key %s): not accepted after %d attempts, last: %s: %w",
				method, path, key, attempt, last, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// bookJSON is the part of a Book the tests look at (proto field names, as served).
type bookJSON struct {
	ID         string    `json:"id"`
	Title      string    `json:"title"`
	Author     string    `json:"author"`
	LastReadAt time.Time `json:"last_read_at"`
	ReadAt     time.Time `json:"read_at"` // last-read entries
}

func decodeBook(a answer) (bookJSON, error) {
	var r struct {
		Book bookJSON `json:"book"`
	}
	if err := json.Unmarshal(a.body, &r); err != nil || r.Book.ID == "" {
		return bookJSON{}, fmt.Errorf("answer is not {\"book\":{\"id\":...}}: %s", a)
	}
	return r.Book, nil
}

func decodeBooks(a answer) ([]bookJSON, error) {
	var r struct {
		Books []bookJSON `json:"books"`
	}
	if err := json.Unmarshal(a.body, &r); err != nil {
		return nil, fmt.Errorf("answer is not {\"books\":[...]}: %s", a)
	}
	return r.Books, nil
}

// lastRead returns GET /v1/last-read?limit=n.
func (c *apiClient) lastRead(ctx context.Context, n int) ([]bookJSON, error) {
	a, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/last-read?limit=%d", n), nil, "")
	if err != nil {
		return nil, err
	}
	if a.status != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/last-read: %s", a)
	}
	return decodeBooks(a)
}

// Package ratelimit limits requests per client with token buckets (golang.org/x/time/rate).
//
// A client is its remote IP. X-Forwarded-For is believed only when the direct peer is a
// configured trusted proxy; then the client is the right-most address in the header that is not
// itself a trusted proxy (the left-most entries are whatever the client chose to send).
//
// Memory is bounded: at most MaxClients buckets are kept, least recently seen evicted first. An
// evicted client starts again with a full bucket, which only matters when more than MaxClients
// clients are active at once; size MaxClients above the expected number of concurrent clients.
package ratelimit

import (
	"container/list"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"

	"github.com/brook-dev/brook/kit/service"
)

var (
	limited = promauto.NewCounter(prometheus.CounterOpts{
		Name: "brook_gateway_rate_limited_total",
		Help: "Requests answered 429 by the per-client rate limit.",
	})
	clientsGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "brook_gateway_rate_limit_clients",
		Help: "Clients currently tracked by the rate limiter (bounded by max_clients).",
	})
)

// Options configure a Limiter.
type Options struct {
	RPS            float64  // sustained requests per second per client; <= 0 disables limiting
	Burst          int      // bucket size; < 1 means 1
	MaxClients     int      // buckets kept; < 1 means 10000
	TrustedProxies []string // CIDRs or IPs whose X-Forwarded-For is believed
	Now            func() time.Time
}

// Limiter is a per-client token-bucket limiter. Safe for concurrent use.
type Limiter struct {
	limit   rate.Limit
	burst   int
	max     int
	trusted []netip.Prefix
	now     func() time.Time

	mu      sync.Mutex
	clients map[string]*list.Element // of *entry
	lru     *list.List               // front = most recently seen
}

type entry struct {
	key string
	lim *rate.Limiter
}

// New validates o and returns a Limiter.
func New(o Options) (*Limiter, error) {
	l := &Limiter{
		limit:   rate.Limit(o.RPS),
		burst:   max(o.Burst, 1),
		max:     o.MaxClients,
		now:     o.Now,
		clients: map[string]*list.Element{},
		lru:     list.New(),
	}
	if l.max < 1 {
		l.max = 10000
	}
	if l.now == nil {
		l.now = time.Now
	}
	for _, s := range o.TrustedProxies {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		l.trusted = append(l.trusted, p)
	}
	return l, nil
}

// ParsePrefix accepts "10.0.0.0/8" or a single address "10.1.2.3".
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("ratelimit: trusted proxy %q: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ratelimit: trusted proxy %q: %w", s, err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Enabled reports whether requests are limited at all.
func (l *Limiter) Enabled() bool { return l.limit > 0 }

// Allow takes a token for client. When none is available it returns false and how long until
// one will be.
func (l *Limiter) Allow(client string) (bool, time.Duration) {
	if !l.Enabled() {
		return true, 0
	}
	now := l.now()
	lim := l.bucket(client)
	r := lim.ReserveN(now, 1)
	if !r.OK() { // burst < 1 cannot happen (New), but stay safe
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *Limiter) bucket(client string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.clients[client]; ok {
		l.lru.MoveToFront(el)
		return el.Value.(*entry).lim
	}
	for l.lru.Len() >= l.max {
		oldest := l.lru.Back()
		l.lru.Remove(oldest)
		delete(l.clients, oldest.Value.(*entry).key)
	}
	e := &entry{key: client, lim: rate.NewLimiter(l.limit, l.burst)}
	l.clients[client] = l.lru.PushFront(e)
	clientsGauge.Set(float64(l.lru.Len()))
	return e.lim
}

// Clients is the number of buckets currently kept.
func (l *Limiter) Clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// ClientKey identifies the client of r (see the package doc).
func (l *Limiter) ClientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !l.isTrusted(peer) {
		return peer.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return client.String() // garbage from here leftwards: stop at the last good hop
			}
			client = a.Unmap()
			if !l.isTrusted(client) {
				return client.String()
			}
		}
	}
	return client.String()
}

func (l *Limiter) isTrusted(a netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Middleware answers 429 JSON {"code":"resource_exhausted"} with Retry-After (whole seconds,
// rounded up) when the client has no token left.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	if !l.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := l.Allow(l.ClientKey(r))
		if !ok {
			limited.Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			service.WriteError(w, http.StatusTooManyRequests, service.ErrorBody{
				Code:    "resource_exhausted",
				Message: fmt.Sprintf("rate limit exceeded: %g requests/s, burst %d; retry in %s", float64(l.limit), l.burst, wait.Round(time.Millisecond)),
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}

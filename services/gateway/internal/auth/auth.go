// Package auth authenticates gateway requests with JWT bearer tokens.
//
// Two key sources, exactly one configured: an HMAC secret (HS256; development, tokens minted by
// `gateway token`) or a JWKS URL (RS256/ES256; production identity providers, keys fetched and
// refreshed by keyfunc). The algorithm list is fixed per key source and checked before the key
// is looked up, so "alg: none" and algorithm confusion (an HS256 token signed with a public
// key) are rejected. Every token must carry exp and sub; nbf is honoured; iss and aud are
// checked when configured. Rejections are 401 JSON {"code":"unauthenticated","message":...}
// whose message says what was wrong with the token (not secret: the client holds the token).
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/brook-dev/brook/kit/service"
)

// Leeway is the clock skew tolerated on exp and nbf.
const Leeway = 30 * time.Second

var (
	// HMACMethods are accepted with a shared secret.
	HMACMethods = []string{"HS256"}
	// JWKSMethods are accepted with keys from a JWKS URL.
	JWKSMethods = []string{"RS256", "ES256"}
)

var rejections = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "brook_gateway_auth_rejections_total",
	Help: "Requests answered 401, by reason.",
}, []string{"reason"})

// Options are the claim checks beyond signature and expiry.
type Options struct {
	Issuer   string // required "iss" when not empty
	Audience string // required among "aud" when not empty
	// ReadsOpen lets GET/HEAD/OPTIONS through without a token (a token that is present is
	// still verified, so the subject reaches the backends).
	ReadsOpen bool
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Authenticator verifies bearer tokens and guards handlers.
type Authenticator struct {
	keys    jwt.Keyfunc
	keysCtx func(context.Context) jwt.Keyfunc
	methods []string
	opts    Options
}

// NewHMAC verifies HS256 tokens signed with secret.
func NewHMAC(secret []byte, o Options) (*Authenticator, error) {
	if len(secret) == 0 {
		return nil, errors.New("auth: empty HMAC secret")
	}
	keys := func(*jwt.Token) (any, error) { return secret, nil }
	return &Authenticator{keys: keys, methods: HMACMethods, opts: o}, nil
}

// NewJWKS verifies RS256/ES256 tokens with the keys published at url. The key set is fetched now
// (a failure is logged, not fatal: the provider may come up later) and refreshed hourly and
// when a token names an unknown key id (rate limited). The refresh goroutine ends with ctx.
func NewJWKS(ctx context.Context, url string, o Options, client *http.Client, logger *slog.Logger) (*Authenticator, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{
		Client:      client,
		HTTPTimeout: 10 * time.Second,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				logger.ErrorContext(ctx, "refreshing JWKS failed", "url", u, "error", err)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("auth: jwks %s: %w", url, err)
	}
	return &Authenticator{keysCtx: kf.KeyfuncCtx, methods: JWKSMethods, opts: o}, nil
}

// Claims are what the gateway keeps of a verified token.
type Claims struct {
	jwt.RegisteredClaims
}

// Error is a rejected token: Reason is a metric label, Message tells the client what is wrong.
type Error struct {
	Reason  string
	Message string
	Err     error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Verify checks a raw token and returns its claims, or an *Error saying why it is refused.
func (a *Authenticator) Verify(ctx context.Context, raw string) (*Claims, error) {
	now := time.Now
	if a.opts.Now != nil {
		now = a.opts.Now
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(a.methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(now),
	}
	if a.opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(a.opts.Issuer))
	}
	if a.opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(a.opts.Audience))
	}
	keys := a.keys
	if a.keysCtx != nil {
		keys = a.keysCtx(ctx)
	}
	claims := &Claims{}
	tok, err := jwt.ParseWithClaims(raw, claims, keys, popts...)
	if err != nil {
		return nil, a.explain(tok, err)
	}
	if claims.Subject == "" {
		return nil, &Error{Reason: "claims", Message: `token has no "sub" claim`}
	}
	return claims, nil
}

// explain turns a jwt error into a specific, client-facing reason.
func (a *Authenticator) explain(tok *jwt.Token, err error) *Error {
	e := func(reason, msg string) *Error { return &Error{Reason: reason, Message: msg, Err: err} }
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return e("malformed", "token is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok != nil && !allowed(tok.Header["alg"], a.methods) {
			return e("algorithm", fmt.Sprintf("token algorithm %v is not accepted (want %s)", tok.Header["alg"], strings.Join(a.methods, " or ")))
		}
		return e("signature", "token signature is invalid")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return e("unverifiable", "token cannot be verified: no matching key")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		claim := "a required"
		if m := requiredClaimRe.FindStringSubmatch(err.Error()); m != nil {
			claim = strconv.Quote(m[1])
		}
		return e("claims", "token has no "+claim+" claim")
	case errors.Is(err, jwt.ErrTokenExpired):
		return e("expired", "token is expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return e("not_yet_valid", "token is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return e("not_yet_valid", "token was issued in the future (iat)")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return e("audience", fmt.Sprintf("token audience does not include %q", a.opts.Audience))
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return e("issuer", fmt.Sprintf("token issuer is not %q", a.opts.Issuer))
	}
	return e("invalid", "token is invalid")
}

// requiredClaimRe finds the claim in golang-jwt's "<claim> claim is required".
var requiredClaimRe = regexp.MustCompile(`(\w+) claim is required`)

func allowed(alg any, methods []string) bool {
	s, _ := alg.(string)
	for _, m := range methods {
		if s == m {
			return true
		}
	}
	return false
}

// Mode says which requests of a route need a token.
type Mode string

const (
	// ModeWrites: POST/PUT/PATCH/DELETE need a token; GET/HEAD/OPTIONS are open (a token sent
	// anyway is verified, so the backend learns the subject).
	ModeWrites Mode = "writes"
	// ModeAll: every request needs a token.
	ModeAll Mode = "all"
	// ModeNone: no token needed and none verified; the request carries no subject.
	ModeNone Mode = "none"
)

// ParseMode accepts "writes", "all" and "none".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeWrites, ModeAll, ModeNone:
		return m, nil
	}
	return "", fmt.Errorf("must be writes, all or none, got %q", s)
}

// needsToken says whether a request must be authenticated when reads are open or not.
func needsToken(r *http.Request, readsOpen bool) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return !readsOpen
	}
	return true
}

// Authenticate returns r with the token's subject in its context (service.WithSubject, which the
// kit's REST mux forwards to the backends as x-subject metadata), r unchanged for an open read
// without a token, or an *Error. Reads are open when Options.ReadsOpen says so.
func (a *Authenticator) Authenticate(r *http.Request) (*http.Request, error) {
	return a.authenticate(r, a.opts.ReadsOpen)
}

func (a *Authenticator) authenticate(r *http.Request, readsOpen bool) (*http.Request, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if !needsToken(r, readsOpen) {
			return r, nil
		}
		return nil, &Error{Reason: "missing", Message: "missing bearer token (Authorization: Bearer <JWT>)"}
	}
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return nil, &Error{Reason: "malformed", Message: "Authorization header is not a Bearer token"}
	}
	claims, err := a.Verify(r.Context(), strings.TrimSpace(raw))
	if err != nil {
		return nil, err
	}
	// The backends get the verified subject (x-subject), not the bearer token: grpc-gateway
	// would forward Authorization as metadata, spreading the token to every backend.
	r2 := r.WithContext(service.WithSubject(r.Context(), claims.Subject))
	r2.Header = r.Header.Clone()
	r2.Header.Del("Authorization")
	return r2, nil
}

// Reject answers 401 with the reason.
func Reject(w http.ResponseWriter, err error) {
	reason, msg := "invalid", err.Error()
	var ae *Error
	if errors.As(err, &ae) {
		reason, msg = ae.Reason, ae.Message
	}
	rejections.WithLabelValues(reason).Inc()
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	service.WriteError(w, http.StatusUnauthorized, service.ErrorBody{Code: "unauthenticated", Message: msg})
}

// Middleware guards next: requests that need a token and lack a valid one get 401.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2, err := a.Authenticate(r)
		if err != nil {
			Reject(w, err)
			return
		}
		next.ServeHTTP(w, r2)
	})
}

// Guard is Middleware for a configured route with its own mode: ModeWrites and ModeAll
// authenticate like Middleware with reads open or not; ModeNone lets everything through
// untouched (the route's backend gets no subject).
func (a *Authenticator) Guard(m Mode, next http.Handler) http.Handler {
	if m == ModeNone {
		return next
	}
	readsOpen := m != ModeAll
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2, err := a.authenticate(r, readsOpen)
		if err != nil {
			Reject(w, err)
			return
		}
		next.ServeHTTP(w, r2)
	})
}

// Mint signs an HS256 development token for sub, valid from now for ttl. iss and aud are set
// when not empty.
func Mint(secret []byte, sub, iss, aud string, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("auth: empty HMAC secret")
	}
	if sub == "" {
		return "", errors.New("auth: empty subject")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("auth: ttl must be positive, got %s", ttl)
	}
	c := jwt.RegisteredClaims{
		Subject:   sub,
		Issuer:    iss,
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	if aud != "" {
		c.Audience = jwt.ClaimStrings{aud}
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return s, nil
}

// GatewayMiddleware is Authenticate as a grpc-gateway middleware. Inside the REST mux it sees
// every route the mux serves, whatever outer path routing led there, and the final method
// (after X-HTTP-Method-Override).
func (a *Authenticator) GatewayMiddleware(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		r2, err := a.Authenticate(r)
		if err != nil {
			Reject(w, err)
			return
		}
		next(w, r2, params)
	}
}

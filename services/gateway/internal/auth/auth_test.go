package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/brook-dev/brook/kit/service"
	"github.com/brook-dev/brook/services/gateway/internal/auth"
)

var (
	secret = []byte("test-secret-test-secret-test-secret")
	now    = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
)

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "alice",
		"iss": "brook-test",
		"aud": []string{"brook"},
		"iat": now.Add(-time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	if mod != nil {
		mod(c)
	}
	return c
}

// serve runs one request through the middleware and returns the response and the subject
// the next handler saw ("" when it was not reached).
func serve(t *testing.T, a *auth.Authenticator, method, authz string) (*http.Response, map[string]string, string) {
	t.Helper()
	var subject string
	reached := false
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = true
		subject = service.Subject(r.Context())
		w.WriteHeader(http.StatusOK)
	}))
	req := httptest.NewRequest(method, "/v1/books", nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	var body map[string]string
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("error body %q is not JSON: %v", b, err)
		}
	}
	if reached && res.StatusCode != http.StatusOK {
		t.Fatalf("handler reached but status %d", res.StatusCode)
	}
	return res, body, subject
}

func hmacAuth(t *testing.T, readsOpen bool) *auth.Authenticator {
	t.Helper()
	a, err := auth.NewHMAC(secret, auth.Options{Issuer: "brook-test", Audience: "brook", ReadsOpen: readsOpen, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMatrixHMAC(t *testing.T) {
	a := hmacAuth(t, true)
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, jwt.SigningMethodHS256, secret, claims(nil), nil)
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil), nil)
	// "alg: none" with the HS256 signature still attached: stripping the check must not help.
	parts := strings.Split(good, ".")
	noneHeader := strings.Split(noneTok, ".")[0]

	cases := []struct {
		name, authz string
		wantMsg     string // substring of the 401 message; "" = accepted
	}{
		{"no token", "", "missing bearer token"},
		{"not bearer", "Basic YWxpY2U6c2VjcmV0", "not a Bearer token"},
		{"garbage", "Bearer not.a.jwt", "malformed"},
		{"bad signature", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret!!"), claims(nil), nil), "signature is invalid"},
		{"alg none", "Bearer " + noneTok, "algorithm none is not accepted"},
		{"alg none with signature", "Bearer " + noneHeader + "." + parts[1] + "." + parts[2], "algorithm none is not accepted"},
		{"RS256 to an HS256 gateway", "Bearer " + sign(t, jwt.SigningMethodRS256, otherRSA, claims(nil), nil), "algorithm RS256 is not accepted"},
		{"expired", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }), nil), "expired"},
		{"no exp", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { delete(c, "exp") }), nil), `no "exp" claim`},
		{"not yet valid", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), nil), "not valid yet"},
		{"wrong audience", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" }), nil), `audience does not include "brook"`},
		{"no audience", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { delete(c, "aud") }), nil), `no "aud" claim`},
		{"wrong issuer", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["iss"] = "evil" }), nil), `issuer is not "brook-test"`},
		{"no subject", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { delete(c, "sub") }), nil), `no "sub"`},
		{"within leeway", "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() }), nil), ""},
		{"good", "Bearer " + good, ""},
		{"good, lower-case scheme", "bearer " + good, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, body, sub := serve(t, a, http.MethodPost, tc.authz)
			if tc.wantMsg == "" {
				if res.StatusCode != http.StatusOK || sub != "alice" {
					t.Fatalf("status %d body %v subject %q; want 200 with subject alice", res.StatusCode, body, sub)
				}
				return
			}
			if res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", res.StatusCode)
			}
			if body["code"] != "unauthenticated" || !strings.Contains(body["message"], tc.wantMsg) {
				t.Fatalf("body %v, want code unauthenticated and message containing %q", body, tc.wantMsg)
			}
			if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestReadsOpenOrClosed(t *testing.T) {
	good := "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(nil), nil)
	expired := "Bearer " + sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }), nil)

	open := hmacAuth(t, true)
	if res, _, sub := serve(t, open, http.MethodGet, ""); res.StatusCode != http.StatusOK || sub != "" {
		t.Errorf("open read without token: %d subject %q", res.StatusCode, sub)
	}
	if res, _, sub := serve(t, open, http.MethodGet, good); res.StatusCode != http.StatusOK || sub != "alice" {
		t.Errorf("open read with token: %d subject %q (want the subject forwarded)", res.StatusCode, sub)
	}
	if res, _, _ := serve(t, open, http.MethodGet, expired); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("open read with a bad token: %d, want 401 (a token that is sent is checked)", res.StatusCode)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if res, _, _ := serve(t, open, m, ""); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without token: %d, want 401", m, res.StatusCode)
		}
	}

	closed := hmacAuth(t, false)
	if res, _, _ := serve(t, closed, http.MethodGet, ""); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("closed read without token: %d, want 401", res.StatusCode)
	}
	if res, _, sub := serve(t, closed, http.MethodGet, good); res.StatusCode != http.StatusOK || sub != "alice" {
		t.Errorf("closed read with token: %d subject %q", res.StatusCode, sub)
	}
}

func TestMintVerifies(t *testing.T) {
	tok, err := auth.Mint(secret, "bob", "brook-test", "brook", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := hmacAuth(t, true).Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "bob" || c.ExpiresAt.Time.Sub(now) != time.Hour {
		t.Errorf("claims %+v", c)
	}
	for _, bad := range []struct {
		secret []byte
		sub    string
		ttl    time.Duration
	}{{nil, "bob", time.Hour}, {secret, "", time.Hour}, {secret, "bob", 0}} {
		if _, err := auth.Mint(bad.secret, bad.sub, "", "", bad.ttl, now); err == nil {
			t.Errorf("Mint(%q, %q, %s) succeeded", bad.secret, bad.sub, bad.ttl)
		}
	}
}

// TestJWKS verifies RS256 and ES256 tokens against keys served by a JWKS endpoint, and rejects
// an HS256 token whose "secret" is the public key (algorithm confusion) and unknown key ids.
func TestJWKS(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jwkset.NewMemoryStorage()
	for kid, pub := range map[string]any{"rsa-1": &rsaKey.PublicKey, "ec-1": &ecKey.PublicKey} {
		jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}})
		if err != nil {
			t.Fatal(err)
		}
		if err := set.KeyWrite(context.Background(), jwk); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := set.JSONPublic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := auth.NewJWKS(ctx, srv.URL, auth.Options{Audience: "brook", Now: func() time.Time { return now }}, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pubDER := []byte("-----BEGIN PUBLIC KEY-----") // any bytes: the method check comes first
	cases := []struct {
		name, tok string
		ok        bool
	}{
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, claims(nil), map[string]any{"kid": "rsa-1"}), true},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, claims(nil), map[string]any{"kid": "ec-1"}), true},
		{"HS256 confusion", sign(t, jwt.SigningMethodHS256, pubDER, claims(nil), map[string]any{"kid": "rsa-1"}), false},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, rsaKey, claims(nil), map[string]any{"kid": "nope"}), false},
		{"wrong key", sign(t, jwt.SigningMethodES256, ecKey, claims(nil), map[string]any{"kid": "rsa-1"}), false},
		{"expired", sign(t, jwt.SigningMethodRS256, rsaKey, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }), map[string]any{"kid": "rsa-1"}), false},
	}
	for _, tc := range cases {
		c, err := a.Verify(context.Background(), tc.tok)
		if tc.ok && (err != nil || c.Subject != "alice") {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
		if err != nil {
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/config"
	"github.com/fastapi-dls/fastapi-dls/pkg/health"
	"github.com/fastapi-dls/fastapi-dls/pkg/pki"
	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

// fixture is an API over a real bbolt file with the fixed key set of
// testdata/keys, a settable clock and a seeded source of refs, so that every
// byte it sends is reproducible.
type fixture struct {
	api    *API
	db     store.Store
	health *health.Checker
	apiCfg Config
	keys   *pki.KeySet
	cfg    *config.Config
	logs   *syncBuffer

	mu  sync.Mutex
	now time.Time
}

var fixedNow = time.Date(2026, 11, 29, 13, 45, 6, 789012000, time.UTC)

// farZone is UTC+14: the fixture's clock hands out times in it, so that any
// output that forgets to convert to UTC shows in the golden bytes.
var farZone = time.FixedZone("Pacific/Kiritimati", 14*3600)

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now.In(farZone)
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// syncBuffer collects log output from concurrent handlers.
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

// lockedReader makes a seeded generator safe for concurrent handlers.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

func newFixture(t testing.TB, env map[string]string) *fixture {
	t.Helper()
	keys, err := pki.Load(pki.Options{Dir: "testdata/keys"})
	if err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["DLS_URL"]; !ok {
		env["DLS_URL"] = "dls.example"
	}
	cfg, err := config.Load(envFile, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: storetest.OpenSelected(t), keys: keys, cfg: cfg, now: fixedNow, logs: &syncBuffer{}}
	f.health = runChecker(t, f.db.Check, health.Clock{Synchronised: true, MaxError: 250 * time.Millisecond})
	var seed [32]byte
	copy(seed[:], "fastapi-dls test refs")
	f.apiCfg = Config{
		Identity: &protocol.Identity{
			InstanceRef: cfg.InstanceRef, AllotmentRefs: cfg.AllotmentRef, SiteKeyXID: cfg.SiteKeyXID,
			URL: cfg.URL, Port: cfg.Port, Key: keys.SIKey, SICert: keys.SICert, CACert: keys.CACert,
		},
		Store:       f.db,
		Health:      f.health,
		Settings:    cfg,
		RootCertPEM: protocol.CertificatePEM(keys.RootCert) + "\n",
		Logger:      slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Version:     "test",
		Now:         f.clock,
		Rand:        &lockedReader{r: mrand.NewChaCha8(seed)},
	}
	f.rebuild(t, nil)
	return f
}

// rebuild makes f.api anew from f's config, changed by change (if not nil).
func (f *fixture) rebuild(t testing.TB, change func(c *Config)) {
	t.Helper()
	c := f.apiCfg
	if change != nil {
		change(&c)
	}
	api, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	f.api = api
}

// call runs one request through the handler; token "" sends no Authorization.
func (f *fixture) call(t testing.TB, method, path, body, token string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "127.0.0.1:40000"
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	f.api.ServeHTTP(w, r)
	return w
}

// tlsServer serves the fixture over real HTTPS on 127.0.0.1, and the plain
// handler over HTTP; both close with the test.
func (f *fixture) tlsServer(t testing.TB) (httpsURL, httpURL string, client *http.Client) {
	t.Helper()
	s := httptest.NewTLSServer(f.api)
	t.Cleanup(s.Close)
	p := httptest.NewServer(f.api.PlainHandler())
	t.Cleanup(p.Close)
	client = s.Client()
	client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	client.Timeout = 30 * time.Second
	return s.URL, p.URL, client
}

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// authorize walks register → code → token for origin with a fixed verifier
// and returns the auth token.
func (f *fixture) authorize(t testing.TB, origin string) string {
	t.Helper()
	if w := f.call(t, "POST", "/auth/v1/origin", `{"candidate_origin_ref":"`+origin+`","environment":{"hostname":"h-`+origin[:4]+`"}}`, ""); w.Code != 200 {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	const verifier = "0123456789abcdef0123456789abcdef0123456789a"
	w := f.call(t, "POST", "/auth/v1/code", `{"code_challenge":"`+challengeOf(verifier)+`","origin_ref":"`+origin+`"}`, "")
	var code struct {
		AuthCode string `json:"auth_code"`
	}
	mustDecode(t, w, &code)
	w = f.call(t, "POST", "/auth/v1/token", `{"auth_code":"`+code.AuthCode+`","code_verifier":"`+verifier+`"}`, "")
	var tok struct {
		AuthToken string `json:"auth_token"`
	}
	mustDecode(t, w, &tok)
	return tok.AuthToken
}

// leaseFor authorizes origin and creates one lease; it returns token and ref.
func (f *fixture) leaseFor(t testing.TB, origin string) (token, ref string) {
	t.Helper()
	token = f.authorize(t, origin)
	w := f.call(t, "POST", "/leasing/v1/lessor", lessorBody, token)
	var resp struct {
		LeaseResultList []struct {
			Lease struct {
				Ref string `json:"ref"`
			} `json:"lease"`
		} `json:"lease_result_list"`
	}
	mustDecode(t, w, &resp)
	return token, resp.LeaseResultList[0].Lease.Ref
}

const lessorBody = `{"client_challenge":"challenge-1","scope_ref_list":["20000000-0000-0000-0000-000000000001"],"lease_proposal_list":[{"license_type_qualifiers":{"count":1},"product":{"name":"NVIDIA RTX Virtual Workstation"}}],"proposal_evaluation_mode":"ALL_OF","fulfillment_context":{"fulfillment_class_ref_list":[]}}`

func challengeOf(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawStdEncoding.EncodeToString(sum[:])
}

func mustDecode(t testing.TB, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
}

func newRequest(method, path, body, token string, header map[string]string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "127.0.0.1:40000"
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	return r
}

func serve(f *fixture, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.api.ServeHTTP(w, r)
	return w
}

func itoa(n int) string { return strconv.Itoa(n) }

// lease finds the stored lease ref through the store's public listing, or
// returns store.ErrNotFound.
func (f *fixture) lease(t *testing.T, ref string) (store.Lease, error) {
	t.Helper()
	all, err := f.db.Leases("")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range all {
		if l.Ref == ref {
			return l, nil
		}
	}
	return store.Lease{}, store.ErrNotFound
}

// runChecker runs a health checker on check (period one hour: one check at
// start) reporting clock, until the test ends, and returns it once it has
// its first result.
func runChecker(t testing.TB, check func(context.Context) error, clock health.Clock) *health.Checker {
	t.Helper()
	hc := health.New(health.Config{Check: check, Clock: func() health.Clock { return clock }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hc.Run(ctx, time.Hour); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-hc.First()
	return hc
}

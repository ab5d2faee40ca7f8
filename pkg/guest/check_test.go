package guest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

// key returns an RSA 2048 key generated once per test binary.
func key(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		var err error
		if testKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return testKey
}

func sign(t *testing.T, k *rsa.PrivateKey, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return "b'" + hex.EncodeToString(sig) + "'"
}

func TestCheckTimestamp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{"2025-04-01T12:34:56.123456Z", time.Date(2025, 4, 1, 12, 34, 56, 123456000, time.UTC), ""},
		{"2025-04-01T00:00:00.000000Z", time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC), ""},
		{"2025-04-01T12:34:56.123456", time.Time{}, "lacks the trailing Z"},
		{"2025-04-01T12:34:56.123Z", time.Time{}, "not YYYY"},
		{"2025-04-01T12:34:56Z", time.Time{}, "not YYYY"},
		{"2025-04-01T12:34:56.123456+00:00", time.Time{}, "not YYYY"},
		{"2025-04-01 12:34:56.123456Z", time.Time{}, "not YYYY"},
		{"2025-13-01T12:34:56.123456Z", time.Time{}, "month out of range"},
		{"", time.Time{}, "not YYYY"},
	}
	for _, tt := range tests {
		got, err := CheckTimestamp(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("CheckTimestamp(%q) = %v, want error with %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("CheckTimestamp(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestCheckRenewExpires(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantErr string
	}{
		{"2025-07-01T12:34:56.123456", ""},
		{"2025-07-01T12:34:56.123456Z", "has trailing Z"},
		{"2025-07-01T12:34:56", "is not YYYY"},
		{"2025-07-01T12:34:56.123456+00:00", "is not YYYY"},
	}
	for _, tt := range tests {
		got, err := CheckRenewExpires(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got.Format(RenewExpiresLayout) != tt.in):
			t.Errorf("CheckRenewExpires(%q) = %v, %v", tt.in, got, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("CheckRenewExpires(%q) = %v, want error with %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestCheckCompactJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"object", `{"a":1,"b":[1,2],"c":{"d":null}}`, true},
		{"spaces inside strings", `{"a":"x, y: z","b":"{ \" , }"}`, true},
		{"empty", `{}`, true},
		{"space after colon", `{"a": 1}`, false},
		{"space after comma", `{"a":1, "b":2}`, false},
		{"python default", `{"a": [1, 2]}`, false},
		{"trailing newline", "{\"a\":1}\n", false},
		{"leading space", ` {"a":1}`, false},
		{"indented", "{\n  \"a\": 1\n}", false},
		{"invalid", `{"a":}`, false},
		{"two values", `{}{}`, false},
		{"empty body", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := CheckCompactJSON([]byte(tt.in)); (err == nil) != tt.ok {
				t.Errorf("CheckCompactJSON(%q) = %v, want ok %v", tt.in, err, tt.ok)
			}
		})
	}
}

func TestCheckASCII(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{`{"a":"gr\u00fc\u00dfe"}`, true},
		{`{"a":"\ud83d\ude80"}`, true},
		{`{"a":"grüße"}`, false},
		{`{"a":"🚀"}`, false},
	}
	for _, tt := range tests {
		if err := CheckASCII([]byte(tt.in)); (err == nil) != tt.ok {
			t.Errorf("CheckASCII(%q) = %v, want ok %v", tt.in, err, tt.ok)
		}
	}
}

func TestCheckSignature(t *testing.T) {
	t.Parallel()
	k := key(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("{\"a\":1}\n")
	good := sign(t, k, body)
	hexPart := good[2 : len(good)-1]
	tests := []struct {
		name    string
		pub     *rsa.PublicKey
		body    []byte
		header  string
		wantErr string
	}{
		{"good", &k.PublicKey, body, good, ""},
		{"body without newline", &k.PublicKey, body[:len(body)-1], good, "does not verify"},
		{"other key", &other.PublicKey, body, good, "does not verify"},
		{"no key", nil, body, good, "no service-instance key"},
		{"bare hex", &k.PublicKey, body, hexPart, "is not b'"},
		{"upper-case hex", &k.PublicKey, body, "b'" + strings.ToUpper(hexPart) + "'", "is not b'"},
		{"double quotes", &k.PublicKey, body, `b"` + hexPart + `"`, "is not b'"},
		{"short", &k.PublicKey, body, "b'" + hexPart[2:] + "'", "is not b'"},
		{"base64", &k.PublicKey, body, "b'" + base64.StdEncoding.EncodeToString([]byte(hexPart)) + "'", "is not b'"},
		{"empty", &k.PublicKey, body, "", "is not b'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckSignature(tt.pub, tt.body, tt.header)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckSignature = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckSignature = %v, want error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckSignedResponse(t *testing.T) {
	t.Parallel()
	k := key(t)
	header := func(body []byte, mod func(http.Header)) http.Header {
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("Access-Control-Expose-Headers", "X-NLS-Signature")
		h.Set("X-NLS-Signature", sign(t, k, body))
		if mod != nil {
			mod(h)
		}
		return h
	}
	good := []byte("{\"a\":\"\\u00fc\"}\n")
	tests := []struct {
		name    string
		body    string
		mod     func(http.Header)
		wantErr string
	}{
		{"good", string(good), nil, ""},
		{"no newline", `{"a":1}`, nil, "does not end with \\n"},
		{"two newlines", "{\"a\":1}\n\n", nil, "more than one"},
		{"CRLF", "{\"a\":1}\r\n", nil, "more than one"},
		{"spaces", "{\"a\": 1}\n", nil, "not compact"},
		{"non-ASCII", "{\"a\":\"ü\"}\n", nil, "non-ASCII"},
		{"charset", string(good), func(h http.Header) { h.Set("Content-Type", "application/json; charset=utf-8") }, "Content-Type"},
		{"no expose", string(good), func(h http.Header) { h.Del("Access-Control-Expose-Headers") }, "Access-Control-Expose-Headers"},
		{"no signature", string(good), func(h http.Header) { h.Del("X-NLS-Signature") }, "want one X-NLS-Signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckSignedResponse(&k.PublicKey, header([]byte(tt.body), tt.mod), []byte(tt.body))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckSignedResponse = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckSignedResponse = %v, want error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckNullAndKeys(t *testing.T) {
	t.Parallel()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(`{"prompts":null,"metadata":{},"error":"","n":0}`), &obj); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key string
		ok  bool
	}{
		{"prompts", true}, {"metadata", false}, {"error", false}, {"n", false}, {"missing", false},
	}
	for _, tt := range tests {
		if err := CheckNull(obj, tt.key); (err == nil) != tt.ok {
			t.Errorf("CheckNull(%s) = %v, want ok %v", tt.key, err, tt.ok)
		}
	}
	if err := CheckKeys(obj, "prompts", "metadata", "error", "n"); err != nil {
		t.Errorf("CheckKeys exact = %v", err)
	}
	if err := CheckKeys(obj, "prompts", "metadata", "error"); err == nil || !strings.Contains(err.Error(), "unexpected field n") {
		t.Errorf("CheckKeys extra = %v", err)
	}
	if err := CheckKeys(obj, "prompts", "metadata", "error", "n", "x"); err == nil || !strings.Contains(err.Error(), "x missing") {
		t.Errorf("CheckKeys missing = %v", err)
	}
}

func TestCheckUUID4(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		uuid, v4 bool
	}{
		{"3fc6e7a3-0ec6-49f8-abf0-b428960573d1", true, true},
		{"10000000-0000-0000-0000-000000000001", true, false},
		{"3FC6E7A3-0EC6-49F8-ABF0-B428960573D1", false, false},
		{"3fc6e7a30ec649f8abf0b428960573d1", false, false},
		{"3fc6e7a3-0ec6-49f8-7bf0-b428960573d1", true, false},
		{"", false, false},
	}
	for _, tt := range tests {
		if err := CheckUUID(tt.in); (err == nil) != tt.uuid {
			t.Errorf("CheckUUID(%q) = %v, want ok %v", tt.in, err, tt.uuid)
		}
		if err := CheckUUID4(tt.in); (err == nil) != tt.v4 {
			t.Errorf("CheckUUID4(%q) = %v, want ok %v", tt.in, err, tt.v4)
		}
	}
	g := &Guest{}
	for range 100 {
		s, err := g.newUUID4()
		if err != nil || CheckUUID4(s) != nil {
			t.Fatalf("newUUID4 = %q, %v", s, err)
		}
	}
}

func TestCheckContentDisposition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"attachment; filename=client_configuration_token_01-04-25-13-05-09.tok", time.Date(2025, 4, 1, 13, 5, 9, 0, time.UTC), true},
		{"attachment; filename=\"client_configuration_token_01-04-25-13-05-09.tok\"", time.Time{}, false},
		{"attachment;filename=client_configuration_token_01-04-25-13-05-09.tok", time.Time{}, false},
		{"attachment; filename=client_configuration_token_01-04-2025-13-05-09.tok", time.Time{}, false},
		{"attachment; filename=client_configuration_token_32-04-25-13-05-09.tok", time.Time{}, false},
		{"inline; filename=client_configuration_token_01-04-25-13-05-09.tok", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := CheckContentDisposition(tt.in)
		if (err == nil) != tt.ok || (tt.ok && !got.Equal(tt.want)) {
			t.Errorf("CheckContentDisposition(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestCheckPEM(t *testing.T) {
	t.Parallel()
	der, err := x509.MarshalPKIXPublicKey(&key(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	std := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})) // 64 columns, trailing \n
	good := strings.TrimSuffix(std, "\n")
	lines := strings.Split(good, "\n")
	joined76 := lines[0] + "\n" + strings.Join(lines[1:len(lines)-1], "")
	var wrapped []string
	for s := joined76[len(lines[0])+1:]; len(s) > 0; {
		n := min(76, len(s))
		wrapped = append(wrapped, s[:n])
		s = s[n:]
	}
	cols76 := lines[0] + "\n" + strings.Join(wrapped, "\n") + "\n" + lines[len(lines)-1]
	tests := []struct {
		name, in, typ, wantErr string
	}{
		{"good", good, "PUBLIC KEY", ""},
		{"trailing newline", std, "PUBLIC KEY", "trailing newline"},
		{"CRLF", strings.ReplaceAll(good, "\n", "\r\n"), "PUBLIC KEY", "CR"},
		{"76 columns", cols76, "PUBLIC KEY", "columns"},
		{"wrong type", good, "CERTIFICATE", "does not start with"},
		{"short middle line", strings.Replace(good, "\n", "\nAAAA\n", 1), "PUBLIC KEY", "columns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := CheckPEM(tt.in, tt.typ)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckPEM = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckPEM = %v, want error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestChallenge(t *testing.T) {
	t.Parallel()
	// sha256("abc") = ba7816bf…; its standard base64 is
	// "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=".
	if got, want := Challenge("abc"), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0"; got != want {
		t.Errorf("Challenge(abc) = %q, want %q", got, want)
	}
}

func jwsFor(t *testing.T, k *rsa.PrivateKey, header string, claims any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestVerifyJWS(t *testing.T) {
	t.Parallel()
	k := key(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	const kid = "00000000-0000-0000-0000-000000000000"
	claims := map[string]any{"iat": 1, "origin_ref": "x"}
	withKid := `{"alg":"RS256","kid":"` + kid + `","typ":"JWT"}`
	good := jwsFor(t, k, withKid, claims)
	tests := []struct {
		name, token, kid string
		pub              *rsa.PublicKey
		wantErr          string
	}{
		{"kid", good, kid, &k.PublicKey, ""},
		{"plain", jwsFor(t, k, `{"alg":"RS256","typ":"JWT"}`, claims), "", &k.PublicKey, ""},
		{"kid not expected", good, "", &k.PublicKey, "want exactly"},
		{"kid missing", jwsFor(t, k, `{"alg":"RS256","typ":"JWT"}`, claims), kid, &k.PublicKey, "want exactly"},
		{"other order", jwsFor(t, k, `{"typ":"JWT","alg":"RS256"}`, claims), "", &k.PublicKey, "want exactly"},
		{"kid last", jwsFor(t, k, `{"alg":"RS256","typ":"JWT","kid":"`+kid+`"}`, claims), kid, &k.PublicKey, "want exactly"},
		{"spaces", jwsFor(t, k, `{"alg": "RS256", "typ": "JWT"}`, claims), "", &k.PublicKey, "want exactly"},
		{"other key", good, kid, &other.PublicKey, "does not verify"},
		{"padded", good + "=", kid, &k.PublicKey, "unpadded base64url"},
		{"two parts", good[:strings.LastIndexByte(good, '.')], kid, &k.PublicKey, "2 parts"},
		{"tampered", tamper(good), kid, &k.PublicKey, "does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			payload, err := VerifyJWS(tt.token, tt.pub, tt.kid)
			if tt.wantErr == "" {
				if err != nil || string(payload["origin_ref"]) != `"x"` {
					t.Fatalf("VerifyJWS = %v, %v", payload, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("VerifyJWS = %v, want error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckPublicKeyConfig(t *testing.T) {
	t.Parallel()
	k := key(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(pub *rsa.PublicKey) string {
		der, _ := x509.MarshalPKIXPublicKey(pub)
		return strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	}
	cfg := func(mod string, exp any, p, mode string) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"service_instance_public_key_me": map[string]any{"mod": mod, "exp": exp},
			"service_instance_public_key_pem": p, "key_retention_mode": mode})
		return b
	}
	mod := k.N.Text(16)
	pkcs1 := strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)})))
	tests := []struct {
		name    string
		raw     json.RawMessage
		wantErr string
	}{
		{"good", cfg(mod, 65537, pemOf(&k.PublicKey), "LATEST_ONLY"), ""},
		{"0x", cfg("0x"+mod, 65537, pemOf(&k.PublicKey), "LATEST_ONLY"), "lowercase hex"},
		{"upper", cfg(strings.ToUpper(mod), 65537, pemOf(&k.PublicKey), "LATEST_ONLY"), "lowercase hex"},
		{"exp string", cfg(mod, "65537", pemOf(&k.PublicKey), "LATEST_ONLY"), "number 65537"},
		{"mismatch", cfg(mod, 65537, pemOf(&other.PublicKey), "LATEST_ONLY"), "different keys"},
		{"untrimmed", cfg(mod, 65537, pemOf(&k.PublicKey)+"\n", "LATEST_ONLY"), "not trimmed"},
		{"pkcs1", cfg(mod, 65537, pkcs1, "LATEST_ONLY"), "SubjectPublicKeyInfo"},
		{"mode", cfg(mod, 65537, pemOf(&k.PublicKey), "ALL"), "LATEST_ONLY"},
		{"extra", json.RawMessage(`{"service_instance_public_key_me":{},"service_instance_public_key_pem":"","key_retention_mode":"","x":1}`), "unexpected field x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pub, err := CheckPublicKeyConfig(tt.raw)
			if tt.wantErr == "" {
				if err != nil || !pub.Equal(&k.PublicKey) {
					t.Fatalf("CheckPublicKeyConfig = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckPublicKeyConfig = %v, want error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckErrorBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		title  string
		ok     bool
	}{
		{"good", 404, `{"status":404,"detail":"requested lease not available"}`, "", true},
		{"title", 400, `{"status":400,"title":"invalid token","detail":"x"}`, "invalid token", true},
		{"title missing", 400, `{"status":400,"detail":"x"}`, "invalid token", false},
		{"status mismatch", 401, `{"status":400,"detail":"x"}`, "", false},
		{"status string", 401, `{"status":"401","detail":"x"}`, "", false},
		{"plain text", 500, `Internal Server Error`, "", false},
		{"fastapi detail only", 401, `{"detail":"x"}`, "", false},
	}
	for _, tt := range tests {
		if _, err := CheckErrorBody(tt.status, []byte(tt.body), tt.title); (err == nil) != tt.ok {
			t.Errorf("%s: CheckErrorBody = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestFeatureName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		product, feature string
		known            bool
	}{
		{"NVIDIA RTX Virtual Workstation", "Quadro-Virtual-DWS", true},
		{"GRID Virtual PC", "GRID-Virtual-PC", true},
		{"NVIDIA OVE Licensing", "OVE_Licensing", true},
		{"NVIDIA-vComputeServer NLS Metered-9.0", "NVIDIA-vComputeServer NLS Metered", true},
		{"vGaming_Flexera_License-0.1", "vGaming_Flexera_License", true},
		{"NVIDIA Omniverse Nucleus", "NVIDIA Omniverse Nucleus", false},
	}
	for _, tt := range tests {
		f, known := FeatureName(tt.product)
		if f != tt.feature || known != tt.known {
			t.Errorf("FeatureName(%q) = %q, %v", tt.product, f, known)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	t.Parallel()
	k := key(t)
	g := &Guest{BaseURL: "https://x:1", OriginRef: "o", AuthToken: "tok", SIKey: &k.PublicKey, Leases: []string{"l"},
		LeaseExpires: map[string]time.Time{"l": time.Date(2030, 1, 1, 0, 0, 0, 5000, time.UTC)}, LeaseTime: 90 * 24 * time.Hour, RenewalPeriod: 0.15}
	s, err := g.State()
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/state.json"
	if err := SaveState(path, s); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	h := &Guest{}
	if err := h.Restore(loaded); err != nil {
		t.Fatal(err)
	}
	if h.BaseURL != g.BaseURL || h.AuthToken != "tok" || !h.SIKey.Equal(g.SIKey) || h.Leases[0] != "l" ||
		!h.LeaseExpires["l"].Equal(g.LeaseExpires["l"]) || h.LeaseTime != g.LeaseTime || h.RenewalPeriod != 0.15 {
		t.Errorf("restored %+v", h)
	}
}

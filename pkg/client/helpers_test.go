package client_test

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// volume is a directory written the way the kubelet writes a Secret or projected
// volume: each version in its own ..<timestamp> directory, published by atomically
// renaming a new ..data symlink over the old one; <dir>/<key> -> ..data/<key>.
type volume struct {
	t       testing.TB
	dir     string
	version string
	n       int
}

func newVolume(t testing.TB, data map[string]string) *volume {
	t.Helper()
	v := &volume{t: t, dir: t.TempDir()}
	v.update(data)
	return v
}

// update publishes data as the volume's new version, as the kubelet's atomic writer
// does, and removes the previous version.
func (v *volume) update(data map[string]string) {
	v.t.Helper()
	v.n++
	version := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), v.n)
	if err := os.Mkdir(filepath.Join(v.dir, version), 0o755); err != nil {
		v.t.Fatal(err)
	}
	for k, val := range data {
		if err := os.WriteFile(filepath.Join(v.dir, version, k), []byte(val), 0o644); err != nil {
			v.t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(version, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
	for k := range data {
		link := filepath.Join(v.dir, k)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", k), link); err != nil {
			v.t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(v.dir)
	if err != nil {
		v.t.Fatal(err)
	}
	for _, e := range entries {
		if name := e.Name(); !strings.HasPrefix(name, "..") {
			if _, ok := data[name]; !ok {
				_ = os.Remove(filepath.Join(v.dir, name))
			}
		}
	}
	if v.version != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, v.version)); err != nil {
			v.t.Fatal(err)
		}
	}
	v.version = version
}

// clock is a settable clock shared by a TokenSource and a test server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tokenServer is a test token endpoint: check decides each request (nil: 200), and
// every request's form is recorded.
type tokenServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []url.Values
	headers  []http.Header
	check    func(n int, form url.Values) (status int, errorCode string)
	// expiresIn is the lifetime it grants, in seconds.
	expiresIn int
}

func newTokenServer(t testing.TB, check func(n int, form url.Values) (int, string)) *tokenServer {
	ts := &tokenServer{check: check, expiresIn: 3600}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) tokenURL() string { return ts.URL + "/oauth2-token" }

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/oauth2-token" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ts.mu.Lock()
	ts.requests = append(ts.requests, r.PostForm)
	ts.headers = append(ts.headers, r.Header.Clone())
	n := len(ts.requests)
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	status, code := http.StatusOK, ""
	if ts.check != nil {
		status, code = ts.check(n, r.PostForm)
	}
	if status != http.StatusOK {
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="oauth"`)
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "refused by the test"})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": fmt.Sprintf("access-token-%d", n), "token_type": "Bearer",
		"expires_in": ts.expiresIn, "scope": r.PostForm.Get("scope"),
	})
}

// count is how many requests the server saw.
func (ts *tokenServer) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.requests)
}

func (ts *tokenServer) request(i int) url.Values {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.requests[i]
}

func pkcs8PEM(t testing.TB, key crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

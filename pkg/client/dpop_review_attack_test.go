package client_test

// Reproductions of the attack review of DPoP (issue 20), tag "attack": each asserts
// the secure (or correct) behaviour and fails while its finding stands, so they stay
// out of make test. Loopback httptest servers only; run one at a time:
//
//	go test -count=1 -run '^TestAttackDPoPBadRequestBodyTruncated$' -v ./pkg/client/

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/oauth-client-operator/oauth-client-operator/pkg/client"
)

// TestAttackDPoPBadRequestBodyTruncated: NewHTTPClient with WithDPoP reads the body of
// every 400 that carries a DPoP-Nonce header (to look for use_dpop_nonce) and hands
// the caller only its first 64 KiB, with no error: an API that sends a nonce on each
// response (RFC 9449 §8.2 allows it) and answers a large 400 (a validation report, a
// batch's per-item errors) is read short, silently. A 200 of the same size is intact.
func TestAttackDPoPBadRequestBodyTruncated(t *testing.T) {
	srv := newDPoPServer(t)
	const size = 100 << 10
	payload := strings.Repeat("e", size)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("DPoP-Nonce", "n-1")
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusBadRequest)
		}
		_, _ = io.WriteString(w, payload)
	}))
	defer api.Close()
	ts, err := client.New(context.Background(), srv.secretDir(t), client.WithDPoP())
	if err != nil {
		t.Fatal(err)
	}
	hc := client.NewHTTPClient(context.Background(), ts)
	for _, path := range []string{"/ok", "/bad"} {
		resp, err := hc.Get(api.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		t.Logf("%s: status %d, read %d of %d bytes, error %v", path, resp.StatusCode, len(b), size, err)
		if err == nil && len(b) != size {
			t.Errorf("%s: the caller read %d of the %d bytes the API sent, and no error", path, len(b), size)
		}
	}
}

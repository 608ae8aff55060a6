package tokenserver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

// audited gives srv an audit logger writing JSON lines, as the manager's does, and
// returns what it wrote, record by record.
func audited(t *testing.T, srv *Server, cfg config.Audit) func() []map[string]any {
	t.Helper()
	buf := &testenv.LogBuffer{}
	srv.audit = newAuditor(cfg, buf, "replica-1")
	return func() []map[string]any {
		var records []map[string]any
		sc := bufio.NewScanner(strings.NewReader(buf.String()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r map[string]any
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("an audit line is not JSON: %q", sc.Text())
			}
			if r["logger"] != AuditLoggerName {
				t.Fatalf("a record of logger %v", r["logger"])
			}
			records = append(records, r)
		}
		return records
	}
}

func allAudit() config.Audit {
	return config.Audit{Enabled: true, SuccessSampleRate: 1, RefusalsPerSecond: 1000}
}

// TestAuditRecordPerTokenAndRefusal: an issued token and a refused request each write
// exactly one record with the documented fields.
func TestAuditRecordPerTokenAndRefusal(t *testing.T) {
	s := newShop(t)
	srv, _ := s.server("rateLimit: {failedAuthPerMinute: 0}", signing.ES256, nil)
	records := audited(t, srv, allAudit())

	tok := decodeOK(t, post(srv.Handler(), "application/json", jsonBody(map[string]string{
		"grant_type": "client_credentials", "client_id": s.erp, "client_secret": s.secrets[s.erp]})))
	got := records()
	if len(got) != 1 {
		t.Fatalf("%d records for one issued token: %v", len(got), got)
	}
	claims := jwtv5.MapClaims{}
	if _, _, err := jwtv5.NewParser().ParseUnverified(tok.AccessToken, claims); err != nil {
		t.Fatal(err)
	}
	r := got[0]
	want := map[string]any{
		"msg": "token issued", "outcome": "issued", "client_id": s.erp, "method": "ClientSecret", "credential": "client_secret",
		"audience": s.backOffice, "scope": "users:read", "jti": claims["jti"], "source": "192.0.2.1", "replica": "replica-1",
		"exp": time.Unix(int64(claims["exp"].(float64)), 0).UTC().Format(time.RFC3339),
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("issued record: %s = %v, want %v", k, r[k], v)
		}
	}
	if ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["time"])); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("issued record: time = %v", r["time"])
	}

	rec := post(srv.Handler(), "application/json", jsonBody(map[string]string{
		"grant_type": "client_credentials", "client_id": s.erp, "client_secret": "wrong"}))
	if rec.Code != http.StatusUnauthorized {
		t.Fatal(rec.Code)
	}
	got = records()
	if len(got) != 2 {
		t.Fatalf("%d records after one refusal", len(got))
	}
	r = got[1]
	for k, v := range map[string]any{"msg": "token request refused", "outcome": "refused", "error": "invalid_client",
		"status": float64(401), "client_id": s.erp, "credential": "client_secret", "source": "192.0.2.1"} {
		if r[k] != v {
			t.Errorf("refused record: %s = %v, want %v", k, r[k], v)
		}
	}
	for _, k := range []string{"jti", "exp", "scope"} {
		if _, ok := r[k]; ok {
			t.Errorf("refused record has %s", k)
		}
	}
}

// TestAuditRecordsHoldNoSecret: a flood of good and bad requests — secrets in the body
// and by Basic, assertions, a secret pasted as client_id — leaves records that hold no
// secret, assertion or token; junk client_ids are cut and sanitised.
func TestAuditRecordsHoldNoSecret(t *testing.T) {
	s := newShop(t)
	srv, _ := s.server("rateLimit: {failedAuthPerMinute: 0}", signing.ES256, nil)
	records := audited(t, srv, allAudit())
	secret := s.secrets[s.erp]
	assertion := "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzaG9wLmVycCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	var tokens []string
	for i := range 60 {
		var rec = post(srv.Handler(), "application/json", jsonBody(map[string]string{
			"grant_type": "client_credentials", "client_id": s.erp, "client_secret": secret}))
		tokens = append(tokens, decodeOK(t, rec).AccessToken)
		post(srv.Handler(), "application/x-www-form-urlencoded", "grant_type=client_credentials", "Authorization", basic(s.erp, secret+"x"))
		post(srv.Handler(), "application/json", jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": secret, "client_secret": secret}))
		post(srv.Handler(), "application/json", jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": s.erp,
			"client_assertion_type": JWTBearerAssertionType, "client_assertion": assertion + fmt.Sprint(i)}))
		post(srv.Handler(), "application/json", jsonBody(map[string]string{"grant_type": "client_credentials",
			"client_id": strings.Repeat("A\n\"", 3000), "client_secret": "x"}))
	}
	got := records()
	if len(got) != 300 {
		t.Fatalf("%d records for 300 requests", len(got))
	}
	var all strings.Builder
	for _, r := range got {
		b, _ := json.Marshal(r)
		all.Write(b)
		if id := fmt.Sprint(r["client_id"]); id != s.erp && len(id) > maxAuditClientID+3 {
			t.Fatalf("client_id recorded at length %d", len(id))
		}
	}
	text := all.String()
	leaks := map[string]string{"the client secret": secret, "a part of the secret": secret[maxAuditClientID:], "an assertion": assertion, "a token's signature": tokens[0][strings.LastIndex(tokens[0], ".")+1:]}
	for _, tok := range tokens {
		leaks["a token"] = tok
	}
	for what, v := range leaks {
		if strings.Contains(text, v) {
			t.Errorf("an audit record holds %s", what)
		}
	}
	if !strings.Contains(text, s.erp) {
		t.Error("the scan must see the records of the client")
	}
}

// TestAuditSamplingAndRefusalBound: successSampleRate 0 records no issued token but
// every refusal; refusals beyond refusalsPerSecond are left out and counted in the next
// record.
func TestAuditSamplingAndRefusalBound(t *testing.T) {
	s := newShop(t)
	clk := clocktesting.NewFakePassiveClock(time.Now().Truncate(time.Second))
	srv, _ := s.server("rateLimit: {failedAuthPerMinute: 0}", signing.ES256, clk)
	records := audited(t, srv, config.Audit{Enabled: true, SuccessSampleRate: 0, RefusalsPerSecond: 3})
	good := jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": s.erp, "client_secret": s.secrets[s.erp]})
	bad := jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": s.erp, "client_secret": "wrong"})
	for range 20 {
		decodeOK(t, post(srv.Handler(), "application/json", good))
	}
	if got := records(); len(got) != 0 {
		t.Fatalf("sample rate 0: %d records of issued tokens", len(got))
	}
	for range 10 {
		post(srv.Handler(), "application/json", bad)
	}
	if got := records(); len(got) != 3 {
		t.Fatalf("10 refusals within a second: %d records, want 3", len(got))
	}
	clk.SetTime(clk.Now().Add(time.Second))
	post(srv.Handler(), "application/json", bad)
	got := records()
	if len(got) != 4 || got[3]["suppressed"] != float64(7) {
		t.Fatalf("after a second: %d records, last %v; want 4 with suppressed=7", len(got), got[len(got)-1])
	}

	// A flood of junk (unknown clients) has its own budget: it cannot crowd out the
	// record of a known client's refusal.
	clk.SetTime(clk.Now().Add(time.Second))
	junk := jsonBody(map[string]string{"grant_type": "client_credentials", "client_id": "nobody.x", "client_secret": "wrong"})
	for range 10 {
		post(srv.Handler(), "application/json", junk)
	}
	post(srv.Handler(), "application/json", bad)
	got = records()
	if len(got) != 8 || got[7]["client_id"] != s.erp || got[7]["method"] != "ClientSecret" {
		t.Fatalf("after a junk flood: %d records, last %v; want 8, the last the known client's refusal", len(got), got[len(got)-1])
	}

	// Half the issued tokens, roughly; and audit off writes nothing at all.
	srv.audit.sample = 0.5
	n := len(records())
	for range 200 {
		decodeOK(t, post(srv.Handler(), "application/json", good))
	}
	if k := len(records()) - n; k < 50 || k > 150 {
		t.Errorf("sample rate 0.5: %d of 200 issued tokens recorded", k)
	}
	srv.audit.enabled = false
	n = len(records())
	post(srv.Handler(), "application/json", good)
	clk.SetTime(clk.Now().Add(time.Second))
	post(srv.Handler(), "application/json", bad)
	if len(records()) != n {
		t.Error("audit disabled, records written")
	}
}

package clientaddr

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
)

func TestClientAddr(t *testing.T) {
	cfg, err := config.Parse([]byte("issuer: https://issuer.test\ntokenServer: {trustedProxies: [10.0.0.0/8, \"fd00::/64\"]}"))
	if err != nil {
		t.Fatal(err)
	}
	t.Parallel()
	s := Resolver{TrustedProxies: cfg.TokenServer.TrustedProxyPrefixes()}
	for _, c := range []struct {
		name, peer string
		header     map[string][]string
		want       string
	}{
		{"untrusted peer, no header", "192.0.2.1:1", nil, "192.0.2.1"},
		{"untrusted peer, forged XFF", "192.0.2.1:1", map[string][]string{"X-Forwarded-For": {"198.51.100.9"}}, "192.0.2.1"},
		{"untrusted peer, forged Forwarded", "192.0.2.1:1", map[string][]string{"Forwarded": {"for=198.51.100.9"}}, "192.0.2.1"},
		{"mapped IPv6 peer", "[::ffff:192.0.2.1]:1", nil, "192.0.2.1"},
		{"trusted peer, no header", "10.1.1.1:1", nil, "10.1.1.1"},
		{"trusted peer, XFF", "10.1.1.1:1", map[string][]string{"X-Forwarded-For": {"198.51.100.9"}}, "198.51.100.9"},
		{"client-written left part ignored", "10.1.1.1:1", map[string][]string{"X-Forwarded-For": {"203.0.113.1, 198.51.100.9"}}, "198.51.100.9"},
		{"chain of trusted proxies", "10.1.1.1:1", map[string][]string{"X-Forwarded-For": {"203.0.113.1, 198.51.100.9", "10.2.2.2, 10.3.3.3"}}, "198.51.100.9"},
		{"all trusted: the peer (a trusted pod cannot name one)", "10.1.1.1:1", map[string][]string{"X-Forwarded-For": {"10.2.2.2, 10.3.3.3"}}, "10.1.1.1"},
		{"garbage hop stops the walk", "10.1.1.1:1", map[string][]string{"X-Forwarded-For": {"198.51.100.9, junk, 10.3.3.3"}}, "10.1.1.1"},
		{"XFF with port and IPv6", "[fd00::5]:1", map[string][]string{"X-Forwarded-For": {"[2001:db8::7]:4711"}}, "2001:db8::7"},
		{"Forwarded", "10.1.1.1:1", map[string][]string{"Forwarded": {`for=203.0.113.1, for="[2001:db8:cafe::17]:4711";proto=https`}}, "2001:db8:cafe::17"},
		{"XFF wins over Forwarded", "10.1.1.1:1", map[string][]string{"X-Forwarded-For": {"198.51.100.9"}, "Forwarded": {"for=203.0.113.1"}}, "198.51.100.9"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/oauth2-token", nil)
		r.RemoteAddr = c.peer
		for k, v := range c.header {
			r.Header[k] = v
		}
		if got := s.Of(r).String(); got != c.want {
			t.Errorf("%s: clientAddr = %s, want %s", c.name, got, c.want)
		}
	}
}
